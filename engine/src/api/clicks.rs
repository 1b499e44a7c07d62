//! `/r/{token}`: a tracked link of an email, outside `/v1` and without an API token (the
//! signed token is the permission, and names the only place it leads: never an open
//! redirect). Records `message.clicked` and answers `302 Found` to the link.
//!
//! Owns the answer: no referrer (the token stays private), never cached. Never shows
//! anything of the profile; a link the engine did not make gets the same 400 page as a
//! bad unsubscribe link.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/r/{token}", get(follow))
}

async fn follow(State(app): State<AppState>, Path(token): Path<String>) -> Response {
    match app.runtime.follow_click(&token).await {
        Ok(url) => match HeaderValue::from_str(&url) {
            Ok(location) => {
                let mut response = StatusCode::FOUND.into_response();
                let headers = response.headers_mut();
                headers.insert(header::LOCATION, location);
                headers.insert(
                    header::REFERRER_POLICY,
                    HeaderValue::from_static("no-referrer"),
                );
                headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                response
            }
            Err(_) => super::unsubscribe::link_refused("the link's address is not valid"),
        },
        Err(e) => super::unsubscribe::link_refused(&e.to_string()),
    }
}
