//! Metrics: BLEU against sacreBLEU and ROUGE against rouge-score on Korean and English pairs
//! (parity to 1e-6, through the `yunmin metrics` CLI), the Rhai functions, and perplexity.
//! Needs a Python with sacrebleu and rouge-score: `$YUNMIN_PYTHON`, else `<repo>/.venv/bin/python`
//! (`scripts/test.sh` installs `scripts/python-requirements/eval.txt` there).

use std::path::{Path, PathBuf};
use yunmin_bench::metrics::{make_pairs, read_texts};
use yunmin_tests::{python, repo_root, text, write_script, yunmin};

const TOL: f64 = 1e-6;

fn corpora() -> PathBuf {
    let p = repo_root().join("../shared/data/corpora");
    assert!(
        p.exists(),
        "{} is missing (the shared Korean corpora sit next to the repository)",
        p.display()
    );
    p
}

/// English sentences written for these tests: punctuation, numbers, entities, case and
/// hyphenation that exercise every 13a rule.
const ENGLISH: &[(&str, &str)] = &[
    ("The cat sat on the mat.", "The cat sat on the mat."),
    ("The cat is on the mat.", "There is a cat on the mat."),
    (
        "Hello, world! It's 3.14 and 1,000 items.",
        "Hello world, it is 3.14 and 1,000 items!",
    ),
    (
        "He paid $5,000.00 for the e-mail service (annual).",
        "He paid $5,000 for the email service, annually.",
    ),
    (
        "U.S.A. and U.K. signed the treaty in 1999-2000.",
        "The U.S.A. and the U.K. signed a treaty in 1999 - 2000.",
    ),
    (
        "Use &quot;quotes&quot; &amp; &lt;tags&gt; carefully.",
        "Use \"quotes\" & <tags> carefully.",
    ),
    (
        "state-of-the-art models<skipped> are big-\nger",
        "state-of-the-art models are bigger",
    ),
    (
        "A quick brown fox jumps over the lazy dog",
        "The quick brown fox jumped over the lazy dogs",
    ),
    (
        "Numbers: 1.5, 2.75; 10-20 or 3-4?",
        "Numbers 1.5 , 2.75 ; 10 - 20 or 3 - 4 ?",
    ),
    ("", "An empty hypothesis scores zero."),
    ("   ", "Whitespace only."),
    (
        "completely different words here",
        "nothing in common at all",
    ),
    (
        "Tabs\tand\x1cseparators\u{3000}count as space",
        "Tabs and separators count as space",
    ),
    ("Mixed CASE Words Here", "mixed case words here"),
    (
        "İstanbul is a city; ΟΔΟΣ is Greek.",
        "istanbul is a city and οδος is greek",
    ),
    (
        "Line one of a summary.\nLine two follows here.",
        "Line one of the summary.\nAnd line two follows.",
    ),
    (
        "first sentence\n\nthird after a blank line",
        "first sentence\nthird after blank line",
    ),
    (
        "The meeting was postponed until next week.",
        "The meeting has been postponed to next week.",
    ),
    (
        "She said: \"I'll be there at 5 p.m.\"",
        "She said she would be there at 5 pm.",
    ),
    (
        "Prices rose 3.5% in Q1, analysts said.",
        "Analysts said prices rose by 3.5 % in the first quarter.",
    ),
];

/// Korean pairs from the shared corpora (NLI sentence neighbours and perturbed copies of chat
/// and news texts, some with two lines), plus the English pairs.
fn pairs() -> (Vec<String>, Vec<String>) {
    let dir = corpora();
    let nli = read_texts(&dir.join("nli.jsonl.zst"), 40).unwrap();
    let chat = read_texts(&dir.join("chat_qa.jsonl.zst"), 200).unwrap();
    let news = read_texts(&dir.join("news_comments.jsonl.zst"), 200).unwrap();
    let mut hyps = Vec::new();
    let mut refs = Vec::new();
    for w in nli.chunks(2).take(15) {
        hyps.push(w[1].clone());
        refs.push(w[0].clone());
    }
    let mixed: Vec<String> = chat
        .iter()
        .zip(&news)
        .flat_map(|(a, b)| [a.clone(), b.clone()])
        .collect();
    let (h, r) = make_pairs(&mixed, 45, 11).unwrap();
    hyps.extend(h);
    refs.extend(r);
    for (h, r) in ENGLISH {
        hyps.push(h.to_string());
        refs.push(r.to_string());
    }
    (hyps, refs)
}

