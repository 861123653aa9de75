//! The Gaussian RBF kernel k(x, y) = exp(-‖x - y‖² / (2σ²)) evaluated on
//! square tiles of sample pairs, so that no (n+m)² matrix is ever held.
//!
//! Squared distances use the expansion ‖x‖² + ‖y‖² - 2⟨x, y⟩ with the inner
//! loop running over the columns of the tile (an axpy the compiler turns into
//! packed FMAs), and the exponential is a branch-free polynomial that also
//! vectorises (`exp_neg`). The hot loops are compiled twice: once for the
//! baseline target and once with AVX2+FMA, picked at run time.

use super::matrix::Samples;

/// Side of a square tile of sample pairs.
pub const TILE: usize = 64;

/// Squared Euclidean norm of every row.
pub fn row_norms(z: &Samples) -> Vec<f32> {
    (0..z.rows())
        .map(|r| z.row(r).iter().map(|v| v * v).sum())
        .collect()
}

/// Exact squared distance between two rows, in f64 (for the small cases and tests).
pub fn squared_distance_f64(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            let d = f64::from(*x) - f64::from(*y);
            d * d
        })
        .sum()
}

/// Scratch space of one tile: the J rows transposed and the output tile.
pub struct TileScratch {
    transposed: Vec<f32>,
    pub out: Vec<f32>,
}

impl TileScratch {
    pub fn new(cols: usize) -> Self {
        Self {
            transposed: vec![0.0; cols * TILE],
            out: vec![0.0; TILE * TILE],
        }
    }
}

/// Fills `scratch.out[il * TILE + jl]` with ‖z_i - z_j‖² for `i` in
/// `rows_i`, `j` in `rows_j` (both at most `TILE` long), clamped at 0.
pub fn squared_distance_tile(
    z: &Samples,
    norms: &[f32],
    rows_i: std::ops::Range<usize>,
    rows_j: std::ops::Range<usize>,
    scratch: &mut TileScratch,
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports AVX2 and FMA, checked just above.
        unsafe { distance_tile_avx2(z, norms, rows_i, rows_j, scratch) };
        return;
    }
    distance_tile_generic(z, norms, rows_i, rows_j, scratch);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn distance_tile_avx2(
    z: &Samples,
    norms: &[f32],
    rows_i: std::ops::Range<usize>,
    rows_j: std::ops::Range<usize>,
    scratch: &mut TileScratch,
) {
    distance_tile_body(z, norms, rows_i, rows_j, scratch)
}

fn distance_tile_generic(
    z: &Samples,
    norms: &[f32],
    rows_i: std::ops::Range<usize>,
    rows_j: std::ops::Range<usize>,
    scratch: &mut TileScratch,
) {
    distance_tile_body(z, norms, rows_i, rows_j, scratch)
}

#[inline(always)]
fn distance_tile_body(
    z: &Samples,
    norms: &[f32],
    rows_i: std::ops::Range<usize>,
    rows_j: std::ops::Range<usize>,
    scratch: &mut TileScratch,
) {
    let d = z.cols();
    let nj = rows_j.len();
    // Transpose the J rows so the innermost loop walks contiguous memory.
    for (jl, j) in rows_j.clone().enumerate() {
        for (k, v) in z.row(j).iter().enumerate() {
            scratch.transposed[k * TILE + jl] = *v;
        }
    }
    for jl in nj..TILE {
        for k in 0..d {
            scratch.transposed[k * TILE + jl] = 0.0;
        }
    }
    let mut norm_j = [0.0f32; TILE];
    norm_j[..nj].copy_from_slice(&norms[rows_j.clone()]);
    for (il, i) in rows_i.enumerate() {
        let mut acc = [0.0f32; TILE];
        for (k, zik) in z.row(i).iter().enumerate() {
            let col: &[f32; TILE] = scratch.transposed[k * TILE..(k + 1) * TILE]
                .try_into()
                .unwrap_or(&[0.0; TILE]);
            for (a, c) in acc.iter_mut().zip(col) {
                *a += zik * c;
            }
        }
        let ni = norms[i];
        let out = &mut scratch.out[il * TILE..(il + 1) * TILE];
        for ((o, a), nj) in out.iter_mut().zip(&acc).zip(&norm_j) {
            *o = (ni + nj - 2.0 * a).max(0.0);
        }
    }
}

/// Replaces every squared distance of the tile by its kernel value
/// exp(-dist · `scale`), `scale` = 1 / (2σ²).
pub fn kernel_from_distances(values: &mut [f32], scale: f32) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports AVX2 and FMA, checked just above.
        unsafe { kernel_avx2(values, scale) };
        return;
    }
    kernel_body(values, scale)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel_avx2(values: &mut [f32], scale: f32) {
    kernel_body(values, scale)
}

#[inline(always)]
fn kernel_body(values: &mut [f32], scale: f32) {
    for v in values.iter_mut() {
        *v = exp_neg(-*v * scale);
    }
}

/// e^x for x ≤ 0 in single precision without branches or libm calls, so a
/// loop over it vectorises. Cody–Waite range reduction x = n·ln2 + r with
/// |r| ≤ ln2/2 (ln2 split in a high and a low part so n·ln2_hi is exact),
/// then the degree-6 Taylor polynomial of e^r (truncation error
/// |r|⁷/7! < 1.3e-7 relative) and the scaling by 2ⁿ built from the exponent
/// bits. Inputs below -87 are clamped (e^-87 ≈ 1.6e-38, the smallest normal
/// f32), so kernel values of far-apart pairs become ~0, never NaN.
#[inline(always)]
pub fn exp_neg(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // 1.5·2²³: adding it rounds to an integer held in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 0.0);
    let shifted = x * LOG2_E + ROUND;
    let n = shifted - ROUND;
    let n_int = shifted.to_bits().wrapping_sub(ROUND.to_bits()) as i32;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    let scale = f32::from_bits(((n_int + 127) as u32) << 23);
    p * scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_neg_is_accurate() {
        let mut worst = 0.0f64;
        let mut x = 0.0f32;
        while x > -80.0 {
            let got = f64::from(exp_neg(x));
            let want = f64::from(x).exp();
            worst = worst.max(((got - want) / want).abs());
            x -= 0.0137;
        }
        assert!(worst < 1e-6, "worst relative error {worst}");
        assert_eq!(exp_neg(0.0), 1.0);
        assert!(exp_neg(-1000.0) >= 0.0 && exp_neg(-1000.0) < 1e-37);
    }

    #[test]
    fn tile_distances_match_direct_ones() {
        let rows: Vec<Vec<f32>> = (0..70)
            .map(|i| {
                (0..5)
                    .map(|k| ((i * 7 + k * 3) % 11) as f32 * 0.37 - 1.0)
                    .collect()
            })
            .collect();
        let z = Samples::from_rows(&rows).unwrap();
        let norms = row_norms(&z);
        let mut scratch = TileScratch::new(5);
        squared_distance_tile(&z, &norms, 0..64, 64..70, &mut scratch);
        for il in 0..64 {
            for jl in 0..6 {
                let want = squared_distance_f64(z.row(il), z.row(64 + jl));
                let got = f64::from(scratch.out[il * TILE + jl]);
                assert!((got - want).abs() < 1e-4 * (1.0 + want), "{got} vs {want}");
            }
        }
    }
}
