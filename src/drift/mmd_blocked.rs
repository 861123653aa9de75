//! Kernel sums of many sample splits at once, tile by tile.
//!
//! A split of the pooled samples z_1..z_N into X and Y is an indicator
//! vector a (a_i = 1 when z_i is in X), b = 1 − a. The unbiased MMD² of a
//! split needs three quadratic forms of the kernel matrix K with zero
//! diagonal: Σ_{i≠j∈X} k = aᵀKa, Σ_{i≠j∈Y} k = bᵀKb, Σ_{i∈X,j∈Y} k = aᵀKb.
//! With the indicators of all splits as the columns of an N×P matrix A, each
//! kernel tile K_IJ is multiplied by A_J (a small dense product, the blocked
//! kernel-times-permutation-matrix product) and the rows of the result are
//! dotted with A_I. Every tile is computed once (pairs i < j only), used for
//! all P splits, and dropped: memory is O(N·P + threads·TILE²), never N².

use rayon::prelude::*;

use super::kernel::{kernel_from_distances, row_norms, squared_distance_tile, TileScratch, TILE};
use super::matrix::Samples;

/// Kernel sums over the unordered pairs i < j of the pooled samples, per split.
#[derive(Debug, Clone, PartialEq)]
pub struct PairSums {
    /// Σ_{i<j, both in X} k_ij (half of Σ_{i≠j∈X}).
    pub xx: Vec<f64>,
    /// Σ_{i<j, both in Y} k_ij.
    pub yy: Vec<f64>,
    /// Σ over pairs with one sample in X and one in Y (= Σ_{i∈X,j∈Y} k_ij).
    pub xy: Vec<f64>,
}

/// Split indicators: `width` columns per row, row i for pooled sample i.
pub struct Splits {
    pub width: usize,
    pub indicators: Vec<f32>,
}

/// Computes the pair sums of every split in `splits` for the RBF kernel
/// exp(-‖x-y‖² · `scale`), using all rayon threads.
pub fn kernel_pair_sums(z: &Samples, splits: &Splits, scale: f32) -> PairSums {
    let n = z.rows();
    let width = splits.width;
    let blocks = n.div_ceil(TILE);
    let norms = row_norms(z);
    let zero = || {
        (
            vec![0.0f64; width],
            vec![0.0f64; width],
            vec![0.0f64; width],
        )
    };
    let (xx, yy, xy) = (0..blocks)
        .into_par_iter()
        .fold(
            || {
                (
                    zero(),
                    TileScratch::new(z.cols()),
                    vec![0.0f32; TILE * width],
                )
            },
            |(mut acc, mut scratch, mut products), bi| {
                let rows_i = bi * TILE..((bi + 1) * TILE).min(n);
                for bj in bi..blocks {
                    let rows_j = bj * TILE..((bj + 1) * TILE).min(n);
                    squared_distance_tile(z, &norms, rows_i.clone(), rows_j.clone(), &mut scratch);
                    kernel_from_distances(&mut scratch.out, scale);
                    // Keep the pairs i < j only: clear the diagonal and below
                    // on diagonal tiles, and the padding of partial tiles.
                    for il in 0..TILE {
                        let row = &mut scratch.out[il * TILE..(il + 1) * TILE];
                        let keep_from = if bi == bj { il + 1 } else { 0 };
                        let keep_to = rows_j.len();
                        for (jl, v) in row.iter_mut().enumerate() {
                            if jl < keep_from || jl >= keep_to || il >= rows_i.len() {
                                *v = 0.0;
                            }
                        }
                    }
                    accumulate_tile(
                        &scratch.out,
                        &splits.indicators,
                        width,
                        rows_i.clone(),
                        rows_j,
                        &mut products,
                        &mut acc,
                    );
                }
                (acc, scratch, products)
            },
        )
        .map(|(acc, _, _)| acc)
        .reduce(zero, |mut a, b| {
            a.0.iter_mut().zip(&b.0).for_each(|(x, y)| *x += y);
            a.1.iter_mut().zip(&b.1).for_each(|(x, y)| *x += y);
            a.2.iter_mut().zip(&b.2).for_each(|(x, y)| *x += y);
            a
        });
    PairSums { xx, yy, xy }
}

type Accumulators = (Vec<f64>, Vec<f64>, Vec<f64>);

