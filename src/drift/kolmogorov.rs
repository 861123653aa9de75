//! The distribution of the one-sample two-sided Kolmogorov–Smirnov
//! statistic D_n = sup |F_n − F| for a continuous F, for finite n.
//!
//! Follows the recipe of R. Simard and P. L'Ecuyer, "Computing the Two-Sided
//! Kolmogorov–Smirnov Distribution", Journal of Statistical Software 39(11),
//! 2011, which picks, by region of (n, x), the method that is both fast and
//! accurate (the same regions SciPy's `kstwo` uses, so p-values agree):
//! - x ≤ 1/(2n), n·x ≤ 1 and n·x ≥ n−1: closed forms of Ruben & Gambino (1982);
//! - x ≥ 1/2: 1 − 2·P(D⁺_n ≥ x), exact;
//! - n ≤ 140, n·x² ≤ 4: the exact Durbin matrix formula as evaluated by
//!   Marsaglia, Tsang & Wang ("Evaluating Kolmogorov's Distribution", JSS
//!   8(18), 2003) — Simard & L'Ecuyer use Pomeranz' recursion above
//!   n·x² = 0.754693 for speed; both are exact, so the values agree;
//! - n ≤ 140 otherwise: Miller's 2·P(D⁺_n ≥ x);
//! - n > 140: survival 0 for n·x² ≥ 370, Miller's 2·P(D⁺_n ≥ x) for
//!   n·x² ≥ 2.2; otherwise 1 − CDF with the CDF from Durbin's matrix when
//!   n·x^{3/2} ≤ 1.4 (and n ≤ 100 000), else the Pelz–Good (1976) asymptotic
//!   series, and CDF 1 for n·x² ≥ 18.
//!
//! P(D⁺_n ≥ x), the one-sided exact Smirnov probability, is the
//! Birnbaum–Tingey (1951) sum.

use std::f64::consts::PI;

/// P(D_n > x), the p-value of an observed statistic x with n samples.
pub fn kolmogorov_sf(n: u64, x: f64) -> f64 {
    if n == 0 || x.is_nan() {
        return f64::NAN;
    }
    let nf = n as f64;
    if x >= 1.0 {
        return 0.0;
    }
    if x <= 0.0 {
        return 1.0;
    }
    let t = nf * x;
    if t <= 1.0 {
        if t <= 0.5 {
            return 1.0;
        }
        // P(D_n ≤ x) = n!/nⁿ (2t − 1)ⁿ for 1/(2n) < x ≤ 1/n.
        let log_cdf = log_factorial_over_power(n) + nf * (2.0 * t - 1.0).ln();
        return clip(1.0 - log_cdf.exp());
    }
    if t >= nf - 1.0 {
        return clip(2.0 * (1.0 - x).powf(nf));
    }
    if x >= 0.5 {
        return clip(2.0 * smirnov_sf(n, x));
    }
    let n_x_squared = t * x;
    if n <= 140 {
        if n_x_squared <= 4.0 {
            return clip(1.0 - durbin_cdf(n, x));
        }
        return clip(2.0 * smirnov_sf(n, x));
    }
    if n_x_squared >= 370.0 {
        return 0.0;
    }
    if n_x_squared >= 2.2 {
        return clip(2.0 * smirnov_sf(n, x));
    }
    let cdf = if n_x_squared >= 18.0 {
        1.0
    } else if n <= 100_000 && nf * x.powf(1.5) <= 1.4 {
        durbin_cdf(n, x)
    } else {
        pelz_good_cdf(n, x)
    };
    clip(1.0 - cdf)
}

fn clip(p: f64) -> f64 {
    p.clamp(0.0, 1.0)
}

/// ln(n! / nⁿ), summed term by term (exact to rounding for the n used here).
fn log_factorial_over_power(n: u64) -> f64 {
    let nf = n as f64;
    (1..=n).map(|i| (i as f64 / nf).ln()).sum()
}

/// P(D⁺_n ≥ x), Birnbaum & Tingey (1951):
/// x · Σ_{j=0}^{⌊n(1−x)⌋} C(n,j) (1 − x − j/n)^{n−j} (x + j/n)^{j−1},
/// each term evaluated in logarithms so nothing overflows.
pub fn smirnov_sf(n: u64, x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    if x >= 1.0 {
        return 0.0;
    }
    let nf = n as f64;
    let last = (nf * (1.0 - x)).floor() as u64;
    let mut log_binomial = 0.0f64;
    let mut sum = 0.0f64;
    for j in 0..=last {
        if j > 0 {
            log_binomial += ((n - j + 1) as f64 / j as f64).ln();
        }
        let jf = j as f64;
        let a = 1.0 - x - jf / nf;
        if a <= 0.0 {
            continue;
        }
        let b = x + jf / nf;
        let log_term = log_binomial + (nf - jf) * a.ln() + (jf - 1.0) * b.ln();
        sum += log_term.exp();
    }
    clip(x * sum)
}

