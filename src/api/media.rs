//! The bytes of an inbound message's media, streamed from the media store,
//! with byte ranges for players and resumable downloads.

use poem::Body;
use poem::http::{HeaderMap, StatusCode};
use poem_openapi::param::Path;
use poem_openapi::payload::{Binary, Json};
use poem_openapi::{ApiResponse, OpenApi};
use uuid::Uuid;

use super::ApiTags;
use super::auth::Auth;
use super::error::{ApiError, Problem};
use crate::access::Scope;
use crate::media::Status;
use crate::state::AppState;

#[derive(ApiResponse)]
pub enum MediaResponse {
    /// The whole file.
    #[oai(status = 200)]
    Whole(
        Binary<Body>,
        /// The MIME type WhatsApp declared (`application/octet-stream`
        /// when it declared none).
        #[oai(header = "Content-Type")]
        String,
        #[oai(header = "Content-Length")] u64,
        /// `attachment`, with the sender's file name made safe.
        #[oai(header = "Content-Disposition")]
        String,
        /// Always `bytes`.
        #[oai(header = "Accept-Ranges")]
        String,
        /// The file's SHA-256 (hex), quoted.
        #[oai(header = "ETag")]
        String,
    ),
    /// The byte range asked for.
    #[oai(status = 206)]
    Partial(
        Binary<Body>,
        #[oai(header = "Content-Type")] String,
        #[oai(header = "Content-Length")] u64,
        #[oai(header = "Content-Disposition")] String,
        #[oai(header = "Accept-Ranges")] String,
        #[oai(header = "ETag")] String,
        /// `bytes <first>-<last>/<size>`.
        #[oai(header = "Content-Range")]
        String,
    ),
    /// The range starts past the end of the file (`Content-Range:
    /// bytes */<size>`); code `range_not_satisfiable`.
    #[oai(status = 416, content_type = "application/problem+json")]
    NotSatisfiable(Json<Problem>, #[oai(header = "Content-Range")] String),
}

/// A byte range, inclusive, as RFC 9110 spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Range {
    Whole,
    Part { first: u64, last: u64 },
    Unsatisfiable,
}

/// The one range of a `Range: bytes=…` header against a file of `size`
/// bytes. Anything unparsable, other units and several ranges are served
/// whole, as RFC 9110 allows.
fn parse_range(header: Option<&str>, size: u64) -> Range {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Range::Whole;
    };
    if spec.contains(',') {
        return Range::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Range::Whole;
    };
    let parse = |s: &str| s.trim().parse::<u64>().ok();
    match (first.trim().is_empty(), parse(first), parse(last)) {
        // `bytes=-N`: the last N bytes.
        (true, _, Some(n)) if n > 0 && size > 0 => Range::Part {
            first: size.saturating_sub(n),
            last: size - 1,
        },
        (true, _, _) => Range::Unsatisfiable,
        (false, Some(first), _) if first >= size => Range::Unsatisfiable,
        (false, Some(first), None) if last.trim().is_empty() => Range::Part {
            first,
            last: size - 1,
        },
        (false, Some(first), Some(last)) if last >= first => Range::Part {
            first,
            last: last.min(size - 1),
        },
        _ => Range::Whole,
    }
}

/// `attachment; filename="…"` with only characters that cannot break the
/// header or name a path; the original name, percent-encoded, in
/// `filename*`.
fn disposition(file_name: Option<&str>, kind: &str, hash: &str) -> String {
    let fallback = format!("{kind}-{}", &hash[..hash.len().min(12)]);
    let name = file_name
        .map(|n| n.rsplit(['/', '\\']).next().unwrap_or(n).trim())
        .filter(|n| !n.is_empty() && *n != "." && *n != "..")
        .unwrap_or(&fallback);
    let ascii: String = name
        .chars()
        .map(|c| match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '.' | '-' | '_' | ' ' | '(' | ')' => c,
            _ => '_',
        })
        .take(150)
        .collect();
    let encoded: String = name
        .bytes()
        .take(600)
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// A MIME type safe to echo: a `type/subtype` token, else octet-stream.
fn content_type(mime: Option<&str>) -> String {
    let ok = |m: &str| {
        m.len() <= 127
            && m.split_once('/').is_some()
            && m.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/+-.;= ".contains(&b))
    };
    match mime {
        Some(m) if ok(m) => m.to_owned(),
        _ => "application/octet-stream".to_owned(),
    }
}

pub struct MediaApi {
    pub state: AppState,
}

