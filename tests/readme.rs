//! The README documents every flag and every metric the binary has.

use clap::CommandFactory;
use magma_monitor::config::Cli;
use magma_monitor::telemetry::CATALOGUE;

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README.md")
}

#[test]
fn every_metric_is_in_the_readme() {
    let readme = readme();
    let missing: Vec<&str> = CATALOGUE
        .iter()
        .map(|m| m.name)
        .filter(|name| !readme.contains(&format!("`{name}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "metrics missing from README.md (run `cargo run -q --example catalogue`): {missing:?}"
    );
}

#[test]
fn every_flag_is_in_the_readme() {
    let readme = readme();
    let mut missing = Vec::new();
    let command = Cli::command();
    let mut commands = vec![&command];
    commands.extend(command.get_subcommands());
    for command in commands {
        for arg in command.get_arguments() {
            if let Some(long) = arg.get_long() {
                if matches!(long, "help" | "version") {
                    continue;
                }
                if !readme.contains(&format!("--{long}")) {
                    missing.push(format!("{} --{long}", command.get_name()));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "flags missing from README.md: {missing:?}"
    );
}
