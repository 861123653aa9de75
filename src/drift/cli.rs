//! `magma-monitor drift`: offline two-sample drift test between CSV files.
//!
//! Prints one JSON object on stdout; exit 0 whether or not drift is found,
//! exit 2 with a one-line reason on stderr for bad input.

use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, ValueEnum};
use serde_json::{json, Value};

use super::chi2::chi2_two_sample;
use super::correction::{decide, Correction};
use super::csv_input::{read_table, require_integers, Table};
use super::ks::ks_two_sample;
use super::matrix::Samples;
use super::mmd::{mmd_test, MmdConfig, PValueConvention};

/// Which two-sample test the offline command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TestKind {
    /// Kernel MMD with a permutation p-value, on all features jointly.
    Mmd,
    /// Kolmogorov–Smirnov per feature, with a multiple-testing correction.
    Ks,
    /// Chi-square per feature on integer category codes, with a correction.
    Chi2,
}

/// How the permutation p-value counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ConventionArg {
    /// (1 + #{permuted >= observed}) / (1 + B): valid, never 0.
    PlusOne,
    /// #{permuted >= observed} / B, as alibi-detect reports it.
    Alibi,
}

/// Flags of the offline drift test.
#[derive(Debug, Clone, Args)]
pub struct DriftCliArgs {
    /// Reference samples: CSV, one row per sample, optional header row.
    #[arg(long, env = "MAGMA_MONITOR_REFERENCE")]
    pub reference: PathBuf,

    /// Samples to test against the reference (same columns).
    #[arg(long, env = "MAGMA_MONITOR_CURRENT")]
    pub current: PathBuf,

    /// The test to run.
    #[arg(long, value_enum, default_value = "mmd", env = "MAGMA_MONITOR_TEST")]
    pub test: TestKind,

    /// Significance level: drift when the (corrected) p-value is below it.
    #[arg(long, default_value_t = 0.05, value_parser = parse_level, env = "MAGMA_MONITOR_P_VAL")]
    pub p_val: f64,

    /// Permutations of the MMD test.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000), env = "MAGMA_MONITOR_PERMUTATIONS")]
    pub permutations: u32,

    /// Seed of the permutations (same seed, same answer).
    #[arg(long, default_value_t = 0, env = "MAGMA_MONITOR_SEED")]
    pub seed: u64,

    /// RBF kernel bandwidth; default: median heuristic on the reference.
    #[arg(long, value_parser = parse_positive, env = "MAGMA_MONITOR_SIGMA")]
    pub sigma: Option<f64>,

    /// Multiple-testing correction of per-feature tests (ks, chi2).
    #[arg(
        long,
        value_enum,
        default_value = "bonferroni",
        env = "MAGMA_MONITOR_CORRECTION"
    )]
    pub correction: Correction,

    /// Scale each feature by the reference's mean and standard deviation first (mmd).
    #[arg(long, env = "MAGMA_MONITOR_STANDARDIZE")]
    pub standardize: bool,

    /// How the permutation p-value is counted (mmd).
    #[arg(
        long,
        value_enum,
        default_value = "plus-one",
        env = "MAGMA_MONITOR_P_VALUE_CONVENTION"
    )]
    pub p_value_convention: ConventionArg,
}

fn parse_level(text: &str) -> Result<f64, String> {
    let v: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number"))?;
    if v > 0.0 && v < 1.0 {
        Ok(v)
    } else {
        Err(format!("{v} must be between 0 and 1 (exclusive)"))
    }
}

fn parse_positive(text: &str) -> Result<f64, String> {
    let v: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number"))?;
    if v > 0.0 && v.is_finite() {
        Ok(v)
    } else {
        Err(format!("{v} must be a positive number"))
    }
}

/// Runs the offline test; returns the process exit code.
pub fn run(args: DriftCliArgs) -> i32 {
    match evaluate(&args) {
        Ok(report) => {
            println!("{report}");
            0
        }
        Err(reason) => {
            eprintln!("magma-monitor drift: {}", reason.replace('\n', " "));
            2
        }
    }
}

