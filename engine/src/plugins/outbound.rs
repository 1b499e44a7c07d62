//! Outgoing HTTP: only to the hosts a plugin's manifest allows, at addresses the
//! engine's network policy allows.
//!
//! Every request a guest makes through `wasi:http` passes `send_request` here; a host not
//! on the allow-list gets `HttpRequestDenied` before any connection is made, and so does
//! a host that resolves only to internal addresses (`network.rs`); the call remembers
//! why, so the step event can say so. It also remembers the latest `Retry-After` an
//! answer carried, so that a retryable failure waits as long as the server asked. Outside
//! the engine (the plugin test
//! harness), allowed requests may be answered from recorded exchanges instead of the
//! network, or sent and recorded.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use super::network::NetworkPolicy;
use crate::actions::RetryAfter;

/// Largest request or response body kept in a recorded exchange.
const MAX_RECORDED_BODY: usize = 1 << 20;

/// Largest request body without a declared length that is sent with one; a longer body
/// is streamed as the guest writes it (chunked).
const MAX_SIZED_BODY: usize = 1 << 20;

/// One HTTP request and its answer, as a stub file holds it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpExchange {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The full URL the plugin calls.
    pub url: String,
    /// The answer's status (200 unless given).
    #[serde(default = "ok_status")]
    pub status: u16,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// The answer's body: a string is sent as is, anything else as JSON.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub body: Value,
    /// What the plugin sent (filled in by the harness; ignored when matching).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_body: Option<Value>,
    /// The headers the plugin sent, `Idempotency-Key` among them (filled in by the
    /// harness; ignored when matching).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub request_headers: BTreeMap<String, String>,
}

/// Headers as text (a value that is not UTF-8 is left out).
fn text_headers(headers: &http::HeaderMap) -> BTreeMap<String, String> {
    headers
        .iter()
        .filter_map(|(k, v)| Some((k.to_string(), v.to_str().ok()?.to_string())))
        .collect()
}

fn ok_status() -> u16 {
    200
}

/// Where allowed requests go.
#[derive(Debug, Default)]
pub enum HttpMode {
    /// To the network.
    #[default]
    Live,
    /// Answered by the first exchange with the same method and URL; others fail as
    /// unreachable. Every request is kept in `sent`.
    Stubbed {
        exchanges: Vec<HttpExchange>,
        sent: Mutex<Vec<HttpExchange>>,
    },
    /// To the network, each exchange kept in `sent`.
    Recording { sent: Mutex<Vec<HttpExchange>> },
}

impl HttpMode {
    /// The exchanges made so far, in order (empty when live).
    pub fn sent(&self) -> Vec<HttpExchange> {
        match self {
            HttpMode::Live => Vec::new(),
            HttpMode::Stubbed { sent, .. } | HttpMode::Recording { sent } => {
                sent.lock().unwrap_or_else(|p| p.into_inner()).clone()
            }
        }
    }

    fn keep(&self, exchange: HttpExchange) {
        if let HttpMode::Stubbed { sent, .. } | HttpMode::Recording { sent } = self {
            sent.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(exchange);
        }
    }
}

/// A body as JSON when it is, else as text.
fn body_value(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

async fn read_body(body: WasiBody) -> Result<Bytes, Error> {
    match Limited::new(body, MAX_RECORDED_BODY).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) => match e.downcast::<Error>() {
            Ok(e) => Err(*e),
            Err(_) => Err(Error::HttpResponseBodySize(Some(MAX_RECORDED_BODY as u64))),
        },
    }
}

fn full(bytes: Bytes) -> WasiBody {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Host patterns from a manifest.
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    patterns: Vec<String>,
}

impl AllowList {
    pub fn new(patterns: &[String]) -> Self {
        Self {
            patterns: patterns.iter().map(|p| p.to_ascii_lowercase()).collect(),
        }
    }

    /// Whether `host` (with `port`) matches: `*`, an exact host, `host:port`, or
    /// `*.suffix` (any subdomain, not the bare suffix).
    pub fn allows(&self, host: &str, port: Option<u16>) -> bool {
        let host = host.to_ascii_lowercase();
        let with_port = port.map(|p| format!("{host}:{p}"));
        self.patterns.iter().any(|p| {
            p == "*"
                || *p == host
                || with_port.as_deref() == Some(p.as_str())
                || p.strip_prefix("*.")
                    .is_some_and(|suffix| host.ends_with(&format!(".{suffix}")))
        })
    }
}

/// What the host saw of one call's requests.
#[derive(Debug, Default, Clone)]
pub struct Observed {
    /// Why the call's first refused request was refused (`to <host> ...`), if any.
    pub denied: Option<String>,
    /// The latest time an answer asked the caller to wait (`Retry-After`), if any.
    pub retry_after: Option<RetryAfter>,
}

