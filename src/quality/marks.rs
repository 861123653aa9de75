//! Parser for the grounding parts of Magma answers (DESIGN.md):
//!
//! - Set-of-Mark: `Mark: N` (or `Mark N`), points or boxes as 2 or 4 decimal
//!   numbers in `(..)` or `[..]` on the unit scale [0,1], and
//!   `<box>(x,y),(x,y)</box>` on a 0–1000 scale;
//! - Trace-of-Mark: `Mark N at [x,y]` or `Mark N at [[x,y],[x,y],...]` on a
//!   256-cell grid.
//!
//! The scanner works on bytes, never allocates per character, and keeps at most
//! `MAX_ITEMS` of each kind, so an adversarial answer costs O(len) and bounded
//! memory. Groups of integers only (`[3, 4]`) are not taken as unit-scale
//! coordinates: Magma writes those as decimals.

use serde::Serialize;

/// Most marks, points, boxes and traces kept from one answer.
pub const MAX_ITEMS: usize = 64;
/// Most points kept in one trace.
pub const MAX_TRACE_POINTS: usize = 64;
/// Longest bracket group looked into.
const MAX_GROUP_BYTES: usize = 4096;

/// The coordinate frame a number was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scale {
    /// [0, 1] (Set-of-Mark points and boxes).
    Unit,
    /// [0, 1000] (`<box>` tags).
    Permille,
    /// [0, 256] (Trace-of-Mark grid).
    Grid256,
}

