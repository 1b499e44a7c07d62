//! Where a plugin's allowed HTTP requests may connect: the engine's network policy.
//!
//! A manifest's `allowed_hosts` names hosts; this module decides by address, after DNS
//! resolution, for every connection. Internal addresses (loopback, private networks,
//! link-local ones such as the cloud metadata service at 169.254.169.254, shared and
//! unspecified ones, multicast, and IPv6 addresses that embed any of these) are refused
//! unless the operator allows their network (`plugins.allow_internal_networks`), so a
//! journey author cannot make a plugin reach the engine's own host or its private
//! network. The request then goes to the address that was checked, never to a second
//! resolution of the name (a DNS answer that changes between check and connection
//! cannot move it), with TLS verified against the host name.
//!
//! `send` follows wasmtime-wasi-http's `default_send_request` (Apache-2.0 WITH
//! LLVM-exception, wasmtime 48), with the connection step replaced; it never logs the
//! request's content.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http::uri::Scheme;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use ipnet::IpNet;
use tokio::net::TcpStream;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

/// The networks plugins may reach although they are internal.
#[derive(Debug, Clone, Default)]
pub struct NetworkPolicy {
    pub allow_internal: Vec<IpNet>,
}

impl NetworkPolicy {
    /// Why `ip` may not be reached, if it may not: the kind of address it is.
    pub fn refuses(&self, ip: IpAddr) -> Option<&'static str> {
        let kind = internal(ip)?;
        (!self.allow_internal.iter().any(|n| n.contains(&ip))).then_some(kind)
    }
}

/// What kind of internal address `ip` is, if it is one.
pub fn internal(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => internal_v4(v4),
        IpAddr::V6(v6) => {
            // Addresses that carry an IPv4 address: mapped, compatible, NAT64, 6to4.
            if let Some(v4) = v6.to_ipv4_mapped() {
                return internal_v4(v4);
            }
            let s = v6.segments();
            if s[..6] == [0; 6] && !v6.is_loopback() && !v6.is_unspecified() {
                return internal_v4(Ipv4Addr::from(embedded(s[6], s[7])));
            }
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                return internal_v4(Ipv4Addr::from(embedded(s[6], s[7])));
            }
            if s[0] == 0x2002 {
                return internal_v4(Ipv4Addr::from(embedded(s[1], s[2])));
            }
            internal_v6(v6)
        }
    }
}

fn embedded(high: u16, low: u16) -> u32 {
    (u32::from(high) << 16) | u32::from(low)
}

fn internal_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_private() {
        Some("a private address")
    } else if ip.is_link_local() {
        Some("a link-local address (cloud metadata services live there)")
    } else if ip.is_unspecified() || a == 0 {
        Some("an unspecified address")
    } else if a == 100 && (64..128).contains(&b) {
        Some("a shared (carrier-grade NAT) address")
    } else if ip.is_multicast() || ip.is_broadcast() || a >= 240 {
        Some("a multicast, broadcast or reserved address")
    } else if a == 192 && b == 0 && ip.octets()[2] == 0 {
        Some("an IETF protocol address")
    } else if a == 198 && (b == 18 || b == 19) {
        Some("a benchmarking address")
    } else {
        None
    }
}

fn internal_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_unspecified() {
        Some("an unspecified address")
    } else if first & 0xfe00 == 0xfc00 {
        Some("a private (unique local) address")
    } else if first & 0xffc0 == 0xfe80 || first & 0xffc0 == 0xfec0 {
        Some("a link-local address")
    } else if ip.is_multicast() {
        Some("a multicast address")
    } else {
        None
    }
}

/// A request that may not be sent, and why (a sentence naming the host).
pub type Denial = String;

/// What `send` answers: the response and the future that ends with the connection.
pub type Sent = (
    http::Response<WasiBody>,
    Box<dyn Future<Output = Result<(), Error>> + Send>,
);

