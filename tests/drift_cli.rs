//! The offline `magma-monitor drift` command, run as the built binary.

use std::path::{Path, PathBuf};
use std::process::Command;

use rand::{Rng, SeedableRng};
use serde_json::Value;

fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_magma-monitor")
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write csv");
    path
}

fn gaussian_csv(seed: u64, rows: usize, cols: usize, shift: f64) -> String {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut text = (0..cols)
        .map(|c| format!("f{c}"))
        .collect::<Vec<_>>()
        .join(",")
        + "\n";
    for _ in 0..rows {
        let row: Vec<String> = (0..cols)
            .map(|_| {
                let u1: f64 = rng.random_range(f64::EPSILON..1.0);
                let u2: f64 = rng.random();
                let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
                format!("{:.6}", z + shift)
            })
            .collect();
        text += &(row.join(",") + "\n");
    }
    text
}

/// Runs the command; returns (exit code, stdout, stderr).
fn drift(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(binary())
        .arg("drift")
        .args(args)
        .output()
        .expect("run magma-monitor");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json_ok(args: &[&str]) -> Value {
    let (code, stdout, stderr) = drift(args);
    assert_eq!(code, 0, "stderr: {stderr}");
    serde_json::from_str(stdout.trim()).expect("one JSON object on stdout")
}

#[test]
fn mmd_finds_a_shift_and_not_noise() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "a.csv", &gaussian_csv(1, 200, 4, 0.0));
    let b = write(dir.path(), "b.csv", &gaussian_csv(2, 150, 4, 0.0));
    let c = write(dir.path(), "c.csv", &gaussian_csv(3, 150, 4, 1.0));
    let (a, b, c) = (
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        c.to_str().unwrap(),
    );

    let same = json_ok(&["--reference", a, "--current", b, "--seed", "4"]);
    for key in [
        "test",
        "p_value",
        "threshold",
        "distance",
        "drift",
        "sigma",
        "n_reference",
        "n_current",
        "n_features",
        "elapsed_seconds",
    ] {
        assert!(same.get(key).is_some(), "missing {key} in {same}");
    }
    assert_eq!(same["test"], "mmd");
    assert_eq!(same["n_reference"], 200);
    assert_eq!(same["n_current"], 150);
    assert_eq!(same["n_features"], 4);
    assert_eq!(same["drift"], false, "{same}");
    assert!(same["p_value"].as_f64().unwrap() >= 0.05);

    let shifted = json_ok(&["--reference", a, "--current", c, "--permutations", "200"]);
    assert_eq!(shifted["drift"], true, "{shifted}");
    // No permuted statistic reaches a 1-sigma shift: p = 1 / (1 + B).
    assert_eq!(shifted["p_value"].as_f64().unwrap(), 1.0 / 201.0);
    assert!(shifted["distance"].as_f64().unwrap() > shifted["threshold"].as_f64().unwrap());
    let alibi = json_ok(&[
        "--reference",
        a,
        "--current",
        c,
        "--p-value-convention",
        "alibi",
    ]);
    assert_eq!(alibi["p_value"].as_f64().unwrap(), 0.0);
}

#[test]
fn mmd_is_reproducible_and_takes_sigma_and_standardize() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "a.csv", &gaussian_csv(5, 80, 3, 0.0));
    let b = write(dir.path(), "b.csv", &gaussian_csv(6, 80, 3, 0.2));
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let first = json_ok(&["--reference", a, "--current", b, "--seed", "9"]);
    let second = json_ok(&["--reference", a, "--current", b, "--seed", "9"]);
    assert_eq!(first["p_value"], second["p_value"]);
    assert_eq!(first["distance"], second["distance"]);
    let fixed = json_ok(&["--reference", a, "--current", b, "--sigma", "2.5"]);
    assert_eq!(fixed["sigma"].as_f64().unwrap(), 2.5);
    let scaled = json_ok(&["--reference", a, "--current", b, "--standardize"]);
    assert_eq!(scaled["standardize"], true);
}

