//! The conversion's configuration: codecs per column, row groups, dictionary, statistics, the
//! held-out split and declared extra columns.

use super::ColumnarError;
use crate::Result;
use arrow::datatypes::DataType;
use parquet::basic::{BrotliLevel, Compression, ZstdLevel};
use parquet::file::properties::EnabledStatistics;
use serde::{Deserialize, Serialize};

/// A declared extra column: a field of the input documents (beside `id`, `text`, `domain`,
/// `source`) carried into the Parquet files. Extras are nullable. Written `name:type` in
/// configs, flags and scripts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ExtraField {
    /// Field name in the JSON documents and column name in Parquet.
    pub name: String,
    /// `utf8`, `int64`, `float64` or `bool`.
    pub ty: String,
}

impl TryFrom<String> for ExtraField {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        Self::parse(&s).map_err(|e| e.to_string())
    }
}

impl From<ExtraField> for String {
    fn from(e: ExtraField) -> String {
        format!("{}:{}", e.name, e.ty)
    }
}

impl ExtraField {
    /// Parses `name:type` (e.g. `label:int64`).
    pub fn parse(spec: &str) -> Result<Self> {
        let (name, ty) = spec.split_once(':').ok_or_else(|| {
            ColumnarError::Config(format!(
                "extra column `{spec}`: expected NAME:TYPE (type utf8, int64, float64 or bool)"
            ))
        })?;
        let f = Self {
            name: name.trim().to_string(),
            ty: ty.trim().to_string(),
        };
        f.data_type()?;
        Ok(f)
    }

    /// The Arrow type.
    pub fn data_type(&self) -> Result<DataType> {
        Ok(match self.ty.as_str() {
            "utf8" | "string" => DataType::Utf8,
            "int64" | "int" => DataType::Int64,
            "float64" | "float" => DataType::Float64,
            "bool" | "boolean" => DataType::Boolean,
            other => {
                return Err(ColumnarError::Config(format!(
                    "extra column `{}`: unknown type `{other}` (known: utf8, int64, float64, bool)",
                    self.name
                ))
                .into());
            }
        })
    }
}

/// What to do with input fields that are neither core fields nor declared extras.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum UnknownFields {
    /// Leave them out of the Parquet files (default; they stay in the JSONL dataset).
    #[default]
    Ignore,
    /// Reject the row (to the rejects file, with the field named).
    Reject,
}

/// Which encoder compresses the Brotli string columns (`text` by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BrotliEncoder {
    /// The reference C encoder (through `brotlic`), page by page: the same bytes as pyarrow,
    /// about 1.5× less CPU than the Rust port (default).
    #[default]
    C,
    /// parquet's own pure-Rust encoder (the `brotli` crate).
    Rust,
}

impl BrotliEncoder {
    /// The name the CLI and scripts use (`c`, `rust`).
    pub fn name(self) -> &'static str {
        match self {
            Self::C => "c",
            Self::Rust => "rust",
        }
    }
}

impl std::str::FromStr for BrotliEncoder {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "c" => Ok(Self::C),
            "rust" => Ok(Self::Rust),
            other => Err(ColumnarError::Config(format!(
                "brotli encoder must be c or rust, got `{other}`"
            ))
            .into()),
        }
    }
}

/// Configuration of [`super::convert`]. Every field has a documented default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConvertConfig {
    /// Codec of the `text` column: `brotli[:level 0-11]`, `zstd[:level 1-22]`, `snappy` or
    /// `none` (default `brotli:5`).
    pub text: String,
    /// Codec of the `tokens` column (default `zstd:3`).
    pub tokens: String,
    /// Codec of every other column (`id`, `domain`, `source`, `n_tokens`, extras; default `zstd:3`).
    pub other: String,
    /// Encoder of the Brotli string columns that are not dictionary-encoded (default `c`).
    pub brotli_encoder: BrotliEncoder,
    /// Maximum rows per row group (default 65 536).
    pub row_group_rows: usize,
    /// Maximum in-memory (Arrow) megabytes per row group before it is encoded (default 8).
    pub row_group_mb: usize,
    /// Dictionary encoding for the low-cardinality columns (`domain`, `source`, extras);
    /// `id`, `text` and `tokens` are never dictionary-encoded (default true).
    pub dictionary: bool,
    /// Statistics: `none`, `chunk` (per column chunk, the default) or `page`.
    pub statistics: String,
    /// Fraction of each domain's documents put in the held-out file, chosen by a seeded hash of
    /// the id (default 0.01; 0 writes no held-out files).
    pub heldout: f64,
    /// Seed of the held-out split (default 42).
    pub seed: u64,
    /// Declared extra columns (default none).
    pub extras: Vec<ExtraField>,
    /// Fields that are not declared (default `ignore`).
    pub unknown_fields: UnknownFields,
    /// Input is read in chunks of at most this many documents (default 8192)…
    pub chunk_rows: usize,
    /// …and at most this many megabytes (default 8; a single larger line is one chunk).
    pub chunk_mb: usize,
    /// Arrow data waiting to be encoded, across all output files, is capped at this many
    /// megabytes; above it the largest buffer is encoded early (default 48).
    pub buffer_mb: usize,
    /// File layout of the output (default `flat`).
    pub layout: Layout,
    /// Convert only the documents of these domains (default: all). One conversion per domain
    /// is how the work is cut into parts that run side by side ([`super::gather`] joins them).
    pub domains: Vec<String>,
}

