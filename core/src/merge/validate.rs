//! Checks that a set of diffs fits a base checkpoint before any merging: every diff tensor
//! exists in the base, is a floating-point tensor (F32, F16, BF16, F64) and has the same shape,
//! and (optionally) was computed against the very same base tensor (its recorded xxh3 hash
//! matches).

use super::MergeError;
use super::checkpoint::Checkpoint;
use super::diff::DiffSet;
use crate::Result;
use rayon::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

/// Validates `diffs` against `base`; see the module documentation.
pub fn check_diffs(base: &Checkpoint, diffs: &[DiffSet], check_base: bool) -> Result<()> {
    for d in diffs {
        for (name, arr) in &d.tensors {
            let e = base.require(
                name,
                &format!(" (needed by diff `{}` in {})", d.domain(), d.dir.display()),
            )?;
            base.check_float(name, e)?;
            if e.shape != arr.shape {
                return Err(MergeError::Shape {
                    tensor: name.clone(),
                    what: format!(
                        "base {} vs diff `{}` ({})",
                        base.file.display(),
                        d.domain(),
                        d.dir.display()
                    ),
                    expected: e.shape.clone(),
                    got: arr.shape.clone(),
                }
                .into());
            }
        }
    }
    if !check_base {
        return Ok(());
    }
    let names: BTreeSet<&String> = diffs.iter().flat_map(|d| d.tensors.keys()).collect();
    let hashes: BTreeMap<&String, String> = names
        .into_par_iter()
        .map(|n| Ok((n, base.tensor_hash(n)?)))
        .collect::<Result<_>>()?;
    for d in diffs {
        for (name, e) in &d.index.tensors {
            let got = &hashes[name];
            if &e.base_hash != got {
                return Err(MergeError::BaseMismatch {
                    tensor: name.clone(),
                    domain: d.domain().to_string(),
                    base: base.file.clone(),
                    expected: e.base_hash.clone(),
                    got: got.clone(),
                }
                .into());
            }
        }
    }
    Ok(())
}