/// Expected numbers: SciPy 1.17.1, `scipy.stats.ks_2samp(a, b, mode="asymp")`:
/// column 1 (a1, b1 below) = (0.5681818181818182, 0.0467917916917622);
/// column 2 (a2, b2, with ties) = (0.375, 0.3825953125000001).
#[test]
fn ks_matches_scipy_per_feature() {
    let a1 = [
        0.61, -1.2, 0.33, 2.05, -0.4, 0.9, 1.4, -0.05, 0.72, -2.3, 0.18,
    ];
    let b1 = [1.1, 0.95, 2.4, 0.3, 1.7, 0.62, 3.1, 1.25];
    let a2 = [1., 2., 2., 3., 3., 3., 4., 4., 4., 4., 4.];
    let b2 = [2., 3., 3., 4., 4., 5., 5., 5.];
    let dir = tempfile::tempdir().unwrap();
    let csv = |x: &[f64], y: &[f64]| {
        x.iter()
            .zip(y)
            .map(|(p, q)| format!("{p},{q}\n"))
            .collect::<String>()
    };
    let a = write(dir.path(), "a.csv", &csv(&a1, &a2));
    let b = write(dir.path(), "b.csv", &csv(&b1, &b2));
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let report = json_ok(&["--reference", a, "--current", b, "--test", "ks"]);
    assert_eq!(report["test"], "ks");
    let p = report["p_values"].as_array().unwrap();
    let d = report["distance"].as_array().unwrap();
    assert!((d[0].as_f64().unwrap() - 0.5681818181818182).abs() < 1e-12);
    assert!((p[0].as_f64().unwrap() - 0.0467917916917622).abs() < 1e-10);
    assert!((d[1].as_f64().unwrap() - 0.375).abs() < 1e-12);
    assert!((p[1].as_f64().unwrap() - 0.3825953125000001).abs() < 1e-10);
    assert_eq!(report["p_value"], p[0]);
    // Bonferroni over 2 features: 0.0468 is not below 0.025.
    assert_eq!(report["threshold"].as_f64().unwrap(), 0.025);
    assert_eq!(report["drift"], false);
    // Benjamini-Hochberg at 0.1: 0.0468 <= 1 * 0.1 / 2.
    let fdr = json_ok(&[
        "--reference",
        a,
        "--current",
        b,
        "--test",
        "ks",
        "--correction",
        "fdr",
        "--p-val",
        "0.1",
    ]);
    assert_eq!(fdr["drift"], true, "{fdr}");
}

/// Expected: SciPy 1.17.1, `scipy.stats.chi2_contingency([[30, 10], [20, 25]])`
/// = statistic 6.949930555555551, pvalue 0.00838224869725173 (Yates applied).
#[test]
fn chi2_matches_scipy_contingency() {
    let dir = tempfile::tempdir().unwrap();
    let reference: String = std::iter::repeat_n("1\n", 30)
        .chain(std::iter::repeat_n("2\n", 10))
        .collect();
    let current: String = std::iter::repeat_n("1\n", 20)
        .chain(std::iter::repeat_n("2\n", 25))
        .collect();
    let a = write(dir.path(), "a.csv", &format!("modality\n{reference}"));
    let b = write(dir.path(), "b.csv", &current);
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let report = json_ok(&["--reference", a, "--current", b, "--test", "chi2"]);
    assert_eq!(report["test"], "chi2");
    assert!((report["distance"][0].as_f64().unwrap() - 6.949930555555551).abs() < 1e-10);
    assert!((report["p_value"].as_f64().unwrap() - 0.00838224869725173).abs() < 1e-12);
    assert_eq!(report["drift"], true);
    assert_eq!(report["n_reference"], 40);
}

#[test]
fn bad_input_exits_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(dir.path(), "good.csv", "1,2\n3,4\n5,6\n");
    let good = good.to_str().unwrap();
    let cases = [
        ("ragged", "1,2\n3\n"),
        ("non-numeric", "1,2\n3,x\n"),
        ("empty", ""),
        ("header only", "a,b\n"),
        ("other width", "1,2,3\n4,5,6\n"),
        ("fractional category", "1,2\n3,4.5\n"),
    ];
    for (label, text) in cases {
        let bad = write(dir.path(), "bad.csv", text);
        let test = if label == "fractional category" {
            "chi2"
        } else {
            "mmd"
        };
        let (code, stdout, stderr) = drift(&[
            "--reference",
            good,
            "--current",
            bad.to_str().unwrap(),
            "--test",
            test,
        ]);
        assert_eq!(code, 2, "{label}: {stderr}");
        assert!(stdout.is_empty(), "{label}: {stdout}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{label}: {stderr}");
        assert!(
            stderr.starts_with("magma-monitor drift:"),
            "{label}: {stderr}"
        );
    }
    let (code, _, stderr) = drift(&["--reference", "/nonexistent.csv", "--current", good]);
    assert_eq!(code, 2);
    assert!(stderr.contains("cannot read"), "{stderr}");
    let (code, _, _) = drift(&["--reference", good, "--current", good, "--p-val", "2"]);
    assert_eq!(code, 2);
}
