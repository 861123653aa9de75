//! `magma-monitor demo`: the simulated Magma server on a loopback port,
//! magma-monitor in front of it (the same wiring as the `proxy` command), and
//! the traffic generator playing the scenario phases; status lines while it
//! runs and a summary of what was detected when.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{CommandFactory, Parser};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::scenario::Phase;
use super::sim::{SimConfig, SimControl};
use super::status::{self, AdminProbe, Detections};
use super::traffic::{self, ImagePool, TrafficProfile, TrafficStats};
use super::DemoArgs;
use crate::config::{Cli, Command, ProxyArgs};
use crate::shutdown::{termination_signal, Shutdown};

/// Memory the simulated server may leak in the demo (it leaks inside this process).
const DEMO_LEAK_CAP_BYTES: u64 = 256 * 1024 * 1024;
const DEMO_LEAK_PER_REQUEST: u64 = 512 * 1024;
/// Phases the summary lists (a demo left running for days plays thousands).
const MAX_PHASES_LISTED: usize = 200;
/// Images rendered per task and phase.
const IMAGES_PER_TASK: usize = 16;
/// Mix of robot, UI navigation, trace-of-mark and visual QA requests.
const TASK_WEIGHTS: [u32; 4] = [3, 3, 2, 2];

/// Runs the demo; returns the exit code.
pub fn run_demo(args: DemoArgs) -> i32 {
    if let Err(reason) = args.validate() {
        eprintln!("magma-monitor demo: {reason}");
        return 2;
    }
    let proxy_args = match proxy_args(&args, "127.0.0.1:1".parse().ok()) {
        Ok(proxy) => proxy,
        Err(reason) => {
            eprintln!("magma-monitor demo: {reason}");
            return 2;
        }
    };
    // Logs stay quiet so the status lines can be read; `-- --log-level info` overrides.
    if let Err(reason) = crate::logging::init(&proxy_args.log) {
        eprintln!("magma-monitor demo: {reason}");
        return 2;
    }
    let runtime = match crate::app::runtime("magma-monitor demo") {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    match runtime.block_on(demo(args)) {
        Ok(()) => 0,
        Err(reason) => {
            eprintln!("magma-monitor demo: {reason}");
            1
        }
    }
}

/// Flags the demo sets on the proxy when this build has them: sample every
/// request, and drift/anomaly windows short enough to react within a phase.
const PREFERRED_FLAGS: &[(&str, &str)] = &[
    ("sample-rate", "1"),
    ("drift-reference-size", "200"),
    ("drift-window", "100"),
    // Test full, disjoint windows only: one round every 100 samples (14 s
    // at speed 1), so a phase holds several rounds and the status line's
    // confirmation (two drift rounds in a row) comes within a minute.
    ("drift-test-every", "100"),
    ("drift-test-interval", "60s"),
    // One round runs five detectors; at 0.002 each a round false-alarms
    // under 1 % of the time (Bonferroni), and 1000 permutations let MMD
    // reach p < 0.002.
    ("drift-p-val", "0.002"),
    ("drift-permutations", "1000"),
    ("anomaly-interval", "5s"),
    ("health-interval", "1s"),
    ("log-level", "error"),
];

/// The proxy's flags for the demo, parsed by the real command line so every
/// default and validation applies. `upstream` is the simulated server.
fn proxy_args(args: &DemoArgs, upstream: Option<SocketAddr>) -> Result<ProxyArgs, String> {
    let known: Vec<String> = Cli::command()
        .get_arguments()
        .filter_map(|a| a.get_long().map(str::to_owned))
        .collect();
    let user_sets = |flag: &str| {
        args.proxy_flags
            .iter()
            .any(|f| f == &format!("--{flag}") || f.starts_with(&format!("--{flag}=")))
    };
    let mut argv: Vec<String> = vec!["magma-monitor".into()];
    let mut push = |flag: &str, value: String| {
        if !user_sets(flag) {
            argv.push(format!("--{flag}"));
            argv.push(value);
        }
    };
    push("listen", args.listen.to_string());
    push("admin-listen", args.admin_listen.to_string());
    if let Some(upstream) = upstream {
        push("upstream", format!("http://{upstream}"));
    }
    // The simulated model runs inside this process, so its memory is ours
    // (unless the user names the model process another way).
    if !user_sets("upstream-process-name") {
        push("upstream-pid", std::process::id().to_string());
    }
    let mut argv = drop_unknown_pairs(argv, &known);
    for (flag, value) in PREFERRED_FLAGS {
        if known.iter().any(|k| k == flag) && !user_sets(flag) {
            argv.push(format!("--{flag}"));
            argv.push((*value).to_string());
        }
    }
    argv.extend(args.proxy_flags.iter().cloned());
    let cli = Cli::try_parse_from(&argv).map_err(|e| {
        format!(
            "proxy flags after --: {}",
            e.to_string().lines().next().unwrap_or("")
        )
    })?;
    let proxy = match cli.command {
        None => cli.proxy,
        Some(Command::Proxy(proxy)) => *proxy,
        Some(_) => return Err("proxy flags after -- cannot name a subcommand".into()),
    };
    proxy.validate()?;
    Ok(proxy)
}

/// Removes `--flag value` pairs whose flag this build does not have.
fn drop_unknown_pairs(argv: Vec<String>, known: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(argv.len());
    let mut iter = argv.into_iter();
    if let Some(program) = iter.next() {
        out.push(program);
    }
    while let Some(flag) = iter.next() {
        let value = iter.next();
        let name = flag.trim_start_matches("--");
        if known.iter().any(|k| k == name) {
            out.push(flag);
            out.extend(value);
        }
    }
    out
}

/// Waits until `address` accepts TCP connections, or `timeout` passes.
async fn wait_for_port(address: SocketAddr, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if tokio::net::TcpStream::connect(address).await.is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

fn connect_address(address: SocketAddr) -> SocketAddr {
    // A wildcard listen address is reached through loopback.
    if address.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), address.port())
    } else {
        address
    }
}

