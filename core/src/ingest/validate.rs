//! Line validation: raw bytes → a normalised document or exactly one [`RejectReason`].
//!
//! Parsing borrows from the line wherever the JSON has no escapes (`serde_json` on a `&str`
//! already checked as UTF-8), and only extra fields become owned `serde_json::Value`s.

use super::{Document, RejectReason};
use serde::de::{
    self, Deserialize, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use std::borrow::Cow;
use std::fmt;

/// Key under which a line's own `source` field is kept (the document's `source` is the input).
pub const ORIG_SOURCE_KEY: &str = "orig_source";

/// Names a document writes itself; an input field of the same name that is not mapped to it is
/// kept as `orig_<name>` (`source` → [`ORIG_SOURCE_KEY`]).
const RESERVED: &[(&str, &str)] = &[
    ("source", ORIG_SOURCE_KEY),
    ("id", "orig_id"),
    ("text", "orig_text"),
    ("domain", "orig_domain"),
    ("split", "orig_split"),
];

/// The key an extra field is written under: reserved names get an `orig_` prefix.
pub fn extra_key(k: &str) -> &str {
    RESERVED
        .iter()
        .find(|(r, _)| *r == k)
        .map(|(_, o)| *o)
        .unwrap_or(k)
}

/// A field of the input records: a top-level key, or a dotted path into nested objects
/// (`metadata.domain`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath {
    /// As configured (`metadata.domain`).
    pub name: String,
    /// The keys from the top level down.
    pub parts: Vec<String>,
}

impl FieldPath {
    /// Parses a dotted path; empty parts are an error naming the setting.
    pub fn parse(setting: &str, name: &str) -> Result<Self, String> {
        let parts: Vec<String> = name.split('.').map(str::to_string).collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(format!(
                "{setting} must be a field name or a dotted path like metadata.domain, got `{name}`"
            ));
        }
        Ok(Self {
            name: name.to_string(),
            parts,
        })
    }

    /// The top-level key.
    pub fn top(&self) -> &str {
        &self.parts[0]
    }

    fn is_top(&self) -> bool {
        self.parts.len() == 1
    }
}

/// Where `text`, `id` and `domain` are in the input records (see `IngestConfig::text_field`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldSpec {
    /// The text field.
    pub text: FieldPath,
    /// The id field.
    pub id: FieldPath,
    /// The domain field.
    pub domain: FieldPath,
}

impl Default for FieldSpec {
    fn default() -> Self {
        Self::new("text", "id", "domain").expect("default field names")
    }
}

impl FieldSpec {
    /// Parses the three paths; they must differ.
    pub fn new(text: &str, id: &str, domain: &str) -> Result<Self, String> {
        let s = Self {
            text: FieldPath::parse("text_field", text)?,
            id: FieldPath::parse("id_field", id)?,
            domain: FieldPath::parse("domain_field", domain)?,
        };
        if text == id || text == domain || id == domain {
            return Err(format!(
                "text_field, id_field and domain_field must differ, got `{text}`, `{id}`, `{domain}`"
            ));
        }
        Ok(s)
    }

    /// The columns a columnar reader needs for the three fields.
    pub fn columns(&self) -> Vec<String> {
        vec![
            self.text.name.clone(),
            self.id.name.clone(),
            self.domain.name.clone(),
        ]
    }
}

/// A rejected line: the reason and a human-readable detail (parser message, limit, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The reason.
    pub reason: RejectReason,
    /// What exactly was wrong.
    pub detail: String,
}

