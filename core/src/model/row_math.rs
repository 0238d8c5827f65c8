//! Row kernels of the inference path: a branch-free exponential, eight-lane reductions, the
//! softmax of a row and the next-token NLL of a row of logits. Written so that loops over them
//! vectorise, with a fixed order of operations (the same result on every thread and machine).

/// In-place softmax of one row.
#[inline(always)]
pub(super) fn softmax(row: &mut [f32]) {
    let max = lanes_max(row);
    for v in row.iter_mut() {
        *v = exp_nonpositive(*v - max);
    }
    let inv = 1.0 / lanes_sum_of(row, |v| v);
    for v in row.iter_mut() {
        *v *= inv;
    }
}

/// Eight-lane reductions, so the loops vectorise (a single accumulator cannot: float addition
/// is not reassociated).
pub(super) const LANES: usize = 8;

/// `Σ f(x)` over eight lanes.
#[inline(always)]
pub(super) fn lanes_sum_of(x: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let chunks = x.chunks_exact(LANES);
    let rest: f32 = chunks.remainder().iter().map(|&v| f(v)).sum();
    let mut acc = [0.0f32; LANES];
    for c in chunks {
        for i in 0..LANES {
            acc[i] += f(c[i]);
        }
    }
    acc.iter().sum::<f32>() + rest
}

/// The largest value over eight lanes.
#[inline(always)]
pub(super) fn lanes_max(x: &[f32]) -> f32 {
    let chunks = x.chunks_exact(LANES);
    let rest = chunks.remainder();
    let mut acc = [f32::NEG_INFINITY; LANES];
    for c in chunks {
        for i in 0..LANES {
            acc[i] = if c[i] > acc[i] { c[i] } else { acc[i] };
        }
    }
    acc.iter()
        .chain(rest)
        .copied()
        .fold(f32::NEG_INFINITY, f32::max)
}

/// `-log softmax(row)[target]` = log-sum-exp of the row minus the target's logit; the
/// exponentials ([`exp_nonpositive`], of each logit minus the row's maximum) are summed in
/// `f64` over eight fixed lanes, so the compiler vectorises the loop and the result does not
/// depend on the thread or the machine.
#[inline(always)]
pub(super) fn nll_of_row(row: &[f32], target: usize) -> f32 {
    let max = lanes_max(row);
    let chunks = row.chunks_exact(LANES);
    let rest = chunks.remainder();
    let mut acc = [0.0f64; LANES];
    for c in chunks {
        for i in 0..LANES {
            acc[i] += f64::from(exp_nonpositive(c[i] - max));
        }
    }
    let mut sum: f64 = acc.iter().sum();
    for &x in rest {
        sum += f64::from(exp_nonpositive(x - max));
    }
    (f64::from(max) + sum.ln() - f64::from(row[target])) as f32
}

/// `e^x` for `x ≤ 0` within 2e-7 relative error (0 below −87.3, where `f32` leaves the
/// normal range): Cody–Waite reduction by ln 2 and Cephes' degree-6 polynomial, without
/// branches or calls, so a loop over it vectorises (libm's `expf` is one call per value).
#[inline(always)]
pub(super) fn exp_nonpositive(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // Adding 1.5·2²³ rounds to the nearest integer (|x·log2 e| < 2²²).
    const ROUND: f32 = 12_582_912.0;
    const C1: f32 = 0.693_359_4;
    const C2: f32 = -2.121_944_4e-4;
    let clamped = if x > -87.3 { x } else { -87.3 };
    let t = clamped * LOG2E + ROUND;
    let n = t - ROUND;
    let r = clamped - n * C1 - n * C2;
    let mut p = 1.987_569_2e-4_f32;
    p = p * r + 1.398_2e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 0.166_666_65;
    p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    // 2ⁿ from the integer in `t`'s low mantissa bits (no float-to-int conversion).
    let scale = f32::from_bits(
        (t.to_bits().wrapping_sub(ROUND.to_bits()))
            .wrapping_add(127)
            .wrapping_shl(23),
    );
    let v = e * scale;
    if x > -87.3 { v } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::{exp_nonpositive, nll_of_row};

    #[test]
    fn exp_nonpositive_is_within_two_tenths_of_a_millionth_of_libm() {
        let mut worst = 0.0f64;
        for i in 0..=200_000 {
            let x = -(i as f32) * 0.000_45; // 0 … −90
            let want = f64::from(x).exp();
            let got = f64::from(exp_nonpositive(x));
            if x > -87.3 {
                worst = worst.max(((got - want) / want).abs());
            } else {
                assert_eq!(got, 0.0, "{x}");
            }
        }
        assert!(worst < 2e-7, "worst relative error {worst}");
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert_eq!(exp_nonpositive(f32::NEG_INFINITY), 0.0);
    }

    #[test]
    fn nll_of_row_equals_the_f64_log_sum_exp() {
        // Rows of many lengths (lanes and remainder), spread and offset logits.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for len in [1usize, 7, 8, 9, 63, 1900] {
            let row: Vec<f32> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    ((state >> 40) as f32 / (1u64 << 24) as f32) * 40.0 - 25.0
                })
                .collect();
            for t in [0, len / 2, len - 1] {
                let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
                let lse = max
                    + row
                        .iter()
                        .map(|&x| (f64::from(x) - max).exp())
                        .sum::<f64>()
                        .ln();
                let want = lse - f64::from(row[t]);
                let got = f64::from(nll_of_row(&row, t));
                assert!(
                    (got - want).abs() <= 1e-6 * want.abs().max(1.0),
                    "len {len} target {t}: {got} vs {want}"
                );
            }
        }
    }
}
