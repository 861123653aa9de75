//! Image format and dimensions read from the first bytes of a file, by hand:
//! PNG (IHDR, ISO/IEC 15948 / W3C PNG 11.2.2), JPEG (SOFn marker, ITU-T T.81
//! B.2.2), GIF (logical screen descriptor, GIF89a spec 18) and WebP (RIFF
//! `VP8 `, `VP8L`, `VP8X` chunks, RFC 9649).
//!
//! Never panics and never reads past the slice: a truncated or malformed
//! header gives the format (when the magic matched) without dimensions.
//! Self-contained (std only) so fuzz targets can include the file directly.

/// Image container formats the reader knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageFormat {
    Png,
    Jpeg,
    Gif,
    Webp,
}

impl ImageFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            ImageFormat::Png => "png",
            ImageFormat::Jpeg => "jpeg",
            ImageFormat::Gif => "gif",
            ImageFormat::Webp => "webp",
        }
    }
}

/// What the header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageHeader {
    pub format: ImageFormat,
    /// Width and height in pixels, when the header holds them within the bytes given.
    pub dimensions: Option<(u32, u32)>,
}

/// Recognises the format from the magic bytes alone (needs at most 12 bytes).
pub fn sniff_format(bytes: &[u8]) -> Option<ImageFormat> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(ImageFormat::Png)
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(ImageFormat::Jpeg)
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some(ImageFormat::Gif)
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some(ImageFormat::Webp)
    } else {
        None
    }
}

/// Reads the format and, where present, the dimensions.
pub fn read_header(bytes: &[u8]) -> Option<ImageHeader> {
    let format = sniff_format(bytes)?;
    let dimensions = match format {
        ImageFormat::Png => png_dimensions(bytes),
        ImageFormat::Jpeg => jpeg_dimensions(bytes),
        ImageFormat::Gif => gif_dimensions(bytes),
        ImageFormat::Webp => webp_dimensions(bytes),
    }
    .filter(|&(w, h)| w > 0 && h > 0);
    Some(ImageHeader { format, dimensions })
}

fn be16(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(2)?)?;
    Some(u32::from(u16::from_be_bytes([b[0], b[1]])))
}

fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn le16(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(2)?)?;
    Some(u32::from(u16::from_le_bytes([b[0], b[1]])))
}

fn le24(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(3)?)?;
    Some(u32::from(b[0]) | u32::from(b[1]) << 8 | u32::from(b[2]) << 16)
}

fn le32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// PNG: the first chunk must be IHDR; width and height are its first two fields.
fn png_dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.get(12..16)? != b"IHDR" {
        return None;
    }
    Some((be32(bytes, 16)?, be32(bytes, 20)?))
}

/// JPEG: walk the marker segments until a start-of-frame marker.
fn jpeg_dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    let mut at = 2;
    loop {
        // Markers may be preceded by fill bytes 0xFF.
        while *bytes.get(at)? == 0xFF && *bytes.get(at + 1)? == 0xFF {
            at += 1;
        }
        if *bytes.get(at)? != 0xFF {
            return None;
        }
        let marker = *bytes.get(at + 1)?;
        at += 2;
        match marker {
            // Standalone markers without a length.
            0x01 | 0xD0..=0xD7 => continue,
            // End of image or start of scan before any frame header.
            0xD9 | 0xDA => return None,
            // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC).
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                // Length(2), precision(1), height(2), width(2).
                let height = be16(bytes, at + 3)?;
                let width = be16(bytes, at + 5)?;
                return Some((width, height));
            }
            _ => {
                let length = be16(bytes, at)? as usize;
                if length < 2 {
                    return None;
                }
                at = at.checked_add(length)?;
            }
        }
    }
}

/// GIF: logical screen width and height follow the 6-byte signature.
fn gif_dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    Some((le16(bytes, 6)?, le16(bytes, 8)?))
}

