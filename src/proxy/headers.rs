//! Header rules of the forward path: what a request's fields say about it,
//! and which fields are hop-by-hop.
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
//!
//! A Connection option that names a field the proxy relies on end to end
//! (Host, the framing fields, the forwarding fields, the request id) is
//! ignored: removing such a field because a client asked would let the
//! client take away what makes the forwarded message mean what the proxy
//! counted. The framing fields are not forwarded as the client wrote them in
//! any case: hyper writes the framing of every forwarded message from the
//! body the proxy actually sends.

use http::header::{
    HeaderMap, HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH, HOST, TE, TRANSFER_ENCODING,
    UPGRADE,
};

pub static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
pub static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub static FORWARDED: HeaderName = HeaderName::from_static("forwarded");

/// What the forward path needs to know of a request's fields, read in one
/// pass over them: a dozen map lookups (each hashing a name) cost more than
/// walking the few fields a request carries.
#[derive(Debug, Default)]
pub struct RequestFields {
    /// The client's `x-request-id` if well formed (one value of 1 to 128
    /// characters from `[A-Za-z0-9._:-]`); anything else is replaced.
    pub request_id: Option<HeaderValue>,
    /// The client sent an `x-request-id`, well formed or not.
    pub has_request_id: bool,
    /// The Content-Length value hyper framed the body by, when there is one.
    pub content_length: Option<u64>,
    /// Host field lines.
    pub hosts: u8,
    /// A Transfer-Encoding field is present.
    pub transfer_encoding: bool,
    /// Every Transfer-Encoding line together lists exactly one coding,
    /// `chunked`: the only coding the proxy forwards (see `policy`).
    pub chunked_only: bool,
    /// The request asks to switch protocols (`Upgrade` plus a Connection
    /// option `upgrade`).
    pub upgrade: bool,
    /// A field that is hop-by-hop whatever Connection says is present (any
    /// other hop-by-hop field is named by one of these).
    pub hop_by_hop: bool,
    /// A field name holds `_` (see `forwarding`).
    pub underscore: bool,
    /// The client sent `X-Forwarded-For`, `X-Forwarded-Proto`,
    /// `X-Forwarded-Host` or `Forwarded`.
    pub forwarding: bool,
}

impl RequestFields {
    pub fn read(headers: &HeaderMap) -> RequestFields {
        let mut fields = RequestFields {
            chunked_only: true,
            ..RequestFields::default()
        };
        let (mut request_ids, mut codings, mut has_upgrade, mut connection_upgrade) =
            (0u32, 0u32, false, false);
        for (name, value) in headers {
            fields.hop_by_hop |= is_hop_by_hop(name);
            match *name {
                CONTENT_LENGTH => {
                    fields.content_length = value.to_str().ok().and_then(|v| v.parse().ok());
                }
                TRANSFER_ENCODING => {
                    fields.transfer_encoding = true;
                    for coding in options(value) {
                        codings += 1;
                        fields.chunked_only &= coding.eq_ignore_ascii_case("chunked");
                    }
                    // A value that is not text lists no coding we know.
                    fields.chunked_only &= value.to_str().is_ok();
                }
                HOST => fields.hosts = fields.hosts.saturating_add(1),
                CONNECTION => {
                    connection_upgrade |= options(value).any(|o| o.eq_ignore_ascii_case("upgrade"));
                }
                UPGRADE => has_upgrade = true,
                _ if name == X_REQUEST_ID => {
                    request_ids += 1;
                    fields.request_id = Some(value.clone());
                }
                _ if name == X_FORWARDED_FOR
                    || name == X_FORWARDED_PROTO
                    || name == X_FORWARDED_HOST
                    || name == FORWARDED =>
                {
                    fields.forwarding = true
                }
                _ => {}
            }
            fields.underscore |= name.as_str().contains('_');
        }
        fields.chunked_only &= codings == 1;
        fields.upgrade = has_upgrade && connection_upgrade;
        fields.has_request_id = request_ids > 0;
        if request_ids != 1 || !fields.request_id.as_ref().is_some_and(well_formed_id) {
            fields.request_id = None;
        }
        fields
    }
}

