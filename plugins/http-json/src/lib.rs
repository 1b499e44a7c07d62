//! `http-json`: a data source that fetches `url_template` with `{key}` replaced by the
//! (percent-encoded) key, optionally with an authorization header built from a secret,
//! and returns the JSON body. 404 means "no such record"; answers are cached for
//! `ttl_seconds`.

use parcours_sdk::Error;
use parcours_sdk::data_source::{Context, DataSource, Found};

/// Percent-encodes a key for a URL path or query.
pub fn encode(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The URL for a key.
pub fn url_for(template: &str, key: &str) -> String {
    template.replace("{key}", &encode(key))
}

pub struct HttpJson;

impl DataSource for HttpJson {
    #[cfg(target_family = "wasm")]
    fn fetch(_ctx: &Context, key: &str) -> Result<Found, Error> {
        use parcours_sdk::http::Request;
        let template = parcours_sdk::config("url_template")
            .ok_or_else(|| Error::Permanent("config `url_template` is not set".into()))?;
        let ttl_seconds = parcours_sdk::config("ttl_seconds")
            .and_then(|t| t.parse().ok())
            .unwrap_or(60);
        let mut req = Request::get(&url_for(&template, key)).header("accept", "application/json");
        if let Some(token) = parcours_sdk::secret("token") {
            let header =
                parcours_sdk::config("auth_header").unwrap_or_else(|| "authorization".into());
            let scheme = parcours_sdk::config("auth_scheme").unwrap_or_else(|| "Bearer".into());
            req = req.header(&header, &format!("{scheme} {token}"));
        }
        let resp = req.send()?;
        if resp.status == 404 {
            return Ok(Found {
                value: None,
                ttl_seconds,
            });
        }
        let resp = resp.error_for_status()?;
        Ok(Found {
            value: Some(resp.json()?),
            ttl_seconds,
        })
    }

    #[cfg(not(target_family = "wasm"))]
    fn fetch(_ctx: &Context, _key: &str) -> Result<Found, Error> {
        Err(Error::Permanent(
            "http-json runs as a WebAssembly component".into(),
        ))
    }
}

parcours_sdk::export_data_source!(HttpJson);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_encoded_into_the_template() {
        assert_eq!(url_for("http://h/users/{key}", "ada"), "http://h/users/ada");
        assert_eq!(
            url_for("http://h/u?id={key}", "a b/c"),
            "http://h/u?id=a%20b%2Fc"
        );
    }
}
