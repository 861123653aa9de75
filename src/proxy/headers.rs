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
    HeaderMap, HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH, HOST, TE, TRANSFER_ENCODING,
    UPGRADE,
};

use super::lane::RequestLines;

static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// What the forward path needs to know of a request's fields, read in one
/// pass over them: a dozen map lookups (each hashing a name) cost more than
/// walking the few fields a request carries.
#[derive(Debug, Default)]
pub struct RequestFields {
    /// The client's `x-request-id` if well formed (one value of 1 to 128
    /// characters from `[A-Za-z0-9._:-]`); anything else is replaced.
    pub request_id: Option<HeaderValue>,
    /// The first Content-Length value, when it is a number.
    pub content_length: Option<u64>,
    /// Both framing fields, or Content-Length values that differ or form a
    /// list: RFC 9112 §6.3 calls such a message a likely request smuggling
    /// attempt, and a proxy must not forward it.
    pub ambiguous_framing: bool,
    /// The request asks to switch protocols (`Upgrade` plus
    /// `Connection: upgrade`).
    pub upgrade: bool,
    pub has_host: bool,
    /// A field that is hop-by-hop whatever Connection says is present (any
    /// other hop-by-hop field is named by one of these).
    pub hop_by_hop: bool,
    /// The client sent at least one `X-Forwarded-For`.
    pub has_forwarded_for: bool,
    pub has_forwarded_proto: bool,
    /// The client sent an `x-request-id`, well formed or not.
    pub has_request_id: bool,
}

impl RequestFields {
    pub fn read(headers: &HeaderMap) -> RequestFields {
        let mut fields = RequestFields::default();
        let (mut request_ids, mut has_te, mut has_upgrade, mut connection_upgrade) =
            (0, false, false, false);
        let mut first_length: Option<&HeaderValue> = None;
        for (name, value) in headers {
            fields.hop_by_hop |= is_hop_by_hop(name);
            match *name {
                CONTENT_LENGTH => match first_length {
                    None => {
                        first_length = Some(value);
                        let text = value.to_str().ok();
                        fields.content_length = text.and_then(|v| v.parse().ok());
                        fields.ambiguous_framing |= text.is_none_or(|v| v.contains(','));
                    }
                    Some(first) => fields.ambiguous_framing |= value != first,
                },
                TRANSFER_ENCODING => has_te = true,
                HOST => fields.has_host = true,
                CONNECTION => {
                    connection_upgrade |= options(value).any(|o| o.eq_ignore_ascii_case("upgrade"));
                }
                UPGRADE => has_upgrade = true,
                _ if name == X_REQUEST_ID => {
                    request_ids += 1;
                    fields.request_id = Some(value.clone());
                }
                _ if name == X_FORWARDED_FOR => fields.has_forwarded_for = true,
                _ if name == X_FORWARDED_PROTO => fields.has_forwarded_proto = true,
                _ => {}
            }
        }
        fields.ambiguous_framing |= has_te && first_length.is_some();
        fields.upgrade = has_upgrade && connection_upgrade;
        fields.has_request_id = request_ids > 0;
        if request_ids != 1 || !fields.request_id.as_ref().is_some_and(well_formed_id) {
            fields.request_id = None;
        }
        fields
    }
}

impl RequestFields {
    /// What the lane noted of a request's lines; the lane takes no request
    /// with Transfer-Encoding, Upgrade or a Content-Length list, so its
    /// framing is never ambiguous and it never upgrades.
    pub fn from_lines(lines: &RequestLines) -> RequestFields {
        let request_id = lines
            .only_request_id
            .and_then(|span| HeaderValue::from_maybe_shared(lines.lines.slice(span.range())).ok());
        RequestFields {
            request_id: request_id.filter(well_formed_id),
            content_length: lines.content_length,
            ambiguous_framing: false,
            upgrade: false,
            has_host: lines.has_host,
            hop_by_hop: lines.hop_by_hop != 0,
            has_forwarded_for: lines.forwarded_for != 0,
            has_forwarded_proto: lines.has_forwarded_proto,
            has_request_id: lines.request_id != 0,
        }
    }
}

/// The comma-separated elements of one field value, trimmed, empty ones left out.
fn options(value: &HeaderValue) -> impl Iterator<Item = &str> {
    value
        .to_str()
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|o| !o.is_empty())
}

/// Removes hop-by-hop fields. When `upgrade` is true (an upgrade request, or
/// the 101 answer to one) `Upgrade` and `Connection: upgrade` are kept so the
/// upstream can switch protocols.
pub fn remove_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    // Most messages carry none of them: one pass over the names is cheaper
    // than eight removals that each hash a name to find nothing.
    if upgrade || headers.keys().any(is_hop_by_hop) {
        remove_present_hop_by_hop(headers, upgrade);
    }
}

