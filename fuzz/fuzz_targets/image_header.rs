//! The image header reader must never panic or read out of bounds, and
//! reports only positive dimensions.
#![no_main]
#![allow(dead_code)]

#[path = "../../src/payload/image_header.rs"]
mod image_header;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(header) = image_header::read_header(data) {
        assert_eq!(image_header::sniff_format(data), Some(header.format));
        if let Some((w, h)) = header.dimensions {
            assert!(w > 0 && h > 0);
        }
    }
});
