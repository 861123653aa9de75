//! A dense row-major sample matrix: one row per sample, one column per feature.
//!
//! Values are stored as `f32`: the kernel tiles and the permutation products
//! run twice as many lanes per SIMD instruction as with `f64`, and the
//! statistics accumulate tile results in `f64` (see `mmd_blocked`), so the
//! single-precision rounding of each kernel value (~6e-8 relative) stays far
//! below the Monte-Carlo noise of a 100-permutation test.

use thiserror::Error;

/// Why a set of rows cannot form a matrix.
#[derive(Debug, Error, PartialEq)]
pub enum MatrixError {
    #[error("row {row} has {found} values, expected {expected}")]
    Ragged {
        row: usize,
        found: usize,
        expected: usize,
    },
    #[error("row {row}, column {column}: value is not finite")]
    NotFinite { row: usize, column: usize },
}

/// Row-major samples × features.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Samples {
    rows: usize,
    cols: usize,
    data: Vec<f32>,
}

impl Samples {
    /// An empty matrix with `cols` features.
    pub fn empty(cols: usize) -> Self {
        Self {
            rows: 0,
            cols,
            data: Vec::new(),
        }
    }

    /// Builds from a flat row-major buffer; `data.len()` must be `rows * cols`.
    pub fn from_flat(rows: usize, cols: usize, data: Vec<f32>) -> Option<Self> {
        (rows.checked_mul(cols) == Some(data.len())).then_some(Self { rows, cols, data })
    }

    /// Builds from rows of equal length with finite values.
    pub fn from_rows<R: AsRef<[f32]>>(rows: &[R]) -> Result<Self, MatrixError> {
        let cols = rows.first().map(|r| r.as_ref().len()).unwrap_or(0);
        let mut data = Vec::with_capacity(rows.len() * cols);
        for (index, row) in rows.iter().enumerate() {
            let row = row.as_ref();
            if row.len() != cols {
                return Err(MatrixError::Ragged {
                    row: index,
                    found: row.len(),
                    expected: cols,
                });
            }
            if let Some(column) = row.iter().position(|v| !v.is_finite()) {
                return Err(MatrixError::NotFinite { row: index, column });
            }
            data.extend_from_slice(row);
        }
        Ok(Self {
            rows: rows.len(),
            cols,
            data,
        })
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    pub fn row(&self, index: usize) -> &[f32] {
        &self.data[index * self.cols..(index + 1) * self.cols]
    }

    pub fn as_flat(&self) -> &[f32] {
        &self.data
    }

    /// Column `index` as `f64`, in row order.
    pub fn column(&self, index: usize) -> Vec<f64> {
        (0..self.rows)
            .map(|r| f64::from(self.data[r * self.cols + index]))
            .collect()
    }

    /// Appends one row (its length must equal `cols`).
    pub fn push_row(&mut self, row: &[f32]) -> bool {
        if row.len() != self.cols {
            return false;
        }
        self.data.extend_from_slice(row);
        self.rows += 1;
        true
    }

    /// Stacks `self` over `other` (same column count).
    pub fn stack(&self, other: &Samples) -> Option<Samples> {
        if self.cols != other.cols {
            return None;
        }
        let mut data = Vec::with_capacity(self.data.len() + other.data.len());
        data.extend_from_slice(&self.data);
        data.extend_from_slice(&other.data);
        Some(Samples {
            rows: self.rows + other.rows,
            cols: self.cols,
            data,
        })
    }

    /// Per-column mean and standard deviation (population, n in the
    /// denominator); a constant column gets std 1 so scaling leaves it at 0.
    pub fn column_moments(&self) -> (Vec<f64>, Vec<f64>) {
        let n = self.rows.max(1) as f64;
        let mut mean = vec![0.0f64; self.cols];
        for r in 0..self.rows {
            for (m, v) in mean.iter_mut().zip(self.row(r)) {
                *m += f64::from(*v);
            }
        }
        mean.iter_mut().for_each(|m| *m /= n);
        let mut var = vec![0.0f64; self.cols];
        for r in 0..self.rows {
            for ((s, v), m) in var.iter_mut().zip(self.row(r)).zip(&mean) {
                let d = f64::from(*v) - m;
                *s += d * d;
            }
        }
        let std = var
            .iter()
            .map(|s| {
                let sd = (s / n).sqrt();
                if sd > 1e-12 && sd.is_finite() {
                    sd
                } else {
                    1.0
                }
            })
            .collect();
        (mean, std)
    }

    /// `(x - mean) / std` per column, as a new matrix.
    pub fn standardized(&self, mean: &[f64], std: &[f64]) -> Samples {
        let mut data = Vec::with_capacity(self.data.len());
        for r in 0..self.rows {
            for ((v, m), s) in self.row(r).iter().zip(mean).zip(std) {
                data.push(((f64::from(*v) - m) / s) as f32);
            }
        }
        Samples {
            rows: self.rows,
            cols: self.cols,
            data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_ragged_and_non_finite_rows() {
        let ragged = Samples::from_rows(&[vec![1.0, 2.0], vec![1.0]]);
        assert_eq!(
            ragged,
            Err(MatrixError::Ragged {
                row: 1,
                found: 1,
                expected: 2
            })
        );
        let nan = Samples::from_rows(&[vec![1.0, f32::NAN]]);
        assert_eq!(nan, Err(MatrixError::NotFinite { row: 0, column: 1 }));
    }

    #[test]
    fn standardizes_by_column() {
        let m = Samples::from_rows(&[vec![1.0, 5.0], vec![3.0, 5.0]]).unwrap();
        let (mean, std) = m.column_moments();
        assert_eq!(mean, vec![2.0, 5.0]);
        assert_eq!(std, vec![1.0, 1.0]);
        let z = m.standardized(&mean, &std);
        assert_eq!(z.row(0), &[-1.0, 0.0]);
        assert_eq!(z.row(1), &[1.0, 0.0]);
    }
}
