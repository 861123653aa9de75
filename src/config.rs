//! Command line and environment configuration.
//!
//! Every flag is also read from an environment variable `MAGMA_MONITOR_<FLAG>`
//! (upper case, dashes as underscores). Each area of the sidecar owns its own
//! group of flags (`#[derive(Args)]` next to the code that uses them); this file
//! assembles them into the `proxy` command and holds the flags of the proxy core.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::units::{parse_duration, parse_size};

/// magma-monitor: a transparent reverse-proxy sidecar that watches a Magma
/// (or any multimodal) model server.
#[derive(Debug, Parser)]
#[command(name = "magma-monitor", version, about, long_about = None)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Flags of the default `proxy` command.
    #[command(flatten)]
    pub proxy: ProxyArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy in front of an upstream model server (the default).
    Proxy(Box<ProxyArgs>),
    /// Run a simulated Magma server, the proxy and generated traffic on one machine.
    Demo(crate::demo::DemoArgs),
    /// Run a simulated Magma model server (for demos and tests).
    SimulateUpstream(crate::demo::SimulateArgs),
    /// Offline drift test between two CSV files; prints one JSON object.
    Drift(crate::drift::cli::DriftCliArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UpstreamProtocol {
    /// HTTP/1.1 with a keep-alive pool.
    Http1,
    /// HTTP/2 over cleartext TCP, prior knowledge.
    H2c,
}

/// Flags of the proxy: networking, limits, metrics and every analysis area.
#[derive(Debug, Clone, Args)]
pub struct ProxyArgs {
    #[command(flatten)]
    pub net: NetArgs,

    #[command(flatten)]
    pub log: LogArgs,

    #[command(flatten)]
    pub sampling: crate::sample::SampleArgs,

    #[command(flatten)]
    pub drift: crate::drift::DriftArgs,

    #[command(flatten)]
    pub resources: crate::resources::ResourceArgs,

    #[command(flatten)]
    pub quality: crate::quality::QualityArgs,

    #[command(flatten)]
    pub anomaly: crate::anomaly::AnomalyArgs,
}

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Logging")]
pub struct LogArgs {
    /// Log line format.
    #[arg(
        long,
        env = "MAGMA_MONITOR_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,

    /// Log filter: a level (error, warn, info, debug, trace) or a tracing directive list.
    #[arg(long, env = "MAGMA_MONITOR_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
}

/// Networking, limits and request-metric flags of the proxy core.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Proxy")]
pub struct NetArgs {
    /// Address the proxy listens on for client traffic.
    #[arg(long, env = "MAGMA_MONITOR_LISTEN", default_value = "0.0.0.0:8000")]
    pub listen: SocketAddr,

    /// Base URL of the model server (http only; the path prefix is kept).
    #[arg(long, env = "MAGMA_MONITOR_UPSTREAM", default_value = "http://127.0.0.1:8080", value_parser = parse_upstream)]
    pub upstream: http::Uri,

    /// Protocol spoken to the upstream.
    #[arg(
        long,
        env = "MAGMA_MONITOR_UPSTREAM_PROTOCOL",
        value_enum,
        default_value = "http1"
    )]
    pub upstream_protocol: UpstreamProtocol,

    /// Address of the admin server (/metrics, /healthz, /readyz, /api, dashboard).
    #[arg(
        long,
        env = "MAGMA_MONITOR_ADMIN_LISTEN",
        default_value = "0.0.0.0:9464"
    )]
    pub admin_listen: SocketAddr,

    /// Bearer token required by the admin server's write routes (feedback, ground truth, ...); /metrics and health stay open.
    #[arg(long, env = "MAGMA_MONITOR_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// Time allowed for the upstream to answer with response headers (and between body chunks), e.g. 300s.
    #[arg(long, env = "MAGMA_MONITOR_UPSTREAM_TIMEOUT", default_value = "300s", value_parser = parse_duration)]
    pub upstream_timeout: Duration,

    /// Time allowed to open a TCP connection to the upstream.
    #[arg(long, env = "MAGMA_MONITOR_CONNECT_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub connect_timeout: Duration,

    /// Largest request body forwarded; larger ones get 413 (e.g. 64MiB).
    #[arg(long, env = "MAGMA_MONITOR_MAX_BODY_BYTES", default_value = "64MiB", value_parser = parse_size)]
    pub max_body_bytes: u64,

    /// Largest request head (request line plus headers) accepted.
    #[arg(long, env = "MAGMA_MONITOR_MAX_HEADER_BYTES", default_value = "64KiB", value_parser = parse_size)]
    pub max_header_bytes: u64,

    /// Time a client has to send its complete request head.
    #[arg(long, env = "MAGMA_MONITOR_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,

    /// Idle keep-alive connections from clients are closed after this long.
    #[arg(long, env = "MAGMA_MONITOR_IDLE_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// Most client connections open at once; further ones are refused and counted.
    #[arg(long, env = "MAGMA_MONITOR_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// Threads that serve traffic (default: the CPUs this process may use, CPU quota included; TOKIO_WORKER_THREADS is honoured when set).
    #[arg(long, env = "MAGMA_MONITOR_WORKER_THREADS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub worker_threads: Option<u16>,

    /// On SIGTERM/SIGINT, in-flight requests get this long to finish.
    #[arg(long, env = "MAGMA_MONITOR_DRAIN_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub drain_timeout: Duration,

    /// Do not append X-Forwarded-For / X-Forwarded-Proto.
    #[arg(long, env = "MAGMA_MONITOR_NO_FORWARDED_HEADERS")]
    pub no_forwarded_headers: bool,

    /// Protocols a client may switch to with Upgrade (comma separated); other upgrade requests are forwarded as plain requests without Upgrade.
    #[arg(
        long,
        env = "MAGMA_MONITOR_ALLOWED_UPGRADES",
        value_delimiter = ',',
        default_value = "websocket"
    )]
    pub allowed_upgrades: Vec<String>,

    /// Peers (CIDR ranges, comma separated) whose X-Forwarded-Proto, X-Forwarded-Host and Forwarded fields are passed on; from any other peer they are replaced or removed.
    #[arg(long, env = "MAGMA_MONITOR_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_cidr)]
    pub trusted_proxies: Vec<ipnet::IpNet>,

    /// Keep the case of header names as each side wrote them (costs about a tenth more CPU per request; by default names go on in lower case, as in HTTP/2 — RFC 9110 section 5.1: field names are case-insensitive).
    #[arg(long, env = "MAGMA_MONITOR_PRESERVE_HEADER_CASE")]
    pub preserve_header_case: bool,

    /// Forward request header fields whose names contain `_` (dropped by default: CGI/WSGI servers read `X_Forwarded_For` as `X-Forwarded-For`).
    #[arg(long, env = "MAGMA_MONITOR_ALLOW_UNDERSCORE_HEADERS")]
    pub allow_underscore_headers: bool,

    /// Path polled on the upstream for readiness.
    #[arg(
        long,
        env = "MAGMA_MONITOR_UPSTREAM_HEALTH_PATH",
        default_value = "/health"
    )]
    pub upstream_health_path: String,

    /// How often the upstream health path is polled.
    #[arg(long, env = "MAGMA_MONITOR_HEALTH_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub health_interval: Duration,

    /// Value of the `model_type` label when the request names no allowed model.
    #[arg(long, env = "MAGMA_MONITOR_MODEL_TYPE", default_value = "magma-8b")]
    pub model_type: String,

    /// Model names taken from a request's `model` field as `model_type` label values (comma separated).
    #[arg(long, env = "MAGMA_MONITOR_ALLOWED_MODELS", value_delimiter = ',')]
    pub allowed_models: Vec<String>,

    /// Upper bounds of the latency histogram buckets in seconds (comma separated).
    #[arg(long, env = "MAGMA_MONITOR_LATENCY_BUCKETS", value_delimiter = ',', default_values_t = crate::telemetry::DEFAULT_LATENCY_BUCKETS.to_vec())]
    pub latency_buckets: Vec<f64>,
}

