//! `/unsubscribe/{token}`: the page a message's unsubscribe link opens, outside `/v1`
//! and without an API token (the signed token is the permission). `GET` shows what the
//! link does and a button; `POST` unsubscribes at once: the button, and mail clients'
//! one-click unsubscribe (RFC 8058: `List-Unsubscribe=One-Click` in the body).
//!
//! Owns the page: plain HTML without scripts, no referrer (the token stays private), not
//! cached, never framed. Never shows the profile's data, since links get forwarded.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;
use crate::runtime::ConsentError;

pub fn routes() -> Router<AppState> {
    Router::new().route("/unsubscribe/{token}", get(show).post(unsubscribe))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>body{{font-family:system-ui,sans-serif;max-width:32rem;\
         margin:4rem auto;padding:0 1rem;color:#1f2933;line-height:1.5}}button{{font:inherit;\
         padding:.6rem 1.2rem;border:0;border-radius:.4rem;background:#1f2933;color:#fff;\
         cursor:pointer}}</style></head><body><h1>{title}</h1>{body}</body></html>\n",
        title = escape(title)
    );
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// The page of a link the engine did not make, or one that expired.
pub(super) fn link_refused(why: &str) -> Response {
    page(
        StatusCode::BAD_REQUEST,
        "This link does not work",
        &format!(
            "<p>{}. Use the link of a more recent message.</p>",
            escape(why)
        ),
    )
}

fn refused(e: ConsentError) -> Response {
    match e {
        ConsentError::Link(l) => link_refused(&l.to_string()),
        other => {
            tracing::error!(error = %other, "unsubscribe link failed");
            page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Please try again",
                "<p>Your request could not be recorded just now. Please try again in a moment.</p>",
            )
        }
    }
}

fn group_name(app: &AppState, group: &str) -> String {
    app.runtime
        .subscription_groups()
        .remove(group)
        .and_then(|g| g.name)
        .unwrap_or_else(|| group.to_string())
}

async fn show(State(app): State<AppState>, Path(token): Path<String>) -> Response {
    match app.runtime.check_link(&token) {
        Ok(claims) => page(
            StatusCode::OK,
            "Unsubscribe",
            &format!(
                "<p>Stop receiving <strong>{}</strong> messages?</p>\
                 <form method=\"post\"><button type=\"submit\">Unsubscribe</button></form>",
                escape(&group_name(&app, &claims.group))
            ),
        ),
        Err(e) => refused(e),
    }
}

async fn unsubscribe(State(app): State<AppState>, Path(token): Path<String>) -> Response {
    match app.runtime.unsubscribe(&token).await {
        Ok(claims) => page(
            StatusCode::OK,
            "You are unsubscribed",
            &format!(
                "<p>You will receive no more <strong>{}</strong> messages. Messages you asked \
                 for, such as receipts, still reach you.</p>",
                escape(&group_name(&app, &claims.group))
            ),
        ),
        Err(e) => refused(e),
    }
}