impl Rejection {
    fn new(reason: RejectReason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

/// The fields of a valid line, borrowed from it where possible.
#[derive(Debug, Clone, PartialEq)]
pub struct LineFields<'a> {
    /// `id` from the line (strings as is, numbers as their JSON text).
    pub id: Option<Cow<'a, str>>,
    /// The non-empty `text`.
    pub text: Cow<'a, str>,
    /// `domain` from the line.
    pub domain: Option<Cow<'a, str>>,
    /// Every other key, in line order (`source` renamed to [`ORIG_SOURCE_KEY`]).
    pub extra: Vec<(Cow<'a, str>, serde_json::Value)>,
}

struct CowStr<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for CowStr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CowStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// A reserved field's value, classified without failing the parse.
enum Val<'a> {
    Str(Cow<'a, str>),
    Num(String),
    Null,
    Other(&'static str),
}

struct ValVisitor;

impl<'de> Visitor<'de> for ValVisitor {
    type Value = Val<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Val::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Val::Str(Cow::Owned(v.to_string())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Val::Str(Cow::Owned(v)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Val::Num(v.to_string()))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Val::Num(v.to_string()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Val::Num(
            serde_json::Number::from_f64(v)
                .map(|n| n.to_string())
                .unwrap_or_else(|| v.to_string()),
        ))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Val::Other("a boolean"))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Val::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Val::Other("an array"))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Val::Other("an object"))
    }
}

impl Val<'_> {
    fn from_json(v: &serde_json::Value) -> Val<'static> {
        match v {
            serde_json::Value::String(s) => Val::Str(Cow::Owned(s.clone())),
            serde_json::Value::Number(n) => Val::Num(n.to_string()),
            serde_json::Value::Null => Val::Null,
            serde_json::Value::Bool(_) => Val::Other("a boolean"),
            serde_json::Value::Array(_) => Val::Other("an array"),
            serde_json::Value::Object(_) => Val::Other("an object"),
        }
    }
}

/// Follows `rest` through nested objects; `None` when a key is missing or a level is not an
/// object.
fn lookup<'v>(v: &'v serde_json::Value, rest: &[String]) -> Option<&'v serde_json::Value> {
    rest.iter().try_fold(v, |v, k| v.as_object()?.get(k))
}

impl<'de> Deserialize<'de> for Val<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValVisitor)
    }
}

/// What the top level held.
enum Top<'a> {
    Object(Parsed<'a>),
    NotObject(&'static str),
}

#[derive(Default)]
struct Parsed<'a> {
    id: Option<Val<'a>>,
    text: Option<Val<'a>>,
    domain: Option<Val<'a>>,
    extra: Vec<(Cow<'a, str>, serde_json::Value)>,
    duplicate: Option<String>,
}

struct TopVisitor<'f>(&'f FieldSpec);

impl<'de> Visitor<'de> for TopVisitor<'_> {
    type Value = Top<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut p = Parsed::default();
        let fs = self.0;
        while let Some(CowStr(k)) = map.next_key::<CowStr<'de>>()? {
            let slot = if fs.id.is_top() && k == fs.id.top() {
                Some(&mut p.id)
            } else if fs.text.is_top() && k == fs.text.top() {
                Some(&mut p.text)
            } else if fs.domain.is_top() && k == fs.domain.top() {
                Some(&mut p.domain)
            } else {
                None
            };
            if let Some(slot) = slot {
                let v = map.next_value::<Val<'de>>()?;
                if slot.is_some() && p.duplicate.is_none() {
                    p.duplicate = Some(k.to_string());
                }
                *slot = Some(v);
                continue;
            }
            let v: serde_json::Value = map.next_value()?;
            let renamed = extra_key(&k);
            let k = if renamed != k.as_ref() {
                Cow::Owned(renamed.to_string())
            } else {
                k
            };
            if p.duplicate.is_none() && p.extra.iter().any(|(e, _)| *e == k) {
                p.duplicate = Some(k.to_string());
            }
            p.extra.push((k, v));
        }
        Ok(Top::Object(p))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Top::NotObject("an array"))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Top::NotObject("a string"))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Top::NotObject("a number"))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Top::NotObject("a number"))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Top::NotObject("a number"))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Top::NotObject("a boolean"))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Top::NotObject("null"))
    }
}

struct TopSeed<'f>(&'f FieldSpec);

impl<'de> DeserializeSeed<'de> for TopSeed<'_> {
    type Value = Top<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(TopVisitor(self.0))
    }
}

fn is_blank(b: &[u8]) -> bool {
    b.iter()
        .all(|c| matches!(c, b' ' | b'\t' | b'\r' | b'\x0b' | b'\x0c'))
}

