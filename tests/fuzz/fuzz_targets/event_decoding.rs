//! Event ingestion decoding, as `POST /v1/events` (native and CloudEvents) and
//! `POST /v1/segment/{kind}` decode their bodies: any bytes. Must never panic; bad input
//! is a located 4xx error.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use parcours_engine::Settings;
use parcours_engine::api::{decode_events, decode_segment};

fuzz_target!(|data: &[u8]| {
    static SETTINGS: OnceLock<Settings> = OnceLock::new();
    let settings = SETTINGS.get_or_init(Settings::default);
    if data.len() > settings.max_body_bytes {
        return;
    }
    for cloud in [false, true] {
        if let Err(e) = decode_events(data, cloud, settings) {
            assert!(e.status.is_client_error(), "{e:?}");
        }
    }
    for kind in ["batch", "track", "identify", "page", "alias"] {
        if let Err(e) = decode_segment(kind, data, settings.max_batch_events) {
            assert!(e.status.is_client_error(), "{e:?}");
        }
    }
});
