//! A conversion cut into one part per domain: each part is a [`super::convert`] with
//! `domains = [d]` into its own directory (a `yunmin parquet convert --domains d`, e.g. one Ray
//! task per domain), and [`gather`] joins the parts into the directory one conversion would
//! have written: the same files with the same rows, the rejects in input order, one report.

use super::ColumnarError;
use super::config::{ConvertConfig, Layout};
use super::convert::hf_readme;
use super::report::{ConversionReport, REJECTS_FILE, REPORT_FILE};
use crate::ingest::Dataset;
use crate::run::{AtomicDir, link_or_copy, write_atomic};
use crate::{Error, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Directory of part `index` of `count` of the conversion into `out_dir`: a sibling,
/// `<parent>/parts/<name>-IIII-of-NNNN`.
pub fn part_dir(out_dir: &Path, index: usize, count: usize) -> PathBuf {
    let name = out_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "parquet".into());
    out_dir
        .parent()
        .unwrap_or(Path::new("."))
        .join("parts")
        .join(format!("{name}-{index:04}-of-{count:04}"))
}

fn read_report(dir: &Path) -> Result<ConversionReport> {
    let p = dir.join(REPORT_FILE);
    let text = std::fs::read_to_string(&p).map_err(|e| {
        ColumnarError::Config(format!(
            "conversion part {}: no report ({e}); convert it first",
            dir.display()
        ))
    })?;
    serde_json::from_str(&text).map_err(|e| Error::Json { path: p, source: e })
}

/// Joins the conversions in `parts` (directories, each a [`super::convert`] of `dataset` with
/// `cfg` except for `domains`) into `out_dir`, replaced atomically. Files are hard-linked (no
/// copies on one file system); the rejects are merged in input order (shard, then line).
pub fn gather(
    dataset: &Dataset,
    parts: &[PathBuf],
    out_dir: &Path,
    cfg: &ConvertConfig,
) -> Result<ConversionReport> {
    let t0 = Instant::now();
    let reports: Vec<ConversionReport> = parts
        .iter()
        .map(|d| read_report(d))
        .collect::<Result<_>>()?;
    let first = reports
        .first()
        .ok_or_else(|| ColumnarError::Config("gather: no parts given".into()))?;
    for (d, r) in parts.iter().zip(&reports) {
        let same = ConvertConfig {
            domains: cfg.domains.clone(),
            ..r.config.clone()
        } == *cfg;
        let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        if !same || canon(&r.input) != canon(dataset.dir()) || r.schema != first.schema {
            return Err(ColumnarError::Config(format!(
                "conversion part {}: converted {} with other options than this gather's; convert it again",
                d.display(),
                r.input.display()
            ))
            .into());
        }
    }
    let atomic = AtomicDir::new(out_dir)?;
    let tmp = atomic.path().to_path_buf();
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io("create directory", &tmp, e))?;
    let mut out = ConversionReport {
        output: out_dir.to_path_buf(),
        config: cfg.clone(),
        domains: Vec::new(),
        files: Default::default(),
        docs_in: 0,
        rows_written: 0,
        tokens_written: 0,
        rejected: 0,
        rejected_by_category: Default::default(),
        output_bytes: 0,
        ..first.clone()
    };
    for (d, r) in parts.iter().zip(&reports) {
        for (rel, f) in &r.files {
            link_or_copy(&d.join(rel), &tmp.join(rel))?;
            if !tmp.join(&f.schema_file).exists() {
                link_or_copy(&d.join(&f.schema_file), &tmp.join(&f.schema_file))?;
            }
            out.files.insert(rel.clone(), f.clone());
        }
        out.domains.extend(r.domains.iter().cloned());
        out.docs_in += r.docs_in;
        out.rows_written += r.rows_written;
        out.tokens_written += r.tokens_written;
        out.rejected += r.rejected;
        out.output_bytes += r.output_bytes;
        for (k, v) in &r.rejected_by_category {
            *out.rejected_by_category.entry(k.clone()).or_default() += v;
        }
    }
    out.domains.sort();
    out.domains.dedup();
    link_or_copy(&parts[0].join("schema.txt"), &tmp.join("schema.txt"))?;
    if cfg.layout == Layout::Hf {
        write_atomic(
            &tmp.join("README.md"),
            hf_readme(&out.domains, cfg.heldout > 0.0).as_bytes(),
        )?;
    }
    // Rejects in input order: by shard (in the dataset's order, known by file name, however
    // the part spelled the dataset's path), then line.
    let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
    let shard_no: HashMap<String, usize> = dataset
        .shards()?
        .iter()
        .enumerate()
        .filter_map(|(i, p)| Some((name(p)?, i)))
        .collect();
    let mut lines: Vec<((usize, u64), String)> = Vec::new();
    for d in parts {
        let p = d.join(REJECTS_FILE);
        let text = std::fs::read_to_string(&p).map_err(|e| Error::io("read", &p, e))?;
        for l in text.lines().filter(|l| !l.is_empty()) {
            let v: serde_json::Value = serde_json::from_str(l).map_err(|e| Error::Json {
                path: p.clone(),
                source: e,
            })?;
            let shard = v["shard"]
                .as_str()
                .and_then(|s| shard_no.get(&name(Path::new(s))?))
                .copied();
            let (Some(shard), Some(line)) = (shard, v["line"].as_u64()) else {
                return Err(ColumnarError::Config(format!(
                    "conversion part {}: a reject names no shard of {} or no line: {l}",
                    d.display(),
                    dataset.dir().display()
                ))
                .into());
            };
            lines.push(((shard, line), l.to_string()));
        }
    }
    lines.sort_by_key(|(k, _)| *k);
    let mut body = String::with_capacity(lines.iter().map(|(_, l)| l.len() + 1).sum());
    for (_, l) in &lines {
        body.push_str(l);
        body.push('\n');
    }
    write_atomic(&tmp.join(REJECTS_FILE), body.as_bytes())?;
    out.seconds = t0.elapsed().as_secs_f64();
    out.peak_rss_mb = super::memory::peak_rss_mb();
    let json = serde_json::to_vec_pretty(&out).map_err(|e| Error::Json {
        path: tmp.join(REPORT_FILE),
        source: e,
    })?;
    write_atomic(&tmp.join(REPORT_FILE), &json)?;
    atomic.commit()?;
    Ok(out)
}