/// How a conversion names its files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// `<domain>.parquet` and `heldout/<domain>.parquet`, each with `<stem>.schema.txt`.
    #[default]
    Flat,
    /// The Hugging Face datasets layout: `<domain>/train-00000-of-00001.parquet` and
    /// `<domain>/heldout-00000-of-00001.parquet`, one `<domain>/schema.txt`, and a `README.md`
    /// whose `configs` give every domain (and `all`) its `train` and `heldout` splits.
    Hf,
}

impl std::str::FromStr for Layout {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "flat" => Ok(Layout::Flat),
            "hf" => Ok(Layout::Hf),
            _ => Err(ColumnarError::Config(format!("layout must be flat or hf, got `{s}`")).into()),
        }
    }
}

impl Default for ConvertConfig {
    fn default() -> Self {
        Self {
            text: "brotli:5".into(),
            tokens: "zstd:3".into(),
            other: "zstd:3".into(),
            brotli_encoder: BrotliEncoder::C,
            row_group_rows: 65_536,
            row_group_mb: 8,
            dictionary: true,
            statistics: "chunk".into(),
            heldout: 0.01,
            seed: 42,
            extras: Vec::new(),
            unknown_fields: UnknownFields::Ignore,
            chunk_rows: 8192,
            chunk_mb: 8,
            buffer_mb: 48,
            layout: Layout::Flat,
            domains: Vec::new(),
        }
    }
}

/// Parses a codec spec: `brotli`, `brotli:5`, `zstd`, `zstd:9`, `snappy`, `none`.
pub fn parse_codec(spec: &str) -> Result<Compression> {
    let bad = |msg: String| -> crate::Error { ColumnarError::Config(msg).into() };
    let (name, level) = match spec.split_once(':') {
        Some((n, l)) => (n.trim(), Some(l.trim())),
        None => (spec.trim(), None),
    };
    let lvl = |d: i64| -> Result<i64> {
        level.map_or(Ok(d), |l| {
            l.parse::<i64>()
                .map_err(|_| bad(format!("codec `{spec}`: level `{l}` is not a number")))
        })
    };
    Ok(match name.to_ascii_lowercase().as_str() {
        "brotli" => Compression::BROTLI(
            BrotliLevel::try_new(lvl(5)? as u32)
                .map_err(|_| bad(format!("codec `{spec}`: brotli levels are 0–11")))?,
        ),
        "zstd" => Compression::ZSTD(
            ZstdLevel::try_new(lvl(3)? as i32)
                .map_err(|_| bad(format!("codec `{spec}`: zstd levels are 1–22")))?,
        ),
        "snappy" | "none" | "uncompressed" if level.is_some() => {
            return Err(bad(format!("codec `{spec}`: {name} takes no level")));
        }
        "snappy" => Compression::SNAPPY,
        "none" | "uncompressed" => Compression::UNCOMPRESSED,
        _ => {
            return Err(bad(format!(
                "unknown codec `{spec}` (known: brotli[:0-11], zstd[:1-22], snappy, none)"
            )));
        }
    })
}

/// The name a codec has in Parquet metadata and pyarrow (`BROTLI`, `ZSTD`, `SNAPPY`, `UNCOMPRESSED`).
pub fn codec_name(c: Compression) -> &'static str {
    match c {
        Compression::UNCOMPRESSED => "UNCOMPRESSED",
        Compression::SNAPPY => "SNAPPY",
        Compression::GZIP(_) => "GZIP",
        Compression::LZO => "LZO",
        Compression::BROTLI(_) => "BROTLI",
        Compression::LZ4 => "LZ4",
        Compression::ZSTD(_) => "ZSTD",
        Compression::LZ4_RAW => "LZ4_RAW",
    }
}

