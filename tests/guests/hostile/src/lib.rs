//! A test action that does what its `mode` parameter says: behave, loop forever, grow
//! memory without bound, recurse without end (on the WebAssembly stack, or with big
//! frames on the stack Rust keeps in linear memory), trap, return an oversized result
//! (over the manifest's limit, or over what wasmtime lets one call copy), call a host it
//! is not allowed to, read a file, or read an environment variable.

use parcours_sdk::action::{Action, Context};
use parcours_sdk::{Error, Value, json};
use serde::Deserialize;

#[derive(Deserialize)]
pub struct Params {
    pub mode: String,
    #[serde(default)]
    pub url: Option<String>,
}

pub struct Hostile;

/// Recurses until `depth` reaches `limit` (never, in practice: the stack runs out first).
#[inline(never)]
fn recurse(depth: u64, limit: u64, pad: &mut [u8; 256]) -> u64 {
    pad[(depth % 256) as usize] = depth as u8;
    if depth == limit {
        return depth;
    }
    let next = recurse(depth + 1, limit, pad);
    next.wrapping_add(pad[0] as u64)
}

/// Recurses with a 4 KiB array in each frame: Rust keeps such frames on the stack it
/// manages in linear memory (1 MiB), which runs out long before the WebAssembly stack.
#[inline(never)]
fn recurse_in_memory(depth: u64) -> u64 {
    let mut frame = [0u8; 4096];
    frame[(depth % 4096) as usize] = depth as u8;
    let frame = std::hint::black_box(frame);
    if depth == u64::MAX {
        return 0;
    }
    recurse_in_memory(depth + 1).wrapping_add(u64::from(frame[(depth % 7) as usize]))
}

impl Action for Hostile {
    type Params = Params;

    fn invoke(ctx: &Context, p: Params) -> Result<Value, Error> {
        match p.mode.as_str() {
            "ok" => Ok(json!({"ok": true, "profile": ctx.profile_id})),
            "loop" => {
                let mut x: u64 = 0;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            "memory" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "recursion" => {
                let mut pad = [0u8; 256];
                Ok(json!(recurse(0, std::hint::black_box(u64::MAX), &mut pad)))
            }
            "deep_stack" => Ok(json!(recurse_in_memory(0))),
            "trap" => panic!("the hostile plugin panics on purpose"),
            "big_output" => Ok(json!("x".repeat(1 << 20))),
            "huge_output" => Ok(json!("x".repeat(12 << 20))),
            #[cfg(target_os = "wasi")]
            "http" => {
                let url = p.url.unwrap_or_else(|| "http://example.com/".into());
                let resp = parcours_sdk::http::Request::get(&url).send()?;
                Ok(json!({"status": resp.status}))
            }
            "file" => match std::fs::read_to_string("/etc/passwd") {
                Ok(text) => Ok(json!({"leaked": text})),
                Err(e) => Err(Error::Permanent(format!("reading /etc/passwd: {e}"))),
            },
            "env" => match std::env::var("HOME") {
                Ok(v) => Ok(json!({"leaked": v})),
                Err(e) => Err(Error::Permanent(format!("reading $HOME: {e}"))),
            },
            other => Err(Error::InvalidInput(format!("unknown mode {other:?}"))),
        }
    }
}

parcours_sdk::export_action!(Hostile);