impl Scale {
    /// The largest valid coordinate in this frame.
    pub fn max(self) -> f64 {
        match self {
            Scale::Unit => 1.0,
            Scale::Permille => 1000.0,
            Scale::Grid256 => 256.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Point {
    pub x: f64,
    pub y: f64,
    pub scale: Scale,
}

impl Point {
    /// The point in the unit frame.
    pub fn unit(&self) -> (f64, f64) {
        (self.x / self.scale.max(), self.y / self.scale.max())
    }

    pub fn in_range(&self) -> bool {
        in_frame(self.x, self.scale) && in_frame(self.y, self.scale)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BoundingBox {
    pub x1: f64,
    pub y1: f64,
    pub x2: f64,
    pub y2: f64,
    pub scale: Scale,
}

impl BoundingBox {
    /// The box in the unit frame, corners ordered (x1 <= x2, y1 <= y2).
    pub fn unit(&self) -> [f64; 4] {
        let m = self.scale.max();
        [
            self.x1.min(self.x2) / m,
            self.y1.min(self.y2) / m,
            self.x1.max(self.x2) / m,
            self.y1.max(self.y2) / m,
        ]
    }

    pub fn center(&self) -> Point {
        Point {
            x: (self.x1 + self.x2) / 2.0,
            y: (self.y1 + self.y2) / 2.0,
            scale: self.scale,
        }
    }

    pub fn in_range(&self) -> bool {
        [self.x1, self.y1, self.x2, self.y2]
            .iter()
            .all(|v| in_frame(*v, self.scale))
    }
}

/// One Trace-of-Mark trace: where mark `mark` should move, on the 256 grid.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trace {
    pub mark: u32,
    pub points: Vec<Point>,
}

/// Everything grounding-related found in one answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ParsedMarks {
    pub marks: Vec<u32>,
    pub points: Vec<Point>,
    pub boxes: Vec<BoundingBox>,
    pub traces: Vec<Trace>,
}

impl ParsedMarks {
    /// True when the answer names a mark, a point or a box.
    pub fn has_grounding(&self) -> bool {
        !(self.marks.is_empty() && self.points.is_empty() && self.boxes.is_empty())
    }

    /// True when some coordinate lies outside its frame.
    pub fn any_out_of_range(&self) -> bool {
        self.points.iter().any(|p| !p.in_range())
            || self.boxes.iter().any(|b| !b.in_range())
            || self
                .traces
                .iter()
                .any(|t| t.points.iter().any(|p| !p.in_range()))
    }

    /// The first predicted location as a point: the first point, else the
    /// centre of the first box.
    pub fn first_location(&self) -> Option<Point> {
        self.points
            .first()
            .copied()
            .or_else(|| self.boxes.first().map(BoundingBox::center))
    }
}

fn in_frame(v: f64, scale: Scale) -> bool {
    v.is_finite() && (0.0..=scale.max()).contains(&v)
}

/// Parses the grounding parts of an answer.
pub fn parse(text: &str) -> ParsedMarks {
    let bytes = text.as_bytes();
    let mut out = ParsedMarks::default();
    let mut i = 0;
    while i < bytes.len() {
        if starts_with_ci(bytes, i, b"<box>") {
            let start = i + 5;
            let end = find_ci(bytes, start, b"</box>").unwrap_or(bytes.len());
            let numbers = numbers_in(&bytes[start..end.min(start + MAX_GROUP_BYTES)]);
            push_coordinates(&mut out, &numbers, Scale::Permille);
            i = (end + 6).min(bytes.len());
            continue;
        }
        if starts_with_ci(bytes, i, b"mark") && word_boundary_before(bytes, i) {
            if let Some(next) = parse_mark(bytes, i + 4, &mut out) {
                i = next;
                continue;
            }
        }
        if bytes[i] == b'(' || bytes[i] == b'[' {
            let close = if bytes[i] == b'(' { b')' } else { b']' };
            let limit = (i + 1 + MAX_GROUP_BYTES).min(bytes.len());
            if let Some(offset) = bytes[i + 1..limit].iter().position(|b| *b == close) {
                let group = &bytes[i + 1..i + 1 + offset];
                let numbers = numbers_in(group);
                if numbers.iter().any(|n| n.decimal) && !group.contains(&b'[') {
                    push_coordinates(&mut out, &numbers, Scale::Unit);
                }
                i += offset + 2;
                continue;
            }
        }
        i += 1;
    }
    out
}

/// After the word `mark` at `i`: `[:#]? N` and optionally `at <group>`.
fn parse_mark(bytes: &[u8], mut i: usize, out: &mut ParsedMarks) -> Option<usize> {
    i = skip(bytes, i, b" \t:#");
    let digits_start = i;
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        i += 1;
    }
    if i == digits_start || i - digits_start > 9 {
        return None;
    }
    let mark: u32 = std::str::from_utf8(&bytes[digits_start..i])
        .ok()?
        .parse()
        .ok()?;
    let after_number = i;
    let j = skip(bytes, i, b" \t");
    if starts_with_ci(bytes, j, b"at") {
        let k = skip(bytes, j + 2, b" \t:");
        if k < bytes.len() && (bytes[k] == b'[' || bytes[k] == b'(') {
            if let Some(end) = balanced_end(bytes, k) {
                let numbers = numbers_in(&bytes[k..end]);
                if out.traces.len() < MAX_ITEMS {
                    let points = numbers
                        .chunks_exact(2)
                        .take(MAX_TRACE_POINTS)
                        .map(|pair| Point {
                            x: pair[0].value,
                            y: pair[1].value,
                            scale: Scale::Grid256,
                        })
                        .collect::<Vec<_>>();
                    if !points.is_empty() {
                        out.traces.push(Trace { mark, points });
                    }
                }
                return Some(end);
            }
        }
    }
    if out.marks.len() < MAX_ITEMS {
        out.marks.push(mark);
    }
    Some(after_number)
}

fn push_coordinates(out: &mut ParsedMarks, numbers: &[Number], scale: Scale) {
    match numbers {
        [x, y] if out.points.len() < MAX_ITEMS => out.points.push(Point {
            x: x.value,
            y: y.value,
            scale,
        }),
        [x1, y1, x2, y2] if out.boxes.len() < MAX_ITEMS => out.boxes.push(BoundingBox {
            x1: x1.value,
            y1: y1.value,
            x2: x2.value,
            y2: y2.value,
            scale,
        }),
        _ => {}
    }
}

#[derive(Debug, Clone, Copy)]
struct Number {
    value: f64,
    decimal: bool,
}

/// Decimal numbers (`-12`, `0.5`, `.5`) in a byte slice, at most 2·MAX_TRACE_POINTS.
fn numbers_in(bytes: &[u8]) -> Vec<Number> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() && out.len() < 2 * MAX_TRACE_POINTS {
        let start = i;
        let mut j = i;
        if bytes[j] == b'-' || bytes[j] == b'+' {
            j += 1;
        }
        let digits = j;
        while j < bytes.len() && bytes[j].is_ascii_digit() {
            j += 1;
        }
        let mut decimal = false;
        if j < bytes.len() && bytes[j] == b'.' {
            let frac = j + 1;
            let mut k = frac;
            while k < bytes.len() && bytes[k].is_ascii_digit() {
                k += 1;
            }
            if k > frac {
                decimal = true;
                j = k;
            }
        }
        let has_digits = bytes[digits..j].iter().any(u8::is_ascii_digit);
        let glued = start > 0 && (bytes[start - 1].is_ascii_alphanumeric());
        if has_digits && !glued {
            if let Some(value) = std::str::from_utf8(&bytes[start..j])
                .ok()
                .and_then(|s| s.parse::<f64>().ok())
            {
                out.push(Number { value, decimal });
            }
            i = j;
        } else {
            i = j.max(start + 1);
        }
    }
    out
}

fn skip(bytes: &[u8], mut i: usize, set: &[u8]) -> usize {
    while i < bytes.len() && set.contains(&bytes[i]) {
        i += 1;
    }
    i
}

fn starts_with_ci(bytes: &[u8], i: usize, word: &[u8]) -> bool {
    bytes.len() >= i + word.len() && bytes[i..i + word.len()].eq_ignore_ascii_case(word)
}

fn find_ci(bytes: &[u8], from: usize, word: &[u8]) -> Option<usize> {
    (from..bytes.len().saturating_sub(word.len() - 1)).find(|&i| starts_with_ci(bytes, i, word))
}

fn word_boundary_before(bytes: &[u8], i: usize) -> bool {
    i == 0 || !bytes[i - 1].is_ascii_alphanumeric()
}

/// End (exclusive) of the bracket group opening at `start`, nesting allowed.
fn balanced_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut depth = 0usize;
    let limit = (start + MAX_GROUP_BYTES).min(bytes.len());
    for (offset, b) in bytes[start..limit].iter().enumerate() {
        match b {
            b'[' | b'(' => depth += 1,
            b']' | b')' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(start + offset + 1);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_of_mark_answer() {
        let p = parse("Coordinate: (0.52, 0.31). Mark: 12");
        assert_eq!(p.marks, vec![12]);
        assert_eq!(p.points.len(), 1);
        assert_eq!(p.points[0].scale, Scale::Unit);
        assert!((p.points[0].x - 0.52).abs() < 1e-12);
        assert!(!p.any_out_of_range());
        let p = parse("Mark 3 [0.1, 0.2, 0.4, 0.5]");
        assert_eq!(p.marks, vec![3]);
        assert_eq!(p.boxes.len(), 1);
        assert_eq!(p.boxes[0].unit(), [0.1, 0.2, 0.4, 0.5]);
    }

    #[test]
    fn box_tags_on_the_permille_scale() {
        let p = parse("Click here <box>(120,340),(560,780)</box>");
        assert_eq!(p.boxes.len(), 1);
        assert_eq!(p.boxes[0].scale, Scale::Permille);
        let [x1, y1, x2, y2] = p.boxes[0].unit();
        assert!(
            (x1 - 0.12).abs() < 1e-12 && (y2 - 0.78).abs() < 1e-12,
            "{y1} {x2}"
        );
        assert!(parse("<box>(120,340),(1560,780)</box>").any_out_of_range());
    }

    #[test]
    fn trace_of_mark_answer() {
        let p = parse("Mark 3 at [[12,34],[20,40]]; Mark 7 at [100,200]. Mark 9 at [300, 5]");
        assert_eq!(p.traces.len(), 3);
        assert_eq!(p.traces[0].mark, 3);
        assert_eq!(p.traces[0].points.len(), 2);
        assert_eq!(p.traces[1].points[0].x, 100.0);
        assert!(p.marks.is_empty());
        assert!(p.any_out_of_range(), "300 is off the 256 grid");
    }

    #[test]
    fn out_of_range_unit_point() {
        assert!(parse("Mark: 2 (1.30, 0.4)").any_out_of_range());
        assert!(parse("(-0.1, 0.4)").any_out_of_range());
    }

    #[test]
    fn plain_text_has_no_grounding() {
        let p = parse("The remarkable answer is 42 (probably) [citation 3, 4].");
        assert_eq!(p, ParsedMarks::default());
        assert!(!p.has_grounding());
    }

    #[test]
    fn hostile_input_is_bounded() {
        let text = "Mark 1 ".repeat(10_000) + &"(0.1,0.2)".repeat(10_000) + "[[[[[[";
        let p = parse(&text);
        assert_eq!(p.marks.len(), MAX_ITEMS);
        assert_eq!(p.points.len(), MAX_ITEMS);
        let p = parse("Mark 99999999999999999999 at [");
        assert!(p.marks.is_empty() && p.traces.is_empty());
        let _ = parse("<box>");
        let _ = parse("mark");
        let _ = parse("(");
    }
}
