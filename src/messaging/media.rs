//! What kind of media a file is, from its bytes (magic numbers), checked
//! against what the caller declared, and WhatsApp's size limits per kind.

use crate::engine::MediaKind;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    #[error("the file is {sniffed}, which cannot be sent as {declared}")]
    Mismatch {
        declared: &'static str,
        sniffed: String,
    },
    #[error("the file's type could not be recognised from its content; send it as a document")]
    Unrecognised,
    #[error("the file is empty")]
    Empty,
    #[error("{kind} files may be at most {limit} bytes; this one is {size}")]
    TooLarge {
        kind: &'static str,
        limit: u64,
        size: u64,
    },
}

/// WhatsApp's own limits, capped by the configured maximum.
pub fn limit(kind: MediaKind, configured_max: u64) -> u64 {
    const MIB: u64 = 1024 * 1024;
    let whatsapp = match kind {
        MediaKind::Image => 16 * MIB,
        MediaKind::Video | MediaKind::Audio => 64 * MIB,
        MediaKind::Document => 2048 * MIB,
    };
    whatsapp.min(configured_max)
}

/// The kind and MIME type to send a file of `size` bytes that starts with
/// `head` as. A declared kind wins when the bytes agree (anything may go as
/// a document); otherwise the sniffed kind.
pub fn classify(
    head: &[u8],
    size: u64,
    declared: Option<MediaKind>,
    configured_max: u64,
) -> Result<(MediaKind, String), MediaError> {
    if size == 0 {
        return Err(MediaError::Empty);
    }
    let sniffed = infer::get(head).map(|t| t.mime_type().to_owned());
    let sniffed_kind = sniffed.as_deref().map(kind_of);
    let kind = match (declared, sniffed_kind) {
        (Some(MediaKind::Document), _) => MediaKind::Document,
        (Some(d), Some(s)) if d == s => d,
        (Some(d), Some(_)) => {
            return Err(MediaError::Mismatch {
                declared: d.as_str(),
                sniffed: sniffed.unwrap_or_default(),
            });
        }
        (Some(_), None) => return Err(MediaError::Unrecognised),
        (None, Some(s)) => s,
        (None, None) => MediaKind::Document,
    };
    let max = limit(kind, configured_max);
    if size > max {
        return Err(MediaError::TooLarge {
            kind: kind.as_str(),
            limit: max,
            size,
        });
    }
    let mime = sniffed.unwrap_or_else(|| "application/octet-stream".to_owned());
    Ok((kind, mime))
}

fn kind_of(mime: &str) -> MediaKind {
    match mime.split('/').next() {
        Some("image") => MediaKind::Image,
        Some("video") => MediaKind::Video,
        Some("audio") => MediaKind::Audio,
        _ => MediaKind::Document,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    const PDF: &[u8] = b"%PDF-1.7\n";
    const OGG: &[u8] = b"OggS\0\x02\0\0\0\0\0\0\0\0";

    #[test]
    fn sniffs_and_checks() {
        assert_eq!(
            classify(PNG, PNG.len() as u64, None, u64::MAX),
            Ok((MediaKind::Image, "image/png".into()))
        );
        assert_eq!(
            classify(OGG, OGG.len() as u64, None, u64::MAX).map(|k| k.0),
            Ok(MediaKind::Audio)
        );
        assert_eq!(
            classify(PDF, PDF.len() as u64, None, u64::MAX).map(|k| k.0),
            Ok(MediaKind::Document)
        );
        assert_eq!(
            classify(PNG, PNG.len() as u64, Some(MediaKind::Document), u64::MAX).map(|k| k.0),
            Ok(MediaKind::Document)
        );
        assert!(matches!(
            classify(PNG, PNG.len() as u64, Some(MediaKind::Video), u64::MAX),
            Err(MediaError::Mismatch { .. })
        ));
        assert_eq!(
            classify(
                b"plain words",
                b"plain words".len() as u64,
                Some(MediaKind::Image),
                u64::MAX
            ),
            Err(MediaError::Unrecognised)
        );
        assert_eq!(
            classify(b"plain words", b"plain words".len() as u64, None, u64::MAX).map(|k| k.0),
            Ok(MediaKind::Document)
        );
        assert!(matches!(
            classify(PNG, PNG.len() as u64, None, 4),
            Err(MediaError::TooLarge { .. })
        ));
        assert_eq!(
            classify(b"", b"".len() as u64, None, 4),
            Err(MediaError::Empty)
        );
    }
}
