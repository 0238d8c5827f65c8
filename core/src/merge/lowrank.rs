//! The LoRA update as a dense matrix: `ΔW = scale · B @ A` with `B: [out, r]`, `A: [r, in]`,
//! computed with `matrixmultiply`'s SGEMM over blocks of output rows in parallel (rayon).

use rayon::prelude::*;

/// Output rows per parallel block.
const ROWS_PER_BLOCK: usize = 64;

/// Writes `scale · B @ A` into `out` (`[out_rows, in]`, row-major). `b` is `[out_rows, r]`,
/// `a` is `[r, in]`, both row-major.
///
/// # Panics
/// When the slice lengths do not match the shapes (callers check shapes first).
pub fn lora_delta(
    b: &[f32],
    a: &[f32],
    out_rows: usize,
    r: usize,
    cols: usize,
    scale: f32,
    out: &mut [f32],
) {
    assert_eq!(b.len(), out_rows * r, "B length");
    assert_eq!(a.len(), r * cols, "A length");
    assert_eq!(out.len(), out_rows * cols, "output length");
    if cols == 0 {
        return;
    }
    out.par_chunks_mut(ROWS_PER_BLOCK * cols)
        .enumerate()
        .for_each(|(blk, c)| {
            let rows = c.len() / cols;
            let b_blk = &b[blk * ROWS_PER_BLOCK * r..(blk * ROWS_PER_BLOCK + rows) * r];
            // SAFETY: the pointers cover exactly rows×r, r×cols and rows×cols row-major matrices
            // (lengths asserted above); `c` is exclusively borrowed.
            unsafe {
                matrixmultiply::sgemm(
                    rows,
                    r,
                    cols,
                    scale,
                    b_blk.as_ptr(),
                    r as isize,
                    1,
                    a.as_ptr(),
                    cols as isize,
                    1,
                    0.0,
                    c.as_mut_ptr(),
                    cols as isize,
                    1,
                );
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_naive_product() {
        let (o, r, i) = (130, 3, 7);
        let b: Vec<f32> = (0..o * r)
            .map(|x| ((x * 7 % 11) as f32 - 5.0) / 3.0)
            .collect();
        let a: Vec<f32> = (0..r * i)
            .map(|x| ((x * 5 % 13) as f32 - 6.0) / 4.0)
            .collect();
        let mut out = vec![0.0; o * i];
        lora_delta(&b, &a, o, r, i, 2.0, &mut out);
        for row in 0..o {
            for col in 0..i {
                let want: f32 = 2.0 * (0..r).map(|k| b[row * r + k] * a[k * i + col]).sum::<f32>();
                assert!((out[row * i + col] - want).abs() <= 1e-5 * want.abs().max(1.0));
            }
        }
    }
}
