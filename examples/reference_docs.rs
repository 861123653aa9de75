//! Prints the README's generated reference tables.
//!
//! `cargo run -q --example reference_docs -- flags|metrics`

fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("flags") => print!("{}", magma_monitor::reference_docs::flags_markdown()),
        Some("metrics") => print!("{}", magma_monitor::reference_docs::metrics_markdown()),
        _ => {
            eprintln!("usage: reference_docs flags|metrics");
            std::process::exit(2);
        }
    }
}