fn optional_str<'a>(
    v: Option<Val<'a>>,
    key: &str,
    numbers: bool,
) -> Result<Option<Cow<'a, str>>, Rejection> {
    match v {
        None | Some(Val::Null) => Ok(None),
        Some(Val::Str(s)) if s.trim().is_empty() => Ok(None),
        Some(Val::Str(s)) => Ok(Some(s)),
        Some(Val::Num(n)) if numbers => Ok(Some(Cow::Owned(n))),
        Some(Val::Num(_)) => Err(Rejection::new(
            RejectReason::WrongType,
            format!("`{key}` must be a string, got a number"),
        )),
        Some(Val::Other(t)) => Err(Rejection::new(
            RejectReason::WrongType,
            format!("`{key}` must be a string, got {t}"),
        )),
    }
}

/// Validates one line (without its `\n`): length, blank, UTF-8 (after stripping a leading BOM
/// and a trailing `\r`), JSON syntax and depth, object shape, the text field (present, a string,
/// not blank), the id field (string or number) and the domain field (string), and duplicate
/// keys. `fields` says where the three are; a dotted path reads a nested field, and the object
/// holding it stays among the extras.
pub fn parse_line<'a>(
    line: &'a [u8],
    max_line_bytes: usize,
    fields: &FieldSpec,
) -> Result<LineFields<'a>, Rejection> {
    if line.len() > max_line_bytes {
        return Err(Rejection::new(
            RejectReason::TooLarge,
            format!(
                "{} bytes, more than max_line_bytes = {max_line_bytes}",
                line.len()
            ),
        ));
    }
    let mut b = line.strip_suffix(b"\r").unwrap_or(line);
    b = b.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(b);
    if is_blank(b) {
        return Err(Rejection::new(RejectReason::EmptyLine, "empty line"));
    }
    let s = match simdutf8::basic::from_utf8(b) {
        Ok(s) => s,
        Err(_) => {
            let at = simdutf8::compat::from_utf8(b)
                .err()
                .map(|e| e.valid_up_to())
                .unwrap_or(0);
            return Err(Rejection::new(
                RejectReason::InvalidUtf8,
                format!("invalid UTF-8 at byte {at}"),
            ));
        }
    };
    let mut de = serde_json::Deserializer::from_str(s);
    let top = TopSeed(fields)
        .deserialize(&mut de)
        .and_then(|t| de.end().map(|_| t));
    let top = match top {
        Ok(t) => t,
        Err(e) => {
            let msg = e.to_string();
            let reason = if msg.contains("recursion limit exceeded") {
                RejectReason::TooDeep
            } else {
                RejectReason::InvalidJson
            };
            return Err(Rejection::new(reason, msg));
        }
    };
    let p = match top {
        Top::NotObject(kind) => {
            return Err(Rejection::new(
                RejectReason::NotObject,
                format!("expected a JSON object, got {kind}"),
            ));
        }
        Top::Object(p) => p,
    };
    let mut p = p;
    if let Some(k) = p.duplicate {
        return Err(Rejection::new(
            RejectReason::DuplicateKey,
            format!("key `{k}` appears more than once"),
        ));
    }
    for (path, slot) in [
        (&fields.text, &mut p.text),
        (&fields.id, &mut p.id),
        (&fields.domain, &mut p.domain),
    ] {
        if !path.is_top() {
            let top = extra_key(path.top());
            *slot = p
                .extra
                .iter()
                .find(|(k, _)| k == top)
                .and_then(|(_, v)| lookup(v, &path.parts[1..]))
                .map(Val::from_json);
        }
    }
    let text = text_value(p.text, &fields.text.name)?;
    let id = optional_str(p.id, &fields.id.name, true)?;
    let domain = optional_str(p.domain, &fields.domain.name, false)?;
    Ok(LineFields {
        id,
        text,
        domain,
        extra: p.extra,
    })
}

