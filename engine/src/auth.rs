//! API tokens and their scopes: `ingest` (send events only), `read` (every `GET`) and
//! `admin` (everything). Tokens live in a file as SHA-256 hashes, never in clear; the
//! check is an axum middleware in front of every route but `/healthz` and the designer's
//! static files.
//!
//! Never stores, logs or returns a token in clear (only `parcours token create` prints the
//! new token, once).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::code::Code;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Send events: `POST /v1/events`, `/v1/business-events`, `/v1/segment/*` and the
    /// Segment calls at `/v1/{track,identify,page,screen,alias,group,batch}`.
    Ingest,
    /// Every `GET`: journeys, instances, steps, profiles, reports.
    Read,
    /// Everything.
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }

    fn allows(self, needed: Scope) -> bool {
        self == Scope::Admin || self == needed
    }
}

impl std::str::FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ingest" => Ok(Scope::Ingest),
            "read" => Ok(Scope::Read),
            "admin" => Ok(Scope::Admin),
            other => Err(format!("{other:?} is not a scope (ingest, read or admin)")),
        }
    }
}

/// One token as the tokens file keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRecord {
    pub name: String,
    pub scope: Scope,
    /// SHA-256 of the token, in hex.
    pub sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

/// The SHA-256 of a token, in hex.
pub fn hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `given` is one of `keys` (the Segment write keys), in a time that tells nothing
/// about how much of a key was right: both sides are hashed (SHA-256) and every key's
/// digest is compared with `given`'s in constant time, without stopping at a match.
pub fn matches_any(keys: &[String], given: &str) -> bool {
    use subtle::ConstantTimeEq;
    let given = Sha256::digest(given.as_bytes());
    let found = keys.iter().fold(subtle::Choice::from(0), |found, key| {
        found
            | Sha256::digest(key.as_bytes())
                .as_slice()
                .ct_eq(given.as_slice())
    });
    found.into()
}

/// A new random token (244 random bits).
pub fn generate() -> String {
    format!(
        "pct_{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Reads a tokens file (a JSON array of records); a missing file holds no token.
pub fn read_file(path: &Path) -> anyhow::Result<Vec<TokenRecord>> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: not a tokens file: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(anyhow::anyhow!("{}: {e}", path.display())),
    }
}

/// Writes a tokens file atomically, readable by its owner only.
pub fn write_file(path: &Path, records: &[TokenRecord]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(records)? + "\n")?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// The tokens the API accepts, reloaded from their file when it changes.
pub struct Tokens {
    file: Option<PathBuf>,
    /// Segment write keys given on the command line, accepted as ingest tokens.
    extra: Vec<TokenRecord>,
    /// Tokens are required even while the file holds none (`require_auth`).
    forced: bool,
    state: Mutex<Loaded>,
}

struct Loaded {
    by_hash: HashMap<String, (String, Scope)>,
    /// Tokens of the file (write keys alone do not close the API).
    in_file: usize,
    modified: Option<SystemTime>,
    checked: Instant,
}

/// How often the tokens file is checked for changes, at most.
const RECHECK: Duration = Duration::from_secs(1);

impl Tokens {
    /// Tokens from `file` (if any) and the given Segment write keys. With `forced`, every
    /// request needs a token; otherwise only once the file holds one (the first token
    /// created while the engine runs closes the API within a second).
    pub fn load(
        file: Option<PathBuf>,
        write_keys: &[String],
        forced: bool,
    ) -> anyhow::Result<Arc<Tokens>> {
        let extra = write_keys
            .iter()
            .enumerate()
            .map(|(i, key)| TokenRecord {
                name: format!("segment-write-key-{}", i + 1),
                scope: Scope::Ingest,
                sha256: hash(key),
                created_at: None,
            })
            .collect();
        let tokens = Tokens {
            file,
            extra,
            forced,
            state: Mutex::new(Loaded {
                by_hash: HashMap::new(),
                in_file: 0,
                modified: None,
                checked: Instant::now(),
            }),
        };
        tokens.reload()?;
        Ok(Arc::new(tokens))
    }

    fn reload(&self) -> anyhow::Result<()> {
        let records = match &self.file {
            Some(f) => read_file(f)?,
            None => Vec::new(),
        };
        let modified = self
            .file
            .as_ref()
            .and_then(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok());
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.in_file = records.len();
        state.by_hash = records
            .iter()
            .chain(&self.extra)
            .map(|r| (r.sha256.to_ascii_lowercase(), (r.name.clone(), r.scope)))
            .collect();
        state.modified = modified;
        state.checked = Instant::now();
        Ok(())
    }

