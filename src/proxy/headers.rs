//! Header rules of the forward path.
//!
//! RFC 9110 §7.6.1: "Intermediaries MUST parse a received Connection header
//! field before a message is forwarded and, for each connection-option in this
//! field, remove any header or trailer field(s) from the message with the same
//! name as the connection-option, and then remove the Connection header field
//! itself (or replace it with the intermediary's own control options for the
//! forwarded message)." It also names the fields that are hop-by-hop whether
//! listed or not: Proxy-Connection, Keep-Alive, TE, Transfer-Encoding and
//! Upgrade. TE's `trailers` is kept: it tells the upstream that the client
//! accepts trailers, which gRPC-style streaming relies on.

use std::net::IpAddr;

use http::header::{
    HeaderMap, HeaderName, HeaderValue, CONNECTION, TE, TRANSFER_ENCODING, UPGRADE,
};

static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// Whether the message asks to switch protocols (`Connection: upgrade` plus `Upgrade`).
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(UPGRADE) && connection_has(headers, "upgrade")
}

fn connection_has(headers: &HeaderMap, option: &str) -> bool {
    connection_options(headers).any(|o| o.eq_ignore_ascii_case(option))
}

fn connection_options(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|o| !o.is_empty())
}

/// Removes hop-by-hop fields. When `upgrade` is true (an upgrade request, or
/// the 101 answer to one) `Upgrade` and `Connection: upgrade` are kept so the
/// upstream can switch protocols.
pub fn remove_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    // Most requests carry none of them: one pass over the names is cheaper
    // than eight removals that each hash a name to find nothing.
    if !upgrade && !headers.keys().any(is_hop_by_hop) {
        return;
    }
    // Fields named by Connection go first, while Connection is still there.
    let named: Vec<HeaderName> = connection_options(headers)
        .filter(|o| !(upgrade && o.eq_ignore_ascii_case("upgrade")))
        .filter_map(|o| HeaderName::from_bytes(o.as_bytes()).ok())
        .collect();
    for name in named {
        if name == TE {
            continue; // handled below, keeping `trailers`
        }
        headers.remove(&name);
    }
    let keep_trailers = headers
        .get_all(TE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("trailers"));
    headers.remove(TE);
    if keep_trailers {
        headers.insert(TE, HeaderValue::from_static("trailers"));
    }
    headers.remove(&KEEP_ALIVE);
    headers.remove(&PROXY_CONNECTION);
    headers.remove(TRANSFER_ENCODING);
    headers.remove(CONNECTION);
    if upgrade {
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(UPGRADE);
    }
}

/// The fields that are hop-by-hop whatever Connection says; any other
/// hop-by-hop field is named by a Connection field, itself one of these.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    name == CONNECTION
        || name == TE
        || name == TRANSFER_ENCODING
        || name == UPGRADE
        || name == KEEP_ALIVE
        || name == PROXY_CONNECTION
}

/// A client's address as an `X-Forwarded-For` element. Rendered once per
/// client connection: formatting an address is most of what appending it
/// costs.
pub fn forwarded_for(client: IpAddr) -> HeaderValue {
    HeaderValue::from_str(&client.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Appends `client` (from [`forwarded_for`]) to `X-Forwarded-For` and sets
/// `X-Forwarded-Proto: http` when the client did not send one.
pub fn add_forwarded(headers: &mut HeaderMap, client: &HeaderValue) {
    let value = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(existing) if !existing.trim().is_empty() => {
            let mut joined = Vec::with_capacity(existing.len() + 2 + client.len());
            joined.extend_from_slice(existing.as_bytes());
            joined.extend_from_slice(b", ");
            joined.extend_from_slice(client.as_bytes());
            HeaderValue::from_bytes(&joined).ok()
        }
        _ => Some(client.clone()),
    };
    if let Some(value) = value {
        headers.insert(X_FORWARDED_FOR.clone(), value);
    }
    if !headers.contains_key(&X_FORWARDED_PROTO) {
        headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("http"));
    }
}

/// Longest request id kept from a client.
const MAX_REQUEST_ID_LEN: usize = 128;

/// The client's `x-request-id` when it is well formed: one value of 1 to 128
/// characters from `[A-Za-z0-9._:-]`. Anything else is replaced.
pub fn client_request_id(headers: &HeaderMap) -> Option<&HeaderValue> {
    let mut values = headers.get_all(&X_REQUEST_ID).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let bytes = value.as_bytes();
    let well_formed = !bytes.is_empty()
        && bytes.len() <= MAX_REQUEST_ID_LEN
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    well_formed.then_some(value)
}

