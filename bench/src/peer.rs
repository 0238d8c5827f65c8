//! The one runner of measured processes — yunmin's own commands and the Python peers alike:
//! finding the interpreter and the peer scripts, spawning, wall time and peak memory, the peer's
//! JSON result line, and CSV through [`Table`].

use anyhow::{Context, Result, anyhow, bail};
use serde::Serialize;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use yunmin_core::report::Table;

/// The Python that runs peers: `explicit`, else `$YUNMIN_PYTHON`, else `.venv/bin/python`; an
/// error names the requirements file (`scripts/python-requirements/<requirements>.txt`) that
/// installs what the peer needs.
pub fn python(explicit: Option<&Path>, requirements: &str) -> Result<PathBuf> {
    yunmin_core::run::python(explicit).ok_or_else(|| {
        anyhow!(
            "no Python for the peers: pass --python, set YUNMIN_PYTHON or create .venv \
             (python3 -m venv .venv && .venv/bin/pip install -r \
             scripts/python-requirements/{requirements}.txt)"
        )
    })
}

/// `scripts/bench/<name>` of the repository: found above the current directory, else beside
/// the sources this benchmark was built from.
pub fn script(name: &str) -> Result<PathBuf> {
    let rel = Path::new("scripts/bench").join(name);
    let mut dir = std::env::current_dir()?;
    loop {
        if dir.join(&rel).is_file() {
            return Ok(dir.join(&rel));
        }
        if !dir.pop() {
            break;
        }
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(&rel);
    if built.is_file() {
        return Ok(built);
    }
    bail!(
        "{} not found above the current directory (run from the repository)",
        rel.display()
    )
}

/// The corpora directory: `explicit`, else `$YUNMIN_CORPORA`; there is no default, so no
/// benchmark reads outside the repository unless told to.
pub fn corpora(explicit: Option<&Path>) -> Result<PathBuf> {
    explicit
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("YUNMIN_CORPORA").map(PathBuf::from))
        .ok_or_else(|| {
            anyhow!(
                "--corpora is required (or set YUNMIN_CORPORA): a directory of *.jsonl.zst \
                 corpora of {{id, text, domain, source}} lines"
            )
        })
}

/// The `yunmin` executable running this benchmark, for measuring yunmin's own commands as
/// processes (process start included, as the peers').
pub fn yunmin() -> Result<PathBuf> {
    std::env::current_exe().context("the path of the running yunmin")
}

/// A finished measured process.
#[derive(Debug, Clone)]
pub struct Finished {
    /// Everything it printed on stdout.
    pub stdout: String,
    /// Wall seconds from spawn to exit (process start included).
    pub seconds: f64,
    /// Its own peak resident memory in MiB (`VmHWM`, polled until it exits; `ru_maxrss`
    /// would include the parent's high-water mark inherited across fork and exec).
    pub peak_mib: f64,
}

impl Finished {
    /// The last line of stdout that is a JSON object: how peers report their own numbers.
    pub fn json(&self) -> Result<serde_json::Value> {
        let line = self
            .stdout
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with('{'))
            .ok_or_else(|| anyhow!("no JSON result line in the output: {}", self.stdout))?;
        serde_json::from_str(line).with_context(|| format!("result line `{line}`"))
    }
}

fn drain(r: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut r) = r {
            let _ = r.read_to_string(&mut s);
        }
        s
    })
}