impl Observed {
    /// Joins one more request to wait: the latest of all asks is kept.
    pub fn ask_retry_after(&mut self, asked: RetryAfter) {
        self.retry_after = Some(match self.retry_after {
            Some(earlier) => earlier.later(asked),
            None => asked,
        });
    }
}

/// The hooks of one call.
pub struct Outbound {
    pub allow: Arc<AllowList>,
    /// Which addresses requests may connect to (`network.rs`).
    pub network: Arc<NetworkPolicy>,
    pub observed: Arc<Mutex<Observed>>,
    pub mode: Arc<HttpMode>,
}

/// Records why a request was refused (the first refusal of a call is kept).
fn deny(observed: &Mutex<Observed>, why: String) {
    observed
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .denied
        .get_or_insert(why);
}

/// Records an answer's `Retry-After`, if it carries a valid one.
fn observe(observed: &Mutex<Observed>, headers: &http::HeaderMap) {
    let Some(asked) = headers
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(RetryAfter::parse)
    else {
        return;
    };
    observed
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .ask_retry_after(asked);
}

/// The request with a `Content-Length`, as ordinary clients send a body they hold: a
/// guest's body has no declared length (`wasi:http` streams it), and receivers that do
/// not read chunked bodies (Python's `http.server`, some gateways) would read it as
/// empty. The body is read as the guest writes it; one that ends within
/// `MAX_SIZED_BODY` is sent whole with its length, a longer one goes on streaming.
async fn with_length(request: http::Request<WasiBody>) -> Result<http::Request<WasiBody>, Error> {
    use futures_util::StreamExt;
    use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
    use http_body_util::{BodyStream, StreamBody};
    if request.headers().contains_key(CONTENT_LENGTH)
        || request.headers().contains_key(TRANSFER_ENCODING)
    {
        return Ok(request);
    }
    let (mut parts, mut body) = request.into_parts();
    let mut read = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        let trailers = match frame.into_data() {
            Ok(data) => {
                read.extend_from_slice(&data);
                None
            }
            Err(trailers) => Some(trailers),
        };
        if read.len() > MAX_SIZED_BODY || trailers.is_some() {
            // Too long to hold, or not only data: the rest streams behind what was read.
            let head = std::iter::once(hyper::body::Frame::data(read.freeze())).chain(trailers);
            let stream = futures_util::stream::iter(head.map(Ok)).chain(BodyStream::new(body));
            return Ok(http::Request::from_parts(
                parts,
                StreamBody::new(stream).boxed_unsync(),
            ));
        }
    }
    if !read.is_empty() {
        parts
            .headers
            .insert(CONTENT_LENGTH, http::HeaderValue::from(read.len()));
    }
    Ok(http::Request::from_parts(parts, full(read.freeze())))
}

/// Sends an allowed request to the network, to an address the network policy allows.
async fn send_checked(
    request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
    network: &NetworkPolicy,
    observed: &Mutex<Observed>,
) -> SendResult {
    let request = with_length(request).await?;
    match super::network::send(request, options, network).await {
        Ok(Ok((response, io))) => {
            observe(observed, response.headers());
            Ok((response, io))
        }
        Ok(Err(e)) => Err(e),
        Err(why) => {
            deny(observed, why);
            Err(Error::HttpRequestDenied)
        }
    }
}

type SendResult = wasmtime_wasi_http::Result<(
    http::Response<WasiBody>,
    Box<dyn Future<Output = Result<(), Error>> + Send>,
)>;