/// Renders the images of `phase`. The seed depends only on the look, so
/// every normal phase shows the same images as the first one (the drift
/// reference), and only the input-drift phase shows something new.
async fn render_pool(phase: Phase) -> Result<Arc<ImagePool>, String> {
    let look = phase.look();
    let seed = if look == super::images::Look::NORMAL {
        0
    } else {
        1
    };
    tokio::task::spawn_blocking(move || ImagePool::render(IMAGES_PER_TASK, look, seed))
        .await
        .map_err(|e| format!("image rendering stopped: {e}"))?
        .map(Arc::new)
        .map_err(|e| e.to_string())
}

async fn demo(args: DemoArgs) -> Result<(), String> {
    let (shutdown, signal) = Shutdown::new();
    let speed = args.speed;

    // 1. The simulated Magma server.
    let upstream_listener = TcpListener::bind(args.upstream_listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.upstream_listen))?;
    let upstream = upstream_listener
        .local_addr()
        .map_err(|e| format!("simulated server address: {e}"))?;
    let control = SimControl::new(super::sim::Faults::none(), DEMO_LEAK_CAP_BYTES);
    let sim_config = SimConfig {
        speed,
        warmup: Duration::from_secs_f64(2.0 / speed),
        control: control.clone(),
        ..SimConfig::default()
    };
    let sim_task = tokio::spawn(super::sim::serve_simulated(
        upstream_listener,
        sim_config,
        signal.clone(),
    ));

    // 2. magma-monitor in front of it, wired as `proxy` wires it.
    let proxy = proxy_args(&args, Some(upstream))?;
    let proxy_address = connect_address(proxy.net.listen);
    let admin_address = connect_address(proxy.net.admin_listen);
    let mut stop = signal.clone();
    let mut proxy_task = tokio::spawn(crate::app::serve(proxy, async move { stop.recv().await }));
    if !wait_for_port(admin_address, Duration::from_secs(10)).await {
        shutdown.trigger();
        return match (&mut proxy_task).await {
            Ok(Err(reason)) => Err(reason),
            _ => Err(format!(
                "the admin server did not come up on {admin_address}"
            )),
        };
    }
    let proxy_up = wait_for_port(proxy_address, Duration::from_secs(5)).await;

    println!("magma-monitor demo");
    println!("  proxy      http://{proxy_address}   (send Magma requests here)");
    println!("  dashboard  http://{admin_address}/");
    println!("  metrics    http://{admin_address}/metrics");
    println!("  upstream   http://{upstream}   (simulated Magma-8B, speed {speed}x)");
    if !proxy_up {
        println!("  note: nothing listens on {proxy_address} yet; traffic goes straight to the simulated server");
    }
    let scenario = clap::ValueEnum::to_possible_value(&args.scenario)
        .map(|v| v.get_name().to_string())
        .unwrap_or_default();
    println!(
        "  scenario {scenario}, phases of {:.0}s, {} clients; Ctrl-C stops",
        args.phase_duration.as_secs_f64() / speed,
        args.clients
    );

    // 3. The traffic generator.
    let phases = args.scenario.phases();
    let first_pool = render_pool(phases[0]).await?;
    let (profile_tx, profile_rx) = watch::channel(TrafficProfile {
        vocabulary: phases[0].vocabulary(),
        images: first_pool,
        task_weights: TASK_WEIGHTS,
    });
    // Requests wait out the model's warm-up, as a client would.
    tokio::time::sleep(Duration::from_secs_f64(2.0 / speed)).await;
    let stats = Arc::new(TrafficStats::default());
    let target = if proxy_up { proxy_address } else { upstream };
    let traffic_task = tokio::spawn(traffic::run(
        format!("http://{target}"),
        args.clients,
        Duration::from_secs_f64((30.0 / speed).max(5.0)),
        profile_rx,
        stats.clone(),
        signal.clone(),
    ));

    // 4. Phases, status lines and detections.
    let probe = AdminProbe::new(format!("http://{admin_address}"));
    let mut detections = Detections::default();
    let mut played: Vec<(Phase, Duration)> = Vec::new();
    let mut phases_played = 0usize;
    let started = Instant::now();
    let phase_length = args.phase_duration.div_f64(speed);
    let end = (!args.duration.is_zero()).then(|| started + args.duration);
    let interrupted = termination_signal();
    tokio::pin!(interrupted);
    let mut stopped = false;
    // The next phase's images render in the background while this one plays.
    let mut next_pool = tokio::spawn(render_pool(phases[1 % phases.len()]));
    'phases: for (index, phase) in phases.iter().cycle().enumerate() {
        if index > 0 {
            let pool = (&mut next_pool)
                .await
                .map_err(|e| format!("image rendering stopped: {e}"))??;
            let following = phases[(index + 1) % phases.len()];
            next_pool = tokio::spawn(render_pool(following));
            profile_tx.send_replace(TrafficProfile {
                vocabulary: phase.vocabulary(),
                images: pool,
                task_weights: TASK_WEIGHTS,
            });
        }
        control
            .set_faults(&phase.faults(
                speed,
                args.phase_duration.as_secs_f64(),
                DEMO_LEAK_PER_REQUEST,
            ))
            .map_err(|e| format!("phase {}: {e}", phase.name()))?;
        let phase_start = Instant::now();
        if played.len() < MAX_PHASES_LISTED {
            played.push((*phase, phase_start - started));
        }
        phases_played += 1;
        println!(
            "== phase {} ({}): {}",
            index + 1,
            phase.name(),
            phase.expectation()
        );
        let mut ticker =
            tokio::time::interval(args.status_interval.max(Duration::from_millis(200)));
        ticker.tick().await;
        loop {
            let phase_over = phase_start + phase_length;
            let next_stop = end.map_or(phase_over, |e| e.min(phase_over));
            tokio::select! {
                _ = ticker.tick() => {}
                _ = tokio::time::sleep_until(next_stop.into()) => {}
                _ = &mut interrupted => { stopped = true; }
            }
            let seen = probe.observe().await;
            detections.update(index, phase_start.elapsed(), &seen);
            println!(
                "{}",
                status::status_line(
                    phase.name(),
                    phase_start.elapsed(),
                    &seen,
                    &stats.snapshot()
                )
            );
            if stopped || end.is_some_and(|e| Instant::now() >= e) {
                break 'phases;
            }
            if Instant::now() >= phase_over {
                break;
            }
        }
    }

    shutdown.trigger();
    let _ = traffic_task.await;
    let _ = sim_task.await;
    let proxy_result = proxy_task.await;
    print_summary(&played, &detections, &stats.snapshot(), &control);
    if phases_played > played.len() {
        println!(
            "  ({} later phases not listed)",
            phases_played - played.len()
        );
    }
    match proxy_result {
        Ok(result) => result,
        Err(error) => Err(format!("the proxy stopped: {error}")),
    }
}

