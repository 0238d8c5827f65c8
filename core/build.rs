//! Records the resolved versions of the crates the product is built on, for run manifests.

use std::{env, fs, path::Path};

const TRACKED: &[&str] = &[
    "rhai",
    "polars",
    "arrow",
    "parquet",
    "burn",
    "aws-sdk-s3",
    "redis",
    "rayon",
    "tokenizers",
];

fn main() {
    let lock = Path::new(&env::var("CARGO_MANIFEST_DIR").unwrap()).join("../Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock.display());
    let text = fs::read_to_string(&lock).unwrap_or_default();
    let mut found = Vec::new();
    let mut name: Option<&str> = None;
    for line in text.lines() {
        if let Some(n) = line.strip_prefix("name = \"") {
            name = n.strip_suffix('"');
        } else if let (Some(v), Some(n)) = (line.strip_prefix("version = \""), name) {
            if TRACKED.contains(&n) && !found.iter().any(|(f, _): &(String, String)| f == n) {
                found.push((n.to_string(), v.trim_end_matches('"').to_string()));
            }
            name = None;
        }
    }
    let joined: Vec<String> = found.iter().map(|(n, v)| format!("{n}={v}")).collect();
    println!("cargo:rustc-env=YUNMIN_DEP_VERSIONS={}", joined.join(","));
}