/// Resolves the request's host, refuses it when it resolves to no address the policy
/// allows, and sends it to the first allowed address that answers.
pub async fn send(
    mut request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
    policy: &NetworkPolicy,
) -> Result<Result<Sent, Error>, Denial> {
    let uri = request.uri().clone();
    let Some(host) = uri
        .host()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
    else {
        return Ok(Err(Error::HttpRequestUriInvalid));
    };
    let use_tls = uri.scheme() == Some(&Scheme::HTTPS);
    let port = uri.port_u16().unwrap_or(if use_tls { 443 } else { 80 });
    let connect_timeout = options
        .and_then(|o| o.connect_timeout)
        .unwrap_or(Duration::from_secs(600));
    let first_byte_timeout = options
        .and_then(|o| o.first_byte_timeout)
        .unwrap_or(Duration::from_secs(600));

    let resolved: Vec<SocketAddr> =
        match tokio::time::timeout(connect_timeout, tokio::net::lookup_host((host, port))).await {
            Ok(Ok(addrs)) => addrs.collect(),
            Ok(Err(_)) => return Ok(Err(dns_error())),
            Err(_) => return Ok(Err(Error::DnsTimeout)),
        };
    let (allowed, refused): (Vec<SocketAddr>, Vec<SocketAddr>) = resolved
        .into_iter()
        .partition(|a| policy.refuses(a.ip()).is_none());
    if allowed.is_empty() {
        if let Some(addr) = refused.first() {
            return Err(format!(
                "to {host}: it resolves to {}, {}, which plugins may not reach unless the operator allows its network (plugins.allow_internal_networks)",
                addr.ip(),
                policy.refuses(addr.ip()).unwrap_or("an internal address")
            ));
        }
        return Ok(Err(dns_error()));
    }

    let mut stream = Err(Error::ConnectionRefused);
    for addr in &allowed {
        stream = match tokio::time::timeout(connect_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(e)) => Err(Error::Connect(e)),
            Err(_) => Err(Error::ConnectionTimeout),
        };
        if stream.is_ok() {
            break;
        }
    }
    let stream = match stream {
        Ok(s) => s,
        Err(e) => return Ok(Err(e)),
    };
    let io: Box<dyn Io> = if use_tls {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.into(),
        };
        let config = match rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        {
            Ok(builder) => builder.with_root_certificates(roots).with_no_client_auth(),
            Err(_) => return Ok(Err(Error::ConfigurationError)),
        };
        let name = match rustls::pki_types::ServerName::try_from(host.to_string()) {
            Ok(name) => name,
            Err(e) => return Ok(Err(Error::InvalidDnsNameError(e))),
        };
        match tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, stream)
            .await
        {
            Ok(tls) => Box::new(tls),
            Err(e) => return Ok(Err(Error::Tls(e))),
        }
    } else {
        Box::new(stream)
    };
    let handshake = tokio::time::timeout(
        connect_timeout,
        hyper::client::conn::http1::Builder::new().handshake(TokioIo::new(io)),
    )
    .await;
    let (mut sender, conn) = match handshake {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => return Ok(Err(Error::from(e))),
        Err(_) => return Ok(Err(Error::ConnectionTimeout)),
    };
    // The request line carries the path only; the host travels in the Host header.
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    match http::Uri::builder().path_and_query(path).build() {
        Ok(u) => *request.uri_mut() = u,
        Err(_) => return Ok(Err(Error::HttpRequestUriInvalid)),
    }
    // The connection runs beside the exchange; its end is what the caller awaits.
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let _ = done_tx.send(conn.await);
    });
    let response =
        match tokio::time::timeout(first_byte_timeout, sender.send_request(request)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Ok(Err(Error::from(e))),
            Err(_) => return Ok(Err(Error::ConnectionReadTimeout)),
        };
    let response = response.map(|body| body.map_err(Error::from).boxed_unsync());
    let done = async move {
        match done_rx.await {
            Ok(Ok(())) | Err(_) => Ok(()),
            Ok(Err(e)) if e.is_timeout() => Err(Error::HttpResponseTimeout),
            Ok(Err(e)) => Err(Error::from(e)),
        }
    };
    Ok(Ok((
        response,
        Box::new(done) as Box<dyn Future<Output = Result<(), Error>> + Send>,
    )))
}

fn dns_error() -> Error {
    Error::DnsError {
        rcode: None,
        info_code: None,
    }
}

/// A connection, plain or TLS.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static> Io for T {}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn internal_addresses_are_refused_by_default() {
        let policy = NetworkPolicy::default();
        for internal in [
            "127.0.0.1",
            "127.8.9.10",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fc00::1",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::10.0.0.1",
            "2002:a9fe:a9fe::1",
        ] {
            assert!(policy.refuses(ip(internal)).is_some(), "{internal}");
        }
        for public in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert_eq!(policy.refuses(ip(public)), None, "{public}");
        }
    }

    #[test]
    fn the_operator_allows_networks_explicitly() {
        let policy = NetworkPolicy {
            allow_internal: vec![
                "127.0.0.0/8".parse().unwrap(),
                "10.1.0.0/16".parse().unwrap(),
            ],
        };
        assert_eq!(policy.refuses(ip("127.0.0.1")), None);
        assert_eq!(policy.refuses(ip("10.1.200.3")), None);
        assert!(policy.refuses(ip("10.2.0.1")).is_some());
        assert!(policy.refuses(ip("169.254.169.254")).is_some());
    }
}
