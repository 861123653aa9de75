//! Cheap visual statistics of an image, for drift detection: decode (PNG or
//! JPEG), average down to at most 64 x 64, then measure
//!
//! - brightness: mean luma (ITU-R BT.601 weights), in [0, 1];
//! - contrast: RMS contrast, the standard deviation of luma (Peli 1990), in [0, 0.5];
//! - saturation: mean HSV saturation `(max - min) / max`, in [0, 1];
//! - edge density: share of pixels whose Sobel gradient magnitude exceeds
//!   0.1 of its maximum, in [0, 1].
//!
//! Analysis side only. Decoding is bounded by a pixel cap checked from the
//! header before any pixel buffer is allocated.

use std::io::Cursor;

use serde::Serialize;
use zune_jpeg::zune_core::bytestream::ZCursor;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

use super::image_header::{read_header, ImageFormat};

/// Largest image decoded (pixels); larger ones get header features only.
pub const MAX_DECODE_PIXELS: u64 = 24_000_000;
/// Side of the thumbnail the statistics are computed on.
pub const THUMB: usize = 64;
/// Sobel magnitude threshold, as a share of the largest possible magnitude.
const EDGE_THRESHOLD: f64 = 0.1;

/// The statistics, each in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct VisualStats {
    pub brightness: f64,
    pub contrast: f64,
    pub saturation: f64,
    pub edge_density: f64,
}

/// Why an image was not measured.
#[derive(Debug, thiserror::Error)]
pub enum VisualError {
    #[error("not a PNG or JPEG image")]
    Unsupported,
    #[error("image too large to decode ({0} pixels)")]
    TooLarge(u64),
    #[error("PNG decode failed: {0}")]
    Png(String),
    #[error("JPEG decode failed: {0}")]
    Jpeg(String),
}

/// RGB8 pixels.
struct Rgb {
    width: usize,
    height: usize,
    /// Channels per pixel in `pixels` (1 = gray, 2 = gray+alpha, 3 = RGB, 4 = RGBA).
    channels: usize,
    pixels: Vec<u8>,
}

/// Decodes and measures an image.
pub fn visual_stats(bytes: &[u8]) -> Result<VisualStats, VisualError> {
    let header = read_header(bytes).ok_or(VisualError::Unsupported)?;
    if let Some((w, h)) = header.dimensions {
        let pixels = u64::from(w) * u64::from(h);
        if pixels > MAX_DECODE_PIXELS {
            return Err(VisualError::TooLarge(pixels));
        }
    }
    let image = match header.format {
        ImageFormat::Png => decode_png(bytes)?,
        ImageFormat::Jpeg => decode_jpeg(bytes)?,
        ImageFormat::Gif | ImageFormat::Webp => return Err(VisualError::Unsupported),
    };
    Ok(measure(&thumbnail(&image)))
}

fn decode_png(bytes: &[u8]) -> Result<Rgb, VisualError> {
    let mut decoder = png::Decoder::new_with_limits(
        Cursor::new(bytes),
        png::Limits {
            bytes: (MAX_DECODE_PIXELS * 4) as usize,
        },
    );
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder
        .read_info()
        .map_err(|e| VisualError::Png(e.to_string()))?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| VisualError::Png("image too large".into()))?;
    let mut pixels = vec![0; size];
    let info = reader
        .next_frame(&mut pixels)
        .map_err(|e| VisualError::Png(e.to_string()))?;
    let channels = info.color_type.samples();
    pixels.truncate(info.buffer_size());
    Ok(Rgb {
        width: info.width as usize,
        height: info.height as usize,
        channels,
        pixels,
    })
}

fn decode_jpeg(bytes: &[u8]) -> Result<Rgb, VisualError> {
    let options = DecoderOptions::default()
        .set_max_width(16_384)
        .set_max_height(16_384)
        .jpeg_set_out_colorspace(ColorSpace::RGB);
    let mut decoder = JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    decoder
        .decode_headers()
        .map_err(|e| VisualError::Jpeg(format!("{e:?}")))?;
    let (width, height) = decoder
        .dimensions()
        .ok_or_else(|| VisualError::Jpeg("no dimensions".into()))?;
    let pixels_count = (width as u64) * (height as u64);
    if pixels_count > MAX_DECODE_PIXELS {
        return Err(VisualError::TooLarge(pixels_count));
    }
    let pixels = decoder
        .decode()
        .map_err(|e| VisualError::Jpeg(format!("{e:?}")))?;
    let channels = decoder
        .output_colorspace()
        .map_or(3, |c| c.num_components());
    Ok(Rgb {
        width,
        height,
        channels,
        pixels,
    })
}

