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
pub fn upstream_uri(base: &http::Uri, path_and_query: &str) -> Result<http::Uri, http::Error> {
    let path_and_query = http::uri::PathAndQuery::try_from(path_and_query)?;
    request_upstream_uri(base, Some(&path_and_query))
}

/// [`upstream_uri`] for a request target as hyper parsed it: without a base
/// path prefix (the usual case) the parsed path-and-query is reused, with no
/// new string.
pub fn request_upstream_uri(
    base: &http::Uri,
    path_and_query: Option<&http::uri::PathAndQuery>,
) -> Result<http::Uri, http::Error> {
    let prefix = base.path().trim_end_matches('/');
    let path_and_query = match path_and_query {
        Some(pq) if prefix.is_empty() => pq.clone(),
        pq => http::uri::PathAndQuery::try_from(format!(
            "{prefix}{}",
            pq.map_or("/", |pq| pq.as_str())
        ))?,
    };
    let mut parts = http::uri::Parts::default();
    parts.scheme = base.scheme().cloned();
    parts.authority = base.authority().cloned();
    parts.path_and_query = Some(path_and_query);
    Ok(http::Uri::from_parts(parts)?)
}
