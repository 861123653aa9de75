//! The transparent reverse proxy: listener, forwarding service, header rules
//! and the body wrappers.

pub mod activity;
pub mod body;
pub mod error;
pub mod exchange;
pub mod forward;
pub mod framing;
pub mod headers;
pub mod listener;
pub mod metrics;
pub mod stats;
pub mod tap;
pub mod upgrade;
/// Joins the upstream base URL and a request path-and-query.
///
/// The base's own path (e.g. `http://host:8080/v2`) is kept as a prefix.
pub fn upstream_uri(base: &http::Uri, path_and_query: &str) -> Result<http::Uri, http::Error> {
    let prefix = base.path().trim_end_matches('/');
    let mut builder = http::Uri::builder();
    if let Some(scheme) = base.scheme() {
        builder = builder.scheme(scheme.clone());
    }
    if let Some(authority) = base.authority() {
        builder = builder.authority(authority.clone());
    }
    builder
        .path_and_query(format!("{prefix}{path_and_query}"))
        .build()
}
