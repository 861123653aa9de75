//! Small robust statistics shared by the detectors.

/// Median of a slice (NaN-free input); `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    Some(if sorted.len() % 2 == 0 {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    } else {
        sorted[mid]
    })
}

/// Median and scaled median absolute deviation (1.4826·MAD, a consistent
/// estimator of σ for normal data; Rousseeuw & Croux 1993).
pub fn median_mad(values: &[f64]) -> Option<(f64, f64)> {
    let med = median(values)?;
    let deviations: Vec<f64> = values.iter().map(|v| (v - med).abs()).collect();
    let mad = median(&deviations)?;
    Some((med, 1.4826 * mad))
}

/// Theil–Sen slope (Sen 1968): the median of pairwise slopes (y_j - y_i)/(t_j - t_i).
pub fn theil_sen_slope(points: &[(f64, f64)]) -> Option<f64> {
    let mut slopes = Vec::with_capacity(points.len() * points.len().saturating_sub(1) / 2);
    for (i, (ti, yi)) in points.iter().enumerate() {
        for (tj, yj) in &points[i + 1..] {
            let dt = tj - ti;
            if dt > 0.0 {
                slopes.push((yj - yi) / dt);
            }
        }
    }
    median(&slopes)
}

/// Mann–Kendall trend test (Mann 1945; Kendall 1975): the standardised
/// statistic Z of S = Σ_{i<j} sign(y_j - y_i), with the variance corrected
/// for ties, Var(S) = [n(n-1)(2n+5) - Σ t(t-1)(2t+5)] / 18, and the continuity
/// correction Z = (S ∓ 1)/√Var(S). Z is approximately N(0,1) without trend.
pub fn mann_kendall_z(values: &[f64]) -> f64 {
    let n = values.len();
    if n < 3 {
        return 0.0;
    }
    let mut s: i64 = 0;
    for (i, a) in values.iter().enumerate() {
        for b in &values[i + 1..] {
            s += match b.total_cmp(a) {
                std::cmp::Ordering::Greater => 1,
                std::cmp::Ordering::Less => -1,
                std::cmp::Ordering::Equal => 0,
            };
        }
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mut ties = 0.0;
    let mut run = 1usize;
    for k in 1..=sorted.len() {
        if k < sorted.len() && sorted[k] == sorted[k - 1] {
            run += 1;
        } else {
            if run > 1 {
                let t = run as f64;
                ties += t * (t - 1.0) * (2.0 * t + 5.0);
            }
            run = 1;
        }
    }
    let nf = n as f64;
    let variance = (nf * (nf - 1.0) * (2.0 * nf + 5.0) - ties) / 18.0;
    if variance <= 0.0 {
        return 0.0;
    }
    match s.signum() {
        1 => (s - 1) as f64 / variance.sqrt(),
        -1 => (s + 1) as f64 / variance.sqrt(),
        _ => 0.0,
    }
}

/// Spearman rank correlation of paired samples; `None` with fewer than 5 pairs
/// or a constant side.
pub fn spearman(pairs: &[(f64, f64)]) -> Option<f64> {
    if pairs.len() < 5 {
        return None;
    }
    let xs = ranks(pairs.iter().map(|p| p.0));
    let ys = ranks(pairs.iter().map(|p| p.1));
    pearson(&xs, &ys)
}

fn ranks(values: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut indexed: Vec<(usize, f64)> = values.enumerate().collect();
    indexed.sort_by(|a, b| a.1.total_cmp(&b.1));
    let mut ranks = vec![0.0; indexed.len()];
    let mut i = 0;
    while i < indexed.len() {
        let mut j = i;
        while j + 1 < indexed.len() && indexed[j + 1].1 == indexed[i].1 {
            j += 1;
        }
        let average = (i + j) as f64 / 2.0 + 1.0;
        for item in &indexed[i..=j] {
            ranks[item.0] = average;
        }
        i = j + 1;
    }
    ranks
}

fn pearson(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len() as f64;
    let mx = x.iter().sum::<f64>() / n;
    let my = y.iter().sum::<f64>() / n;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    if sxx <= 0.0 || syy <= 0.0 {
        return None;
    }
    Some(sxy / (sxx * syy).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        let (m, s) = median_mad(&[1.0, 2.0, 3.0, 4.0, 100.0]).unwrap();
        assert_eq!(m, 3.0);
        assert!((s - 1.4826).abs() < 1e-12);
    }

    #[test]
    fn theil_sen_ignores_an_outlier() {
        let mut points: Vec<(f64, f64)> = (0..20)
            .map(|i| (f64::from(i), 2.0 * f64::from(i) + 1.0))
            .collect();
        points[5].1 = 1000.0;
        assert!((theil_sen_slope(&points).unwrap() - 2.0).abs() < 1e-12);
    }

    #[test]
    fn mann_kendall_values() {
        // Strictly increasing n = 10: S = 45, Var = 10·9·25/18 = 125, Z = 44/√125.
        let rising: Vec<f64> = (0..10).map(f64::from).collect();
        assert!((mann_kendall_z(&rising) - 44.0 / 125f64.sqrt()).abs() < 1e-12);
        let falling: Vec<f64> = rising.iter().rev().copied().collect();
        assert!((mann_kendall_z(&falling) + 44.0 / 125f64.sqrt()).abs() < 1e-12);
        assert_eq!(mann_kendall_z(&[1.0; 10]), 0.0);
    }

    #[test]
    fn spearman_of_monotone_pairs() {
        let pairs: Vec<(f64, f64)> = (0..10)
            .map(|i| (f64::from(i), f64::from(i).powi(3)))
            .collect();
        assert!((spearman(&pairs).unwrap() - 1.0).abs() < 1e-12);
        let anti: Vec<(f64, f64)> = (0..10).map(|i| (f64::from(i), -f64::from(i))).collect();
        assert!((spearman(&anti).unwrap() + 1.0).abs() < 1e-12);
    }
}