/// The text field's value, or the rejection: missing, blank, or not a string.
fn text_value<'a>(v: Option<Val<'a>>, name: &str) -> Result<Cow<'a, str>, Rejection> {
    match v {
        None => Err(Rejection::new(
            RejectReason::MissingText,
            format!("no `{name}` key"),
        )),
        Some(Val::Str(t)) if t.trim().is_empty() => Err(Rejection::new(
            RejectReason::EmptyText,
            format!("`{name}` is empty or whitespace"),
        )),
        Some(Val::Str(t)) => Ok(t),
        Some(Val::Num(_)) => Err(Rejection::new(
            RejectReason::WrongType,
            format!("`{name}` must be a string, got a number"),
        )),
        Some(Val::Null) => Err(Rejection::new(
            RejectReason::WrongType,
            format!("`{name}` must be a string, got null"),
        )),
        Some(Val::Other(t)) => Err(Rejection::new(
            RejectReason::WrongType,
            format!("`{name}` must be a string, got {t}"),
        )),
    }
}

use super::json_out::push_str as json_str;

/// Appends the normalised document (`id, text, domain, source`, then extra keys) as one JSON
/// line. A missing id becomes `<source>:<line>`, a missing domain `fallback_domain`.
pub fn write_document(
    out: &mut Vec<u8>,
    f: &LineFields<'_>,
    source: &str,
    line: u64,
    fallback_domain: &str,
) {
    out.extend_from_slice(b"{\"id\":");
    match &f.id {
        Some(id) => json_str(out, id),
        None => json_str(out, &format!("{source}:{line}")),
    }
    out.extend_from_slice(b",\"text\":");
    json_str(out, &f.text);
    out.extend_from_slice(b",\"domain\":");
    json_str(out, f.domain.as_deref().unwrap_or(fallback_domain));
    out.extend_from_slice(b",\"source\":");
    json_str(out, source);
    for (k, v) in &f.extra {
        out.push(b',');
        json_str(out, k);
        out.push(b':');
        serde_json::to_writer(&mut *out, v).expect("writing JSON to memory");
    }
    out.extend_from_slice(b"}\n");
}

/// Appends one reject record: `{"source","line","reason","detail","bytes","raw"}` with the raw
/// line (without its `\n`) as a JSON string, or as `raw_b64` (standard base64) when it is not
/// UTF-8; `truncated: true` when only a prefix of an over-long line was kept.
pub fn write_reject(
    out: &mut Vec<u8>,
    source: &str,
    line: u64,
    r: &Rejection,
    raw: &[u8],
    total_bytes: u64,
    truncated: bool,
) {
    use base64::Engine as _;
    use std::io::Write as _;
    out.extend_from_slice(b"{\"source\":");
    json_str(out, source);
    let _ = write!(
        out,
        ",\"line\":{line},\"reason\":\"{}\",\"detail\":",
        r.reason.as_str()
    );
    json_str(out, &r.detail);
    let _ = write!(out, ",\"bytes\":{total_bytes}");
    if truncated {
        out.extend_from_slice(b",\"truncated\":true");
    }
    match simdutf8::basic::from_utf8(raw) {
        Ok(s) => {
            out.extend_from_slice(b",\"raw\":");
            json_str(out, s);
        }
        Err(_) => {
            out.extend_from_slice(b",\"raw_b64\":\"");
            let start = out.len();
            let enc_len = base64::encoded_len(raw.len(), true).unwrap_or(0);
            out.resize(start + enc_len, 0);
            let n = base64::engine::general_purpose::STANDARD
                .encode_slice(raw, &mut out[start..])
                .expect("sized buffer");
            out.truncate(start + n);
            out.push(b'"');
        }
    }
    out.extend_from_slice(b"}\n");
}

/// Where a line came from, for ids and defaults.
#[derive(Debug, Clone)]
pub struct LineOrigin<'a> {
    /// Input name (path or URL).
    pub source: &'a str,
    /// 1-based line number.
    pub line: u64,
    /// Domain when the line has none.
    pub fallback_domain: &'a str,
}

