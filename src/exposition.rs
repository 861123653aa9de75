//! A reader of the Prometheus text exposition format (version 0.0.4), enough
//! to read back what our own registry renders: the dashboard's time series
//! and the anomaly engine's signals both sample `/metrics` through it.

/// One sample line: `name{label="value",...} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleLine<'a> {
    pub name: &'a str,
    pub labels: Vec<(&'a str, String)>,
    pub value: f64,
}

impl SampleLine<'_> {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Iterates over the sample lines of `text`, skipping comments and lines
/// that do not parse.
pub fn samples(text: &str) -> impl Iterator<Item = SampleLine<'_>> {
    text.lines().filter_map(parse_line)
}

/// Parses one line; `None` for comments, blanks and malformed lines.
pub fn parse_line(line: &str) -> Option<SampleLine<'_>> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty() {
        return None;
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        let (parsed, remainder) = parse_labels(after)?;
        labels = parsed;
        rest = remainder;
    }
    // The value, optionally followed by a timestamp.
    let value_text = rest.split_whitespace().next()?;
    let value = match value_text {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        other => other.parse().ok()?,
    };
    Some(SampleLine {
        name,
        labels,
        value,
    })
}

/// Parses `key="value",...}`; returns the labels and the text after `}`.
fn parse_labels(mut text: &str) -> Option<(Vec<(&str, String)>, &str)> {
    let mut labels = Vec::new();
    loop {
        text = text.trim_start_matches([' ', ',']);
        if let Some(rest) = text.strip_prefix('}') {
            return Some((labels, rest));
        }
        let eq = text.find('=')?;
        let key = text[..eq].trim();
        let mut chars = text[eq + 1..].char_indices();
        if chars.next()?.1 != '"' {
            return None;
        }
        let mut value = String::new();
        let mut escaped = false;
        let mut end = None;
        for (i, c) in chars {
            if escaped {
                value.push(match c {
                    'n' => '\n',
                    other => other,
                });
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                end = Some(i);
                break;
            } else {
                value.push(c);
            }
        }
        let end = end?;
        labels.push((key, value));
        text = &text[eq + 1 + end + 1..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_labels_escapes_and_specials() {
        let line = r#"magma_request_duration_seconds_bucket{model_type="magma-8b",status="success",task="a\"b\\c",le="+Inf"} 42"#;
        let s = parse_line(line).unwrap();
        assert_eq!(s.name, "magma_request_duration_seconds_bucket");
        assert_eq!(s.label("task"), Some(r#"a"b\c"#));
        assert_eq!(s.label("le"), Some("+Inf"));
        assert_eq!(s.value, 42.0);
        assert_eq!(parse_line("magma_up 1 1700000000000").unwrap().value, 1.0);
        assert!(parse_line("x +Inf").unwrap().value.is_infinite());
        assert!(parse_line("# HELP x y").is_none());
        assert!(parse_line("x{a=\"1\" 2").is_none());
        assert!(parse_line("x{a=1} 2").is_none());
        assert!(parse_line("x notanumber").is_none());
    }

    #[test]
    fn iterates_a_document() {
        let text = "# TYPE a counter\na_total 3\n\nb{x=\"y\"} 1.5\n";
        let all: Vec<_> = samples(text).collect();
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].label("x"), Some("y"));
    }
}