/// WebP: the first chunk after `RIFF....WEBP` is `VP8 `, `VP8L` or `VP8X`.
fn webp_dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    let chunk = bytes.get(12..16)?;
    let data = 20;
    match chunk {
        b"VP8 " => {
            // Frame tag (3 bytes), start code 9D 01 2A, then 14-bit width/height.
            if bytes.get(data + 3..data + 6)? != [0x9D, 0x01, 0x2A] {
                return None;
            }
            Some((
                le16(bytes, data + 6)? & 0x3FFF,
                le16(bytes, data + 8)? & 0x3FFF,
            ))
        }
        b"VP8L" => {
            if *bytes.get(data)? != 0x2F {
                return None;
            }
            let bits = le32(bytes, data + 1)?;
            Some(((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1))
        }
        b"VP8X" => Some((le24(bytes, data + 4)? + 1, le24(bytes, data + 7)? + 1)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let mut v = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR".to_vec();
        v.extend_from_slice(&w.to_be_bytes());
        v.extend_from_slice(&h.to_be_bytes());
        v.extend_from_slice(&[8, 2, 0, 0, 0]);
        v
    }

    #[test]
    fn png_header() {
        let h = read_header(&png(640, 480)).unwrap();
        assert_eq!(h.format, ImageFormat::Png);
        assert_eq!(h.dimensions, Some((640, 480)));
        let cut = png(640, 480);
        assert_eq!(read_header(&cut[..20]).unwrap().dimensions, None);
    }

    #[test]
    fn jpeg_header_after_app_segments() {
        let mut v = vec![0xFF, 0xD8];
        v.extend_from_slice(&[0xFF, 0xE0, 0x00, 0x10]);
        v.extend_from_slice(&[0u8; 14]);
        v.extend_from_slice(&[0xFF, 0xFF, 0xC2, 0x00, 0x11, 0x08]);
        v.extend_from_slice(&300u16.to_be_bytes());
        v.extend_from_slice(&200u16.to_be_bytes());
        let h = read_header(&v).unwrap();
        assert_eq!(h.format, ImageFormat::Jpeg);
        assert_eq!(h.dimensions, Some((200, 300)));
        for cut in 0..v.len() {
            let _ = read_header(&v[..cut]);
        }
        // A zero-length segment cannot loop forever.
        assert_eq!(
            read_header(&[0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x00])
                .unwrap()
                .dimensions,
            None
        );
    }

    #[test]
    fn gif_and_webp_headers() {
        let gif = b"GIF89a\x40\x01\xf0\x00";
        assert_eq!(read_header(gif).unwrap().dimensions, Some((320, 240)));
        let mut vp8x = b"RIFF\0\0\0\0WEBPVP8X\x0a\0\0\0\0\0\0\0".to_vec();
        vp8x.extend_from_slice(&[0x7F, 0x02, 0x00, 0xDF, 0x01, 0x00]);
        assert_eq!(read_header(&vp8x).unwrap().dimensions, Some((640, 480)));
        let mut vp8l = b"RIFF\0\0\0\0WEBPVP8L\0\0\0\0\x2f".to_vec();
        let bits: u32 = (99) | (49 << 14);
        vp8l.extend_from_slice(&bits.to_le_bytes());
        assert_eq!(read_header(&vp8l).unwrap().dimensions, Some((100, 50)));
        let mut vp8 = b"RIFF\0\0\0\0WEBPVP8 \0\0\0\0\0\0\0\x9d\x01\x2a".to_vec();
        vp8.extend_from_slice(&[0x20, 0x00, 0x10, 0x00]);
        assert_eq!(read_header(&vp8).unwrap().dimensions, Some((32, 16)));
    }

    #[test]
    fn not_images() {
        assert_eq!(read_header(b"hello"), None);
        assert_eq!(read_header(b""), None);
        assert_eq!(sniff_format(b"RIFF\0\0\0\0WAVE"), None);
    }
}