/// Box-filters the image down to at most `THUMB` x `THUMB` RGB pixels (f64, 0..1).
fn thumbnail(image: &Rgb) -> Vec<Vec<[f64; 3]>> {
    let (w, h, c) = (image.width, image.height, image.channels.max(1));
    if w == 0 || h == 0 || image.pixels.len() < w * h * c {
        return Vec::new();
    }
    let tw = w.min(THUMB);
    let th = h.min(THUMB);
    let mut sums = vec![vec![([0.0f64; 3], 0u32); tw]; th];
    for y in 0..h {
        let ty = y * th / h;
        let row = &image.pixels[y * w * c..(y + 1) * w * c];
        for x in 0..w {
            let tx = x * tw / w;
            let p = &row[x * c..x * c + c];
            let rgb = if c >= 3 {
                [p[0], p[1], p[2]]
            } else {
                [p[0], p[0], p[0]]
            };
            let cell = &mut sums[ty][tx];
            for (acc, v) in cell.0.iter_mut().zip(rgb) {
                *acc += f64::from(v);
            }
            cell.1 += 1;
        }
    }
    sums.into_iter()
        .map(|row| {
            row.into_iter()
                .map(|(sum, n)| {
                    let n = f64::from(n.max(1)) * 255.0;
                    [sum[0] / n, sum[1] / n, sum[2] / n]
                })
                .collect()
        })
        .collect()
}

fn measure(thumb: &[Vec<[f64; 3]>]) -> VisualStats {
    let h = thumb.len();
    let w = thumb.first().map_or(0, Vec::len);
    if w == 0 || h == 0 {
        return VisualStats {
            brightness: 0.0,
            contrast: 0.0,
            saturation: 0.0,
            edge_density: 0.0,
        };
    }
    let luma: Vec<Vec<f64>> = thumb
        .iter()
        .map(|row| {
            row.iter()
                .map(|p| 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2])
                .collect()
        })
        .collect();
    let n = (w * h) as f64;
    let brightness = luma.iter().flatten().sum::<f64>() / n;
    let variance = luma
        .iter()
        .flatten()
        .map(|l| (l - brightness).powi(2))
        .sum::<f64>()
        / n;
    let saturation = thumb
        .iter()
        .flatten()
        .map(|p| {
            let max = p[0].max(p[1]).max(p[2]);
            let min = p[0].min(p[1]).min(p[2]);
            if max > 0.0 {
                (max - min) / max
            } else {
                0.0
            }
        })
        .sum::<f64>()
        / n;
    // Sobel on interior pixels; the largest magnitude is 4 * sqrt(2).
    let mut edges = 0usize;
    let mut interior = 0usize;
    let max_magnitude = 4.0 * std::f64::consts::SQRT_2;
    for y in 1..h.saturating_sub(1) {
        for x in 1..w.saturating_sub(1) {
            let l = |dy: usize, dx: usize| luma[y + dy - 1][x + dx - 1];
            let gx = (l(0, 2) + 2.0 * l(1, 2) + l(2, 2)) - (l(0, 0) + 2.0 * l(1, 0) + l(2, 0));
            let gy = (l(2, 0) + 2.0 * l(2, 1) + l(2, 2)) - (l(0, 0) + 2.0 * l(0, 1) + l(0, 2));
            interior += 1;
            if (gx * gx + gy * gy).sqrt() > EDGE_THRESHOLD * max_magnitude {
                edges += 1;
            }
        }
    }
    VisualStats {
        brightness,
        contrast: variance.sqrt(),
        saturation,
        edge_density: if interior > 0 {
            edges as f64 / interior as f64
        } else {
            0.0
        },
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Encodes an RGB image as PNG (for tests across the payload module).
    pub(crate) fn encode_png(width: u32, height: u32, rgb: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut encoder = png::Encoder::new(&mut out, width, height);
            encoder.set_color(png::ColorType::Rgb);
            encoder.set_depth(png::BitDepth::Eight);
            let mut writer = encoder.write_header().unwrap();
            writer.write_image_data(rgb).unwrap();
        }
        out
    }

    #[test]
    fn flat_gray_image() {
        let png = encode_png(100, 80, &vec![128; 100 * 80 * 3]);
        let s = visual_stats(&png).unwrap();
        assert!((s.brightness - 128.0 / 255.0).abs() < 1e-9);
        assert!(s.contrast < 1e-9);
        assert!(s.saturation < 1e-9);
        assert_eq!(s.edge_density, 0.0);
    }

    #[test]
    fn red_and_black_halves() {
        let (w, h) = (128usize, 64usize);
        let mut rgb = vec![0u8; w * h * 3];
        for y in 0..h {
            for x in 0..w / 2 {
                rgb[(y * w + x) * 3] = 255;
            }
        }
        let s = visual_stats(&encode_png(w as u32, h as u32, &rgb)).unwrap();
        assert!((s.brightness - 0.299 / 2.0).abs() < 1e-9);
        assert!((s.contrast - 0.299 / 2.0).abs() < 1e-9);
        assert!((s.saturation - 0.5).abs() < 1e-9);
        // One vertical edge two thumbnail columns wide, in a 64-wide thumbnail.
        assert!(
            s.edge_density > 0.0 && s.edge_density < 0.1,
            "{}",
            s.edge_density
        );
    }

    #[test]
    fn broken_images_are_errors_not_panics() {
        let png = encode_png(4, 4, &[7; 48]);
        for cut in [8, 20, 33, png.len() - 5] {
            assert!(visual_stats(&png[..cut]).is_err(), "cut {cut}");
        }
        assert!(matches!(
            visual_stats(b"GIF89a\x01\x00\x01\x00"),
            Err(VisualError::Unsupported)
        ));
        assert!(visual_stats(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 4, 0, 0]).is_err());
        let mut huge = png.clone();
        huge[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        huge[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        assert!(matches!(visual_stats(&huge), Err(VisualError::TooLarge(_))));
    }
}
