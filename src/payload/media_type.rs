//! The media type of a `Content-Type` field, compared without allocating.
//!
//! RFC 9110 §8.3.1: "The type and subtype tokens are case-insensitive."
//! Every request and response has its media type looked at, so the taps
//! compare in place instead of lower-casing a copy.

/// `type/subtype` of a `Content-Type`, parameters dropped, as sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaType<'a>(&'a str);

impl<'a> MediaType<'a> {
    /// The media type of `content_type` (empty when there is none).
    pub fn of(content_type: Option<&'a str>) -> Self {
        let value = content_type.unwrap_or("");
        // A plain loop: the value is a few dozen bytes, too short for a
        // searcher's setup to pay off.
        let end = value.bytes().position(|b| b == b';').unwrap_or(value.len());
        MediaType(value[..end].trim())
    }

    pub fn is_empty(self) -> bool {
        self.0.is_empty()
    }

    /// Whether this is `name` (lower-case ASCII), ignoring case.
    pub fn is(self, name: &str) -> bool {
        self.0.eq_ignore_ascii_case(name)
    }

    /// Whether this starts with `prefix` (lower-case ASCII), ignoring case.
    pub fn starts_with(self, prefix: &str) -> bool {
        self.0
            .as_bytes()
            .get(..prefix.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
    }

    /// Whether this ends with `suffix` (lower-case ASCII), ignoring case.
    pub fn ends_with(self, suffix: &str) -> bool {
        let bytes = self.0.as_bytes();
        bytes.len() >= suffix.len()
            && bytes[bytes.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_and_case_do_not_matter() {
        let media = MediaType::of(Some(" Application/JSON ; charset=utf-8"));
        assert!(media.is("application/json"));
        assert!(!media.is("application/jso"));
        assert!(MediaType::of(Some("application/vnd.api+JSON")).ends_with("+json"));
        assert!(MediaType::of(Some("IMAGE/png")).starts_with("image/"));
        assert!(!MediaType::of(Some("im")).starts_with("image/"));
        assert!(!MediaType::of(Some("n")).ends_with("+json"));
        assert!(MediaType::of(None).is_empty());
        assert!(MediaType::of(Some(";charset=utf-8")).is_empty());
    }
}
