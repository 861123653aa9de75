//! Redaction of personal data in captured text before it is written to the
//! sample log: e-mail addresses, IP addresses, phone numbers and long digit
//! runs (card, account and ID numbers). Applied in that order, so an e-mail
//! address or IP is never half-replaced by a later rule.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::Regex;

struct Rules {
    rules: Vec<(Regex, &'static str)>,
}

/// Compiled once; a pattern that failed to compile (never: the tests compile
/// them all) would make `redact` replace the whole text, failing closed.
static RULES: LazyLock<Option<Rules>> = LazyLock::new(|| {
    let rule = |pattern: &str, token: &'static str| Some((Regex::new(pattern).ok()?, token));
    Some(Rules {
        rules: vec![
            rule(
                r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}",
                "[EMAIL]",
            )?,
            rule(
                r"\b(?:25[0-5]|2[0-4]\d|1?\d?\d)(?:\.(?:25[0-5]|2[0-4]\d|1?\d?\d)){3}\b",
                "[IP]",
            )?,
            rule(
                r"(?i)\b(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}\b|\b(?:[0-9a-f]{1,4}:){1,6}:(?:[0-9a-f]{1,4}:){0,5}[0-9a-f]{1,4}\b",
                "[IP]",
            )?,
            rule(
                r"(?:\+\d{1,3}[\s.\-]?)?(?:\(\d{2,4}\)\s?|\b\d{2,4}[\s.\-])\d{3,4}[\s.\-]\d{3,4}\b",
                "[PHONE]",
            )?,
            rule(r"\d{6,}", "[NUMBER]")?,
        ],
    })
});

/// The text with personal data replaced by `[EMAIL]`, `[IP]`, `[PHONE]`, `[NUMBER]`.
pub fn redact(text: &str) -> Cow<'_, str> {
    let Some(rules) = RULES.as_ref() else {
        return Cow::Borrowed("[REDACTED]");
    };
    let mut out = Cow::Borrowed(text);
    for (regex, token) in &rules.rules {
        if let Cow::Owned(replaced) = regex.replace_all(&out, *token) {
            out = Cow::Owned(replaced);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_compile() {
        assert!(RULES.is_some());
    }

    #[test]
    fn personal_data_is_replaced() {
        assert_eq!(
            redact("mail jane.doe+x@example.co.uk now"),
            "mail [EMAIL] now"
        );
        assert_eq!(redact("from 192.168.1.20 to 10.0.0.1"), "from [IP] to [IP]");
        assert_eq!(redact("v6 fe80::1ff:fe23:4567:890a ok"), "v6 [IP] ok");
        assert_eq!(
            redact("call +1 415-555-1234 or (415) 555 1234"),
            "call [PHONE] or [PHONE]"
        );
        assert_eq!(redact("card 4111111111111111"), "card [NUMBER]");
    }

    #[test]
    fn ordinary_prompts_are_untouched() {
        for text in [
            "What action should the robot take to pick up the cup?",
            "Coordinate: (0.52, 0.31). Mark: 12",
            "Mark 3 at [120,45], [125, 50]",
            "<box>(100,200),(300,450)</box>",
            "Answer with a single number. 42",
            "version 1.2.3 of the year 2024",
        ] {
            assert_eq!(redact(text), text);
        }
    }
}