/// Runs `cmd` to completion, measuring its wall time and peak memory; a failure is an error
/// with the command and what it printed on stderr.
pub fn run(cmd: &mut Command) -> Result<Finished> {
    let t = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {cmd:?}"))?;
    let pid = child.id();
    let (out, err) = (drain(child.stdout.take()), drain(child.stderr.take()));
    let mut peak = 0u64;
    let status = loop {
        if let Some(b) = yunmin_core::run::peak_rss_bytes(Some(pid)) {
            peak = peak.max(b);
        }
        if let Some(st) = child.try_wait()? {
            break st;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let seconds = t.elapsed().as_secs_f64();
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    if !status.success() {
        bail!("{cmd:?} failed ({status}): {stderr}");
    }
    Ok(Finished {
        stdout,
        seconds,
        peak_mib: peak as f64 / (1 << 20) as f64,
    })
}

/// Peak resident memory of this process in MiB (`VmHWM`), 0 when the platform does not say.
pub fn own_peak_mib() -> f64 {
    yunmin_core::run::peak_rss_bytes(None).unwrap_or(0) as f64 / (1 << 20) as f64
}

/// Rows as a [`Table`] (columns in field order).
pub fn table<T: Serialize>(rows: &[T]) -> Result<Table> {
    let mut t = Table::new();
    for r in rows {
        match serde_json::to_value(r)? {
            serde_json::Value::Object(m) => t.push_row(&m)?,
            v => bail!("a benchmark row is not an object: {v}"),
        }
    }
    Ok(t)
}

/// Writes `rows` as CSV (atomically), replacing the file.
pub fn write_csv<T: Serialize>(path: &Path, rows: &[T]) -> Result<()> {
    table(rows)?
        .write_csv(path)
        .with_context(|| format!("writing {}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(())
}

/// Appends `rows` to the CSV at `path` (created with a header when absent).
pub fn append_csv<T: Serialize>(path: &Path, rows: &[T]) -> Result<()> {
    let mut t = if path.exists() {
        Table::read_csv(path).with_context(|| format!("reading {}", path.display()))?
    } else {
        Table::new()
    };
    t.append(&table(rows)?)?;
    t.write_csv(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// The CPU the measurements ran on, for the CSVs: ratios against the peers depend on it (the
/// same build and peers gave 1.3× on one AMD EPYC generation and 2.4× on the next), e.g.
/// `AMD EPYC (family 26 model 2), AVX-512`. From `/proc/cpuinfo` on Linux; elsewhere the
/// architecture's name.
pub fn cpu() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    cpu_of(&info).unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

/// [`cpu`] from the text of `/proc/cpuinfo` (its first processor); `None` without a model name.
fn cpu_of(info: &str) -> Option<String> {
    let first = info.split("\n\n").next()?;
    let field = |key: &str| {
        first.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == key).then(|| v.trim().to_string())
        })
    };
    let mut label = field("model name")?;
    if let (Some(family), Some(model)) = (field("cpu family"), field("model")) {
        label.push_str(&format!(" (family {family} model {model})"));
    }
    let flags = field("flags").unwrap_or_default();
    let has = |flag: &str| flags.split_whitespace().any(|f| f == flag);
    if let Some((_, widest)) = [("avx512f", "AVX-512"), ("avx2", "AVX2")]
        .into_iter()
        .find(|&(flag, _)| has(flag))
    {
        label.push_str(", ");
        label.push_str(widest);
    }
    Some(label)
}

/// `x` rounded to `digits` decimals (what the CSVs show; NaN stays NaN).
pub fn round(x: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (x * p).round() / p
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A child's peak memory is its own (a 64 MiB allocation shows, this process's does not),
    /// its JSON line is read, and a failure carries its stderr.
    #[test]
    fn runs_a_child_and_reads_its_peak_memory_and_result() {
        let f = run(Command::new("python3").args([
            "-c",
            "b = bytearray(96 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1\nprint('x')\nprint('{\"n\": 3}')",
        ]))
        .unwrap();
        assert!(f.peak_mib > 64.0, "{}", f.peak_mib);
        assert_eq!(f.json().unwrap()["n"], 3);
        assert!(f.seconds > 0.0);
        let e = run(Command::new("python3").args(["-c", "import sys; sys.exit('boom')"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("boom"), "{e}");
    }

    /// Appended rows keep the earlier ones and the header once.
    #[test]
    fn csv_rows_are_written_and_appended() {
        #[derive(Serialize)]
        struct R {
            tool: &'static str,
            seconds: f64,
        }
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("b.csv");
        append_csv(
            &p,
            &[R {
                tool: "a",
                seconds: 1.5,
            }],
        )
        .unwrap();
        append_csv(
            &p,
            &[R {
                tool: "b",
                seconds: 2.0,
            }],
        )
        .unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(
            text.lines().collect::<Vec<_>>(),
            ["tool,seconds", "a,1.5", "b,2.0"]
        );
    }

    /// The label names the first processor's model, family and widest vector extension, and
    /// says nothing it was not told.
    #[test]
    fn the_cpu_label_comes_from_cpuinfo() {
        let zen5 = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 26\nmodel\t\t: 2\n\
                    model name\t: AMD EPYC\nflags\t\t: fpu avx2 avx512f avx512bw\n\n\
                    processor\t: 1\nmodel name\t: other\n";
        assert_eq!(
            cpu_of(zen5).as_deref(),
            Some("AMD EPYC (family 26 model 2), AVX-512")
        );
        let plain = "model name\t: Some CPU\nflags\t\t: fpu sse2 avx2\n";
        assert_eq!(cpu_of(plain).as_deref(), Some("Some CPU, AVX2"));
        assert_eq!(cpu_of("processor\t: 0\nflags\t: avx2\n"), None);
        assert!(!cpu().is_empty());
    }
}