/// P(D_n < x) by Durbin's matrix formula (Durbin 1973), evaluated as in
/// Marsaglia, Tsang & Wang (2003): with k = ⌊n·x⌋ + 1, m = 2k − 1 and
/// h = k − n·x, P = n!/nⁿ · (Hⁿ)_{k,k} for the m×m matrix H below. Powers
/// are taken by repeated squaring with a separate binary exponent so that
/// nothing overflows.
pub fn durbin_cdf(n: u64, x: f64) -> f64 {
    let nf = n as f64;
    let k = (nf * x).floor() as usize + 1;
    let m = 2 * k - 1;
    let h = k as f64 - nf * x;
    // H_ij = 1/(i−j+1)! for i − j + 1 ≥ 0, else 0; the first column and the
    // last row are corrected by powers of h, the corner by (2h − 1)^m.
    let mut hm = vec![0.0f64; m * m];
    for i in 0..m {
        for j in 0..m {
            if i + 1 >= j {
                hm[i * m + j] = 1.0;
            }
        }
    }
    for i in 0..m {
        hm[i * m] -= h.powi(i as i32 + 1);
        hm[(m - 1) * m + i] -= h.powi((m - i) as i32);
    }
    if 2.0 * h - 1.0 > 0.0 {
        hm[(m - 1) * m] += (2.0 * h - 1.0).powi(m as i32);
    }
    for i in 0..m {
        for j in 0..m {
            if i + 1 > j {
                let mut factorial = 1.0;
                for g in 1..=(i + 1 - j) {
                    factorial *= g as f64;
                }
                hm[i * m + j] /= factorial;
            }
        }
    }
    let (power, mut exponent) = matrix_power(&hm, m, n);
    let mut s = power[(k - 1) * m + (k - 1)];
    // Multiply by n!/nⁿ one factor at a time, renormalising as it shrinks.
    for i in 1..=n {
        s = s * i as f64 / nf;
        if s != 0.0 && s.abs() < 1e-140 {
            s *= 2f64.powi(465);
            exponent -= 465;
        }
    }
    clip(s * 2f64.powi(exponent.clamp(-2000, 2000) as i32))
}

/// Aⁿ as (mantissa matrix, binary exponent), so Aⁿ = M · 2^e.
fn matrix_power(a: &[f64], m: usize, n: u64) -> (Vec<f64>, i64) {
    if n == 1 {
        return (a.to_vec(), 0);
    }
    let (half, half_exp) = matrix_power(a, m, n / 2);
    let mut result = multiply(&half, &half, m);
    let mut exponent = 2 * half_exp;
    if n % 2 == 1 {
        result = multiply(a, &result, m);
    }
    // Keep the centre element in range: scale by 2^-465 ≈ 1e-140 when big.
    if result[(m / 2) * m + m / 2] > 1e140 {
        result.iter_mut().for_each(|v| *v *= 2f64.powi(-465));
        exponent += 465;
    }
    (result, exponent)
}

fn multiply(a: &[f64], b: &[f64], m: usize) -> Vec<f64> {
    let mut c = vec![0.0f64; m * m];
    for i in 0..m {
        for l in 0..m {
            let ail = a[i * m + l];
            if ail == 0.0 {
                continue;
            }
            for j in 0..m {
                c[i * m + j] += ail * b[l * m + j];
            }
        }
    }
    c
}

