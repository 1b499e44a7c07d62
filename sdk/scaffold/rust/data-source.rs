//! A data source: `lookup("<name>", key)` reads `{url}{key}` as JSON.
//!
//! A 404 answer means "no record"; answers are cached for `ttl_seconds`.

use parcours_sdk::data_source::{Context, DataSource, Found};
use parcours_sdk::Error;
use parcours_sdk::http::Request;

pub struct Plugin;

impl DataSource for Plugin {
    fn fetch(_ctx: &Context, key: &str) -> Result<Found, Error> {
        let url = parcours_sdk::config("url")
            .ok_or_else(|| Error::Permanent("the manifest sets no url".into()))?;
        let encoded: String = key
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        let resp = Request::get(&format!("{url}{encoded}")).send()?;
        if resp.status == 404 {
            return Ok(Found { value: None, ttl_seconds: 60 });
        }
        let record = resp.error_for_status()?.json()?;
        Ok(Found { value: Some(record), ttl_seconds: 60 })
    }
}

parcours_sdk::export_data_source!(Plugin);