/// The comma-separated elements of one field value, trimmed, empty ones left out.
pub fn options(value: &HeaderValue) -> impl Iterator<Item = &str> {
    value
        .to_str()
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|o| !o.is_empty())
}

/// Fields a Connection option may not remove: the proxy relies on them end
/// to end (see the module documentation).
fn is_end_to_end(name: &HeaderName) -> bool {
    name == HOST
        || name == CONTENT_LENGTH
        || name == TRANSFER_ENCODING
        || name == X_FORWARDED_FOR
        || name == X_FORWARDED_PROTO
        || name == X_FORWARDED_HOST
        || name == FORWARDED
        || name == X_REQUEST_ID
}

/// Removes hop-by-hop fields. `upgrade`: the Upgrade value to keep, with
/// `Connection: upgrade`, for an upgrade the proxy tunnels (the request, or
/// the 101 answer to it); every other message loses Upgrade.
pub fn remove_hop_by_hop(headers: &mut HeaderMap, upgrade: Option<HeaderValue>) {
    // Most messages carry none of them: one pass over the names is cheaper
    // than eight removals that each hash a name to find nothing.
    if upgrade.is_some() || headers.keys().any(is_hop_by_hop) {
        remove_present_hop_by_hop(headers, upgrade);
    }
}

/// [`remove_hop_by_hop`] for a message known to carry a hop-by-hop field
/// (or to be an upgrade).
pub fn remove_present_hop_by_hop(headers: &mut HeaderMap, upgrade: Option<HeaderValue>) {
    // Fields named by Connection go first, while Connection is still there.
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .flat_map(options)
        .filter_map(|o| HeaderName::from_bytes(o.as_bytes()).ok())
        .filter(|name| !is_end_to_end(name) && *name != TE)
        .collect();
    for name in named {
        headers.remove(&name);
    }
    let keep_trailers = headers
        .get_all(TE)
        .iter()
        .flat_map(options)
        .any(|t| t.eq_ignore_ascii_case("trailers"));
    headers.remove(TE);
    if keep_trailers {
        headers.insert(TE, HeaderValue::from_static("trailers"));
    }
    headers.remove(&KEEP_ALIVE);
    headers.remove(&PROXY_CONNECTION);
    headers.remove(TRANSFER_ENCODING);
    headers.remove(CONNECTION);
    headers.remove(UPGRADE);
    if let Some(protocols) = upgrade {
        headers.insert(UPGRADE, protocols);
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// The fields that are hop-by-hop whatever Connection says; any other
/// hop-by-hop field is named by a Connection field, itself one of these.
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    name == CONNECTION
        || name == TE
        || name == TRANSFER_ENCODING
        || name == UPGRADE
        || name == KEEP_ALIVE
        || name == PROXY_CONNECTION
}

/// Longest request id kept from a client.
const MAX_REQUEST_ID_LEN: usize = 128;

fn well_formed_id(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_REQUEST_ID_LEN
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
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

/// Header maps written as name-value pairs, for the tests of the modules
/// that read fields.
#[cfg(test)]
pub(crate) mod test_support {
    use http::header::{HeaderMap, HeaderName, HeaderValue};

    pub fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        headers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fields that are hop-by-hop whatever Connection says.
    const HOP_BY_HOP_NAMES: [&str; 6] = [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "transfer-encoding",
        "upgrade",
    ];

    use super::test_support::map;

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
        remove_hop_by_hop(&mut headers, None);
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
        for name in HOP_BY_HOP_NAMES {
            let mut headers = map(&[(name, "x"), ("host", "model")]);
            remove_hop_by_hop(&mut headers, None);
            assert!(!headers.contains_key(name), "{name} was kept");
            assert_eq!(headers.len(), 1, "{name}");
        }
    }

    #[test]
    fn connection_options_never_remove_end_to_end_fields() {
        let mut headers = map(&[
            (
                "connection",
                "Content-Length, Host, X-Forwarded-For, X-Forwarded-Proto, Forwarded, x-request-id, X-Forwarded-Host, Transfer-Encoding, X-Secret",
            ),
            ("content-length", "35"),
            ("host", "h"),
            ("x-forwarded-for", "10.0.0.1"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "a"),
            ("forwarded", "for=10.0.0.1"),
            ("x-request-id", "abc"),
            ("x-secret", "1"),
        ]);
        remove_hop_by_hop(&mut headers, None);
        for kept in [
            "content-length",
            "host",
            "x-forwarded-for",
            "x-forwarded-proto",
            "x-forwarded-host",
            "forwarded",
            "x-request-id",
        ] {
            assert!(headers.contains_key(kept), "{kept} was removed");
        }
        assert!(!headers.contains_key("x-secret"));
        assert!(!headers.contains_key("connection"));
    }

    #[test]
    fn keeps_upgrade_for_upgrades() {
        let mut headers = map(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        assert!(RequestFields::read(&headers).upgrade);
        assert!(!RequestFields::read(&map(&[("upgrade", "websocket")])).upgrade);
        assert!(!RequestFields::read(&map(&[("connection", "upgrade")])).upgrade);
        remove_hop_by_hop(&mut headers, Some(HeaderValue::from_static("websocket")));
        assert_eq!(headers.get(UPGRADE).unwrap(), "websocket");
        assert_eq!(headers.get(CONNECTION).unwrap(), "upgrade");
    }

    fn id_of(headers: &HeaderMap) -> Option<HeaderValue> {
        RequestFields::read(headers).request_id
    }

    #[test]
    fn request_ids() {
        assert!(id_of(&map(&[("x-request-id", "abc-123_x.y:z")])).is_some());
        assert!(id_of(&map(&[("x-request-id", "has space")])).is_none());
        assert!(id_of(&map(&[("x-request-id", "")])).is_none());
        assert!(id_of(&map(&[("x-request-id", &"a".repeat(129))])).is_none());
        assert!(id_of(&map(&[("x-request-id", "a"), ("x-request-id", "b")])).is_none());
        let id = new_request_id();
        assert_eq!(id.len(), 32);
        assert!(id
            .as_bytes()
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b)));
        assert_ne!(id, new_request_id());
        // Generated ids are kept when they come back from a client.
        assert!(id_of(&map(&[("x-request-id", id.to_str().unwrap())])).is_some());
    }

    #[test]
    fn transfer_codings_other_than_one_chunked_are_noted() {
        let chunked_only = |pairs: &[(&str, &str)]| RequestFields::read(&map(pairs)).chunked_only;
        assert!(chunked_only(&[("transfer-encoding", "chunked")]));
        assert!(chunked_only(&[("transfer-encoding", "Chunked ")]));
        assert!(!chunked_only(&[("transfer-encoding", "gzip, chunked")]));
        assert!(!chunked_only(&[("transfer-encoding", "chunked, chunked")]));
        assert!(!chunked_only(&[
            ("transfer-encoding", "gzip"),
            ("transfer-encoding", "chunked")
        ]));
        assert!(!chunked_only(&[("transfer-encoding", "identity")]));
        assert!(!chunked_only(&[("transfer-encoding", "")]));
        let fields = RequestFields::read(&map(&[("content-length", "42"), ("Host", "m")]));
        assert_eq!(fields.content_length, Some(42));
        assert_eq!(fields.hosts, 1);
        assert!(!fields.transfer_encoding && !fields.hop_by_hop);
    }

    #[test]
    fn underscores_and_forwarding_fields_are_noted() {
        assert!(RequestFields::read(&map(&[("x_forwarded_for", "1.2.3.4")])).underscore);
        assert!(!RequestFields::read(&map(&[("x-forwarded-for", "1.2.3.4")])).underscore);
        for name in [
            "x-forwarded-for",
            "x-forwarded-proto",
            "x-forwarded-host",
            "forwarded",
        ] {
            assert!(
                RequestFields::read(&map(&[(name, "x")])).forwarding,
                "{name}"
            );
        }
        for name in HOP_BY_HOP_NAMES {
            assert!(
                RequestFields::read(&map(&[(name, "x")])).hop_by_hop,
                "{name}"
            );
        }
    }
}
