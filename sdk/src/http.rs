//! Outgoing HTTP through `wasi:http`, blocking and simple. The host only lets requests
//! through to the hosts the plugin's manifest allows.

use wasi::http::outgoing_handler;
use wasi::http::types::{Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, Scheme};

use crate::Error;

/// A response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The body as JSON.
    pub fn json(&self) -> Result<serde_json::Value, Error> {
        serde_json::from_slice(&self.body)
            .map_err(|e| Error::Permanent(format!("response is not JSON: {e}")))
    }

    /// A header's value (the first, by case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The wait a `Retry-After: <seconds>` header asks for.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        self.header("retry-after")?
            .trim()
            .parse()
            .ok()
            .map(std::time::Duration::from_secs)
    }

    /// Maps the status to the engine's error kinds: 2xx is `Ok`; 408, 429 and 5xx are
    /// retryable (after the answer's `Retry-After`, when it has one); other statuses are
    /// permanent.
    pub fn error_for_status(self) -> Result<Response, Error> {
        match self.status {
            200..=299 => Ok(self),
            408 | 429 | 500..=599 => {
                let message = format!("HTTP {}", self.status);
                Err(match self.retry_after() {
                    Some(after) => Error::RetryAfter(message, after),
                    None => Error::Retryable(message),
                })
            }
            s => Err(Error::Permanent(format!("HTTP {s}"))),
        }
    }
}

/// A request being built.
pub struct Request {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
}

impl Request {
    pub fn new(method: &str, url: &str) -> Request {
        Request {
            method: method.to_ascii_uppercase(),
            url: url.to_string(),
            headers: Vec::new(),
            body: None,
        }
    }

    pub fn get(url: &str) -> Request {
        Request::new("GET", url)
    }

    pub fn post(url: &str) -> Request {
        Request::new("POST", url)
    }

    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_string()));
        self
    }

    /// A JSON body (sets `content-type`).
    pub fn json(mut self, body: &serde_json::Value) -> Request {
        self.body = Some(body.to_string().into_bytes());
        self.header("content-type", "application/json")
    }

    pub fn body(mut self, body: Vec<u8>) -> Request {
        self.body = Some(body);
        self
    }

    /// Sends the request and reads the whole response.
    pub fn send(self) -> Result<Response, Error> {
        let (scheme, rest) = match self.url.split_once("://") {
            Some(("http", rest)) => (Scheme::Http, rest),
            Some(("https", rest)) => (Scheme::Https, rest),
            _ => {
                return Err(Error::InvalidInput(format!(
                    "unsupported URL {:?}",
                    self.url
                )));
            }
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let fields = Fields::new();
        for (name, value) in &self.headers {
            fields
                .append(name, value.as_bytes())
                .map_err(|e| Error::InvalidInput(format!("header {name}: {e:?}")))?;
        }
        // The body is in memory: say its length, as ordinary clients do, instead of
        // sending it chunked (which receivers such as Python's `http.server` and some
        // gateways read as empty).
        if let Some(body) = &self.body
            && !self
                .headers
                .iter()
                .any(|(name, _)| name == "content-length")
        {
            fields
                .append("content-length", body.len().to_string().as_bytes())
                .map_err(|e| Error::InvalidInput(format!("header content-length: {e:?}")))?;
        }
        let request = OutgoingRequest::new(fields);
        let method = match self.method.as_str() {
            "GET" => Method::Get,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            "HEAD" => Method::Head,
            other => Method::Other(other.to_string()),
        };
        let invalid = |what: &str| Error::InvalidInput(format!("invalid {what} in {:?}", self.url));
        request.set_method(&method).map_err(|_| invalid("method"))?;
        request
            .set_scheme(Some(&scheme))
            .map_err(|_| invalid("scheme"))?;
        request
            .set_authority(Some(authority))
            .map_err(|_| invalid("authority"))?;
        request
            .set_path_with_query(Some(path))
            .map_err(|_| invalid("path"))?;

        let outgoing_body = request
            .body()
            .map_err(|_| Error::Permanent("request body unavailable".into()))?;
        let pending = outgoing_handler::handle(request, None).map_err(http_error)?;
        {
            let stream = outgoing_body
                .write()
                .map_err(|_| Error::Permanent("request body stream unavailable".into()))?;
            if let Some(body) = &self.body {
                for chunk in body.chunks(4096) {
                    stream.blocking_write_and_flush(chunk).map_err(|e| {
                        Error::Retryable(format!("writing the request body: {e:?}"))
                    })?;
                }
            }
        }
        OutgoingBody::finish(outgoing_body, None).map_err(http_error)?;

        pending.subscribe().block();
        let response = match pending.get() {
            Some(Ok(Ok(r))) => r,
            Some(Ok(Err(e))) => return Err(http_error(e)),
            _ => return Err(Error::Retryable("no response".into())),
        };
        let status = response.status();
        let headers = response
            .headers()
            .entries()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
            .collect();
        let incoming = response
            .consume()
            .map_err(|_| Error::Retryable("response body unavailable".into()))?;
        let mut body = Vec::new();
        {
            let stream = incoming
                .stream()
                .map_err(|_| Error::Retryable("response body stream unavailable".into()))?;
            loop {
                match stream.blocking_read(64 * 1024) {
                    Ok(chunk) => body.extend_from_slice(&chunk),
                    Err(wasi::io::streams::StreamError::Closed) => break,
                    Err(e) => return Err(Error::Retryable(format!("reading the response: {e:?}"))),
                }
            }
        }
        let _ = IncomingBody::finish(incoming);
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

fn http_error(e: wasi::http::types::ErrorCode) -> Error {
    use wasi::http::types::ErrorCode as E;
    match e {
        E::HttpRequestDenied => Error::Permanent(
            "HTTP request denied: host not allowed by the plugin's manifest".into(),
        ),
        // Failures of the transport, not answers of the receiver: another attempt (with
        // the same idempotency key) may well succeed.
        E::DnsTimeout
        | E::DestinationUnavailable
        | E::ConnectionTimeout
        | E::ConnectionRefused
        | E::ConnectionReadTimeout
        | E::ConnectionWriteTimeout
        | E::ConnectionLimitReached
        | E::HttpResponseTimeout
        | E::HttpResponseIncomplete
        | E::HttpProtocolError
        | E::ConnectionTerminated => Error::Retryable(format!("{e:?}")),
        other => Error::Permanent(format!("{other:?}")),
    }
}
