//! Outgoing HTTP: only to the hosts a plugin's manifest allows.
//!
//! Every request a guest makes through `wasi:http` passes `send_request` here; a host not
//! on the allow-list gets `HttpRequestDenied` before any connection is made, and the call
//! remembers it so the step event can say so.

use std::sync::{Arc, Mutex};

use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

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

/// The hooks of one call.
pub struct Outbound {
    pub allow: Arc<AllowList>,
    /// The first host this call was refused, if any.
    pub denied: Arc<Mutex<Option<String>>>,
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
            let mut denied = self.denied.lock().unwrap_or_else(|p| p.into_inner());
            denied.get_or_insert(shown);
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        Box::new(async move {
            use http_body_util::BodyExt;
            let (res, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                res.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = Result<(), Error>> + Send>,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
