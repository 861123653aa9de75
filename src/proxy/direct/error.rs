//! What can go wrong in a direct exchange, with enough context to say who
//! failed: the upstream (502), the client's body (400 / 413, decided by the
//! forward path from the exchange's own flags), or the wire in between.

#[derive(Debug, thiserror::Error)]
pub enum DirectError {
    #[error("writing the request to the upstream failed")]
    Write(#[source] std::io::Error),
    #[error("reading the upstream response failed")]
    Read(#[source] std::io::Error),
    #[error("the upstream closed the connection before sending a response head")]
    ClosedBeforeHead,
    #[error("the upstream closed the connection in the middle of the response body")]
    ClosedInBody,
    #[error("malformed upstream response: {0}")]
    Parse(#[source] httparse::Error),
    #[error("malformed upstream response: {0}")]
    Malformed(&'static str),
    /// The client's body broke off or went over the limit (a
    /// `proxy::body::BodyError`, boxed so this file stands alone for the
    /// fuzz target).
    #[error("the client's request body failed")]
    RequestBody(#[source] Box<dyn std::error::Error + Send + Sync>),
}