impl WasiHttpHooks for Outbound {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        let _ = fut;
        let host = request.uri().host().unwrap_or_default().to_string();
        let port = request.uri().port_u16();
        if !self.allow.allows(&host, port) {
            let shown = match port {
                Some(p) => format!("{host}:{p}"),
                None => host,
            };
            deny(
                &self.observed,
                format!(
                    "to {shown} is not allowed by the plugin's manifest (capabilities.allowed_hosts)"
                ),
            );
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        let mode = self.mode.clone();
        let network = self.network.clone();
        let observed = self.observed.clone();
        Box::new(async move {
            let done =
                Box::new(async { Ok(()) }) as Box<dyn Future<Output = Result<(), Error>> + Send>;
            match &*mode {
                HttpMode::Live => send_checked(request, options, &network, &observed).await,
                HttpMode::Stubbed { exchanges, .. } => {
                    let method = request.method().to_string();
                    let url = request.uri().to_string();
                    let request_headers = text_headers(request.headers());
                    let sent = read_body(request.into_body()).await?;
                    let found = exchanges
                        .iter()
                        .find(|e| e.method.eq_ignore_ascii_case(&method) && e.url == url)
                        .cloned();
                    let mut kept = HttpExchange {
                        method,
                        url,
                        status: 0,
                        headers: BTreeMap::new(),
                        body: Value::Null,
                        request_body: Some(body_value(&sent)),
                        request_headers,
                    };
                    let Some(stub) = found else {
                        mode.keep(kept);
                        return Err(Error::DestinationNotFound);
                    };
                    kept.status = stub.status;
                    kept.headers = stub.headers.clone();
                    kept.body = stub.body.clone();
                    mode.keep(kept);
                    let body = match &stub.body {
                        Value::Null => Bytes::new(),
                        Value::String(s) => Bytes::from(s.clone()),
                        v => Bytes::from(v.to_string()),
                    };
                    let mut res = http::Response::builder().status(stub.status);
                    for (k, v) in &stub.headers {
                        res = res.header(k, v);
                    }
                    let res = res
                        .body(full(body))
                        .map_err(|_| Error::HttpResponseIncomplete)?;
                    observe(&observed, res.headers());
                    Ok((res, done))
                }
                HttpMode::Recording { .. } => {
                    let method = request.method().to_string();
                    let url = request.uri().to_string();
                    let (parts, body) = request.into_parts();
                    let request_headers = text_headers(&parts.headers);
                    let sent = read_body(body).await?;
                    let request = http::Request::from_parts(parts, full(sent.clone()));
                    let (res, io) = send_checked(request, options, &network, &observed).await?;
                    // The connection is driven while the body is read.
                    let io = tokio::spawn(Box::into_pin(io));
                    let (parts, body) = res.into_parts();
                    let got = read_body(body).await;
                    io.abort();
                    let got = got?;
                    mode.keep(HttpExchange {
                        method,
                        url,
                        status: parts.status.as_u16(),
                        headers: text_headers(&parts.headers),
                        body: body_value(&got),
                        request_body: Some(body_value(&sent)),
                        request_headers,
                    });
                    Ok((http::Response::from_parts(parts, full(got)), done))
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A guest's body: `chunks` written one by one, no declared length.
    fn streamed(chunks: Vec<Vec<u8>>) -> http::Request<WasiBody> {
        use futures_util::StreamExt;
        let frames = futures_util::stream::iter(chunks)
            .map(|c| Ok::<_, Error>(hyper::body::Frame::data(Bytes::from(c))));
        http::Request::post("http://example.com/")
            .body(http_body_util::StreamBody::new(frames).boxed_unsync())
            .unwrap()
    }

    async fn sent(request: http::Request<WasiBody>) -> (Option<String>, Vec<u8>) {
        let request = with_length(request).await.unwrap();
        let length = request
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .map(|v| v.to_str().unwrap().to_string());
        let body = request.into_body().collect().await.unwrap().to_bytes();
        (length, body.to_vec())
    }

    #[tokio::test]
    async fn a_body_the_guest_wrote_in_pieces_goes_with_its_length() {
        let (length, body) = sent(streamed(vec![b"{\"a\":".to_vec(), b"1}".to_vec()])).await;
        assert_eq!(length.as_deref(), Some("7"));
        assert_eq!(body, b"{\"a\":1}");
        // No body, no length (a GET stays as ordinary clients send it).
        let (length, body) = sent(streamed(vec![])).await;
        assert_eq!((length, body.len()), (None, 0));
    }

    #[tokio::test]
    async fn a_body_longer_than_the_bound_streams_whole() {
        let chunk = vec![7u8; 64 * 1024];
        let n = MAX_SIZED_BODY / chunk.len() + 3;
        let (length, body) = sent(streamed(vec![chunk.clone(); n])).await;
        assert_eq!(length, None);
        assert_eq!(body.len(), n * chunk.len());
        // A declared length is left as the guest gave it.
        let mut request = streamed(vec![b"abc".to_vec()]);
        request
            .headers_mut()
            .insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(3));
        let (length, body) = sent(request).await;
        assert_eq!(
            (length.as_deref(), body.as_slice()),
            (Some("3"), &b"abc"[..])
        );
    }

    #[test]
    fn allow_list_patterns() {
        let a = AllowList::new(&[
            "api.example.com".into(),
            "*.hooks.io".into(),
            "127.0.0.1:9000".into(),
        ]);
        assert!(a.allows("API.example.com", None));
        assert!(a.allows("x.hooks.io", Some(443)));
        assert!(!a.allows("hooks.io", None));
        assert!(a.allows("127.0.0.1", Some(9000)));
        assert!(!a.allows("127.0.0.1", Some(9001)));
        assert!(!a.allows("evil.com", None));
        assert!(AllowList::new(&["*".into()]).allows("anything", Some(1)));
        assert!(!AllowList::default().allows("anything", None));
    }
}