fn accumulate_tile(
    tile: &[f32],
    indicators: &[f32],
    width: usize,
    rows_i: std::ops::Range<usize>,
    rows_j: std::ops::Range<usize>,
    products: &mut [f32],
    acc: &mut Accumulators,
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports AVX2 and FMA, checked just above.
        unsafe { accumulate_avx2(tile, indicators, width, rows_i, rows_j, products, acc) };
        return;
    }
    accumulate_body(tile, indicators, width, rows_i, rows_j, products, acc)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn accumulate_avx2(
    tile: &[f32],
    indicators: &[f32],
    width: usize,
    rows_i: std::ops::Range<usize>,
    rows_j: std::ops::Range<usize>,
    products: &mut [f32],
    acc: &mut Accumulators,
) {
    accumulate_body(tile, indicators, width, rows_i, rows_j, products, acc)
}

/// products u = K_IJ · A_J (rows_i × width); with r_i the tile row sum
/// and v = r − u = K_IJ · (1 − A_J), per split p:
/// xx_p += Σ_i a_ip u_ip, yy_p += Σ_i (1 − a_ip) v_ip,
/// xy_p += Σ_i a_ip v_ip + (1 − a_ip) u_ip.
/// Every term is non-negative and formed from per-row quantities, so no
/// large totals are ever subtracted from each other (no cancellation when
/// one sample is much smaller than the other). A tile's terms (at most 64
/// rows) are summed in f32 with fixed-length loops the compiler vectorises,
/// then added to the f64 accumulators once per tile.
#[inline(always)]
fn accumulate_body(
    tile: &[f32],
    indicators: &[f32],
    width: usize,
    rows_i: std::ops::Range<usize>,
    rows_j: std::ops::Range<usize>,
    products: &mut [f32],
    acc: &mut Accumulators,
) {
    let j0 = rows_j.start;
    let mut xx_tile = vec![0.0f32; width];
    let mut yy_tile = vec![0.0f32; width];
    let mut xy_tile = vec![0.0f32; width];
    for (il, i) in rows_i.enumerate() {
        let k_row = &tile[il * TILE..il * TILE + rows_j.len()];
        let u = &mut products[il * width..(il + 1) * width];
        // u = Σ_j k_ij · a_j, one register-sized block of splits at a time so
        // the running sums stay in registers across the whole row.
        let mut start = 0;
        while start + 64 <= width {
            row_times_splits::<64>(k_row, indicators, width, j0, start, u);
            start += 64;
        }
        while start + 32 <= width {
            row_times_splits::<32>(k_row, indicators, width, j0, start, u);
            start += 32;
        }
        while start + 8 <= width {
            row_times_splits::<8>(k_row, indicators, width, j0, start, u);
            start += 8;
        }
        while start < width {
            row_times_splits::<1>(k_row, indicators, width, j0, start, u);
            start += 1;
        }
        let row_sum: f32 = k_row.iter().sum();
        let a_i = &indicators[i * width..(i + 1) * width];
        let u = &u[..width];
        let (xx, yy, xy) = (
            &mut xx_tile[..width],
            &mut yy_tile[..width],
            &mut xy_tile[..width],
        );
        for p in 0..width {
            let (a, u) = (a_i[p], u[p]);
            let v = row_sum - u;
            let b = 1.0 - a;
            xx[p] += a * u;
            yy[p] += b * v;
            xy[p] += a * v + b * u;
        }
    }
    for (total, tile) in [
        (&mut acc.0, &xx_tile),
        (&mut acc.1, &yy_tile),
        (&mut acc.2, &xy_tile),
    ] {
        for (t, x) in total.iter_mut().zip(tile) {
            *t += f64::from(*x);
        }
    }
}

/// u[start..start+B] = Σ_jl k_row[jl] · A[j0+jl][start..start+B], with the
/// B partial sums in a local array the compiler keeps in vector registers.
#[inline(always)]
fn row_times_splits<const B: usize>(
    k_row: &[f32],
    indicators: &[f32],
    width: usize,
    j0: usize,
    start: usize,
    u: &mut [f32],
) {
    let mut sums = [0.0f32; B];
    for (jl, k) in k_row.iter().enumerate() {
        let offset = (j0 + jl) * width + start;
        let Some(a) = indicators.get(offset..offset + B) else {
            continue;
        };
        for (s, a) in sums.iter_mut().zip(a) {
            *s += k * a;
        }
    }
    if let Some(out) = u.get_mut(start..start + B) {
        out.copy_from_slice(&sums);
    }
}