fn write_jsonl(path: &Path, lines: &[String]) {
    let body: String = lines
        .iter()
        .map(|l| serde_json::to_string(l).unwrap() + "\n")
        .collect();
    std::fs::write(path, body).unwrap();
}

const PY_PARITY: &str = r#"
import json, re, sys
import sacrebleu
from sacrebleu.metrics import BLEU
from rouge_score import rouge_scorer

def load(p):
    return [json.loads(l) for l in open(p, encoding="utf-8") if l.strip()]

hyps, refs, refs2 = load(sys.argv[1]), load(sys.argv[2]), load(sys.argv[3])
out = {"bleu": {}, "sentence": {}, "rouge": {}}

def bleu_json(metric, score):
    return {"score": score.score, "counts": list(score.counts), "totals": list(score.totals),
            "precisions": list(score.precisions), "bp": score.bp, "sys_len": score.sys_len,
            "ref_len": score.ref_len, "signature": str(metric.get_signature())}

for name, kw, streams in [
    ("13a", {"tokenize": "13a"}, [refs]),
    ("char", {"tokenize": "char"}, [refs]),
    ("13a_lc", {"tokenize": "13a", "lowercase": True}, [refs]),
    ("13a_2refs", {"tokenize": "13a"}, [refs, refs2]),
    ("char_2refs", {"tokenize": "char"}, [refs, refs2]),
]:
    m = BLEU(**kw)
    out["bleu"][name] = bleu_json(m, m.corpus_score(hyps, streams))

for tok in ["13a", "char"]:
    m = BLEU(tokenize=tok, effective_order=True)
    out["sentence"][tok] = [m.sentence_score(h, [r]).score for h, r in zip(hyps, refs)]
    out["sentence"][tok + "_signature"] = str(m.get_signature())

class Whitespace:
    def tokenize(self, text):
        return text.split()

class Char:
    def tokenize(self, text):
        return [c for c in text if not c.isspace()]

class Hangul:
    def tokenize(self, text):
        return re.findall(r"[^\W_]+", text.lower())

