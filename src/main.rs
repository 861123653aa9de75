use clap::Parser;

use magma_monitor::config::{Cli, Command};

/// mimalloc instead of glibc's malloc: a proxied request allocates and frees
/// a few dozen small objects (headers, body frames, futures, metric labels),
/// and mimalloc's thread-local free lists measured about 3 % more requests a
/// second in the load bench (README, Performance).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        None => magma_monitor::app::run_proxy(cli.proxy),
        Some(Command::Proxy(args)) => magma_monitor::app::run_proxy(*args),
        Some(Command::Demo(args)) => magma_monitor::demo::run_demo(args),
        Some(Command::SimulateUpstream(args)) => magma_monitor::demo::run_simulated_upstream(args),
        Some(Command::Drift(args)) => magma_monitor::drift::cli::run(args),
    };
    std::process::exit(code);
}