/// P(D_n ≤ x) by the Pelz & Good (1976) asymptotic series in 1/√n with
/// z = x√n, as given in Simard & L'Ecuyer (2011), §2.2:
/// K₀(z) + K₁(z)/√n + K₂(z)/n + K₃(z)/n^{3/2}, where the Kᵢ are theta-type
/// sums over u_k = (k − ½)π (terms e^{−u_k²/(2z²)}) and v_k = kπ.
pub fn pelz_good_cdf(n: u64, x: f64) -> f64 {
    let nf = n as f64;
    let z = x * nf.sqrt();
    if z <= 0.0 {
        return 0.0;
    }
    if -PI * PI / (8.0 * z * z) < -700.0 {
        return 0.0;
    }
    let z2 = z * z;
    let z4 = z2 * z2;
    let z6 = z4 * z2;
    let z8 = z4 * z4;
    let terms = ((16.0 * z / PI).ceil() as usize).max(4);
    let (mut s0, mut s1, mut s2, mut s3) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    let (mut e2, mut e3) = (0.0f64, 0.0f64);
    // Smallest terms first, for accuracy.
    for k in (1..=terms).rev() {
        let u = (k as f64 - 0.5) * PI;
        let u2 = u * u;
        let u4 = u2 * u2;
        let u6 = u4 * u2;
        let q = (-u2 / (2.0 * z2)).exp();
        s0 += q;
        s1 += (u2 - z2) * q;
        s2 += (6.0 * z6 + 2.0 * z4 + (2.0 * z4 - 5.0 * z2) * u2 + (1.0 - 2.0 * z2) * u4) * q;
        s3 += ((5.0 - 30.0 * z2) * u6
            + (212.0 * z4 - 60.0 * z2) * u4
            + (135.0 * z4 - 96.0 * z6) * u2
            - 30.0 * z6
            - 90.0 * z8)
            * q;
        let v = k as f64 * PI;
        let v2 = v * v;
        let r = (-v2 / (2.0 * z2)).exp();
        e2 += v2 * r;
        e3 += (3.0 * v2 * z2 - v2 * v2) * r;
    }
    let root_half_pi = (PI / 2.0).sqrt();
    let k0 = (2.0 * PI).sqrt() / z * s0;
    let k1 = root_half_pi / (3.0 * z4) * s1;
    let k2 = root_half_pi / (36.0 * z4 * z2 * z) * s2 - root_half_pi / (18.0 * z2 * z) * e2;
    let k3 = root_half_pi / (3240.0 * z8 * z2) * s3 + root_half_pi / (108.0 * z6) * e3;
    clip(k0 + k1 / nf.sqrt() + k2 / nf + k3 / (nf * nf.sqrt()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected values from SciPy 1.17.1:
    /// `python3 -c "from scipy.stats import kstwo; print(repr(kstwo.sf(x, n)))"`
    /// for each (n, x) below; the comment names the region exercised.
    #[test]
    fn survival_matches_scipy_kstwo() {
        let cases: &[(u64, f64, f64)] = &[
            (1, 0.3, 1.0),                      // n=1
            (5, 0.05, 1.0),                     // n*x<=1/2
            (5, 0.15, 0.9988),                  // 1/2n<x<=1/n
            (5, 0.85, 0.0001518750000000001),   // n*x>=n-1
            (10, 0.6, 0.0005681672000000003),   // x>=1/2
            (10, 0.2, 0.7487190399999999),      // n<=140 small nx2
            (100, 0.05, 0.9532159710635725),    // n<=140, nx2<=0.75
            (100, 0.15, 0.019839242125641813),  // n<=140, nx2<=4 (Pomeranz in scipy)
            (100, 0.25, 5.408871776434847e-06), // n<=140 Miller
            (1000, 0.02, 0.8108971656895577),   // n>140 Pelz-Good
            (1000, 0.04, 0.07933956059000224),  // n>140 Pelz-Good
            (1000, 0.06, 0.001428597887952891), // n>140 Miller
            (250, 0.08, 0.07714765339021268),   // n>140 Pelz-Good
            (5000, 0.01, 0.6954557253913853),   // n>140 Pelz-Good
            (5000, 0.003, 0.9999999999740126),  // n>140 Durbin, large n
            (2500, 0.03, 0.02176705196743979),  // Miller
            (1000, 0.7, 0.0),                   // x>=1/2 big n
            (141, 0.1, 0.11128445516467944),    // just above 140
        ];
        for &(n, x, want) in cases {
            let got = kolmogorov_sf(n, x);
            let tolerance = 1e-9 + 1e-7 * want;
            assert!(
                (got - want).abs() <= tolerance,
                "n={n} x={x}: {got} vs {want}"
            );
        }
    }
}

#[cfg(test)]
mod component_tests {
    use super::*;

    /// Expected: SciPy 1.17.1,
    /// `python3 -c "from scipy.stats import kstwo; print(repr(kstwo.cdf(x, n)))"`
    /// (all in the regions where SciPy also uses the Durbin/MTW matrix).
    #[test]
    fn durbin_cdf_matches_scipy() {
        for (n, x, want) in [
            (5000u64, 0.003, 2.5987461556534745e-11),
            (1000, 0.01, 5.032546293896392e-05),
            (200, 0.03, 0.008563475285057987),
            (40, 0.1, 0.21818902928170963),
        ] {
            let got = durbin_cdf(n, x);
            assert!(
                (got - want).abs() <= 1e-9 * want,
                "n={n} x={x}: {got} vs {want}"
            );
        }
    }

    /// Expected: SciPy 1.17.1,
    /// `python3 -c "from scipy.special import smirnov; print(repr(smirnov(n, x)))"`.
    #[test]
    fn smirnov_matches_scipy() {
        for (n, x, want) in [
            (10u64, 0.3, 0.1354635556),
            (1000, 0.05, 0.006506037390545166),
            (5000, 0.02, 0.01806981293722266),
            (3, 0.9, 0.0009999999999999994),
        ] {
            let got = smirnov_sf(n, x);
            assert!(
                (got - want).abs() <= 1e-10 * want,
                "n={n} x={x}: {got} vs {want}"
            );
        }
    }
}
