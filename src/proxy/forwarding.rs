//! The fields that tell the upstream who asked: `X-Forwarded-For`,
//! `X-Forwarded-Proto`, `X-Forwarded-Host`, `Forwarded` (RFC 7239), and the
//! request id, and which of a client's own the upstream may believe.
//!
//! A client can write anything into these fields. The proxy believes them
//! only from peers it was told to trust (`--trusted-proxies`, a load
//! balancer in front of it): from any other peer the scheme and host claims
//! are replaced or removed, not appended to, so a client cannot tell the
//! model server that it came over HTTPS or from another host.
//! `X-Forwarded-For` keeps what came and gets the peer's address last, as
//! every proxy on the way appends its own; an upstream that reads it takes
//! the last address it does not trust, which the client cannot forge.
//!
//! Field names with `_` are dropped unless `--allow-underscore-headers`:
//! CGI and WSGI servers turn `-` and `_` alike into `_` (`HTTP_X_FORWARDED_FOR`),
//! so `X_Forwarded_For` would reach the application as if it were
//! `X-Forwarded-For` and pass every check made on the dashed name (nginx
//! drops such names by default for the same reason).

use std::net::IpAddr;

use http::{HeaderMap, HeaderName, HeaderValue};
use ipnet::IpNet;

use super::headers::{
    RequestFields, FORWARDED, X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO, X_REQUEST_ID,
};

/// How the forwarding fields are written; fixed at start.
#[derive(Debug, Clone, Default)]
pub struct ForwardingPolicy {
    /// Add `X-Forwarded-For` and `X-Forwarded-Proto` (and police the client's).
    pub enabled: bool,
    /// Peers whose forwarding fields are believed.
    pub trusted: Vec<IpNet>,
    /// Keep field names that contain `_`.
    pub allow_underscore: bool,
}

/// What the forwarding rules know of one client connection's peer.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The peer's address, rendered once for `X-Forwarded-For`.
    pub address: HeaderValue,
    /// The peer is a trusted proxy.
    pub trusted: bool,
}

impl ForwardingPolicy {
    /// The forwarding view of a client connection from `ip`.
    pub fn peer(&self, ip: IpAddr) -> Peer {
        // An IPv4 peer on a dual-stack socket shows as ::ffff:a.b.c.d.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        Peer {
            address: HeaderValue::from_str(&ip.to_string())
                .unwrap_or_else(|_| HeaderValue::from_static("unknown")),
            trusted: self.trusted.iter().any(|net| net.contains(&ip)),
        }
    }

    /// Rewrites the forwarding fields and the request id of a request whose
    /// fields `fields` read: exactly one `x-request-id`, `request_id`, goes on.
    pub fn apply(
        &self,
        headers: &mut HeaderMap,
        fields: &RequestFields,
        peer: &Peer,
        request_id: &HeaderValue,
    ) {
        if fields.underscore && !self.allow_underscore {
            drop_underscore_names(headers);
        }
        if fields.request_id.is_none() {
            // None, several or a malformed one: the proxy's own replaces them.
            if fields.has_request_id {
                headers.remove(&X_REQUEST_ID);
            }
            headers.insert(X_REQUEST_ID.clone(), request_id.clone());
        }
        if !self.enabled {
            return;
        }
        let forwarded_for = if fields.forwarding {
            joined_forwarded_for(headers.get_all(&X_FORWARDED_FOR).iter(), &peer.address)
        } else {
            peer.address.clone()
        };
        headers.insert(X_FORWARDED_FOR.clone(), forwarded_for);
        static HTTP: HeaderValue = HeaderValue::from_static("http");
        if !peer.trusted {
            if fields.forwarding {
                headers.remove(&FORWARDED);
                headers.remove(&X_FORWARDED_HOST);
            }
            headers.insert(X_FORWARDED_PROTO.clone(), HTTP.clone());
        } else if !headers.contains_key(&X_FORWARDED_PROTO) {
            headers.insert(X_FORWARDED_PROTO.clone(), HTTP.clone());
        }
    }
}

fn drop_underscore_names(headers: &mut HeaderMap) {
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().contains('_'))
        .cloned()
        .collect();
    for name in names {
        headers.remove(&name);
    }
}