impl crate::config::Primitive for ConvertConfig {
    const NAME: &'static str = "to_parquet";
    const OPTIONS: &'static [crate::config::OptionDoc] = {
        use crate::config::opt;
        &[
            opt(
                "text",
                "codec of the text column: brotli[:0-11], zstd[:1-22], snappy or none",
            ),
            opt("tokens", "codec of the tokens column"),
            opt(
                "other",
                "codec of the other columns (id, domain, source, n_tokens, extras)",
            ),
            opt(
                "brotli_encoder",
                "encoder of Brotli string columns: c (the reference library, page by page) or rust",
            ),
            opt("row_group_rows", "maximum rows per row group"),
            opt(
                "row_group_mb",
                "maximum in-memory megabytes per row group before it is encoded",
            ),
            opt(
                "dictionary",
                "dictionary encoding for the low-cardinality columns (domain, source, extras)",
            ),
            opt("statistics", "statistics: none, chunk or page"),
            opt(
                "heldout",
                "held-out fraction per domain (seeded hash of the id; 0 writes no held-out files)",
            ),
            opt("seed", "seed of the held-out split (Rhai: the run's seed)"),
            opt(
                "extras",
                "declared extra columns NAME:TYPE (type utf8, int64, float64 or bool)",
            ),
            opt(
                "unknown_fields",
                "fields neither built in nor declared: ignore, or reject the row",
            ),
            opt("chunk_rows", "documents per input chunk"),
            opt("chunk_mb", "megabytes per input chunk"),
            opt(
                "buffer_mb",
                "cap on Arrow data waiting to be encoded, in megabytes",
            ),
            opt(
                "layout",
                "flat (<domain>.parquet, heldout/<domain>.parquet) or hf (<domain>/train-00000-of-00001.parquet …, README.md)",
            ),
            opt(
                "domains",
                "convert only these domains (comma-separated; default all): one part of a conversion run side by side",
            ),
        ]
    };
}

impl ConvertConfig {
    /// Checks every setting, naming the first bad one.
    pub fn check(&self) -> Result<()> {
        let bad = |m: String| -> crate::Error { ColumnarError::Config(m).into() };
        for (k, v) in [
            ("text", &self.text),
            ("tokens", &self.tokens),
            ("other", &self.other),
        ] {
            parse_codec(v).map_err(|e| bad(format!("`{k}`: {e}")))?;
        }
        self.statistics()?;
        if !(0.0..1.0).contains(&self.heldout) {
            return Err(bad(format!(
                "`heldout` must be in [0, 1), got {}",
                self.heldout
            )));
        }
        for (k, v) in [
            ("row_group_rows", self.row_group_rows),
            ("row_group_mb", self.row_group_mb),
            ("chunk_rows", self.chunk_rows),
            ("chunk_mb", self.chunk_mb),
            ("buffer_mb", self.buffer_mb),
        ] {
            if v == 0 {
                return Err(bad(format!("`{k}` must be at least 1")));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for e in &self.extras {
            e.data_type()?;
            if super::schema::CORE_FIELDS.contains(&e.name.as_str())
                || !seen.insert(e.name.as_str())
                || e.name.is_empty()
            {
                return Err(bad(format!(
                    "extra column `{}`: empty, duplicated or a built-in column name",
                    e.name
                )));
            }
        }
        Ok(())
    }

    /// The same settings as `yunmin parquet convert` flags (every option, defaults included),
    /// so a conversion can run as its own process, e.g. beside a peer in a benchmark.
    pub fn cli_args(&self) -> Vec<String> {
        crate::config::cli_args(self)
    }

    /// The statistics level.
    pub fn statistics(&self) -> Result<EnabledStatistics> {
        Ok(match self.statistics.as_str() {
            "none" => EnabledStatistics::None,
            "chunk" => EnabledStatistics::Chunk,
            "page" => EnabledStatistics::Page,
            s => {
                return Err(ColumnarError::Config(format!(
                    "`statistics` must be none, chunk or page, got `{s}`"
                ))
                .into());
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codecs_parse_with_levels_and_errors_name_the_spec() {
        assert_eq!(
            parse_codec("brotli:7").unwrap(),
            Compression::BROTLI(BrotliLevel::try_new(7).unwrap())
        );
        assert_eq!(
            parse_codec("ZSTD").unwrap(),
            Compression::ZSTD(ZstdLevel::try_new(3).unwrap())
        );
        assert_eq!(parse_codec("none").unwrap(), Compression::UNCOMPRESSED);
        assert!(
            parse_codec("brotli:12")
                .unwrap_err()
                .to_string()
                .contains("0–11")
        );
        assert!(
            parse_codec("gzip")
                .unwrap_err()
                .to_string()
                .contains("known: brotli")
        );
        let c = ConvertConfig {
            heldout: 1.0,
            ..Default::default()
        };
        assert!(c.check().unwrap_err().to_string().contains("heldout"));
        let c = ConvertConfig {
            extras: vec![ExtraField {
                name: "text".into(),
                ty: "utf8".into(),
            }],
            ..Default::default()
        };
        assert!(c.check().unwrap_err().to_string().contains("built-in"));
        assert!(
            ExtraField::parse("label:int32")
                .unwrap_err()
                .to_string()
                .contains("unknown type")
        );
    }
}
