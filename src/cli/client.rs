//! The client side of the commands that call a running engine: the `--server` address
//! (normalised once), the token of `PARCOURS_TOKEN`, and errors in the user's terms (an
//! engine that cannot be reached, a server that is not a Parcours engine, an engine's
//! refusal with its located problems). It must never print: each command decides what
//! it shows.

use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

/// The default address of a local engine.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

/// Where the client commands go: `--server`, and the certificate authority an `https://`
/// engine's certificate is checked against beside the system's (`--ca-cert`).
#[derive(Debug, Clone)]
pub struct Remote {
    pub server: String,
    pub ca_cert: Option<std::path::PathBuf>,
}

/// A running engine, as the commands reach it.
pub struct Api {
    /// The base URL, without a trailing slash (`https://host/prefix`).
    base: String,
    http: reqwest::Client,
}

/// An answer of the engine: its status and its JSON body (`Null` when it had none).
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

impl Api {
    /// The engine at `remote.server` (see [`normalize`]).
    pub fn new(remote: &Remote) -> anyhow::Result<Api> {
        let base = normalize(&remote.server)?;
        let mut headers = reqwest::header::HeaderMap::new();
        if let Ok(token) = std::env::var("PARCOURS_TOKEN") {
            let mut value =
                reqwest::header::HeaderValue::from_str(&format!("Bearer {}", token.trim()))
                    .map_err(|_| anyhow::anyhow!("PARCOURS_TOKEN: not a valid token"))?;
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let mut builder = reqwest::Client::builder().default_headers(headers);
        if let Some(path) = &remote.ca_cert {
            let pem = fs_err::read(path)?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                anyhow::anyhow!("--ca-cert {}: not PEM certificates ({e})", path.display())
            })?;
            if certs.is_empty() {
                anyhow::bail!("--ca-cert {}: no certificate in the file", path.display());
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder
            .build()
            .map_err(|e| anyhow::anyhow!("cannot set up the HTTP client: {e}"))?;
        Ok(Api { base, http })
    }

    /// `GET path`; the body of a success, or the refusal as an error.
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(Method::GET, path, None).await?.success()
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.call(Method::POST, path, Some(body)).await?.success()
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.call(Method::DELETE, path, None).await?.success()
    }

    /// `PUT path` with a JSON body.
    pub async fn put(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.call(Method::PUT, path, Some(body)).await?.success()
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Answer> {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request.json(body);
        }
        self.send(request).await
    }

    /// Sends a request built from [`Api::request`]: any answer of a Parcours engine,
    /// success or refusal; an error when the engine cannot be reached or the server that
    /// answered is not a Parcours engine.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Answer> {
        let request = request
            .build()
            .map_err(|e| anyhow::anyhow!("cannot build the request: {e}"))?;
        let (method, path) = (request.method().clone(), request.url().path().to_string());
        let response = self
            .http
            .execute(request)
            .await
            .map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        let json = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        let bytes = response.bytes().await.map_err(|e| self.unreachable(&e))?;
        let body: Option<Value> = if bytes.is_empty() {
            Some(Value::Null)
        } else {
            serde_json::from_slice(&bytes).ok()
        };
        // A Parcours refusal always carries a JSON `{code, message}`; a success a JSON
        // body or none.
        let recognised = match &body {
            Some(b) if status.is_success() => json || b.is_null(),
            Some(b) => b["code"].is_string() && b["message"].is_string(),
            None => false,
        };
        if !recognised {
            anyhow::bail!(
                "{} answered {method} {path} with {status}, which is not a Parcours engine's \
                 answer; check --server (or PARCOURS_SERVER)",
                self.base
            );
        }
        Ok(Answer {
            status,
            body: body.unwrap_or(Value::Null),
        })
    }

    /// A request to `path` (`/v1/…`) on this engine, to complete and give to [`Api::send`].
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, self.url(path))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// What a failed exchange becomes, named after the engine and its deepest cause.
    fn unreachable(&self, e: &reqwest::Error) -> anyhow::Error {
        let cause = deepest_cause(e);
        if is_tls_refusal(e) {
            return anyhow::anyhow!(
                "cannot reach the engine at {}: its TLS certificate was refused ({cause}); \
                 for a private certificate authority pass --ca-cert FILE (or PARCOURS_CA_CERT)",
                self.base
            );
        }
        if e.is_connect() {
            let refused = io_kind(e) == Some(std::io::ErrorKind::ConnectionRefused);
            if refused {
                return anyhow::anyhow!(
                    "cannot reach the engine at {}: connection refused (is `parcours serve` \
                     running there? the address comes from --server or PARCOURS_SERVER)",
                    self.base
                );
            }
            return anyhow::anyhow!("cannot reach the engine at {}: {cause}", self.base);
        }
        if e.is_timeout() {
            return anyhow::anyhow!("the engine at {} did not answer in time", self.base);
        }
        anyhow::anyhow!("the exchange with {} failed: {cause}", self.base)
    }
}

