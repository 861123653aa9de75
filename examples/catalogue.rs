//! Prints the metric catalogue as the Markdown table the README carries.
//!
//! `cargo run -q --example catalogue`

use magma_monitor::telemetry::{Kind, CATALOGUE};

fn main() {
    println!("| metric | type | labels | meaning |");
    println!("|---|---|---|---|");
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
        println!(
            "| `{}` | {kind} | {labels} | {} |",
            metric.name, metric.help
        );
    }
}