#[OpenApi(tag = "ApiTags::Messages")]
impl MediaApi {
    /// Download an inbound message's media
    ///
    /// The decrypted file of an image, video, audio, voice note, document
    /// or sticker someone sent, verified against the SHA-256 WhatsApp
    /// declared. Supports a single `Range: bytes=…` (206; 416 past the
    /// end). Needs `read` on the instance. 404 `message_not_found` when no
    /// inbound message with media has this id; 409 `media_pending` (with
    /// `Retry-After`) while it is still downloading, 409 `media_failed`
    /// when the download failed (the detail names the reason's code, as
    /// the `media.error` of the events does). With `media.download =
    /// "lazy"` the first request downloads it.
    #[oai(
        path = "/v1/instances/:id/messages/:message_id/media",
        method = "get",
        operation_id = "get_message_media"
    )]
    async fn get_media(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        #[oai(validator(min_length = 1, max_length = 128))] message_id: Path<String>,
        headers: &HeaderMap,
    ) -> Result<MediaResponse, ApiError> {
        auth.instance(id.0, Scope::Read)?;
        crate::instances::store::get(&self.state.db, id.0).await?;
        let not_found = || {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "message_not_found",
                format!(
                    "no inbound message {} with media on instance {}",
                    message_id.0, id.0
                ),
            )
        };
        let media = self.state.sessions.media().ok_or_else(not_found)?;
        let mut row = media
            .find(id.0, &message_id.0)
            .await?
            .ok_or_else(not_found)?;
        if row.status == Status::Pending.as_str() {
            if media.settings().download == crate::config::MediaDownload::Lazy {
                row = media.ensure(row).await?;
            } else if !media.is_running(row.id) {
                // Eager, yet not running here (its instance was offline,
                // or this node restarted): start it.
                media.spawn(row.id);
            }
        }
        if row.status == Status::Pending.as_str() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "media_pending",
                "the media is still being downloaded; try again shortly",
            )
            .retry_after(std::time::Duration::from_secs(2)));
        }
        let (Some(hash), Some(size)) = (row.stored_hash.clone(), row.stored_size) else {
            let code = row.error_code.as_deref().unwrap_or("media_failed");
            let detail = row.error_detail.as_deref().unwrap_or_default();
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "media_failed",
                format!("the media could not be downloaded: {code}: {detail}"),
            ));
        };
        let size = u64::try_from(size).unwrap_or_default();
        let range = parse_range(
            headers
                .get(poem::http::header::RANGE)
                .and_then(|v| v.to_str().ok()),
            size,
        );
        let (start, len) = match range {
            Range::Whole => (0, size),
            Range::Part { first, last } => (first, last - first + 1),
            Range::Unsatisfiable => {
                return Ok(MediaResponse::NotSatisfiable(
                    Json(Problem {
                        type_: "urn:wagate:problem:range_not_satisfiable".into(),
                        title: "Range Not Satisfiable".into(),
                        status: 416,
                        code: "range_not_satisfiable".into(),
                        detail: format!("the file has {size} bytes"),
                    }),
                    format!("bytes */{size}"),
                ));
            }
        };
        let reader = media
            .store()
            .read(&hash, start, len)
            .await
            .map_err(|e| ApiError::internal(&e))?
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::CONFLICT,
                    "media_failed",
                    "the media file is missing from the store",
                )
            })?;
        let body = Binary(Body::from_async_read(reader));
        let mime = content_type(row.mime_type.as_deref());
        let disposition = disposition(row.file_name.as_deref(), &row.kind, &hash);
        let etag = format!("\"{hash}\"");
        Ok(match range {
            Range::Part { first, last } => MediaResponse::Partial(
                body,
                mime,
                len,
                disposition,
                "bytes".into(),
                etag,
                format!("bytes {first}-{last}/{size}"),
            ),
            _ => MediaResponse::Whole(body, mime, len, disposition, "bytes".into(), etag),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range(None, 10), Range::Whole);
        assert_eq!(
            parse_range(Some("bytes=0-3"), 10),
            Range::Part { first: 0, last: 3 }
        );
        assert_eq!(
            parse_range(Some("bytes=4-"), 10),
            Range::Part { first: 4, last: 9 }
        );
        assert_eq!(
            parse_range(Some("bytes=-3"), 10),
            Range::Part { first: 7, last: 9 }
        );
        assert_eq!(
            parse_range(Some("bytes=-30"), 10),
            Range::Part { first: 0, last: 9 }
        );
        assert_eq!(
            parse_range(Some("bytes=5-100"), 10),
            Range::Part { first: 5, last: 9 }
        );
        assert_eq!(parse_range(Some("bytes=10-"), 10), Range::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-0"), 10), Range::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=5-2"), 10), Range::Whole);
        assert_eq!(parse_range(Some("bytes=0-1,3-4"), 10), Range::Whole);
        assert_eq!(parse_range(Some("items=0-1"), 10), Range::Whole);
        assert_eq!(parse_range(Some("bytes=x-1"), 10), Range::Whole);
    }

    #[test]
    fn dispositions_are_safe() {
        let hash = "ab".repeat(32);
        let d = disposition(Some("../../etc/pass\"wd\r\n.pdf"), "document", &hash);
        assert!(!d.contains(".."), "{d}");
        assert!(!d.contains('\r') && !d.contains('\n'), "{d}");
        assert!(
            d.starts_with("attachment; filename=\"pass_wd__.pdf\""),
            "{d}"
        );
        let d = disposition(None, "image", &hash);
        assert!(
            d.starts_with("attachment; filename=\"image-abababababab\""),
            "{d}"
        );
        let d = disposition(Some("résumé.pdf"), "document", &hash);
        assert!(d.contains("filename*=UTF-8''r%C3%A9sum%C3%A9.pdf"), "{d}");
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type(Some("image/jpeg")), "image/jpeg");
        assert_eq!(
            content_type(Some("audio/ogg; codecs=opus")),
            "audio/ogg; codecs=opus"
        );
        assert_eq!(
            content_type(Some("text/html\r\nX: y")),
            "application/octet-stream"
        );
        assert_eq!(content_type(None), "application/octet-stream");
    }
}
