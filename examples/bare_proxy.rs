//! The floor of the libraries magma-monitor is built on: a reverse proxy with
//! the same hyper server builder and pooled hyper-util client, and nothing
//! else (no metrics, no header rewriting, no payload taps). The load bench
//! runs it beside magma-monitor so the cost of what the sidecar adds on top
//! of hyper can be read off directly.
//!
//! `cargo run --release --example bare_proxy -- 127.0.0.1:18001 http://127.0.0.1:18080`

use std::convert::Infallible;

use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

fn main() {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:18001".into());
    let upstream: http::Uri = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:18080".into())
        .parse()
        .expect("upstream URI");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let client: Client<_, Incoming> = Client::builder(TokioExecutor::new()).build_http();
        let listener = tokio::net::TcpListener::bind(&listen).await.expect("bind");
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let (client, upstream) = (client.clone(), upstream.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
                    let client = client.clone();
                    let mut parts = upstream.clone().into_parts();
                    parts.path_and_query = request.uri().path_and_query().cloned();
                    *request.uri_mut() = http::Uri::from_parts(parts).expect("upstream URI");
                    async move {
                        let response = match client.request(request).await {
                            Ok(response) => response.map(http_body_util::Either::Left),
                            Err(_) => Response::builder()
                                .status(502)
                                .body(http_body_util::Either::Right(http_body_util::Empty::new()))
                                .expect("static response"),
                        };
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}