    /// Reads the file again if it changed (checked at most once a second), so tokens
    /// created or revoked while the engine runs take effect at once.
    fn refresh(&self) {
        let stale = {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if state.checked.elapsed() > RECHECK {
                state.checked = Instant::now();
                self.file.as_ref().is_some_and(|f| {
                    std::fs::metadata(f).and_then(|m| m.modified()).ok() != state.modified
                })
            } else {
                false
            }
        };
        if stale && let Err(e) = self.reload() {
            tracing::warn!(error = %e, "cannot reload the tokens file");
        }
    }

    /// Whether requests need a token now: always when forced, else once the file holds
    /// one.
    pub fn enforced(&self) -> bool {
        self.refresh();
        self.forced || self.state.lock().unwrap_or_else(|p| p.into_inner()).in_file > 0
    }

    /// Whether any token exists (the file's, or a write key).
    pub fn any(&self) -> bool {
        !self
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .by_hash
            .is_empty()
    }

    /// The name and scope of `token`.
    pub fn find(&self, token: &str) -> Option<(String, Scope)> {
        self.refresh();
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .by_hash
            .get(&hash(token))
            .cloned()
    }
}

/// The Segment calls served at the root of `/v1` (as at Segment's own API).
const SEGMENT_ROOT_CALLS: [&str; 7] = [
    "/v1/track",
    "/v1/identify",
    "/v1/page",
    "/v1/screen",
    "/v1/alias",
    "/v1/group",
    "/v1/batch",
];

/// The scope a request needs; none for the health check and the designer's page and
/// assets (static files holding no data: the page asks for a token to call the API).
pub fn needed(method: &Method, path: &str) -> Option<Scope> {
    if path == "/healthz"
        || ((*method == Method::GET || *method == Method::HEAD) && crate::designer::is_public(path))
        // A message's unsubscribe link: its signed token is the permission.
        || (matches!(*method, Method::GET | Method::HEAD | Method::POST)
            && path.starts_with("/unsubscribe/"))
        // A tracked link of a message: the same.
        || (matches!(*method, Method::GET | Method::HEAD) && path.starts_with("/r/"))
    {
        return None;
    }
    if *method == Method::POST
        && (path == "/v1/events"
            || path == "/v1/business-events"
            || path.starts_with("/v1/deliveries/")
            || path.starts_with("/v1/segment/")
            || SEGMENT_ROOT_CALLS.contains(&path))
    {
        return Some(Scope::Ingest);
    }
    if *method == Method::GET || *method == Method::HEAD {
        return Some(Scope::Read);
    }
    Some(Scope::Admin)
}

/// The token of a request: `Authorization: Bearer <token>`, or Basic auth with the token
/// as the user name (how Segment libraries send their write key). Schemes are
/// case-insensitive, as HTTP says.
fn token_of(request: &Request) -> Option<String> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim();
    let (scheme, rest) = value.split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return (!rest.is_empty()).then(|| rest.to_string());
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let user = text.split(':').next().unwrap_or_default();
    (!user.is_empty()).then(|| user.to_string())
}

fn refuse(status: StatusCode, code: Code, message: String) -> Response {
    let mut response = (
        status,
        axum::Json(serde_json::json!({"code": code, "message": message})),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"parcours\""),
        );
    }
    response
}

/// The name of the token a request came with; handlers record it (who published a
/// version, who paused a journey).
#[derive(Debug, Clone)]
pub struct Principal(pub String);

