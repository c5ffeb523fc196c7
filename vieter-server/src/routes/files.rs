//! `GET|HEAD /{repo}/{arch}/{file}`: repository databases and package files, as pacman downloads them.
//!
//! Conditional requests (`If-None-Match`, `If-Modified-Since`) answer 304; a single byte range answers
//! 206 (or 416). Files are streamed from disk. What a name opens, and its tag, time and media type, are
//! libvieter's (`Repository::open_download`): nothing from the URL is ever joined into a path unchecked.

use std::sync::Arc;
use std::time::SystemTime;

use libvieter::fs::Content;
use libvieter::name::{Arch, RepoName};
use warp::http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use warp::Reply;

use crate::error::ApiError;
use crate::App;

pub async fn serve(
    app: Arc<App>,
    repo: String,
    arch: String,
    file: String,
    head: bool,
    headers: HeaderMap,
) -> Result<warp::reply::Response, ApiError> {
    let not_found = || ApiError::not_found(format!("{repo}/{arch}/{file} not found"));
    let (Ok(repo_name), Ok(arch_name)) = (RepoName::new(repo.as_str()), Arch::new(arch.as_str())) else {
        return Err(not_found());
    };
    // An archive changed within the running second is sent once that second is over (at most twice
    // a second's wait): its Last-Modified can then be that second without hiding a later change in it
    // (see `libvieter::repo::last_modified`). A 304 needs no wait.
    let mut waited = 0;
    let s = loop {
        let opened = match app.repos.held_download(&repo_name, &arch_name, &file) {
            Some(held) => held,
            None => {
                let (app, repo, arch, file) =
                    (app.clone(), repo_name.clone(), arch_name.clone(), file.clone());
                super::blocking(move || {
                    app.repos
                        .open_download(&repo, &arch, &file)
                        .map_err(|e| ApiError::internal("opening a file", e))
                })
                .await?
            }
        };
        let Some(s) = opened else { return Err(not_found()) };
        let now = SystemTime::now();
        let cached = not_modified(&headers, &format!("\"{}\"", s.etag), s.modified);
        if !s.changed_this_second(now) || cached || waited == 2 {
            break s;
        }
        waited += 1;
        let into_second = now.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let rest = std::time::Duration::from_nanos(1_000_000_000 - u64::from(into_second));
        tokio::time::sleep(rest + std::time::Duration::from_millis(2)).await;
    };
    let (len, modified) = (s.len, s.modified);
    let etag = format!("\"{}\"", s.etag);
    let last_modified = httpdate::fmt_http_date(s.last_modified(SystemTime::now()));

    let mut builder = Response::builder()
        .header(header::ETAG, &etag)
        .header(header::LAST_MODIFIED, &last_modified)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_TYPE, s.content_type);

    if not_modified(&headers, &etag, modified) {
        return builder
            .status(StatusCode::NOT_MODIFIED)
            .body(Vec::new())
            .map(Reply::into_response)
            .map_err(|e| ApiError::internal("building a response", e));
    }

    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(r) if if_range_allows(&headers, &etag, &last_modified) => parse_range(r, len),
        _ => RangeRequest::Full,
    };
    let (status, start, count) = match range {
        RangeRequest::Full => (StatusCode::OK, 0, len),
        RangeRequest::Part(start, end) => {
            builder = builder.header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{len}"));
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        RangeRequest::Unsatisfiable => {
            return builder
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{len}"))
                .body(Vec::new())
                .map(Reply::into_response)
                .map_err(|e| ApiError::internal("building a response", e));
        }
    };
    builder = builder.status(status).header(header::CONTENT_LENGTH, count);
    let mut response = match (head, s.content) {
        (true, _) => builder.body(Vec::new()).map(Reply::into_response),
        (false, Content::Memory(bytes)) => {
            let (start, end) = (start as usize, (start + count) as usize);
            builder.body(bytes::Bytes::from_owner(Shared(bytes)).slice(start..end)).map(Reply::into_response)
        }
        (false, Content::File(file)) => {
            let mut r = warp::reply::stream(read_range(file, start, count)).into_response();
            *r.status_mut() = status;
            let built = builder.body(()).map_err(|e| ApiError::internal("building a response", e))?;
            r.headers_mut().extend(built.headers().clone());
            Ok(r)
        }
    }
    .map_err(|e| ApiError::internal("building a response", e))?;
    // HEAD keeps the length of what GET would send.
    if head {
        response.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    }
    Ok(response)
}