/// Validates a line and builds its [`Document`] (the owned form of [`parse_line`] +
/// [`write_document`]).
pub fn validate_json(
    line: &[u8],
    origin: &LineOrigin<'_>,
    max_line_bytes: usize,
) -> Result<Document, Rejection> {
    let f = parse_line(line, max_line_bytes, &FieldSpec::default())?;
    let mut extra = serde_json::Map::new();
    for (k, v) in f.extra {
        extra.insert(k.into_owned(), v);
    }
    Ok(Document {
        id: f
            .id
            .map(Cow::into_owned)
            .unwrap_or_else(|| format!("{}:{}", origin.source, origin.line)),
        text: f.text.into_owned(),
        domain: f
            .domain
            .map(Cow::into_owned)
            .unwrap_or_else(|| origin.fallback_domain.to_string()),
        source: origin.source.to_string(),
        extra,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use RejectReason::*;

    fn reason(line: &[u8]) -> Option<RejectReason> {
        parse_line(line, 1000, &FieldSpec::default())
            .err()
            .map(|r| r.reason)
    }

    #[test]
    fn every_reason_has_a_trigger() {
        assert_eq!(reason(b""), Some(EmptyLine));
        assert_eq!(reason(b"  \t\r"), Some(EmptyLine));
        assert_eq!(reason(&[b'x'; 1001]), Some(TooLarge));
        assert_eq!(reason(b"{\"text\":\"\xff\xfe\"}"), Some(InvalidUtf8));
        assert_eq!(reason(b"{\"text\":\"abc\""), Some(InvalidJson));
        assert_eq!(reason(b"{\"text\":\"a\"} trailing"), Some(InvalidJson));
        assert_eq!(reason(b"{\"text\":\"a\x00b\"}"), Some(InvalidJson));
        assert_eq!(reason(b"{\"text\":\"\\ud800\"}"), Some(InvalidJson));
        let deep = format!(
            "{{\"text\":\"a\",\"x\":{}{}}}",
            "[".repeat(200),
            "]".repeat(200)
        );
        assert_eq!(reason(deep.as_bytes()), Some(TooDeep));
        assert_eq!(
            parse_line(deep.as_bytes(), 1 << 20, &FieldSpec::default())
                .unwrap_err()
                .reason,
            TooDeep
        );
        assert_eq!(reason(b"[1,2]"), Some(NotObject));
        assert_eq!(reason(b"\"text\""), Some(NotObject));
        assert_eq!(reason(b"42"), Some(NotObject));
        assert_eq!(reason(b"null"), Some(NotObject));
        assert_eq!(reason(b"{\"body\":\"a\"}"), Some(MissingText));
        assert_eq!(reason(b"{\"text\":\"\"}"), Some(EmptyText));
        assert_eq!(reason(b"{\"text\":\" \\n \"}"), Some(EmptyText));
        assert_eq!(reason(b"{\"text\":12}"), Some(WrongType));
        assert_eq!(reason(b"{\"text\":null}"), Some(WrongType));
        assert_eq!(reason(b"{\"text\":[\"a\"]}"), Some(WrongType));
        assert_eq!(reason(b"{\"text\":\"a\",\"id\":[1]}"), Some(WrongType));
        assert_eq!(reason(b"{\"text\":\"a\",\"domain\":3}"), Some(WrongType));
        assert_eq!(
            reason(b"{\"text\":\"a\",\"text\":\"b\"}"),
            Some(DuplicateKey)
        );
        assert_eq!(
            reason(b"{\"text\":\"a\",\"k\":1,\"k\":2}"),
            Some(DuplicateKey)
        );
        // Each reason in ALL is covered above.
        for r in RejectReason::ALL {
            let covered = [
                EmptyLine,
                TooLarge,
                InvalidUtf8,
                InvalidJson,
                TooDeep,
                NotObject,
                MissingText,
                EmptyText,
                WrongType,
                DuplicateKey,
            ];
            assert!(covered.contains(&r), "{r} has no trigger in this test");
        }
    }

    #[test]
    fn valid_lines_normalise_and_keep_extras() {
        let origin = LineOrigin {
            source: "in/news.jsonl",
            line: 7,
            fallback_domain: "news",
        };
        let d = validate_json(
            "\u{feff}{\"text\":\"안녕\\n하세요\",\"source\":\"web\",\"label\":1}\r".as_bytes(),
            &origin,
            1 << 20,
        )
        .unwrap();
        assert_eq!(
            (
                d.id.as_str(),
                d.text.as_str(),
                d.domain.as_str(),
                d.source.as_str()
            ),
            ("in/news.jsonl:7", "안녕\n하세요", "news", "in/news.jsonl")
        );
        assert_eq!(d.extra[ORIG_SOURCE_KEY], "web");
        assert_eq!(d.extra["label"], 1);
        let d = validate_json(br#"{"id":17,"text":"x","domain":"law"}"#, &origin, 100).unwrap();
        assert_eq!((d.id.as_str(), d.domain.as_str()), ("17", "law"));
        let d = validate_json(br#"{"id":"","text":"x","domain":null}"#, &origin, 100).unwrap();
        assert_eq!(
            (d.id.as_str(), d.domain.as_str()),
            ("in/news.jsonl:7", "news")
        );

        let f = parse_line(
            r#"{"text":"가나","id":"a","k":[1,{"z":null}]}"#.as_bytes(),
            100,
            &FieldSpec::default(),
        )
        .unwrap();
        assert!(
            matches!(f.text, Cow::Borrowed(_)),
            "unescaped text is borrowed"
        );
        let mut out = Vec::new();
        write_document(&mut out, &f, "s", 1, "d");
        let back: Document = serde_json::from_slice(&out).unwrap();
        assert_eq!(back.text, "가나");
        assert_eq!(back.extra["k"], serde_json::json!([1, {"z": null}]));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"id\":\"a\",\"text\":\"가나\",\"domain\":\"d\",\"source\":\"s\",\"k\":[1,{\"z\":null}]}\n"
        );
    }

    #[test]
    fn mapped_and_dotted_fields() {
        let fs = FieldSpec::new("content", "doc_id", "metadata.domain").unwrap();
        let line =
            r#"{"doc_id":7,"content":"본문","text":"old","metadata":{"domain":"law","url":"u"}}"#;
        let f = parse_line(line.as_bytes(), 1000, &fs).unwrap();
        assert_eq!(
            (f.id.as_deref(), f.text.as_ref(), f.domain.as_deref()),
            (Some("7"), "본문", Some("law"))
        );
        let keys: Vec<&str> = f.extra.iter().map(|(k, _)| k.as_ref()).collect();
        assert_eq!(keys, ["orig_text", "metadata"]);
        let reason = |l: &str| parse_line(l.as_bytes(), 1000, &fs).unwrap_err();
        let r = reason(r#"{"text":"x"}"#);
        assert_eq!(
            (r.reason, r.detail.as_str()),
            (MissingText, "no `content` key")
        );
        assert_eq!(
            reason(r#"{"content":"x","metadata":{"domain":1}}"#).reason,
            WrongType
        );
        assert_eq!(reason(r#"{"content":1}"#).reason, WrongType);
        let f = parse_line(br#"{"content":"x","metadata":3}"#, 1000, &fs).unwrap();
        assert_eq!(f.domain, None);
        assert!(FieldSpec::new("a..b", "id", "d").is_err());
        assert!(FieldSpec::new("t", "t", "d").is_err());
    }

    #[test]
    fn reject_records_keep_raw_bytes() {
        use base64::Engine as _;
        let r = Rejection::new(InvalidUtf8, "x");
        let mut out = Vec::new();
        write_reject(&mut out, "f", 3, &r, b"\xff{\r", 3, false);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["reason"], "invalid_utf8");
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(v["raw_b64"].as_str().unwrap())
                .unwrap(),
            b"\xff{\r"
        );
        out.clear();
        write_reject(
            &mut out,
            "f",
            4,
            &Rejection::new(InvalidJson, "y"),
            b"{\"a\x00\r",
            5,
            false,
        );
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["raw"].as_str().unwrap().as_bytes(), b"{\"a\x00\r");
        assert_eq!(v["line"], 4);
    }
}
