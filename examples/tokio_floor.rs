//! The floor of a tokio proxy without hyper: HTTP/1.1 keep-alive with
//! `Content-Length` bodies only, each client connection pinned to one
//! upstream connection, heads parsed with httparse and rewritten the way a
//! proxy must (hop-by-hop fields out, `X-Forwarded-For` in), bodies copied
//! through. No metrics, no limits, no chunked framing, no
//! `Expect: 100-continue`, no upgrades, no HTTP/2: it answers how fast the
//! same runtime and sockets go when no HTTP library sits between them, so
//! the load bench can set it beside nginx, the bare hyper proxy and
//! magma-monitor.
//!
//! `cargo run --release --example tokio_floor -- 127.0.0.1:18002 127.0.0.1:18080`

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Most header fields read per head.
const MAX_HEADERS: usize = 64;
/// Fields a proxy drops (RFC 9110 §7.6.1), lowercase.
const HOP_BY_HOP: [&str; 6] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "transfer-encoding",
    "upgrade",
];

fn main() {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:18002".into());
    let upstream: SocketAddr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:18080".into())
        .parse()
        .expect("upstream address host:port");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let listener = TcpListener::bind(&listen).await.expect("bind");
        loop {
            let Ok((client, peer)) = listener.accept().await else {
                continue;
            };
            let _ = client.set_nodelay(true);
            tokio::spawn(async move {
                if let Err(error) = serve(client, peer, upstream).await {
                    eprintln!("{peer}: {error}");
                }
            });
        }
    });
}

/// A message head read into `buffer[..head_len]` with the body length it declared.
struct Head {
    len: usize,
    body_len: usize,
    out: Vec<u8>,
}

/// Serves one client connection until it closes.
async fn serve(
    mut client: TcpStream,
    peer: SocketAddr,
    upstream: SocketAddr,
) -> std::io::Result<()> {
    let forwarded_for = peer.ip().to_string();
    let mut upstream_conn: Option<TcpStream> = None;
    let mut from_client = Vec::with_capacity(16 * 1024);
    let mut from_upstream = Vec::with_capacity(16 * 1024);
    loop {
        let Some(request) = read_head(&mut client, &mut from_client, |buf| {
            request_head(buf, &forwarded_for)
        })
        .await?
        else {
            return Ok(());
        };
        let conn = match upstream_conn.as_mut() {
            Some(conn) => conn,
            None => {
                let conn = TcpStream::connect(upstream).await?;
                conn.set_nodelay(true)?;
                upstream_conn.insert(conn)
            }
        };
        relay(&mut from_client, request, &mut *conn, &mut client).await?;

        let Some(response) = read_head(conn, &mut from_upstream, response_head).await? else {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        };
        relay(&mut from_upstream, response, &mut client, conn).await?;
    }
}

/// Reads until `parse` finds a complete head in `buffer`; `None` when the
/// peer closed between messages.
async fn read_head(
    stream: &mut TcpStream,
    buffer: &mut Vec<u8>,
    parse: impl Fn(&[u8]) -> std::io::Result<Option<Head>>,
) -> std::io::Result<Option<Head>> {
    loop {
        if !buffer.is_empty() {
            if let Some(head) = parse(buffer)? {
                return Ok(Some(head));
            }
        }
        if buffer.len() == buffer.capacity() {
            buffer.reserve(buffer.capacity());
        }
        let filled = buffer.len();
        // Reads into the spare capacity: nothing is zeroed first.
        match stream.read_buf(buffer).await? {
            0 if filled == 0 => return Ok(None),
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            _ => {}
        }
    }
}

/// Sends the rewritten head and the body (`head.body_len` bytes, part of it
/// maybe already in `buffer` after the head) to `to`; keeps any bytes past
/// the body in `buffer`. Head and body go out in one write when the body has
/// arrived with the head.
async fn relay(
    buffer: &mut Vec<u8>,
    head: Head,
    to: &mut TcpStream,
    from: &mut TcpStream,
) -> std::io::Result<()> {
    let Head {
        len,
        body_len,
        mut out,
    } = head;
    let have = (buffer.len() - len).min(body_len);
    out.extend_from_slice(&buffer[len..len + have]);
    buffer.drain(..len + have);
    to.write_all(&out).await?;
    let mut left = body_len - have;
    while left > 0 {
        if buffer.len() == buffer.capacity() {
            buffer.reserve(buffer.capacity().max(1));
        }
        if from.read_buf(buffer).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let take = buffer.len().min(left);
        to.write_all(&buffer[..take]).await?;
        buffer.drain(..take);
        left -= take;
    }
    Ok(())
}

fn request_head(buffer: &[u8], forwarded_for: &str) -> std::io::Result<Option<Head>> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut fields);
    let len = match request.parse(buffer).map_err(invalid)? {
        httparse::Status::Complete(len) => len,
        httparse::Status::Partial => return Ok(None),
    };
    let mut out = Vec::with_capacity(len + 64);
    out.extend_from_slice(request.method.unwrap_or("GET").as_bytes());
    out.push(b' ');
    out.extend_from_slice(request.path.unwrap_or("/").as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let body_len = copy_fields(request.headers, &mut out)?;
    out.extend_from_slice(b"x-forwarded-for: ");
    out.extend_from_slice(forwarded_for.as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
    Ok(Some(Head { len, body_len, out }))
}

fn response_head(buffer: &[u8]) -> std::io::Result<Option<Head>> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut fields);
    let len = match response.parse(buffer).map_err(invalid)? {
        httparse::Status::Complete(len) => len,
        httparse::Status::Partial => return Ok(None),
    };
    let mut out = Vec::with_capacity(len + 16);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(response.code.unwrap_or(502).to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(response.reason.unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    let body_len = copy_fields(response.headers, &mut out)?;
    out.extend_from_slice(b"\r\n");
    Ok(Some(Head { len, body_len, out }))
}

/// Copies the end-to-end fields and returns the declared body length;
/// chunked framing is outside this floor and refused.
fn copy_fields(fields: &[httparse::Header<'_>], out: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut body_len = 0;
    for field in fields {
        if field.name.eq_ignore_ascii_case("content-length") {
            body_len = std::str::from_utf8(field.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| invalid("bad content-length"))?;
        } else if field.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(invalid("chunked bodies are outside this floor"));
        }
        if HOP_BY_HOP
            .iter()
            .any(|hop| field.name.eq_ignore_ascii_case(hop))
        {
            continue;
        }
        out.extend_from_slice(field.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(field.value);
        out.extend_from_slice(b"\r\n");
    }
    Ok(body_len)
}

fn invalid(error: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, error.to_string())
}
