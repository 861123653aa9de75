//! The `Date` field of the lane's responses.
//!
//! RFC 9110 §6.6.1: "An origin server with a clock ... MUST generate a Date
//! header field in ... 2xx (Successful), 3xx (Redirection), and 4xx (Client
//! Error) responses". The upstream normally sends one and it passes as it is;
//! when it does not, the proxy adds one, as hyper's server does. Formatting a
//! date costs more than the rest of a small head, so each thread keeps the
//! value of the current second.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

/// Length of an IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub const DATE_LEN: usize = 29;

struct CachedDate {
    second: u64,
    text: [u8; DATE_LEN],
}

thread_local! {
    static CACHED: RefCell<CachedDate> = const {
        RefCell::new(CachedDate { second: u64::MAX, text: [0; DATE_LEN] })
    };
}

/// Appends the current date in IMF-fixdate form.
pub fn extend(out: &mut Vec<u8>) {
    let now = SystemTime::now();
    let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    CACHED.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.second != second {
            let text = httpdate::fmt_http_date(now);
            if text.len() == DATE_LEN {
                cached.text.copy_from_slice(text.as_bytes());
                cached.second = second;
            }
        }
        out.extend_from_slice(&cached.text);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_date_is_now_in_imf_fixdate_form() {
        let mut out = Vec::new();
        extend(&mut out);
        let text = std::str::from_utf8(&out).unwrap();
        assert_eq!(text.len(), DATE_LEN);
        assert!(text.ends_with(" GMT"), "{text}");
        let parsed = httpdate::parse_http_date(text).unwrap();
        let skew = SystemTime::now().duration_since(parsed).unwrap();
        assert!(skew.as_secs() <= 2, "{text} is {skew:?} old");
    }
}