fn parse_upstream(text: &str) -> Result<http::Uri, String> {
    let uri: http::Uri = text
        .parse()
        .map_err(|e| format!("`{text}` is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some(other) => {
            return Err(format!(
                "upstream scheme `{other}` is not supported (use http://)"
            ))
        }
        None => {
            return Err(format!(
                "`{text}` needs a scheme, e.g. http://127.0.0.1:8080"
            ))
        }
    }
    if uri.authority().is_none() {
        return Err(format!("`{text}` has no host"));
    }
    if uri.query().is_some() {
        return Err(format!("`{text}`: the upstream URL cannot carry a query"));
    }
    Ok(uri)
}

/// A CIDR range (`10.0.0.0/8`, `::1/128`), or a single address taken as
/// a range of one.
fn parse_cidr(text: &str) -> Result<ipnet::IpNet, String> {
    let text = text.trim();
    text.parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("`{text}` is not a CIDR range such as 10.0.0.0/8"))
}

impl NetArgs {
    /// Checks that the values make sense together; the message is one line.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_connections == 0 {
            return Err("--max-connections must be at least 1".into());
        }
        if self.max_header_bytes < crate::proxy::listener::MIN_HEADER_BYTES as u64 {
            return Err(format!(
                "--max-header-bytes must be at least {} bytes",
                crate::proxy::listener::MIN_HEADER_BYTES
            ));
        }
        if self.latency_buckets.is_empty() {
            return Err("--latency-buckets needs at least one bound".into());
        }
        if self
            .latency_buckets
            .windows(2)
            .any(|pair| pair[0] >= pair[1] || pair[0].is_nan())
            || self
                .latency_buckets
                .iter()
                .any(|b| !b.is_finite() || *b <= 0.0)
        {
            return Err("--latency-buckets must be positive and strictly increasing".into());
        }
        if !self.upstream_health_path.starts_with('/') {
            return Err("--upstream-health-path must start with /".into());
        }
        if self.model_type.is_empty() {
            return Err("--model-type cannot be empty".into());
        }
        Ok(())
    }
}

impl ProxyArgs {
    pub fn validate(&self) -> Result<(), String> {
        self.net.validate()?;
        self.sampling.validate()?;
        self.drift.validate()?;
        self.resources.validate()?;
        self.quality.validate()?;
        self.anomaly.validate()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_are_valid() {
        let cli = Cli::parse_from(["magma-monitor"]);
        assert!(cli.command.is_none());
        cli.proxy.validate().unwrap();
        assert_eq!(cli.proxy.net.listen.port(), 8000);
        assert_eq!(cli.proxy.net.upstream_timeout, Duration::from_secs(300));
    }

    #[test]
    fn rejects_non_http_upstream() {
        assert!(parse_upstream("https://x").is_err());
        assert!(parse_upstream("127.0.0.1:8080").is_err());
        assert!(parse_upstream("http://127.0.0.1:8080/base").is_ok());
    }
}