/// [`remove_hop_by_hop`] for a message known to carry a hop-by-hop field
/// (or to be an upgrade).
pub fn remove_present_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    // Fields named by Connection go first, while Connection is still there.
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .flat_map(options)
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

/// Where a request's own fields are: the fields the added ones replace are
/// removed from a map, or marked to be left out among the lane's lines.
pub enum ClientFields<'a> {
    Map(&'a mut HeaderMap),
    Lines(&'a mut RequestLines),
}

impl ClientFields<'_> {
    fn drop_request_ids(&mut self) {
        match self {
            ClientFields::Map(headers) => drop(headers.remove(&X_REQUEST_ID)),
            ClientFields::Lines(lines) => lines.left_out |= lines.request_id,
        }
    }

    /// The client's X-Forwarded-For lines joined, with `client` appended;
    /// the lines themselves go.
    fn take_forwarded_for(&mut self, client: &HeaderValue) -> HeaderValue {
        match self {
            ClientFields::Map(headers) => {
                let given = headers.get_all(&X_FORWARDED_FOR);
                let joined = joined_forwarded_for(given.iter().map(HeaderValue::as_bytes), client);
                headers.remove(&X_FORWARDED_FOR);
                joined
            }
            ClientFields::Lines(lines) => {
                let given = lines.lines.fields(lines.forwarded_for);
                let joined = joined_forwarded_for(given.map(|(_, value, _)| value), client);
                lines.left_out |= lines.forwarded_for;
                joined
            }
        }
    }
}

