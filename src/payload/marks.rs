//! Structured parts of Magma's text answers:
//!
//! - Set-of-Mark (UI navigation): `Mark: N`, a point `(x, y)` or a box
//!   `(x1, y1, x2, y2)` with coordinates in [0, 1], or
//!   `<box>(x1,y1),(x2,y2)</box>` on a 0..1000 scale.
//! - Trace-of-Mark (planning): `Mark N at [x,y]` / `Mark N: [[x,y],[x,y]]`
//!   positions on a 256 grid.
//!
//! Coordinates come back normalised to [0, 1]; values outside their scale
//! are reported (a quality signal), not clamped.

use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

/// Most trace points kept.
pub const MAX_TRACE_POINTS: usize = 64;
/// Trace-of-Mark grid size (Magma paper: positions on a 256 x 256 grid).
pub const TRACE_GRID: f64 = 256.0;
/// Scale of `<box>` coordinates.
pub const BOX_SCALE: f64 = 1000.0;

/// One position of a mark's trace.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TracePoint {
    pub mark: u32,
    pub x: f64,
    pub y: f64,
}

/// What the answer's text says in Set-of-Mark / Trace-of-Mark terms.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MarkAnswer {
    /// The first `Mark: N`.
    pub mark: Option<u32>,
    /// A point in [0, 1] x [0, 1].
    pub point: Option<(f64, f64)>,
    /// A box `x1, y1, x2, y2` normalised to [0, 1].
    pub bbox: Option<[f64; 4]>,
    pub trace: Vec<TracePoint>,
    /// Some coordinate lay outside its scale.
    pub out_of_range: bool,
}

impl MarkAnswer {
    pub fn is_empty(&self) -> bool {
        self.mark.is_none() && self.point.is_none() && self.bbox.is_none() && self.trace.is_empty()
    }
}

const NUM: &str = r"(-?\d+(?:\.\d+)?)";

struct Patterns {
    mark: Regex,
    tagged_box: Regex,
    four: Regex,
    two: Regex,
    trace_head: Regex,
    bracket_pair: Regex,
}

/// Compiled once; `None` only if a constant pattern failed to compile (the
/// tests compile them, so in practice never).
static PATTERNS: LazyLock<Option<Patterns>> = LazyLock::new(|| {
    Some(Patterns {
        mark: Regex::new(r"(?i)\bmark\s*(?:index)?\s*[:#]?\s*(\d{1,6})\b").ok()?,
        tagged_box: Regex::new(&format!(
            r"<box>\s*\(\s*{NUM}\s*,\s*{NUM}\s*\)\s*,?\s*\(\s*{NUM}\s*,\s*{NUM}\s*\)\s*</box>"
        ))
        .ok()?,
        four: Regex::new(&format!(
            r"[\(\[]\s*{NUM}\s*,\s*{NUM}\s*,\s*{NUM}\s*,\s*{NUM}\s*[\)\]]"
        ))
        .ok()?,
        two: Regex::new(&format!(r"[\(\[]\s*{NUM}\s*,\s*{NUM}\s*[\)\]]")).ok()?,
        trace_head: Regex::new(r"(?i)\bmark\s*(\d{1,6})\s*(?:at|:|is at|moves to)").ok()?,
        bracket_pair: Regex::new(&format!(r"\[\s*{NUM}\s*,\s*{NUM}\s*\]")).ok()?,
    })
});

fn num(caps: &regex::Captures<'_>, i: usize) -> Option<f64> {
    caps.get(i)?.as_str().parse().ok()
}