/// The client's `X-Forwarded-For` values, each of which may itself be a
/// list, joined into one list (RFC 9110 §5.3: field lines of one name
/// combine in order, separated by commas) with `client` appended. A value
/// that is blank or not visible ASCII is left out.
fn joined_forwarded_for<'a>(
    given: impl Iterator<Item = &'a HeaderValue>,
    client: &HeaderValue,
) -> HeaderValue {
    let mut joined = Vec::new();
    for value in given {
        let value = value.as_bytes().trim_ascii();
        let visible = value
            .iter()
            .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b));
        if value.is_empty() || !visible {
            continue;
        }
        joined.extend_from_slice(value);
        joined.extend_from_slice(b", ");
    }
    if joined.is_empty() {
        return client.clone();
    }
    joined.extend_from_slice(client.as_bytes());
    // Every part is visible ASCII, so the joined value is valid too.
    HeaderValue::from_bytes(&joined).unwrap_or_else(|_| client.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::proxy::headers::test_support::map;

    fn policy(trusted: &[&str]) -> ForwardingPolicy {
        ForwardingPolicy {
            enabled: true,
            trusted: trusted.iter().map(|net| net.parse().unwrap()).collect(),
            allow_underscore: false,
        }
    }

    /// The request's fields as the upstream gets them from `peer`.
    fn forwarded(policy: &ForwardingPolicy, pairs: &[(&str, &str)], peer: &str) -> HeaderMap {
        let mut headers = map(pairs);
        let fields = RequestFields::read(&headers);
        let peer = policy.peer(peer.parse().unwrap());
        let id = HeaderValue::from_static("generated");
        policy.apply(&mut headers, &fields, &peer, &id);
        headers
    }

    fn all<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a HeaderValue> {
        headers.get_all(name).iter().collect()
    }

    #[test]
    fn forwarded_for_keeps_what_came_and_appends_the_peer() {
        let untrusted = policy(&[]);
        let headers = forwarded(&untrusted, &[("x-forwarded-for", "10.0.0.1")], "127.0.0.1");
        assert_eq!(all(&headers, "x-forwarded-for"), ["10.0.0.1, 127.0.0.1"]);
        let fresh = forwarded(&untrusted, &[], "::1");
        assert_eq!(all(&fresh, "x-forwarded-for"), ["::1"]);
        let blank = forwarded(&untrusted, &[("x-forwarded-for", " ")], "::1");
        assert_eq!(all(&blank, "x-forwarded-for"), ["::1"]);
        let listed = forwarded(
            &untrusted,
            &[
                ("x-forwarded-for", "10.0.0.1, 10.0.0.2 "),
                ("x-forwarded-for", ""),
                ("x-forwarded-for", "10.0.0.3"),
            ],
            "::ffff:127.0.0.1",
        );
        assert_eq!(
            all(&listed, "x-forwarded-for"),
            ["10.0.0.1, 10.0.0.2, 10.0.0.3, 127.0.0.1"]
        );
    }

    #[test]
    fn an_untrusted_peer_cannot_claim_a_scheme_or_host() {
        let claims = [
            ("x-forwarded-proto", "https"),
            ("forwarded", "for=1.2.3.4;proto=https"),
            ("x-forwarded-host", "admin.example"),
        ];
        let headers = forwarded(&policy(&[]), &claims, "127.0.0.1");
        assert_eq!(all(&headers, "x-forwarded-proto"), ["http"]);
        assert!(!headers.contains_key("forwarded"));
        assert!(!headers.contains_key("x-forwarded-host"));
        let trusted = forwarded(&policy(&["127.0.0.0/8"]), &claims, "127.0.0.1");
        assert_eq!(all(&trusted, "x-forwarded-proto"), ["https"]);
        assert_eq!(all(&trusted, "forwarded"), ["for=1.2.3.4;proto=https"]);
        assert_eq!(all(&trusted, "x-forwarded-host"), ["admin.example"]);
        // Trust is by address: the same claims from outside the range are replaced.
        let outside = forwarded(&policy(&["10.0.0.0/8"]), &claims, "127.0.0.1");
        assert_eq!(all(&outside, "x-forwarded-proto"), ["http"]);
    }

    #[test]
    fn exactly_one_request_id_goes_on() {
        let untrusted = policy(&[]);
        let kept = forwarded(&untrusted, &[("x-request-id", "client-1")], "::1");
        assert_eq!(all(&kept, "x-request-id"), ["client-1"]);
        for given in [
            &[("x-request-id", "a"), ("x-request-id", "b")][..],
            &[("x-request-id", "has space")][..],
            &[][..],
        ] {
            let headers = forwarded(&untrusted, given, "::1");
            assert_eq!(all(&headers, "x-request-id"), ["generated"], "{given:?}");
        }
    }

    #[test]
    fn underscore_names_are_dropped_unless_allowed() {
        let given = [
            ("x_forwarded_for", "1.2.3.4"),
            ("x_secret", "1"),
            ("x-ok", "1"),
        ];
        let headers = forwarded(&policy(&[]), &given, "::1");
        assert!(!headers.contains_key("x_forwarded_for"));
        assert!(!headers.contains_key("x_secret"));
        assert!(headers.contains_key("x-ok"));
        let allowed = ForwardingPolicy {
            allow_underscore: true,
            ..policy(&[])
        };
        let headers = forwarded(&allowed, &given, "::1");
        assert!(headers.contains_key("x_forwarded_for"));
    }

    #[test]
    fn turned_off_it_adds_nothing_but_the_request_id() {
        let off = ForwardingPolicy::default();
        let headers = forwarded(&off, &[("x-forwarded-proto", "https")], "::1");
        assert!(!headers.contains_key("x-forwarded-for"));
        assert_eq!(all(&headers, "x-forwarded-proto"), ["https"]);
        assert_eq!(all(&headers, "x-request-id"), ["generated"]);
    }
}