/// A client's address as an `X-Forwarded-For` element. Rendered once per
/// client connection: formatting an address is most of what appending it
/// costs.
pub fn forwarded_for(client: IpAddr) -> HeaderValue {
    HeaderValue::from_str(&client.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The fields the proxy adds to a request on its way upstream, kept beside
/// its map instead of inserted into it: the direct path writes them after
/// the request's own fields, so the common request costs no map insertion
/// (each hashes a name and probes the map), and only the pooled client's
/// requests have them inserted ([`AddedFields::insert_into`]).
///
/// None of these names is left in the map: [`AddedFields::new`] takes out a
/// client's `X-Forwarded-For` (its value goes on in the added one) and a
/// malformed `x-request-id`.
#[derive(Debug, Default)]
pub struct AddedFields {
    forwarded_for: Option<HeaderValue>,
    forwarded_proto: bool,
    request_id: Option<HeaderValue>,
}

impl AddedFields {
    /// Decides the added fields for a request whose fields `fields` read:
    /// `client` (from [`forwarded_for`]) appended to `X-Forwarded-For`,
    /// `X-Forwarded-Proto: http` when the client sent none (both only when
    /// `forwarded`), and `request_id` unless the client's own is kept. The
    /// client's fields the added ones replace go from `given`.
    pub fn new(
        mut given: ClientFields<'_>,
        fields: &RequestFields,
        forwarded: bool,
        client: &HeaderValue,
        request_id: &HeaderValue,
    ) -> AddedFields {
        let mut added = AddedFields::default();
        if fields.request_id.is_none() {
            if fields.has_request_id {
                given.drop_request_ids();
            }
            added.request_id = Some(request_id.clone());
        }
        if !forwarded {
            return added;
        }
        added.forwarded_for = Some(if fields.has_forwarded_for {
            given.take_forwarded_for(client)
        } else {
            client.clone()
        });
        added.forwarded_proto = !fields.has_forwarded_proto;
        added
    }

    /// The fields as name and value, in the order they are written.
    pub fn iter(&self) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
        static HTTP: HeaderValue = HeaderValue::from_static("http");
        let proto = self.forwarded_proto.then_some(&HTTP);
        [
            (&X_FORWARDED_FOR, self.forwarded_for.as_ref()),
            (&X_FORWARDED_PROTO, proto),
            (&X_REQUEST_ID, self.request_id.as_ref()),
        ]
        .into_iter()
        .filter_map(|(name, value)| Some((name, value?)))
    }

    /// Puts the fields into `headers`, for a client that writes the map.
    pub fn insert_into(&self, headers: &mut HeaderMap) {
        for (name, value) in self.iter() {
            headers.insert(name.clone(), value.clone());
        }
    }
}

/// The client's `X-Forwarded-For` values, each of which may itself be a
/// list, joined into one list (RFC 9110 §5.3: field lines of one name
/// combine in order, separated by commas) with `client` appended. A value
/// that is blank or not visible ASCII is left out.
fn joined_forwarded_for<'a>(
    given: impl Iterator<Item = &'a [u8]>,
    client: &HeaderValue,
) -> HeaderValue {
    let mut joined = Vec::new();
    for value in given {
        let value = value.trim_ascii();
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
        for name in HOP_BY_HOP_NAMES {
            let mut headers = map(&[(name, "x"), ("host", "model")]);
            remove_hop_by_hop(&mut headers, false);
            assert!(!headers.contains_key(name), "{name} was kept");
            assert_eq!(headers.len(), 1, "{name}");
        }
    }

    #[test]
    fn keeps_upgrade_for_upgrades() {
        let mut headers = map(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        assert!(RequestFields::read(&headers).upgrade);
        assert!(!RequestFields::read(&map(&[("upgrade", "websocket")])).upgrade);
        assert!(!RequestFields::read(&map(&[("connection", "upgrade")])).upgrade);
        remove_hop_by_hop(&mut headers, true);
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

    /// The request's fields after the added ones are put in, as the pooled
    /// client sends them.
    fn forwarded(pairs: &[(&str, &str)], client: &str) -> HeaderMap {
        let mut headers = map(pairs);
        let fields = RequestFields::read(&headers);
        let id = HeaderValue::from_static("generated");
        let client = forwarded_for(client.parse().unwrap());
        AddedFields::new(ClientFields::Map(&mut headers), &fields, true, &client, &id)
            .insert_into(&mut headers);
        headers
    }

    /// Every value of the field `name`, in order.
    fn all<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a HeaderValue> {
        headers.get_all(name).iter().collect()
    }

    #[test]
    fn forwarded_for_is_appended() {
        let headers = forwarded(&[("x-forwarded-for", "10.0.0.1")], "127.0.0.1");
        assert_eq!(all(&headers, "x-forwarded-for"), ["10.0.0.1, 127.0.0.1"]);
        assert_eq!(headers.get("x-forwarded-proto").unwrap(), "http");
        let fresh = forwarded(&[], "::1");
        assert_eq!(fresh.get("x-forwarded-for").unwrap(), "::1");
        assert_eq!(fresh.get("x-forwarded-proto").unwrap(), "http");
        let blank = forwarded(&[("x-forwarded-for", " ")], "::1");
        assert_eq!(blank.get("x-forwarded-for").unwrap(), "::1");
        let proto_given = forwarded(&[("x-forwarded-proto", "https")], "::1");
        assert_eq!(all(&proto_given, "x-forwarded-proto"), ["https"]);
    }

    #[test]
    fn added_fields_leave_no_second_copy_in_the_map() {
        let given = forwarded(
            &[
                ("x-forwarded-for", "10.0.0.1"),
                ("x-forwarded-for", "10.0.0.2"),
                ("x-request-id", "has space"),
            ],
            "::1",
        );
        assert_eq!(all(&given, "x-forwarded-for"), ["10.0.0.1, 10.0.0.2, ::1"]);
        assert_eq!(all(&given, "x-request-id"), ["generated"]);
        let kept = forwarded(&[("x-request-id", "client-1")], "::1");
        assert_eq!(all(&kept, "x-request-id"), ["client-1"]);
        let listed = forwarded(
            &[
                ("x-forwarded-for", "10.0.0.1, 10.0.0.2 "),
                ("x-forwarded-for", ""),
                ("x-forwarded-for", "10.0.0.3"),
            ],
            "::1",
        );
        assert_eq!(
            all(&listed, "x-forwarded-for"),
            ["10.0.0.1, 10.0.0.2, 10.0.0.3, ::1"]
        );
        // Written by the direct path: after the request's own fields, in a fixed order.
        let mut headers = map(&[("x-request-id", "client-1")]);
        let fields = RequestFields::read(&headers);
        let client = forwarded_for("::1".parse().unwrap());
        let id = HeaderValue::from_static("generated");
        let added = AddedFields::new(ClientFields::Map(&mut headers), &fields, true, &client, &id);
        let names: Vec<_> = added.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, ["x-forwarded-for", "x-forwarded-proto"]);
        let off = AddedFields::new(
            ClientFields::Map(&mut map(&[])),
            &RequestFields::default(),
            false,
            &client,
            &id,
        );
        let names: Vec<_> = off.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, ["x-request-id"]);
    }

    fn has_ambiguous_framing(headers: &HeaderMap) -> bool {
        RequestFields::read(headers).ambiguous_framing
    }

    #[test]
    fn content_length_host_and_hop_by_hop_presence() {
        let fields = RequestFields::read(&map(&[("Content-Length", "42"), ("Host", "m")]));
        assert_eq!(fields.content_length, Some(42));
        assert!(fields.has_host && !fields.hop_by_hop && !fields.ambiguous_framing);
        assert_eq!(
            RequestFields::read(&map(&[("content-length", "x")])).content_length,
            None
        );
        for name in HOP_BY_HOP_NAMES {
            assert!(
                RequestFields::read(&map(&[(name, "x")])).hop_by_hop,
                "{name}"
            );
        }
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
        assert!(!has_ambiguous_framing(&map(&[
            ("content-length", "5"),
            ("content-length", "5")
        ])));
        assert!(!has_ambiguous_framing(&map(&[("content-length", "5")])));
        assert!(!has_ambiguous_framing(&map(&[(
            "transfer-encoding",
            "chunked"
        )])));
    }
}
