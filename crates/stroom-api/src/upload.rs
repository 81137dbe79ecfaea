//! Uploaded files: a request body streamed to a file in a fresh temporary
//! folder (never held in memory), under the upload limit, hashed on the
//! way, and named after the delivery with the extension its first bytes
//! call for, so that the store's readers treat it exactly as a file given
//! to `stroom ingest`. The folder goes when the upload is dropped.

use std::path::PathBuf;

use axum::body::Body;
use axum::http::{HeaderMap, header};
use futures::StreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::ApiError;
use crate::dto::IngestResult;
use crate::state::AppState;

/// The media types an upload may declare (or none).
const MEDIA_TYPES: [&str; 10] = [
    "text/csv",
    "application/csv",
    "text/plain",
    "application/vnd.apache.parquet",
    "application/x-parquet",
    "application/parquet",
    "application/octet-stream",
    "application/gzip",
    "application/x-gzip",
    "application/zstd",
];

/// Longest delivery name kept.
const NAME_CHARS: usize = 80;

/// One upload on local disk.
#[derive(Debug)]
pub(crate) struct Upload {
    /// Removed, with the file, when the upload is dropped.
    _dir: tempfile::TempDir,
    pub(crate) path: PathBuf,
    pub(crate) sha256: String,
    pub(crate) bytes: u64,
}

/// What the audit log records of an upload, beside the request.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct UploadAudit {
    pub(crate) table: &'static str,
    /// `ingested`, `already_ingested` or `refused`.
    pub(crate) outcome: &'static str,
    /// Bytes received (after any `Content-Encoding`), as far as they were read.
    pub(crate) bytes: u64,
    /// The body's SHA-256, when it was read whole.
    pub(crate) sha256: Option<String>,
    pub(crate) rows_read: Option<u64>,
    pub(crate) rows_written: Option<u64>,
    pub(crate) suppressed: Option<u64>,
    pub(crate) version: Option<u64>,
}

impl UploadAudit {
    pub(crate) fn refused(table: &'static str, upload: Option<&Upload>) -> Self {
        Self {
            table,
            outcome: "refused",
            bytes: upload.map_or(0, |u| u.bytes),
            sha256: upload.map(|u| u.sha256.clone()),
            rows_read: None,
            rows_written: None,
            suppressed: None,
            version: None,
        }
    }

    pub(crate) fn of(table: &'static str, upload: &Upload, result: &IngestResult) -> Self {
        Self {
            table,
            outcome: match result.status {
                crate::dto::IngestStatus::Ingested => "ingested",
                crate::dto::IngestStatus::AlreadyIngested => "already_ingested",
            },
            bytes: upload.bytes,
            sha256: Some(upload.sha256.clone()),
            rows_read: Some(result.rows_read),
            rows_written: Some(result.rows_written),
            suppressed: Some(result.suppressed),
            version: result.version,
        }
    }
}

/// The declared media type is one an upload may have.
fn check_media_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else { return Ok(()) };
    let text = value.to_str().unwrap_or_default();
    let essence = text.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    if MEDIA_TYPES.contains(&essence.as_str()) {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(format!(
            "Content-Type '{}' is not an upload stroom reads: send CSV (text/csv, possibly gzip or zstd \
             compressed) or Parquet (application/vnd.apache.parquet)",
            stroom_store::quoted(text)
        )))
    }
}

/// The delivery's name, reduced to safe characters and without the
/// extension, which the content decides.
fn base_name(name: Option<&str>) -> Result<String, ApiError> {
    let Some(name) = name else { return Ok("upload".into()) };
    if name.is_empty()
        || name.chars().count() > NAME_CHARS
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        || name.starts_with('.')
    {
        return Err(ApiError::BadRequest(format!(
            "name='{}' is not a delivery name: 1 to {NAME_CHARS} letters, digits, '.', '_' or '-', \
             not starting with '.'",
            stroom_store::quoted(name)
        )));
    }
    let lower = name.to_ascii_lowercase();
    let mut end = name.len();
    for extension in [".csv.gz", ".csv.gzip", ".csv.zst", ".csv.zstd", ".csv", ".parquet", ".gz", ".zst"] {
        if lower.ends_with(extension) && lower.len() > extension.len() {
            end = name.len() - extension.len();
            break;
        }
    }
    Ok(name[..end].to_owned())
}

/// The extension the first bytes call for.
fn extension(head: &[u8], headers: &HeaderMap) -> &'static str {
    let declared_parquet = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.to_ascii_lowercase().contains("parquet"));
    match head {
        [b'P', b'A', b'R', b'1', ..] => ".parquet",
        [0x1f, 0x8b, ..] => ".csv.gz",
        [0x28, 0xb5, 0x2f, 0xfd, ..] => ".csv.zst",
        _ if declared_parquet => ".parquet",
        _ => ".csv",
    }
}

/// Bytes of a refused body read and dropped before the answer, so that a
/// client still sending gets the 413 rather than a reset connection.
const DRAIN_BYTES: u64 = 16 << 20;

async fn drain(stream: &mut axum::body::BodyDataStream) {
    let mut read = 0u64;
    while read < DRAIN_BYTES {
        match stream.next().await {
            Some(Ok(chunk)) => read += chunk.len() as u64,
            _ => break,
        }
    }
}

