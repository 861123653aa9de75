//! Protocol upgrades (WebSocket, and whatever else `--allowed-upgrades`
//! lets through): after the upstream answers `101 Switching Protocols`, both
//! connections are joined and bytes copied both ways until either side
//! closes (RFC 9110 §7.8). hyper hands over each connection once its 101 has
//! been read or written, with any bytes it had already read.

use http::HeaderValue;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use crate::telemetry;

/// The `protocol` label of a tunnel: its Upgrade value's first protocol
/// name, from a closed set.
fn protocol_label(protocols: &HeaderValue) -> &'static str {
    let first = protocols
        .to_str()
        .ok()
        .and_then(|v| v.split([',', '/']).next())
        .map(str::trim)
        .unwrap_or("");
    if first.eq_ignore_ascii_case("websocket") {
        "websocket"
    } else {
        "other"
    }
}

/// Joins the client's and the upstream's upgraded connections in a task.
pub fn spawn_tunnel(
    client: OnUpgrade,
    upstream: OnUpgrade,
    protocols: &HeaderValue,
    request_id: &HeaderValue,
) {
    let protocol = protocol_label(protocols);
    let request_id = request_id.to_str().unwrap_or("").to_owned();
    tokio::spawn(async move {
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(pair) => pair,
            Err(error) => {
                tracing::warn!(%request_id, %error, "upgrade failed");
                return;
            }
        };
        metrics::counter!(telemetry::TUNNELS, "protocol" => protocol).increment(1);
        let open = metrics::gauge!(telemetry::TUNNELS_OPEN);
        open.increment(1.0);
        let mut client = TokioIo::new(client);
        let mut upstream = TokioIo::new(upstream);
        match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
            Ok((to_upstream, to_client)) => {
                tracing::debug!(%request_id, to_upstream, to_client, "upgraded connection closed")
            }
            Err(error) => {
                tracing::debug!(%request_id, %error, "upgraded connection ended with an error")
            }
        }
        open.decrement(1.0);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tunnel_labels_come_from_a_closed_set() {
        let label = |v| protocol_label(&HeaderValue::from_static(v));
        assert_eq!(label("websocket"), "websocket");
        assert_eq!(label("WebSocket/13, foo"), "websocket");
        assert_eq!(label("my-own-protocol"), "other");
    }
}