impl Answer {
    /// The body of a success, or the refusal as an error.
    pub fn success(self) -> anyhow::Result<Value> {
        if self.status.is_success() {
            Ok(self.body)
        } else {
            Err(failure(self.status, &self.body))
        }
    }
}

/// The error an engine's refusal becomes: its status, message and located problems.
pub fn failure(status: StatusCode, body: &Value) -> anyhow::Error {
    let message = body["message"].as_str().unwrap_or("request failed");
    let hint = if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        " (the token comes from PARCOURS_TOKEN)"
    } else {
        ""
    };
    match body["problems"].as_array() {
        Some(problems) if !problems.is_empty() => {
            let lines: Vec<String> = problems
                .iter()
                .map(|p| {
                    format!(
                        "  {}: {}",
                        p["path"].as_str().unwrap_or(""),
                        p["message"].as_str().unwrap_or("")
                    )
                })
                .collect();
            anyhow::anyhow!("{status}: {message}{hint}\n{}", lines.join("\n"))
        }
        _ => match body["location"].as_str() {
            Some(at) => anyhow::anyhow!("{status}: {at}: {message}{hint}"),
            None => anyhow::anyhow!("{status}: {message}{hint}"),
        },
    }
}

/// `server` as a base URL: `http://` when no scheme is given (`localhost:8080`), `http`
/// or `https` only, no query or fragment, no trailing slash (a path prefix is kept, for
/// an engine behind a proxy).
pub fn normalize(server: &str) -> anyhow::Result<String> {
    let text = server.trim();
    let with_scheme = if text.contains("://") {
        text.to_string()
    } else {
        format!("http://{text}")
    };
    let bad = |why: &str| anyhow::anyhow!("--server {server:?}: {why}");
    let url = Url::parse(&with_scheme).map_err(|e| bad(&format!("not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("the scheme must be http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("a base URL has no query or fragment"));
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

/// `e` and the errors under it, outermost first.
fn causes<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(e), |c| c.source())
}

/// The innermost error under `e`, where the reason is (`Connection refused`, a DNS
/// failure, a certificate problem).
fn deepest_cause(e: &(dyn std::error::Error + 'static)) -> String {
    causes(e)
        .last()
        .map_or_else(|| e.to_string(), ToString::to_string)
}

/// Whether TLS refused the exchange (a certificate that does not verify, a handshake
/// failure). rustls' error travels inside `io::Error`s, whose `source` skips it.
fn is_tls_refusal(e: &(dyn std::error::Error + 'static)) -> bool {
    causes(e).any(|c| {
        let mut at: &(dyn std::error::Error + 'static) = c;
        loop {
            if at.downcast_ref::<rustls::Error>().is_some() {
                return true;
            }
            match at
                .downcast_ref::<std::io::Error>()
                .and_then(std::io::Error::get_ref)
            {
                Some(inner) => at = inner,
                None => return false,
            }
        }
    })
}

fn io_kind(e: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    causes(e).find_map(|c| c.downcast_ref::<std::io::Error>().map(std::io::Error::kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses_are_normalised() {
        for (given, base) in [
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
            ("localhost:8080", "http://localhost:8080"),
            (" localhost:8080/ ", "http://localhost:8080"),
            (
                "https://parcours.example.com",
                "https://parcours.example.com",
            ),
            (
                "https://example.com/parcours/",
                "https://example.com/parcours",
            ),
            ("HTTP://Example.COM:80/", "http://example.com"),
        ] {
            assert_eq!(normalize(given).unwrap(), base, "{given}");
        }
        for (given, why) in [
            ("ftp://example.com", "the scheme must be http or https"),
            ("http://", "not a URL"),
            ("http://example.com/?x=1", "no query or fragment"),
            ("localhost:notaport", "not a URL"),
        ] {
            let e = normalize(given).unwrap_err().to_string();
            assert!(e.contains(why), "{given}: {e}");
            assert!(e.contains(given), "{given}: {e}");
        }
    }

    #[test]
    fn refusals_keep_their_location_and_problems() {
        let body = serde_json::json!({
            "code": "INVALID_JOURNEY", "message": "the journey is invalid",
            "problems": [{"path": "nodes.wait.duration", "message": "not a duration"}]
        });
        let e = failure(StatusCode::UNPROCESSABLE_ENTITY, &body).to_string();
        assert!(e.contains("the journey is invalid"), "{e}");
        assert!(e.contains("  nodes.wait.duration: not a duration"), "{e}");
        let body = serde_json::json!({"code": "UNAUTHORIZED", "message": "a token is needed"});
        let e = failure(StatusCode::UNAUTHORIZED, &body).to_string();
        assert!(e.contains("PARCOURS_TOKEN"), "{e}");
    }
}