/// Reads and drops up to 16 MiB of a body refused before it was read (no
/// permission, a bad name or media type), so that a client still sending
/// gets the answer rather than a broken pipe.
pub(crate) async fn discard(body: Body) {
    drain(&mut body.into_data_stream()).await;
}

/// Removes the upload folders (`stroom-upload-*`) under `parent` older than
/// `older_than`: what a server killed during an upload left. An upload
/// lasts at most the upload timeout, so an older folder is no one's.
/// Returns how many were removed.
pub(crate) fn remove_stale(parent: &std::path::Path, older_than: std::time::Duration) -> usize {
    let Ok(entries) = std::fs::read_dir(parent) else { return 0 };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with("stroom-upload-") {
            continue;
        }
        let age = entry.metadata().and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok());
        if age.is_some_and(|age| age > older_than) && entry.path().is_dir() {
            match std::fs::remove_dir_all(entry.path()) {
                Ok(()) => removed += 1,
                Err(error) => {
                    tracing::warn!(folder = %entry.path().display(), %error, "Could not remove a stale upload folder.")
                }
            }
        }
    }
    removed
}

/// Streams the request body to a file under the upload limit. The limit
/// counts the bytes after any `Content-Encoding` is undone, so that a
/// small compressed body cannot fill the disk.
pub(crate) async fn receive(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    name: Option<&str>,
) -> Result<Upload, ApiError> {
    let checked = check_media_type(headers).and_then(|()| base_name(name));
    let base = match checked {
        Ok(base) => base,
        Err(error) => {
            discard(body).await;
            return Err(error);
        }
    };
    let limit = state.config.upload_limit;
    let too_large = || ApiError::PayloadTooLarge(usize::try_from(limit).unwrap_or(usize::MAX));
    let mut stream = body.into_data_stream();
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) && !headers.contains_key(header::CONTENT_ENCODING) {
        drain(&mut stream).await;
        return Err(too_large());
    }
    let internal = |what: &str, e: std::io::Error| ApiError::Internal(format!("{what} an upload: {e}"));
    let parent = state.config.upload_dir.clone().unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::Builder::new()
        .prefix("stroom-upload-")
        .tempdir_in(&parent)
        .map_err(|e| internal(&format!("creating a folder in {} for", parent.display()), e))?;
    let partial = dir.path().join(".body");
    let mut file = tokio::fs::File::create(&partial).await.map_err(|e| internal("creating the file of", e))?;
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    let mut head = Vec::with_capacity(4);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::BadRequest(format!("the body could not be read (a broken Content-Encoding?): {e}"))
        })?;
        bytes += chunk.len() as u64;
        if bytes > limit {
            drain(&mut stream).await;
            return Err(too_large());
        }
        if head.len() < 4 {
            head.extend(chunk.iter().take(4 - head.len()));
        }
        hasher.update(&chunk);
        file.write_all(&chunk).await.map_err(|e| internal("writing", e))?;
    }
    file.flush().await.map_err(|e| internal("writing", e))?;
    drop(file);
    let path = dir.path().join(format!("{base}{}", extension(&head, headers)));
    tokio::fs::rename(&partial, &path).await.map_err(|e| internal("naming", e))?;
    Ok(Upload { _dir: dir, path, sha256: hex::encode(hasher.finalize()), bytes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_name_keeps_safe_characters_and_loses_its_extension() {
        assert_eq!(base_name(None).unwrap(), "upload");
        assert_eq!(base_name(Some("provider-2024-06-01.csv.gz")).unwrap(), "provider-2024-06-01");
        assert_eq!(base_name(Some("week_23.parquet")).unwrap(), "week_23");
        assert_eq!(base_name(Some("plain")).unwrap(), "plain");
        assert_eq!(base_name(Some(".csv")).unwrap_err().status().as_u16(), 400);
        for bad in ["", "../etc/passwd", "a/b", "a b", "naïve", &"x".repeat(81)] {
            assert_eq!(base_name(Some(bad)).unwrap_err().status().as_u16(), 400, "{bad}");
        }
    }

    #[test]
    fn the_first_bytes_choose_the_extension() {
        let none = HeaderMap::new();
        assert_eq!(extension(b"PAR1", &none), ".parquet");
        assert_eq!(extension(&[0x1f, 0x8b, 8, 0], &none), ".csv.gz");
        assert_eq!(extension(&[0x28, 0xb5, 0x2f, 0xfd], &none), ".csv.zst");
        assert_eq!(extension(b"ts,l", &none), ".csv");
        assert_eq!(extension(b"", &none), ".csv");
        let mut parquet = HeaderMap::new();
        parquet.insert(header::CONTENT_TYPE, "application/vnd.apache.parquet".parse().unwrap());
        assert_eq!(extension(b"ts,l", &parquet), ".parquet");
    }

    #[test]
    fn only_upload_media_types_are_taken() {
        let mut headers = HeaderMap::new();
        assert!(check_media_type(&headers).is_ok());
        headers.insert(header::CONTENT_TYPE, "text/csv; charset=utf-8".parse().unwrap());
        assert!(check_media_type(&headers).is_ok());
        headers.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        assert_eq!(check_media_type(&headers).unwrap_err().status().as_u16(), 415);
    }
}