/// Parses the answer text (callers pass a bounded prefix).
pub fn parse_marks(text: &str) -> MarkAnswer {
    let mut answer = MarkAnswer::default();
    // Every pattern needs a digit (`\d` also matches non-ASCII digits, so
    // any non-ASCII byte keeps the text in). Most chat and VQA answers have
    // none, and then no regex runs at all.
    if !text.bytes().any(|b| b.is_ascii_digit() || !b.is_ascii()) {
        return answer;
    }
    let Some(p) = PATTERNS.as_ref() else {
        return answer;
    };
    let unit = |v: f64, out: &mut bool| {
        if !(0.0..=1.0).contains(&v) {
            *out = true;
        }
        v
    };
    if let Some(caps) = p.tagged_box.captures(text) {
        let mut coords = [0.0; 4];
        for (slot, i) in coords.iter_mut().zip(1..) {
            let v = num(&caps, i).unwrap_or(0.0) / BOX_SCALE;
            *slot = unit(v, &mut answer.out_of_range);
        }
        answer.bbox = Some(coords);
    } else if let Some(caps) = p.four.captures(text) {
        let mut coords = [0.0; 4];
        for (slot, i) in coords.iter_mut().zip(1..) {
            *slot = unit(num(&caps, i).unwrap_or(0.0), &mut answer.out_of_range);
        }
        answer.bbox = Some(coords);
    }

    // Trace-of-Mark: each "Mark N at/:" owns the [x,y] pairs up to the next one.
    let heads: Vec<(u32, usize, usize)> = p
        .trace_head
        .captures_iter(text)
        .filter_map(|c| {
            let whole = c.get(0)?;
            Some((c.get(1)?.as_str().parse().ok()?, whole.start(), whole.end()))
        })
        .collect();
    for (k, &(mark, _, end)) in heads.iter().enumerate() {
        let stop = heads.get(k + 1).map_or(text.len(), |h| h.1);
        for caps in p.bracket_pair.captures_iter(&text[end..stop]) {
            if answer.trace.len() >= MAX_TRACE_POINTS {
                break;
            }
            let (Some(x), Some(y)) = (num(&caps, 1), num(&caps, 2)) else {
                continue;
            };
            let (x, y) = (x / TRACE_GRID, y / TRACE_GRID);
            answer.trace.push(TracePoint {
                mark,
                x: unit(x, &mut answer.out_of_range),
                y: unit(y, &mut answer.out_of_range),
            });
        }
    }

    if answer.trace.is_empty() {
        answer.mark = p
            .mark
            .captures(text)
            .and_then(|c| c.get(1)?.as_str().parse().ok());
        if answer.bbox.is_none() {
            if let Some(caps) = p.two.captures(text) {
                if let (Some(x), Some(y)) = (num(&caps, 1), num(&caps, 2)) {
                    answer.point = Some((
                        unit(x, &mut answer.out_of_range),
                        unit(y, &mut answer.out_of_range),
                    ));
                }
            }
        }
    } else {
        answer.mark = answer.trace.first().map(|t| t.mark);
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_compile() {
        assert!(PATTERNS.is_some());
    }

    #[test]
    fn set_of_mark_point() {
        let a = parse_marks("Coordinate: (0.52, 0.31). Mark: 12");
        assert_eq!(a.mark, Some(12));
        assert_eq!(a.point, Some((0.52, 0.31)));
        assert!(!a.out_of_range);
    }

    #[test]
    fn set_of_mark_boxes() {
        let a = parse_marks("Mark: 3, box [0.1, 0.2, 0.3, 0.4]");
        assert_eq!(a.bbox, Some([0.1, 0.2, 0.3, 0.4]));
        assert_eq!(a.point, None);
        let b = parse_marks("The button is at <box>(100,200),(300,450)</box>");
        assert_eq!(b.bbox, Some([0.1, 0.2, 0.3, 0.45]));
        let c = parse_marks("<box>(100,200),(1300,450)</box>");
        assert!(c.out_of_range);
    }

    #[test]
    fn trace_of_mark() {
        let a = parse_marks("Mark 3 at [120,45], [125, 50]; Mark 7: [[10,20],[12,22]]");
        assert_eq!(a.trace.len(), 4);
        assert_eq!(a.trace[0].mark, 3);
        assert!((a.trace[0].x - 120.0 / 256.0).abs() < 1e-12);
        assert_eq!(a.trace[2].mark, 7);
        assert_eq!(a.mark, Some(3));
        assert!(!a.out_of_range);
    }

    #[test]
    fn non_ascii_digits_still_reach_the_patterns() {
        // `\d` is Unicode: Arabic-Indic digits match the box pattern (and,
        // not being ASCII numbers, parse to zeros), so the digit check in
        // front of the patterns must let them through.
        let a = parse_marks("[\u{661}, \u{662}, \u{663}, \u{664}]");
        assert_eq!(a.bbox, Some([0.0; 4]));
    }

    #[test]
    fn plain_text_has_no_marks() {
        let a = parse_marks("the the the the");
        assert!(a.is_empty());
        assert!(parse_marks("").is_empty());
    }
}