/// A new random request id: 32 lowercase hex digits (128 bits).
pub fn new_request_id() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bits: u128 = rand::random();
    let mut text = [0u8; 32];
    for (i, digit) in text.iter_mut().enumerate() {
        *digit = HEX[((bits >> (124 - 4 * i)) & 0xf) as usize];
    }
    HeaderValue::from_bytes(&text).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

/// Whether the request carries both framing headers, or several differing
/// Content-Length values: RFC 9112 §6.3 calls such a message a likely request
/// smuggling attempt, and a proxy must not forward it.
pub fn has_ambiguous_framing(headers: &HeaderMap) -> bool {
    let has_te = headers.contains_key(TRANSFER_ENCODING);
    let mut lengths = headers.get_all(http::header::CONTENT_LENGTH).iter();
    let first = lengths.next();
    if has_te && first.is_some() {
        return true;
    }
    match first {
        Some(first) => {
            lengths.any(|other| other != first) || first.to_str().map_or(true, |v| v.contains(','))
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        headers
    }

    #[test]
    fn removes_every_hop_by_hop_field() {
        let mut headers = map(&[
            ("connection", "keep-alive, X-Secret"),
            ("connection", "close"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("te", "gzip, trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("set-cookie", "a=1"),
            ("set-cookie", "b=2"),
            ("host", "model"),
        ]);
        remove_hop_by_hop(&mut headers, false);
        for gone in [
            "connection",
            "x-secret",
            "keep-alive",
            "proxy-connection",
            "transfer-encoding",
            "upgrade",
        ] {
            assert!(!headers.contains_key(gone), "{gone} was kept");
        }
        assert_eq!(headers.get(TE).unwrap(), "trailers");
        assert_eq!(headers.get_all("set-cookie").iter().count(), 2);
        assert_eq!(headers.get("host").unwrap(), "model");
    }

    #[test]
    fn each_hop_by_hop_field_alone_is_removed() {
        for name in [
            "connection",
            "keep-alive",
            "proxy-connection",
            "te",
            "transfer-encoding",
            "upgrade",
        ] {
            let mut headers = map(&[(name, "x"), ("host", "model")]);
            remove_hop_by_hop(&mut headers, false);
            assert!(!headers.contains_key(name), "{name} was kept");
            assert_eq!(headers.len(), 1, "{name}");
        }
    }

    #[test]
    fn keeps_upgrade_for_upgrades() {
        let mut headers = map(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        assert!(is_upgrade(&headers));
        remove_hop_by_hop(&mut headers, true);
        assert_eq!(headers.get(UPGRADE).unwrap(), "websocket");
        assert_eq!(headers.get(CONNECTION).unwrap(), "upgrade");
    }

    #[test]
    fn request_ids() {
        assert!(client_request_id(&map(&[("x-request-id", "abc-123_x.y:z")])).is_some());
        assert!(client_request_id(&map(&[("x-request-id", "has space")])).is_none());
        assert!(client_request_id(&map(&[("x-request-id", "")])).is_none());
        assert!(client_request_id(&map(&[("x-request-id", &"a".repeat(129))])).is_none());
        assert!(client_request_id(&map(&[("x-request-id", "a"), ("x-request-id", "b")])).is_none());
        let id = new_request_id();
        assert_eq!(id.len(), 32);
        assert!(id
            .as_bytes()
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b)));
        assert_ne!(id, new_request_id());
        // Generated ids are kept when they come back from a client.
        assert!(client_request_id(&map(&[("x-request-id", id.to_str().unwrap())])).is_some());
    }

    #[test]
    fn forwarded_for_is_appended() {
        let mut headers = map(&[("x-forwarded-for", "10.0.0.1")]);
        add_forwarded(&mut headers, &forwarded_for("127.0.0.1".parse().unwrap()));
        assert_eq!(
            headers.get("x-forwarded-for").unwrap(),
            "10.0.0.1, 127.0.0.1"
        );
        assert_eq!(headers.get("x-forwarded-proto").unwrap(), "http");
        let mut fresh = HeaderMap::new();
        add_forwarded(&mut fresh, &forwarded_for("::1".parse().unwrap()));
        assert_eq!(fresh.get("x-forwarded-for").unwrap(), "::1");
    }

    #[test]
    fn ambiguous_framing() {
        assert!(has_ambiguous_framing(&map(&[
            ("content-length", "5"),
            ("transfer-encoding", "chunked")
        ])));
        assert!(has_ambiguous_framing(&map(&[
            ("content-length", "5"),
            ("content-length", "6")
        ])));
        assert!(has_ambiguous_framing(&map(&[("content-length", "5, 6")])));
        assert!(!has_ambiguous_framing(&map(&[("content-length", "5")])));
        assert!(!has_ambiguous_framing(&map(&[(
            "transfer-encoding",
            "chunked"
        )])));
    }
}
