//! Images written afresh: decoded within pixel limits, turned upright, encoded again.
//!
//! Why: the bytes a phone uploads carry EXIF (the place the photo was taken, the device)
//! and may carry anything after the image data (a polyglot). Encoding the decoded pixels
//! keeps only the picture. The limits are checked from the header before any pixel is
//! decoded, so a small file that claims to be 100,000 × 100,000 (a decompression bomb)
//! is refused without the memory it asks for. GIFs keep their first frame.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageReader, Limits};

use super::sniff::ImageFormat;

/// The widest or tallest image taken, in pixels.
pub const MAX_SIDE: u32 = 10_000;
/// The most memory one decode may take.
const MAX_ALLOC: u64 = 256 << 20;
/// A thumbnail fits in this square.
pub const THUMBNAIL_SIDE: u32 = 320;

/// An image as it is kept: its new bytes and MIME type, its thumbnail (PNG) and size.
pub struct Rewritten {
    pub bytes: Vec<u8>,
    pub mime: &'static str,
    pub thumbnail: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

/// Decodes `bytes` (of `format`, as sniffed) and encodes it again: JPEG stays JPEG,
/// the others become PNG (lossless). `Err`: why it is not an image this takes.
pub fn rewrite(bytes: &[u8], format: ImageFormat) -> Result<Rewritten, String> {
    let mut reader = ImageReader::new(Cursor::new(bytes));
    reader.set_format(match format {
        ImageFormat::Png => image::ImageFormat::Png,
        ImageFormat::Jpeg => image::ImageFormat::Jpeg,
        ImageFormat::Gif => image::ImageFormat::Gif,
        ImageFormat::Webp => image::ImageFormat::WebP,
    });
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_ALLOC);
    reader.limits(limits);
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| format!("not a readable image: {e}"))?;
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut picture = DynamicImage::from_decoder(decoder).map_err(|e| format!("not a readable image: {e}"))?;
    picture.apply_orientation(orientation);
    let (width, height) = (picture.width(), picture.height());
    let (bytes, mime) = match format {
        ImageFormat::Jpeg => (
            encode(&DynamicImage::ImageRgb8(picture.to_rgb8()), image::ImageFormat::Jpeg)?,
            "image/jpeg",
        ),
        _ => (encode(&picture, image::ImageFormat::Png)?, "image/png"),
    };
    let thumbnail = encode(
        &picture.thumbnail(THUMBNAIL_SIDE, THUMBNAIL_SIDE),
        image::ImageFormat::Png,
    )?;
    Ok(Rewritten {
        bytes,
        mime,
        thumbnail,
        width,
        height,
    })
}

fn encode(picture: &DynamicImage, format: image::ImageFormat) -> Result<Vec<u8>, String> {
    let mut out = Cursor::new(Vec::new());
    picture
        .write_to(&mut out, format)
        .map_err(|e| format!("the image could not be written again: {e}"))?;
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bomb_is_refused_before_its_pixels() {
        // A PNG header claiming 60,000 × 60,000 pixels and nothing after it.
        let mut header = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        header.extend_from_slice(&60_000u32.to_be_bytes());
        header.extend_from_slice(&60_000u32.to_be_bytes());
        header.extend_from_slice(&[8, 2, 0, 0, 0]);
        let crc = crc_of(&header[12..]);
        header.extend_from_slice(&crc.to_be_bytes());
        let refusal = rewrite(&header, ImageFormat::Png).err().expect("refused");
        assert!(refusal.contains("not a readable image"), "{refusal}");
    }

    #[test]
    fn a_picture_comes_back_with_a_thumbnail() {
        let picture = DynamicImage::ImageRgb8(image::RgbImage::from_pixel(800, 400, image::Rgb([10, 200, 30])));
        let png = encode(&picture, image::ImageFormat::Png).unwrap();
        let kept = rewrite(&png, ImageFormat::Png).unwrap();
        assert_eq!((kept.width, kept.height, kept.mime), (800, 400, "image/png"));
        let thumb = image::load_from_memory(&kept.thumbnail).unwrap();
        assert_eq!((thumb.width(), thumb.height()), (320, 160));
    }

    /// The CRC-32 PNG chunks carry.
    fn crc_of(bytes: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for byte in bytes {
            crc ^= u32::from(*byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
}
