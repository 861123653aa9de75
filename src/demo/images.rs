//! Generated images for the traffic generator: real PNG and JPEG bytes of
//! scenes that resemble what Magma is asked about (a robot workspace, a UI
//! screenshot, a scene with numbered marks, a photo-like scene).
//!
//! The `input-drift` phase renders the same scenes darker and with less
//! contrast, which moves the brightness and contrast features the drift
//! engine extracts.

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::{ImageEncoder, Rgb, RgbImage};
use rand::Rng;

/// What the picture shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SceneKind {
    RobotWorkspace,
    UiScreenshot,
    MarkedScene,
    Photo,
}

/// Encoded format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    Png,
    Jpeg,
}

impl ImageFormat {
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpeg => "jpg",
        }
    }
}

/// How the image is rendered: `Normal`, or darker with less contrast.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Look {
    /// Multiplies the distance from mid-grey (1 = unchanged).
    pub contrast: f64,
    /// Multiplies every channel after the contrast change (1 = unchanged).
    pub brightness: f64,
}

impl Look {
    pub const NORMAL: Look = Look {
        contrast: 1.0,
        brightness: 1.0,
    };
    pub const DIM: Look = Look {
        contrast: 0.45,
        brightness: 0.45,
    };
}

/// An encoded image.
#[derive(Debug, Clone)]
pub struct EncodedImage {
    pub bytes: Vec<u8>,
    pub format: ImageFormat,
    pub width: u32,
    pub height: u32,
    pub kind: SceneKind,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot encode a {format:?} image: {source}")]
pub struct EncodeError {
    format: ImageFormat,
    source: image::ImageError,
}

/// Renders and encodes one image.
pub fn generate<R: Rng>(
    rng: &mut R,
    kind: SceneKind,
    format: ImageFormat,
    look: Look,
) -> Result<EncodedImage, EncodeError> {
    let (width, height) = match kind {
        SceneKind::UiScreenshot => (rng.random_range(320..=480), rng.random_range(200..=320)),
        _ => {
            let side = rng.random_range(192..=320);
            (side, rng.random_range(side * 3 / 4..=side))
        }
    };
    let mut canvas = RgbImage::new(width, height);
    match kind {
        SceneKind::RobotWorkspace => robot_workspace(rng, &mut canvas),
        SceneKind::UiScreenshot => ui_screenshot(rng, &mut canvas),
        SceneKind::MarkedScene => marked_scene(rng, &mut canvas),
        SceneKind::Photo => photo(rng, &mut canvas),
    }
    apply_look(&mut canvas, look);
    let bytes = encode(&canvas, format).map_err(|source| EncodeError { format, source })?;
    Ok(EncodedImage {
        bytes,
        format,
        width,
        height,
        kind,
    })
}

fn encode(canvas: &RgbImage, format: ImageFormat) -> Result<Vec<u8>, image::ImageError> {
    let mut out = Cursor::new(Vec::new());
    match format {
        ImageFormat::Png => image::codecs::png::PngEncoder::new(&mut out).write_image(
            canvas.as_raw(),
            canvas.width(),
            canvas.height(),
            image::ExtendedColorType::Rgb8,
        )?,
        ImageFormat::Jpeg => JpegEncoder::new_with_quality(&mut out, 85).write_image(
            canvas.as_raw(),
            canvas.width(),
            canvas.height(),
            image::ExtendedColorType::Rgb8,
        )?,
    }
    Ok(out.into_inner())
}

fn apply_look(canvas: &mut RgbImage, look: Look) {
    if look == Look::NORMAL {
        return;
    }
    for pixel in canvas.pixels_mut() {
        for channel in pixel.0.iter_mut() {
            let centred = (f64::from(*channel) - 128.0) * look.contrast + 128.0;
            *channel = (centred * look.brightness).clamp(0.0, 255.0) as u8;
        }
    }
}

fn random_colour<R: Rng>(rng: &mut R) -> Rgb<u8> {
    Rgb([rng.random(), rng.random(), rng.random()])
}

fn fill_rect(canvas: &mut RgbImage, x: u32, y: u32, w: u32, h: u32, colour: Rgb<u8>) {
    let x_end = (x + w).min(canvas.width());
    let y_end = (y + h).min(canvas.height());
    for yy in y.min(y_end)..y_end {
        for xx in x.min(x_end)..x_end {
            canvas.put_pixel(xx, yy, colour);
        }
    }
}

fn fill_circle(canvas: &mut RgbImage, cx: i64, cy: i64, r: i64, colour: Rgb<u8>) {
    let (w, h) = (i64::from(canvas.width()), i64::from(canvas.height()));
    for y in (cy - r).max(0)..(cy + r).min(h) {
        for x in (cx - r).max(0)..(cx + r).min(w) {
            if (x - cx).pow(2) + (y - cy).pow(2) <= r * r {
                canvas.put_pixel(x as u32, y as u32, colour);
            }
        }
    }
}

/// Vertical gradient between two colours, with a little noise for texture.
fn gradient<R: Rng>(rng: &mut R, canvas: &mut RgbImage, top: Rgb<u8>, bottom: Rgb<u8>, noise: i16) {
    let height = canvas.height().max(1);
    for (_, y, pixel) in canvas.enumerate_pixels_mut() {
        let t = f64::from(y) / f64::from(height);
        for c in 0..3 {
            let base = f64::from(top.0[c]) * (1.0 - t) + f64::from(bottom.0[c]) * t;
            let jitter = if noise > 0 {
                rng.random_range(-noise..=noise)
            } else {
                0
            };
            pixel.0[c] = (base as i16 + jitter).clamp(0, 255) as u8;
        }
    }
}

fn robot_workspace<R: Rng>(rng: &mut R, canvas: &mut RgbImage) {
    let (w, h) = (canvas.width(), canvas.height());
    gradient(rng, canvas, Rgb([200, 200, 205]), Rgb([150, 150, 160]), 4);
    // The table.
    let table_top = h / 2 + rng.random_range(0..h / 6);
    let wood = Rgb([
        rng.random_range(120..180),
        rng.random_range(80..120),
        rng.random_range(40..70),
    ]);
    fill_rect(canvas, 0, table_top, w, h - table_top, wood);
    // Objects on it.
    for _ in 0..rng.random_range(2..6) {
        let size = rng.random_range(w / 12..w / 6);
        let x = rng.random_range(0..w.saturating_sub(size).max(1));
        let y = rng.random_range(table_top..h.saturating_sub(size / 2).max(table_top + 1));
        if rng.random_bool(0.5) {
            fill_rect(
                canvas,
                x,
                y.saturating_sub(size / 2),
                size,
                size,
                random_colour(rng),
            );
        } else {
            fill_circle(
                canvas,
                i64::from(x),
                i64::from(y),
                i64::from(size / 2),
                random_colour(rng),
            );
        }
    }
    // The gripper coming from above.
    let gx = rng.random_range(w / 4..3 * w / 4);
    fill_rect(canvas, gx, 0, w / 20 + 2, table_top / 2, Rgb([60, 60, 70]));
    fill_rect(
        canvas,
        gx.saturating_sub(w / 16),
        table_top / 2,
        w / 8,
        h / 30 + 2,
        Rgb([40, 40, 50]),
    );
}

fn ui_screenshot<R: Rng>(rng: &mut R, canvas: &mut RgbImage) {
    let (w, h) = (canvas.width(), canvas.height());
    let dark_mode = rng.random_bool(0.2);
    let background = if dark_mode {
        Rgb([32, 33, 36])
    } else {
        Rgb([250, 250, 252])
    };
    fill_rect(canvas, 0, 0, w, h, background);
    // Title bar.
    let accent = Rgb([
        rng.random_range(0..90),
        rng.random_range(90..160),
        rng.random_range(180..255),
    ]);
    fill_rect(canvas, 0, 0, w, h / 10, accent);
    // Lines of "text".
    let ink = if dark_mode {
        Rgb([220, 220, 220])
    } else {
        Rgb([60, 60, 60])
    };
    let mut y = h / 10 + 12;
    while y + 8 < h * 3 / 4 {
        let len = rng.random_range(w / 4..w * 3 / 4);
        fill_rect(canvas, 16, y, len, 5, ink);
        y += rng.random_range(12..22);
    }
    // Buttons.
    for i in 0..rng.random_range(2..5) {
        let bw = rng.random_range(50..90);
        let x = 16 + i * (bw + 12);
        if x + bw < w {
            fill_rect(canvas, x, h * 3 / 4 + 8, bw, 24, accent);
            fill_rect(
                canvas,
                x + 10,
                h * 3 / 4 + 18,
                bw - 20,
                4,
                Rgb([255, 255, 255]),
            );
        }
    }
}

fn marked_scene<R: Rng>(rng: &mut R, canvas: &mut RgbImage) {
    photo(rng, canvas);
    let (w, h) = (i64::from(canvas.width()), i64::from(canvas.height()));
    // Numbered marks: white discs with a dark centre, as Trace-of-Mark overlays them.
    for _ in 0..rng.random_range(3..9) {
        let (x, y) = (rng.random_range(10..w - 10), rng.random_range(10..h - 10));
        fill_circle(canvas, x, y, 8, Rgb([255, 255, 255]));
        fill_circle(canvas, x, y, 3, Rgb([20, 20, 20]));
    }
}

fn photo<R: Rng>(rng: &mut R, canvas: &mut RgbImage) {
    let (w, h) = (canvas.width(), canvas.height());
    let sky = Rgb([
        rng.random_range(90..170),
        rng.random_range(140..200),
        rng.random_range(200..255),
    ]);
    let ground = Rgb([
        rng.random_range(40..110),
        rng.random_range(90..150),
        rng.random_range(30..80),
    ]);
    gradient(rng, canvas, sky, ground, 12);
    for _ in 0..rng.random_range(3..8) {
        let r = i64::from(rng.random_range(w / 20..w / 7));
        let x = i64::from(rng.random_range(0..w));
        let y = i64::from(rng.random_range(h / 3..h));
        fill_circle(canvas, x, y, r, random_colour(rng));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn mean_and_spread(bytes: &[u8]) -> (f64, f64) {
        let decoded = image::load_from_memory(bytes).unwrap().to_luma8();
        let values: Vec<f64> = decoded.pixels().map(|p| f64::from(p.0[0])).collect();
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64;
        (mean, var.sqrt())
    }

    #[test]
    fn images_decode_in_both_formats() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        for kind in [
            SceneKind::RobotWorkspace,
            SceneKind::UiScreenshot,
            SceneKind::MarkedScene,
            SceneKind::Photo,
        ] {
            for format in [ImageFormat::Png, ImageFormat::Jpeg] {
                let img = generate(&mut rng, kind, format, Look::NORMAL).unwrap();
                let decoded = image::load_from_memory(&img.bytes).unwrap();
                assert_eq!((decoded.width(), decoded.height()), (img.width, img.height));
                match format {
                    ImageFormat::Png => assert!(img.bytes.starts_with(b"\x89PNG")),
                    ImageFormat::Jpeg => assert!(img.bytes.starts_with(b"\xff\xd8\xff")),
                }
            }
        }
    }

    #[test]
    fn dim_look_is_darker_and_flatter() {
        let (mut bright, mut dim) = ((0.0, 0.0), (0.0, 0.0));
        for seed in 0..6 {
            let mut a = rand::rngs::StdRng::seed_from_u64(seed);
            let mut b = rand::rngs::StdRng::seed_from_u64(seed);
            let normal =
                generate(&mut a, SceneKind::Photo, ImageFormat::Png, Look::NORMAL).unwrap();
            let drifted = generate(&mut b, SceneKind::Photo, ImageFormat::Png, Look::DIM).unwrap();
            let (m1, s1) = mean_and_spread(&normal.bytes);
            let (m2, s2) = mean_and_spread(&drifted.bytes);
            bright = (bright.0 + m1, bright.1 + s1);
            dim = (dim.0 + m2, dim.1 + s2);
        }
        assert!(dim.0 < bright.0 * 0.7, "brightness {dim:?} vs {bright:?}");
        assert!(dim.1 < bright.1 * 0.6, "contrast {dim:?} vs {bright:?}");
    }
}