/// The middleware: 401 without a known token, 403 when its scope does not cover the
/// request.
pub async fn check(
    State(tokens): State<Arc<Tokens>>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(needed) = needed(request.method(), request.uri().path()) else {
        return next.run(request).await;
    };
    if !tokens.enforced() {
        return next.run(request).await;
    }
    let Some(token) = token_of(&request) else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            Code::Unauthorized,
            "an API token is required (Authorization: Bearer <token>)".into(),
        );
    };
    let Some((name, scope)) = tokens.find(&token) else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            Code::Unauthorized,
            "unknown API token".into(),
        );
    };
    if !scope.allows(needed) {
        return refuse(
            StatusCode::FORBIDDEN,
            Code::Forbidden,
            format!(
                "token {name:?} has scope {}; {} {} needs {}",
                scope.as_str(),
                request.method(),
                request.uri().path(),
                needed.as_str()
            ),
        );
    }
    request.extensions_mut().insert(Principal(name));
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_authorization(value: &str) -> Request {
        axum::http::Request::builder()
            .header(header::AUTHORIZATION, value)
            .body(axum::body::Body::empty())
            .unwrap()
    }

    #[test]
    fn authorization_schemes_are_case_insensitive() {
        let basic = base64::engine::general_purpose::STANDARD.encode("wk:");
        for (value, token) in [
            ("Bearer pct_x", Some("pct_x")),
            ("bearer pct_x", Some("pct_x")),
            ("BEARER  pct_x ", Some("pct_x")),
            ("Bearer", None),
            (&format!("basic {basic}"), Some("wk")),
            (&format!("Basic {basic}"), Some("wk")),
            ("Digest pct_x", None),
        ] {
            assert_eq!(
                token_of(&with_authorization(value)).as_deref(),
                token,
                "{value}"
            );
        }
    }

    #[test]
    fn write_keys_match_whole_keys_only() {
        let keys = vec!["wk_first".to_string(), "wk_second".to_string()];
        assert!(matches_any(&keys, "wk_first"));
        assert!(matches_any(&keys, "wk_second"));
        for wrong in ["", "wk_", "wk_firs", "wk_first ", "WK_FIRST", "wk_third"] {
            assert!(!matches_any(&keys, wrong), "{wrong:?} matched");
        }
        assert!(!matches_any(&[], "wk_first"));
    }

    #[test]
    fn write_keys_alone_do_not_close_the_api() {
        let dir = tempfile::tempdir().unwrap();
        let tokens =
            Tokens::load(Some(dir.path().join("none.json")), &["wk".into()], false).unwrap();
        assert!(!tokens.enforced());
        let forced = Tokens::load(None, &[], true).unwrap();
        assert!(forced.enforced());
    }

    #[test]
    fn scopes_cover_their_routes() {
        assert_eq!(needed(&Method::GET, "/healthz"), None);
        assert_eq!(needed(&Method::POST, "/v1/events"), Some(Scope::Ingest));
        assert_eq!(
            needed(&Method::POST, "/v1/segment/v1/batch"),
            Some(Scope::Ingest)
        );
        assert_eq!(needed(&Method::POST, "/v1/batch"), Some(Scope::Ingest));
        assert_eq!(
            needed(&Method::POST, "/v1/deliveries/smtp"),
            Some(Scope::Ingest)
        );
        assert_eq!(needed(&Method::POST, "/v1/identify"), Some(Scope::Ingest));
        assert_eq!(
            needed(&Method::POST, "/v1/profiles/a/merge"),
            Some(Scope::Admin)
        );
        assert_eq!(needed(&Method::GET, "/v1/journeys"), Some(Scope::Read));
        assert_eq!(needed(&Method::PUT, "/v1/journeys/x"), Some(Scope::Admin));
        assert_eq!(
            needed(&Method::POST, "/v1/journeys/x/publish"),
            Some(Scope::Admin)
        );
        // A message's unsubscribe link carries its own permission; its neighbours do not.
        assert_eq!(needed(&Method::POST, "/unsubscribe/tok.en"), None);
        assert_eq!(
            needed(&Method::DELETE, "/unsubscribe/tok.en"),
            Some(Scope::Admin)
        );
        assert_eq!(needed(&Method::POST, "/unsubscribe"), Some(Scope::Admin));
        assert_eq!(needed(&Method::GET, "/r/tok.en"), None);
        assert_eq!(needed(&Method::POST, "/r/tok.en"), Some(Scope::Admin));
        assert!(Scope::Admin.allows(Scope::Ingest) && Scope::Admin.allows(Scope::Read));
        assert!(!Scope::Ingest.allows(Scope::Read) && !Scope::Read.allows(Scope::Ingest));
    }

    #[test]
    fn tokens_are_found_by_hash_only() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens.json");
        let token = generate();
        write_file(
            &file,
            &[TokenRecord {
                name: "ci".into(),
                scope: Scope::Read,
                sha256: hash(&token),
                created_at: None,
            }],
        )
        .unwrap();
        assert!(!std::fs::read_to_string(&file).unwrap().contains(&token));
        let tokens = Tokens::load(Some(file), &["wk".into()], false).unwrap();
        assert!(tokens.enforced(), "a token in the file closes the API");
        assert_eq!(tokens.find(&token), Some(("ci".into(), Scope::Read)));
        assert_eq!(tokens.find("wk").map(|t| t.1), Some(Scope::Ingest));
        assert_eq!(tokens.find("nope"), None);
    }
}