def jamo(text):
    s = []
    for c in text:
        o = ord(c)
        if 0xAC00 <= o <= 0xD7A3:
            o -= 0xAC00
            s.append(chr(0x1100 + o // 588)); s.append(chr(0x1161 + (o % 588) // 28))
            if o % 28:
                s.append(chr(0x11A7 + o % 28))
        else:
            s.append(c)
    return "".join(s)

class Jamo:
    def tokenize(self, text):
        return [c for c in jamo(text.lower()) if not c.isspace()]

types = ["rouge1", "rouge2", "rougeL", "rougeLsum"]
for name, tok in [("rouge", None), ("whitespace", Whitespace()), ("char", Char()), ("hangul", Hangul()), ("jamo", Jamo())]:
    sc = rouge_scorer.RougeScorer(types, tokenizer=tok)
    rows = []
    for h, r in zip(hyps, refs):
        s = sc.score(r, h)
        rows.append({t: [s[t].precision, s[t].recall, s[t].fmeasure] for t in types})
    out["rouge"][name] = rows
sc = rouge_scorer.RougeScorer(types, tokenizer=Whitespace())
out["rouge"]["whitespace_2refs"] = [
    {t: [v.precision, v.recall, v.fmeasure] for t, v in sc.score_multi([r, r2], h).items()}
    for h, r, r2 in zip(hyps, refs, refs2)]
json.dump(out, open(sys.argv[4], "w"))
"#;

struct Fixture {
    dir: tempfile::TempDir,
    expected: serde_json::Value,
    n: usize,
    hyps: Vec<String>,
    refs: Vec<String>,
}

fn fixture() -> Fixture {
    let (hyps, refs) = pairs();
    assert!(hyps.len() >= 80, "{} pairs", hyps.len());
    // A second reference stream: the reference of the next pair (or the hypothesis itself).
    let refs2: Vec<String> = (0..refs.len())
        .map(|i| {
            if i % 3 == 0 {
                hyps[i].clone()
            } else {
                refs[(i + 1) % refs.len()].clone()
            }
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    write_jsonl(&dir.path().join("hyp.jsonl"), &hyps);
    write_jsonl(&dir.path().join("ref.jsonl"), &refs);
    write_jsonl(&dir.path().join("ref2.jsonl"), &refs2);
    let script = write_script(dir.path(), "parity.py", PY_PARITY);
    let exp = dir.path().join("expected.json");
    let o = std::process::Command::new(python())
        .arg(&script)
        .args(["hyp.jsonl", "ref.jsonl", "ref2.jsonl"])
        .arg(&exp)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "python parity script failed:\n{}",
        text(&o)
    );
    let expected = serde_json::from_str(&std::fs::read_to_string(&exp).unwrap()).unwrap();
    Fixture {
        dir,
        expected,
        n: hyps.len(),
        hyps,
        refs,
    }
}

fn run_json(dir: &Path, args: &[&str]) -> serde_json::Value {
    let o = yunmin(dir, args);
    assert!(o.status.success(), "{}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)))
}

fn close(a: f64, b: f64, what: &str) {
    assert!((a - b).abs() <= TOL, "{what}: yunmin {a} vs python {b}");
}

fn read_csv(path: &Path) -> (Vec<String>, Vec<Vec<f64>>) {
    let s = std::fs::read_to_string(path).unwrap();
    let mut lines = s.lines();
    let header = lines
        .next()
        .unwrap()
        .split(',')
        .map(str::to_string)
        .collect();
    let rows = lines
        .map(|l| l.split(',').map(|x| x.parse::<f64>().unwrap()).collect())
        .collect();
    (header, rows)
}

#[test]
fn bleu_matches_sacrebleu_corpus_and_sentence() {
    let f = fixture();
    let d = f.dir.path();
    let cases: &[(&str, &[&str])] = &[
        ("13a", &["--tokenize", "13a"]),
        ("char", &["--tokenize", "char"]),
        ("13a_lc", &["--tokenize", "13a", "--lowercase"]),
        ("13a_2refs", &["--tokenize", "13a", "--ref", "ref2.jsonl"]),
        ("char_2refs", &["--tokenize", "char", "--ref", "ref2.jsonl"]),
    ];
    for (name, extra) in cases {
        let mut args = vec![
            "metrics",
            "bleu",
            "--hyp",
            "hyp.jsonl",
            "--ref",
            "ref.jsonl",
            "--json",
        ];
        args.extend_from_slice(extra);
        let got = run_json(d, &args);
        let want = &f.expected["bleu"][name];
        close(
            got["score"].as_f64().unwrap(),
            want["score"].as_f64().unwrap(),
            &format!("{name} score"),
        );
        close(
            got["bp"].as_f64().unwrap(),
            want["bp"].as_f64().unwrap(),
            &format!("{name} bp"),
        );
        for k in ["counts", "totals", "sys_len", "ref_len", "signature"] {
            assert_eq!(got[k], want[k], "{name} {k}");
        }
        for (a, b) in got["precisions"]
            .as_array()
            .unwrap()
            .iter()
            .zip(want["precisions"].as_array().unwrap())
        {
            close(
                a.as_f64().unwrap(),
                b.as_f64().unwrap(),
                &format!("{name} precision"),
            );
        }
        assert!(
            want["score"].as_f64().unwrap() > 1.0,
            "{name}: a meaningful score, not 0"
        );
    }
    for tok in ["13a", "char"] {
        let got = run_json(
            d,
            &[
                "metrics",
                "bleu",
                "--sentence",
                "--hyp",
                "hyp.jsonl",
                "--ref",
                "ref.jsonl",
                "--tokenize",
                tok,
                "--json",
            ],
        );
        let got = got.as_array().unwrap();
        let want = f.expected["sentence"][tok].as_array().unwrap();
        assert_eq!(got.len(), f.n);
        let mut nonzero = 0;
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            close(
                g["score"].as_f64().unwrap(),
                w.as_f64().unwrap(),
                &format!("sentence {tok} item {i}"),
            );
            nonzero += (w.as_f64().unwrap() > 0.0) as usize;
        }
        assert!(
            nonzero > f.n / 2,
            "{tok}: most sentence scores are non-zero"
        );
        assert_eq!(
            got[0]["signature"],
            f.expected["sentence"][format!("{tok}_signature")]
        );
    }
}

#[test]
fn rouge_matches_rouge_score_for_every_tokenizer() {
    let f = fixture();
    let d = f.dir.path();
    let types = ["rouge1", "rouge2", "rougeL", "rougeLsum"];
    for (tok, refs) in [
        ("rouge", &["ref.jsonl"][..]),
        ("whitespace", &["ref.jsonl"][..]),
        ("char", &["ref.jsonl"][..]),
        ("hangul", &["ref.jsonl"][..]),
        ("jamo", &["ref.jsonl"][..]),
        ("whitespace_2refs", &["ref.jsonl", "ref2.jsonl"][..]),
    ] {
        let out = format!("rouge_{tok}.csv");
        let mut args = vec![
            "metrics",
            "rouge",
            "--hyp",
            "hyp.jsonl",
            "--tokenizer",
            tok.trim_end_matches("_2refs"),
            "--table",
            out.as_str(),
            "--json",
        ];
        for r in refs {
            args.extend(["--ref", *r]);
        }
        let summary = run_json(d, &args);
        let (header, rows) = read_csv(&d.join(&out));
        let want = f.expected["rouge"][tok].as_array().unwrap();
        assert_eq!(rows.len(), f.n);
        let mut nonzero = 0;
        for (i, (row, w)) in rows.iter().zip(want).enumerate() {
            for t in types {
                for (k, part) in ["precision", "recall", "fmeasure"].iter().enumerate() {
                    let col = header
                        .iter()
                        .position(|h| *h == format!("{t}_{part}"))
                        .unwrap();
                    close(
                        row[col],
                        w[t][k].as_f64().unwrap(),
                        &format!("{tok} item {i} {t} {part}"),
                    );
                }
            }
            nonzero += (w["rouge1"][2].as_f64().unwrap() > 0.0) as usize;
        }
        // Mean F in the summary equals the mean of rouge-score's per-item F.
        for (k, t) in types.iter().enumerate() {
            let mean: f64 =
                want.iter().map(|w| w[t][2].as_f64().unwrap()).sum::<f64>() / f.n as f64;
            close(
                summary["mean"][k]["fmeasure"].as_f64().unwrap(),
                mean,
                &format!("{tok} mean {t}"),
            );
        }
        if tok == "rouge" {
            // rouge-score's own tokenizer deletes Hangul: Korean pairs without Latin letters or
            // digits score 0 (and there are many of them).
            let ascii = |s: &str| s.chars().any(|c| c.is_ascii_alphanumeric());
            let korean: Vec<usize> = (0..60)
                .filter(|&i| !ascii(&f.hyps[i]) && !ascii(&f.refs[i]))
                .collect();
            assert!(korean.len() >= 20, "{} pure-Hangul pairs", korean.len());
            assert!(
                korean
                    .iter()
                    .all(|&i| want[i]["rouge1"][2].as_f64().unwrap() == 0.0)
            );
            assert!(nonzero >= 15, "English pairs score");
        } else {
            assert!(
                nonzero > f.n * 3 / 4,
                "{tok}: {nonzero} of {} pairs overlap",
                f.n
            );
        }
    }
}

#[test]
fn metrics_from_rhai_and_bad_options() {
    let d = tempfile::tempdir().unwrap();
    let s = write_script(
        d.path(),
        "m.rhai",
        r#"
let b = bleu(["the cat sat on the mat", "오늘 날씨가 좋네요."], ["the cat sat on a mat", "오늘 날씨가 좋네요."]);
print(`bleu=${b.score} sig=${b.signature} bp=${b.bp} counts=${b.counts}`);
let c = bleu(["오늘 날씨가 좋네요"], [["오늘은 날씨가 좋다", "날씨가 좋네요"]], #{ tokenize: "char" });
print(`char=${c.score} sig=${c.signature}`);
let s = sentence_bleu("the cat sat", "the cat sat down");
print(`sent=${s.score}`);
let r = rouge(["오늘 날씨가 정말 좋네요"], ["오늘 날씨가 좋네요"]);
print(`rouge1=${r.rouge1.fmeasure} rougeL=${r.rougeL.recall} tok=${r.tokenizer}`);
r.table.write_csv("rouge_items.csv");
let p = perplexity();
p.add("law", 20.0, 10);
p.add_tokens("chat", [1.0, 1.0]);
print(`ppl_law=${p.value("law")} overall=${p.value("overall")}`);
p.table().write_csv("ppl.csv");
"#,
    );
    let o = yunmin(d.path(), &["run", s.to_str().unwrap(), "--out", "run"]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let get = |key: &str| -> String {
        let prefix = format!("{key}=");
        let tok = out
            .split_whitespace()
            .find(|t| t.starts_with(&prefix))
            .unwrap_or_else(|| panic!("{key}: {out}"));
        tok[prefix.len()..].to_string()
    };
    // sacrebleu.corpus_bleu(["the cat sat on the mat", "오늘 날씨가 좋네요."], [["the cat sat on a mat", "오늘 날씨가 좋네요."]])
    close(get("bleu").parse().unwrap(), 68.87246539984297, "rhai bleu");
    assert!(
        out.contains("sig=nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0"),
        "{out}"
    );
    // sacrebleu.corpus_bleu(["오늘 날씨가 좋네요"], [["오늘은 날씨가 좋다"], ["날씨가 좋네요"]], tokenize="char")
    close(
        get("char").parse().unwrap(),
        76.520588325569,
        "rhai char bleu",
    );
    // sacrebleu.sentence_bleu("the cat sat", ["the cat sat down"])
    close(
        get("sent").parse().unwrap(),
        71.65313105737896,
        "rhai sentence bleu",
    );
    close(
        get("rouge1").parse().unwrap(),
        2.0 * 0.75 / 1.75,
        "rhai rouge1",
    );
    close(get("ppl_law").parse().unwrap(), 2.0f64.exp(), "ppl law");
    close(
        get("overall").parse().unwrap(),
        (22.0f64 / 12.0).exp(),
        "ppl overall",
    );
    let ppl = std::fs::read_to_string(d.path().join("run/ppl.csv")).unwrap();
    assert!(
        ppl.starts_with("domain,tokens,nll_sum,mean_nll,perplexity\nchat,2,2.0,1.0,"),
        "{ppl}"
    );
    assert!(d.path().join("run/rouge_items.csv").exists());

    let bad = write_script(
        d.path(),
        "bad.rhai",
        "let b = bleu([\"a\"], [\"a\"], #{ tokenise: \"13a\" });\n",
    );
    let o = yunmin(d.path(), &["run", bad.to_str().unwrap(), "--out", "run2"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("unknown option `tokenise`") && err.contains("tokenize"),
        "{}",
        text(&o)
    );
    let bad = write_script(
        d.path(),
        "bad2.rhai",
        "let r = rouge([\"a\", \"b\"], [\"a\"]);\n",
    );
    let o = yunmin(d.path(), &["run", bad.to_str().unwrap(), "--out", "run3"]);
    assert!(
        !o.status.success()
            && String::from_utf8_lossy(&o.stderr).contains("hypotheses has 2 segments"),
        "{}",
        text(&o)
    );
    std::fs::write(d.path().join("h.txt"), "a\nb\n").unwrap();
    std::fs::write(d.path().join("r.txt"), "a\n").unwrap();
    let o = yunmin(
        d.path(),
        &["metrics", "bleu", "--hyp", "h.txt", "--ref", "r.txt"],
    );
    assert!(
        !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("has 2 lines but"),
        "{}",
        text(&o)
    );
    let o = yunmin(
        d.path(),
        &[
            "metrics",
            "rouge",
            "--hyp",
            "h.txt",
            "--ref",
            "h.txt",
            "--tokenizer",
            "mecab",
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(
        !o.status.success()
            && err.contains("option `tokenizer`")
            && err.contains("mecab")
            && ["hangul", "rouge", "whitespace", "char", "jamo"]
                .iter()
                .all(|t| err.contains(&format!("`{t}`"))),
        "{}",
        text(&o)
    );
}
