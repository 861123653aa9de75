//! The transparent reverse proxy: listener, forwarding service, the policy
//! of what passes (header rules, refusals, forwarding fields) and the body
//! wrappers. hyper parses and writes every HTTP message on both sides.

pub mod activity;
pub mod body;
pub mod deadline;
pub mod error;
pub mod exchange;
pub mod forward;
pub mod forwarding;
pub mod headers;
pub mod listener;
pub mod metrics;
pub mod policy;
pub mod stats;
pub mod tap;
pub mod upgrade;
pub mod upstream;

/// Joins the upstream base URL and a request path-and-query.
///
/// The base's own path (e.g. `http://host:8080/v2`) is kept as a prefix.
pub fn upstream_uri(base: &http::Uri, path_and_query: &str) -> Result<http::Uri, http::Error> {
    let path_and_query = http::uri::PathAndQuery::try_from(path_and_query)?;
    let mut target = http::Uri::from(path_and_query);
    set_upstream_target(base, &mut target)?;
    // The target is in origin form, so it has a path-and-query.
    let target = target
        .into_parts()
        .path_and_query
        .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
    absolute_uri(base, target)
}

/// Rewrites `target` into the request target to send upstream, in origin
/// form: the base's path prefix joined to the client's path-and-query.
/// Without a prefix (the usual case) a target already in origin form (every
/// HTTP/1.1 request's) is left as it came, and any other is reduced to its
/// path-and-query, with no new string.
pub fn set_upstream_target(
    base: &http::Uri,
    target: &mut http::Uri,
) -> Result<(), http::uri::InvalidUri> {
    let prefix = base.path().trim_end_matches('/');
    let origin_form = target.scheme().is_none() && target.authority().is_none();
    let rewritten = match target.path_and_query() {
        Some(_) if prefix.is_empty() && origin_form => return Ok(()),
        Some(pq) if prefix.is_empty() => pq.clone(),
        pq => http::uri::PathAndQuery::try_from(format!(
            "{prefix}{}",
            pq.map_or("/", |pq| pq.as_str())
        ))?,
    };
    *target = http::Uri::from(rewritten);
    Ok(())
}

/// `target` in absolute form at `base`'s scheme and authority.
pub fn absolute_uri(
    base: &http::Uri,
    target: http::uri::PathAndQuery,
) -> Result<http::Uri, http::Error> {
    let mut parts = http::uri::Parts::default();
    parts.scheme = base.scheme().cloned();
    parts.authority = base.authority().cloned();
    parts.path_and_query = Some(target);
    Ok(http::Uri::from_parts(parts)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(text: &str) -> http::Uri {
        text.parse().unwrap()
    }

    fn upstream_target(base: &http::Uri, mut target: http::Uri) -> http::Uri {
        set_upstream_target(base, &mut target).unwrap();
        target
    }

    #[test]
    fn the_target_keeps_path_and_query_under_the_base_prefix() {
        let plain = uri("http://127.0.0.1:8080");
        let target = upstream_target(&plain, uri("/v2/predict?x=1"));
        assert_eq!(target, "/v2/predict?x=1");
        // An absolute target (HTTP/2's) is reduced to its origin form.
        let target = upstream_target(&plain, uri("http://proxy:8000/v2/predict?x=1"));
        assert_eq!(target, "/v2/predict?x=1");
        // An authority-form target has no path-and-query.
        assert_eq!(upstream_target(&plain, uri("model:8080")), "/");
        let prefixed = uri("http://model:8080/v2/");
        let target = upstream_target(&prefixed, uri("/predict?x=1"));
        assert_eq!(target, "/v2/predict?x=1");
        let target = target.path_and_query().cloned().unwrap();
        assert_eq!(
            absolute_uri(&prefixed, target).unwrap().to_string(),
            "http://model:8080/v2/predict?x=1"
        );
        assert_eq!(
            upstream_uri(&prefixed, "/health").unwrap().to_string(),
            "http://model:8080/v2/health"
        );
    }
}