fn print_summary(
    played: &[(Phase, Duration)],
    detections: &Detections,
    client: &traffic::TrafficSnapshot,
    control: &SimControl,
) {
    println!();
    println!("== summary");
    println!(
        "  clients sent {} requests: {} ok, {} HTTP errors, {} failed, {} timed out",
        client.sent, client.ok, client.http_errors, client.failed, client.timed_out
    );
    let sim = control.stats();
    println!(
        "  simulated server answered {} ({} degenerate), {} unavailable, {} server errors, {} hung",
        sim.answered, sim.degenerate, sim.unavailable, sim.server_errors, sim.hung
    );
    for (index, (phase, at)) in played.iter().enumerate() {
        println!(
            "  phase {} {} (from +{}s): expected {}",
            index + 1,
            phase.name(),
            at.as_secs(),
            phase.expectation()
        );
        let mut any = false;
        for event in detections.in_phase(index) {
            any = true;
            println!("      +{:>3}s  {}", event.offset.as_secs(), event.what);
        }
        if !any {
            println!("      nothing detected");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo_args(extra: &[&str]) -> DemoArgs {
        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            demo: DemoArgs,
        }
        let mut argv = vec!["demo"];
        argv.extend_from_slice(extra);
        Wrapper::parse_from(argv).demo
    }

    #[test]
    fn proxy_flags_come_from_the_real_command_line() {
        let args = demo_args(&[
            "--listen",
            "127.0.0.1:18000",
            "--",
            "--model-type",
            "magma-demo",
        ]);
        let upstream: SocketAddr = "127.0.0.1:18080".parse().unwrap();
        let proxy = proxy_args(&args, Some(upstream)).unwrap();
        assert_eq!(proxy.net.listen.port(), 18000);
        assert_eq!(proxy.net.upstream.to_string(), "http://127.0.0.1:18080/");
        assert_eq!(proxy.net.model_type, "magma-demo");
        assert_eq!(proxy.net.health_interval, Duration::from_secs(1));
        assert_eq!(proxy.sampling.sample_rate, 1.0);
    }

    #[test]
    fn user_flags_override_the_demo_choices() {
        let args = demo_args(&["--", "--sample-rate", "0.25", "--health-interval=3s"]);
        let proxy = proxy_args(&args, None).unwrap();
        assert_eq!(proxy.sampling.sample_rate, 0.25);
        assert_eq!(proxy.net.health_interval, Duration::from_secs(3));
        let bad = demo_args(&["--", "--sample-rate", "7"]);
        assert!(proxy_args(&bad, None).is_err());
    }
}
