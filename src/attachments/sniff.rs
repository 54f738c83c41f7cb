//! A file's type, told from its bytes and checked against the allow-list.
//!
//! The name and the `Content-Type` a client sends are never believed: a file is what
//! its first bytes say (`infer`, a maintained table of signatures), and only the types
//! below are taken. HTML, SVG, scripts and archives are not on the list, so an HTML file
//! called `.png` is refused here rather than served. Plain text has no signature: a file
//! with none is taken as text only when all of it is UTF-8 without NUL bytes.

/// What the allow-list makes of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Decoded and written afresh (EXIF gone), with a thumbnail.
    Image(ImageFormat),
    /// Kept byte for byte, served as a download.
    Document(&'static str),
}

/// The image formats taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    Png,
    Jpeg,
    Gif,
    Webp,
}

/// Documents taken, by the MIME type `infer` names.
const DOCUMENTS: &[&str] = &[
    "application/pdf",
    "application/msword",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.ms-excel",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.ms-powerpoint",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/vnd.oasis.opendocument.text",
    "application/vnd.oasis.opendocument.spreadsheet",
    "application/vnd.oasis.opendocument.presentation",
    "application/rtf",
];

pub const TEXT: &str = "text/plain; charset=utf-8";

/// Bytes of a file's head that are enough to tell its type (office files name their
/// parts within the first entries of their zip).
pub const HEAD: usize = 8192;

/// The file's kind from its first bytes (`head`, up to [`HEAD`]); `text_ok`: whether the
/// whole file is UTF-8 without NUL (asked only when no signature matched). `Err`: the
/// type found, for the refusal.
pub fn kind(head: &[u8], text_ok: impl FnOnce() -> bool) -> Result<Kind, String> {
    match infer::get(head) {
        Some(found) => match found.mime_type() {
            "image/png" => Ok(Kind::Image(ImageFormat::Png)),
            "image/jpeg" => Ok(Kind::Image(ImageFormat::Jpeg)),
            "image/gif" => Ok(Kind::Image(ImageFormat::Gif)),
            "image/webp" => Ok(Kind::Image(ImageFormat::Webp)),
            mime => DOCUMENTS
                .iter()
                .find(|allowed| **allowed == mime)
                .map(|allowed| Kind::Document(allowed))
                .ok_or_else(|| mime.to_string()),
        },
        None if looks_like_markup(head) => Err("text/html".into()),
        None if text_ok() => Ok(Kind::Document(TEXT)),
        None => Err("application/octet-stream".into()),
    }
}

/// Markup `infer`'s HTML signature misses (it looks at the very first tag only): SVG and
/// XML, or HTML after a comment or a BOM. Served as text it would be harmless (nosniff,
/// a download), but it is not what the allow-list means by text.
fn looks_like_markup(head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(head).to_ascii_lowercase();
    let start = text.trim_start_matches('\u{feff}').trim_start();
    start.starts_with('<')
        && ["<svg", "<html", "<script", "<?xml", "<!doctype", "<body", "<iframe"]
            .iter()
            .any(|t| text.contains(t))
}

/// Feeds a file's bytes in chunks and tells whether all of them were UTF-8 without NUL.
#[derive(Debug, Default)]
pub struct TextCheck {
    carry: Vec<u8>,
    bad: bool,
}

impl TextCheck {
    pub fn feed(&mut self, chunk: &[u8]) {
        if self.bad {
            return;
        }
        // Only a character cut by the last chunk's end is carried over: the rest is
        // checked where it lies, not copied.
        let joined;
        let data = if self.carry.is_empty() {
            chunk
        } else {
            self.carry.extend_from_slice(chunk);
            joined = std::mem::take(&mut self.carry);
            &joined[..]
        };
        match std::str::from_utf8(data) {
            Ok(_) => self.bad = data.contains(&0),
            // A character cut by the chunk's end: kept for the next chunk.
            Err(e) if e.error_len().is_none() => {
                let valid = e.valid_up_to();
                self.bad = data[..valid].contains(&0);
                self.carry = data[valid..].to_vec();
            }
            Err(_) => self.bad = true,
        }
    }

    pub fn is_text(&self) -> bool {
        !self.bad && self.carry.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bytes_decide_not_the_name() {
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        assert_eq!(kind(png, || false), Ok(Kind::Image(ImageFormat::Png)));
        assert_eq!(kind(b"%PDF-1.7\n", || false), Ok(Kind::Document("application/pdf")));
        assert_eq!(
            kind(b"<html><script>alert(1)</script>", || true),
            Err("text/html".into())
        );
        assert_eq!(
            kind(b"<!-- x --><html><script>1</script>", || true),
            Err("text/html".into())
        );
        assert_eq!(
            kind(
                b"<svg xmlns='http://www.w3.org/2000/svg'><script>1</script></svg>",
                || true
            )
            .map_err(|_| ()),
            Err(())
        );
        assert_eq!(kind(b"PK\x03\x04", || true).map_err(|_| ()), Err(()));
        assert_eq!(kind(b"hello, a < b", || true), Ok(Kind::Document(TEXT)));
        assert_eq!(kind(b"\0\x01\x02", || false), Err("application/octet-stream".into()));
    }

    #[test]
    fn text_is_checked_across_chunks() {
        let mut check = TextCheck::default();
        let text = "héllo 🎉".as_bytes();
        for byte in text {
            check.feed(std::slice::from_ref(byte));
        }
        assert!(check.is_text());
        let mut nul = TextCheck::default();
        nul.feed(b"ab\0c");
        assert!(!nul.is_text());
        let mut cut = TextCheck::default();
        cut.feed(&"é".as_bytes()[..1]);
        assert!(!cut.is_text(), "a file ending inside a character is not text");
    }
}