/// Bytes `start..start + count` of `file` as a stream. One blocking task reads the whole range (rather
/// than one blocking-pool hop per read) into a channel of two chunks: memory per download stays bounded.
fn read_range(
    mut file: std::fs::File,
    start: u64,
    count: u64,
) -> impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send + Sync + 'static {
    use std::io::{Read, Seek};
    const CHUNK: u64 = 256 * 1024;
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(2);
    tokio::task::spawn_blocking(move || {
        if let Err(e) = file.seek(std::io::SeekFrom::Start(start)) {
            let _ = tx.blocking_send(Err(e));
            return;
        }
        let mut left = count;
        while left > 0 {
            let mut buf = vec![0u8; left.min(CHUNK) as usize];
            if let Err(e) = file.read_exact(&mut buf) {
                let _ = tx.blocking_send(Err(e));
                return;
            }
            left -= buf.len() as u64;
            // The client went away: stop reading.
            if tx.blocking_send(Ok(bytes::Bytes::from(buf))).is_err() {
                return;
            }
        }
    });
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) })
}

/// An archive's bytes shared with the blob store (a response body without a copy).
struct Shared(std::sync::Arc<Vec<u8>>);

impl AsRef<[u8]> for Shared {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

fn whole_secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn not_modified(headers: &HeaderMap, etag: &str, modified: SystemTime) -> bool {
    if let Some(inm) = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) {
        return inm.split(',').map(str::trim).any(|t| t == "*" || t.trim_start_matches("W/") == etag);
    }
    if let Some(ims) = headers.get(header::IF_MODIFIED_SINCE).and_then(|v| v.to_str().ok()) {
        if let Ok(since) = httpdate::parse_http_date(ims) {
            // HTTP dates have whole seconds.
            return whole_secs(modified) <= whole_secs(since);
        }
    }
    false
}

fn if_range_allows(headers: &HeaderMap, etag: &str, last_modified: &str) -> bool {
    match headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(v) => v == etag || v == last_modified,
    }
}

#[derive(Debug, PartialEq, Eq)]
enum RangeRequest {
    Full,
    /// Inclusive start and end.
    Part(u64, u64),
    Unsatisfiable,
}

/// One byte range (`bytes=a-b`, `bytes=a-`, `bytes=-n`); anything else is served whole.
fn parse_range(value: &str, len: u64) -> RangeRequest {
    let Some(spec) = value.trim().strip_prefix("bytes=") else { return RangeRequest::Full };
    if spec.contains(',') {
        return RangeRequest::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else { return RangeRequest::Full };
    let (a, b) = (a.trim(), b.trim());
    let parsed = match (a.is_empty(), b.is_empty()) {
        (false, _) => {
            let Ok(start) = a.parse::<u64>() else { return RangeRequest::Full };
            let end = if b.is_empty() { Ok(u64::MAX) } else { b.parse::<u64>() };
            let Ok(end) = end else { return RangeRequest::Full };
            if end < start {
                return RangeRequest::Full;
            }
            if start >= len {
                return RangeRequest::Unsatisfiable;
            }
            (start, end.min(len - 1))
        }
        (true, false) => {
            let Ok(suffix) = b.parse::<u64>() else { return RangeRequest::Full };
            if suffix == 0 || len == 0 {
                return RangeRequest::Unsatisfiable;
            }
            (len.saturating_sub(suffix), len - 1)
        }
        (true, true) => return RangeRequest::Full,
    };
    RangeRequest::Part(parsed.0, parsed.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), RangeRequest::Part(0, 9));
        assert_eq!(parse_range("bytes=90-", 100), RangeRequest::Part(90, 99));
        assert_eq!(parse_range("bytes=90-500", 100), RangeRequest::Part(90, 99));
        assert_eq!(parse_range("bytes=-10", 100), RangeRequest::Part(90, 99));
        assert_eq!(parse_range("bytes=-1000", 100), RangeRequest::Part(0, 99));
        assert_eq!(parse_range("bytes=100-", 100), RangeRequest::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), RangeRequest::Unsatisfiable);
        assert_eq!(parse_range("bytes=5-1", 100), RangeRequest::Full);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), RangeRequest::Full);
        assert_eq!(parse_range("items=0-1", 100), RangeRequest::Full);
        assert_eq!(parse_range("bytes=x-1", 100), RangeRequest::Full);
    }
}
