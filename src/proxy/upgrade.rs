//! Protocol upgrades (WebSocket and friends): after the upstream answers
//! `101 Switching Protocols`, both connections are joined and bytes copied
//! both ways until either side closes (RFC 9110 §7.8).

use http::HeaderValue;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

/// Joins the client's and the upstream's upgraded connections in a task.
pub fn spawn_tunnel(client: OnUpgrade, upstream: OnUpgrade, request_id: HeaderValue) {
    tokio::spawn(async move {
        let request_id = request_id.to_str().unwrap_or("").to_owned();
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(pair) => pair,
            Err(error) => {
                tracing::warn!(%request_id, %error, "upgrade failed");
                return;
            }
        };
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
    });
}