/// Reads both files, runs the test and returns the JSON report.
pub fn evaluate(args: &DriftCliArgs) -> Result<Value, String> {
    let started = Instant::now();
    let reference = read_table(&args.reference).map_err(|e| e.to_string())?;
    let current = read_table(&args.current).map_err(|e| e.to_string())?;
    if reference.columns() != current.columns() {
        return Err(format!(
            "the reference has {} columns but the current file {}",
            reference.columns(),
            current.columns()
        ));
    }
    let mut report = match args.test {
        TestKind::Mmd => run_mmd(args, &reference, &current)?,
        TestKind::Ks => run_ks(args, &reference, &current)?,
        TestKind::Chi2 => run_chi2(args, &reference, &current)?,
    };
    if let Some(object) = report.as_object_mut() {
        object.insert("n_reference".into(), json!(reference.rows.len()));
        object.insert("n_current".into(), json!(current.rows.len()));
        object.insert("n_features".into(), json!(reference.columns()));
        object.insert("p_val".into(), json!(args.p_val));
        object.insert(
            "elapsed_seconds".into(),
            json!(started.elapsed().as_secs_f64()),
        );
    }
    Ok(report)
}

fn to_samples(table: &Table) -> Result<Samples, String> {
    let rows: Vec<Vec<f32>> = table
        .rows
        .iter()
        .map(|r| r.iter().map(|v| *v as f32).collect())
        .collect();
    Samples::from_rows(&rows).map_err(|e| format!("value out of single-precision range: {e}"))
}

fn run_mmd(args: &DriftCliArgs, reference: &Table, current: &Table) -> Result<Value, String> {
    let mut x = to_samples(reference)?;
    let mut y = to_samples(current)?;
    if args.standardize {
        let (mean, std) = x.column_moments();
        x = x.standardized(&mean, &std);
        y = y.standardized(&mean, &std);
    }
    let config = MmdConfig {
        permutations: args.permutations as usize,
        p_val: args.p_val,
        sigma: args.sigma,
        seed: args.seed,
        convention: match args.p_value_convention {
            ConventionArg::PlusOne => PValueConvention::PlusOne,
            ConventionArg::Alibi => PValueConvention::Alibi,
        },
    };
    let outcome = mmd_test(&x, &y, &config).map_err(|e| e.to_string())?;
    Ok(json!({
        "test": "mmd",
        "p_value": outcome.p_value,
        "threshold": outcome.threshold,
        "distance": outcome.statistic,
        "drift": outcome.drift,
        "sigma": outcome.sigma,
        "permutations": outcome.permutations,
        "p_value_convention": config.convention,
        "standardize": args.standardize,
        "seed": args.seed,
    }))
}

fn run_ks(args: &DriftCliArgs, reference: &Table, current: &Table) -> Result<Value, String> {
    let outcomes: Vec<_> = (0..reference.columns())
        .map(|c| {
            ks_two_sample(&reference.column(c), &current.column(c))
                .ok_or_else(|| format!("column {}: empty sample", c + 1))
        })
        .collect::<Result<_, _>>()?;
    let p_values: Vec<f64> = outcomes.iter().map(|o| o.p_value).collect();
    let distances: Vec<f64> = outcomes.iter().map(|o| o.statistic).collect();
    Ok(per_feature_report("ks", args, p_values, distances, None))
}

fn run_chi2(args: &DriftCliArgs, reference: &Table, current: &Table) -> Result<Value, String> {
    require_integers(&args.reference.display().to_string(), reference)
        .map_err(|e| e.to_string())?;
    require_integers(&args.current.display().to_string(), current).map_err(|e| e.to_string())?;
    let codes =
        |t: &Table, c: usize| -> Vec<i64> { t.column(c).iter().map(|v| *v as i64).collect() };
    let outcomes: Vec<_> = (0..reference.columns())
        .map(|c| {
            chi2_two_sample(&codes(reference, c), &codes(current, c))
                .ok_or_else(|| format!("column {}: empty sample", c + 1))
        })
        .collect::<Result<_, _>>()?;
    let p_values: Vec<f64> = outcomes.iter().map(|o| o.p_value).collect();
    let distances: Vec<f64> = outcomes.iter().map(|o| o.statistic).collect();
    let dof: Vec<usize> = outcomes.iter().map(|o| o.dof).collect();
    Ok(per_feature_report(
        "chi2",
        args,
        p_values,
        distances,
        Some(dof),
    ))
}

fn per_feature_report(
    test: &str,
    args: &DriftCliArgs,
    p_values: Vec<f64>,
    distances: Vec<f64>,
    dof: Option<Vec<usize>>,
) -> Value {
    let decision = decide(&p_values, args.p_val, args.correction);
    let smallest = p_values.iter().copied().fold(1.0f64, f64::min);
    let mut report = json!({
        "test": test,
        "p_value": smallest,
        "p_values": p_values,
        "threshold": decision.threshold,
        "distance": distances,
        "drift": decision.drift,
        "correction": args.correction,
    });
    if let (Some(dof), Some(object)) = (dof, report.as_object_mut()) {
        object.insert("dof".into(), json!(dof));
    }
    report
}
