//! A small multipart/form-data reader (RFC 7578) for the simulated server.
//!
//! The simulated server collects a bounded body first, so this works on a
//! complete byte slice; the streaming scanner of the sidecar lives in
//! `payload`.

/// One part of a form.
#[derive(Debug, Clone, PartialEq)]
pub struct Part<'a> {
    pub name: String,
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub body: &'a [u8],
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MultipartError {
    #[error("content type has no boundary parameter")]
    NoBoundary,
    #[error("body does not start with the boundary")]
    NoFirstBoundary,
    #[error("part {0} has no end of headers")]
    UnterminatedHeaders(usize),
    #[error("part {0} is not closed by a boundary")]
    UnterminatedPart(usize),
    #[error("part {0} has no form-data name")]
    NoName(usize),
}

/// The `boundary` parameter of a `multipart/form-data` content type.
pub fn boundary(content_type: &str) -> Result<String, MultipartError> {
    let mut params = content_type.split(';');
    let kind = params.next().unwrap_or("").trim();
    if !kind.eq_ignore_ascii_case("multipart/form-data") {
        return Err(MultipartError::NoBoundary);
    }
    params
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v.trim().trim_matches('"').to_string())
        .filter(|b| !b.is_empty() && b.len() <= 70)
        .ok_or(MultipartError::NoBoundary)
}

/// Splits a complete body into its parts.
pub fn parse<'a>(body: &'a [u8], boundary: &str) -> Result<Vec<Part<'a>>, MultipartError> {
    let delimiter = format!("--{boundary}");
    let delimiter = delimiter.as_bytes();
    let start = find(body, delimiter).ok_or(MultipartError::NoFirstBoundary)?;
    let mut rest = &body[start + delimiter.len()..];
    let mut parts = Vec::new();
    let separator = [b"\r\n", delimiter].concat();
    loop {
        if rest.starts_with(b"--") {
            return Ok(parts);
        }
        let index = parts.len();
        rest = rest.strip_prefix(b"\r\n").unwrap_or(rest);
        let head_end = find(rest, b"\r\n\r\n").ok_or(MultipartError::UnterminatedHeaders(index))?;
        let head = String::from_utf8_lossy(&rest[..head_end]);
        let content = &rest[head_end + 4..];
        let end = find(content, &separator).ok_or(MultipartError::UnterminatedPart(index))?;
        let (name, filename, content_type) = read_headers(&head);
        parts.push(Part {
            name: name.ok_or(MultipartError::NoName(index))?,
            filename,
            content_type,
            body: &content[..end],
        });
        rest = &content[end + separator.len()..];
    }
}

fn read_headers(head: &str) -> (Option<String>, Option<String>, Option<String>) {
    let mut name = None;
    let mut filename = None;
    let mut content_type = None;
    for line in head.split("\r\n") {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        if key.trim().eq_ignore_ascii_case("content-disposition") {
            for param in value.split(';').skip(1) {
                if let Some((k, v)) = param.split_once('=') {
                    let v = v.trim().trim_matches('"').to_string();
                    match k.trim().to_ascii_lowercase().as_str() {
                        "name" => name = Some(v),
                        "filename" => filename = Some(v),
                        _ => {}
                    }
                }
            }
        } else if key.trim().eq_ignore_ascii_case("content-type") {
            content_type = Some(value.trim().to_string());
        }
    }
    (name, filename, content_type)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// One form field to build: name, optional (filename, content type), content.
pub type Field<'a> = (&'a str, Option<(&'a str, &'a str)>, &'a [u8]);

/// Builds a multipart/form-data body; returns (content type, body).
pub fn build(boundary: &str, fields: &[Field<'_>]) -> (String, Vec<u8>) {
    let mut body = Vec::new();
    for (name, file, content) in fields {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match file {
            Some((filename, content_type)) => body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: {content_type}\r\n\r\n"
                )
                .as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_a_form() {
        let (content_type, body) = build(
            "XyZ123",
            &[
                (
                    "file",
                    Some(("a.png", "image/png")),
                    b"\x89PNG\r\n--XyZ12 not it",
                ),
                ("prompt", None, "What is this?".as_bytes()),
            ],
        );
        let b = boundary(&content_type).unwrap();
        let parts = parse(&body, &b).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name, "file");
        assert_eq!(parts[0].filename.as_deref(), Some("a.png"));
        assert_eq!(parts[0].content_type.as_deref(), Some("image/png"));
        assert_eq!(parts[0].body, b"\x89PNG\r\n--XyZ12 not it");
        assert_eq!(parts[1].body, b"What is this?");
    }

    #[test]
    fn rejects_truncated_bodies() {
        let (_, body) = build("b0", &[("prompt", None, b"hi")]);
        let cut = &body[..body.len() - 10];
        assert_eq!(parse(cut, "b0"), Err(MultipartError::UnterminatedPart(0)));
        assert_eq!(
            boundary("multipart/form-data"),
            Err(MultipartError::NoBoundary)
        );
        assert_eq!(
            boundary("application/json; boundary=x"),
            Err(MultipartError::NoBoundary)
        );
    }
}
