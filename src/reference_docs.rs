//! The reference tables of the README, generated from the code: every flag
//! (from the clap definitions) and every metric (from the catalogue). A test
//! checks that the README carries them as generated, so docs cannot drift.
//!
//! `scripts/update-readme.sh` splices them into README.md.

use std::fmt::Write;

use clap::CommandFactory;

use crate::config::Cli;
use crate::telemetry::{Kind, CATALOGUE};

/// The metric catalogue as a Markdown table.
pub fn metrics_markdown() -> String {
    let mut out = String::from("| metric | type | labels | meaning |\n|---|---|---|---|\n");
    for metric in CATALOGUE {
        let kind = match metric.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        let labels = if metric.labels.is_empty() {
            String::from("-")
        } else {
            metric
                .labels
                .iter()
                .map(|l| format!("`{l}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            out,
            "| `{}` | {kind} | {labels} | {} |",
            metric.name,
            metric.help.replace('|', "\\|")
        );
    }
    out
}

/// Every flag of every command as Markdown tables, grouped as `--help` groups them.
pub fn flags_markdown() -> String {
    let command = Cli::command();
    let mut out = String::new();
    command_tables(&mut out, &command, "magma-monitor [proxy]");
    for sub in command.get_subcommands() {
        if matches!(sub.get_name(), "proxy" | "help") {
            continue;
        }
        command_tables(&mut out, sub, &format!("magma-monitor {}", sub.get_name()));
    }
    out
}

fn command_tables(out: &mut String, command: &clap::Command, title: &str) {
    let mut headings: Vec<Option<&str>> = Vec::new();
    for arg in command.get_arguments() {
        if !headings.contains(&arg.get_help_heading()) {
            headings.push(arg.get_help_heading());
        }
    }
    for heading in headings {
        let rows: Vec<String> = command
            .get_arguments()
            .filter(|a| a.get_help_heading() == heading)
            .filter(|a| {
                a.get_long()
                    .is_some_and(|l| !matches!(l, "help" | "version"))
            })
            .map(flag_row)
            .collect();
        if rows.is_empty() {
            continue;
        }
        match heading {
            Some(heading) => {
                let _ = write!(out, "\n#### `{title}` — {heading}\n\n");
            }
            None => {
                let _ = write!(out, "\n#### `{title}`\n\n");
            }
        }
        out.push_str("| flag | env | default | meaning |\n|---|---|---|---|\n");
        for row in rows {
            out.push_str(&row);
            out.push('\n');
        }
    }
}

fn flag_row(arg: &clap::Arg) -> String {
    let long = arg.get_long().unwrap_or_default();
    let env = arg
        .get_env()
        .map(|e| format!("`{}`", e.to_string_lossy()))
        .unwrap_or_else(|| "-".into());
    let defaults: Vec<String> = arg
        .get_default_values()
        .iter()
        .map(|v| v.to_string_lossy().into_owned())
        .collect();
    let default = if defaults.is_empty() {
        "-".to_string()
    } else {
        format!("`{}`", defaults.join(","))
    };
    let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
    let help = help.lines().next().unwrap_or("").replace('|', "\\|");
    format!("| `--{long}` | {env} | {default} | {help} |")
}
