//! Reading sample tables from CSV: comma-separated numbers, one row per
//! sample. A first row that is not all numbers is taken as a header.
//! Blank lines are skipped; cells are trimmed; everything else that is not a
//! finite number is an error with its line and column.

use std::path::Path;

use thiserror::Error;

/// Why a CSV file cannot be used.
#[derive(Debug, Error, PartialEq)]
pub enum CsvError {
    #[error("{path}: cannot read: {reason}")]
    Read { path: String, reason: String },
    #[error("{path}: no data rows")]
    Empty { path: String },
    #[error("{path}: line {line} has {found} columns, expected {expected}")]
    Ragged {
        path: String,
        line: usize,
        found: usize,
        expected: usize,
    },
    #[error("{path}: line {line}, column {column}: `{cell}` is not a finite number")]
    NotNumeric {
        path: String,
        line: usize,
        column: usize,
        cell: String,
    },
    #[error("{path}: line {line}, column {column}: `{cell}` is not an integer category code")]
    NotInteger {
        path: String,
        line: usize,
        column: usize,
        cell: String,
    },
}

/// A parsed table: rows of equal length.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub header: Option<Vec<String>>,
    pub rows: Vec<Vec<f64>>,
}

impl Table {
    pub fn columns(&self) -> usize {
        self.rows.first().map(Vec::len).unwrap_or(0)
    }

    /// Column `index`, in row order.
    pub fn column(&self, index: usize) -> Vec<f64> {
        self.rows.iter().map(|r| r[index]).collect()
    }
}

/// Reads and parses a CSV file.
pub fn read_table(path: &Path) -> Result<Table, CsvError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| CsvError::Read {
        path: name.clone(),
        reason: e.to_string(),
    })?;
    parse_table(&name, &text)
}

/// Parses CSV text; `name` is used in error messages.
pub fn parse_table(name: &str, text: &str) -> Result<Table, CsvError> {
    let mut header = None;
    let mut rows: Vec<Vec<f64>> = Vec::new();
    let mut expected = None;
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        if let Some(expected) = expected {
            if cells.len() != expected {
                return Err(CsvError::Ragged {
                    path: name.into(),
                    line: line_no,
                    found: cells.len(),
                    expected,
                });
            }
        }
        let parsed: Vec<Option<f64>> = cells.iter().map(|c| parse_number(c)).collect();
        let is_first = expected.is_none();
        expected = Some(cells.len());
        if is_first && header.is_none() && parsed.iter().any(Option::is_none) {
            header = Some(cells.iter().map(|c| c.to_string()).collect());
            continue;
        }
        let mut row = Vec::with_capacity(cells.len());
        for (column, (cell, value)) in cells.iter().zip(parsed).enumerate() {
            match value {
                Some(v) => row.push(v),
                None => {
                    return Err(CsvError::NotNumeric {
                        path: name.into(),
                        line: line_no,
                        column: column + 1,
                        cell: truncate(cell),
                    })
                }
            }
        }
        rows.push(row);
    }
    if rows.is_empty() {
        return Err(CsvError::Empty { path: name.into() });
    }
    Ok(Table { header, rows })
}

/// Checks that every cell is an integer (category codes for chi-square).
pub fn require_integers(name: &str, table: &Table) -> Result<(), CsvError> {
    let offset = usize::from(table.header.is_some()) + 1;
    for (r, row) in table.rows.iter().enumerate() {
        for (c, v) in row.iter().enumerate() {
            if v.fract() != 0.0 || v.abs() > 9.0e15 {
                return Err(CsvError::NotInteger {
                    path: name.into(),
                    line: r + offset,
                    column: c + 1,
                    cell: v.to_string(),
                });
            }
        }
    }
    Ok(())
}

fn parse_number(cell: &str) -> Option<f64> {
    cell.parse::<f64>().ok().filter(|v| v.is_finite())
}

fn truncate(cell: &str) -> String {
    cell.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_a_header_and_skips_blank_lines() {
        let t = parse_table("a", "x, y\n1,2\n\n3.5, -4e1\n").unwrap();
        assert_eq!(t.header, Some(vec!["x".into(), "y".into()]));
        assert_eq!(t.rows, vec![vec![1.0, 2.0], vec![3.5, -40.0]]);
        let t = parse_table("a", "1,2\n3,4").unwrap();
        assert_eq!(t.header, None);
    }

    #[test]
    fn reports_bad_input_with_its_place() {
        assert_eq!(
            parse_table("f", "1,2\n3\n"),
            Err(CsvError::Ragged {
                path: "f".into(),
                line: 2,
                found: 1,
                expected: 2
            })
        );
        assert!(matches!(
            parse_table("f", "1,2\n3,abc\n"),
            Err(CsvError::NotNumeric {
                line: 2,
                column: 2,
                ..
            })
        ));
        assert!(matches!(
            parse_table("f", "1,2\n1,nan\n"),
            Err(CsvError::NotNumeric { .. })
        ));
        assert_eq!(
            parse_table("f", "a,b\n"),
            Err(CsvError::Empty { path: "f".into() })
        );
        assert_eq!(
            parse_table("f", ""),
            Err(CsvError::Empty { path: "f".into() })
        );
        let t = parse_table("f", "1,2.5\n").unwrap();
        assert!(matches!(
            require_integers("f", &t),
            Err(CsvError::NotInteger {
                line: 1,
                column: 2,
                ..
            })
        ));
    }
}
