//! The journey designer's page: the built files of `designer/` (React, served at `/`).
//!
//! Owns serving those files from the binary (embedded at compile time from
//! `designer/dist`, committed and checked against its sources by `.ci/run`): content
//! types, cache headers (hashed assets are immutable, the page itself is revalidated) and
//! the page's security headers. Never serves anything but those files, and never data:
//! the page reads and writes everything through `/v1` with the user's token, so these
//! routes need none (see `auth::needed`).

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rust_embed::Embed;

#[derive(Embed)]
#[folder = "../designer/dist/"]
struct Files;

/// What the page may load and talk to: its own origin only. Inline styles are allowed
/// because the canvas positions nodes with `style` attributes.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; \
    style-src 'self' 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'; \
    base-uri 'none'; form-action 'self'; object-src 'none'";

/// The designer's routes: `/` (the page) and `/assets/*` (its scripts and styles).
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/",
            get(|headers: HeaderMap| async move { file("index.html", &headers) }),
        )
        .route(
            "/assets/{*name}",
            get(|Path(name): Path<String>, headers: HeaderMap| async move {
                file(&format!("assets/{name}"), &headers)
            }),
        )
        .route(
            "/favicon.svg",
            get(|headers: HeaderMap| async move { file("favicon.svg", &headers) }),
        )
}

/// Whether `path` is one of the designer's public files (served without a token).
pub fn is_public(path: &str) -> bool {
    path == "/" || path == "/favicon.svg" || path.starts_with("/assets/")
}

fn file(name: &str, request: &HeaderMap) -> Response {
    let Some(found) = Files::get(name) else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    let etag = format!("\"{}\"", hex(&found.metadata.sha256_hash()[..16]));
    let page = name == "index.html";
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(name)),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if page {
            "no-cache"
        } else {
            // Vite names every asset by its content hash.
            "public, max-age=31536000, immutable"
        }),
    );
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if page {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        );
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag));
    if fresh {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    (headers, found.data.into_owned()).into_response()
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("woff2") => "font/woff2",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_and_its_assets_are_embedded() {
        let page = Files::get("index.html").expect("designer/dist/index.html is built");
        let text = String::from_utf8_lossy(&page.data);
        assert!(text.contains("<div id=\"root\">"), "{text}");
        // Every asset the page names is embedded too.
        for part in text.split("\"/assets/").skip(1) {
            let name = part.split('"').next().unwrap_or_default();
            assert!(Files::get(&format!("assets/{name}")).is_some(), "{name}");
        }
    }

    #[test]
    fn only_the_designer_files_are_public() {
        assert!(is_public("/"));
        assert!(is_public("/assets/index-abc.js"));
        assert!(!is_public("/v1/journeys"));
        assert!(!is_public("/metrics"));
    }
}
