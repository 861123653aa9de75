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
pub mod upstream;
/// Joins the upstream base URL and a request path-and-query.
///
/// The base's own path (e.g. `http://host:8080/v2`) is kept as a prefix.
/// Without one (the usual case) the request's path-and-query is reused as it
/// was parsed, with no new string.
pub fn upstream_uri(base: &http::Uri, path_and_query: &str) -> Result<http::Uri, http::Error> {
    let prefix = base.path().trim_end_matches('/');
    let path_and_query = if prefix.is_empty() {
        http::uri::PathAndQuery::try_from(path_and_query)?
    } else {
        http::uri::PathAndQuery::try_from(format!("{prefix}{path_and_query}"))?
    };
    with_path_and_query(base, path_and_query)
}

/// `base`'s scheme and authority with `path_and_query`.
pub fn with_path_and_query(
    base: &http::Uri,
    path_and_query: http::uri::PathAndQuery,
) -> Result<http::Uri, http::Error> {
    let mut parts = http::uri::Parts::default();
    parts.scheme = base.scheme().cloned();
    parts.authority = base.authority().cloned();
    parts.path_and_query = Some(path_and_query);
    Ok(http::Uri::from_parts(parts)?)
}
