//! Builds the first-party plugins and the test guests to WebAssembly components (profile `guest`,
//! `wasm32-wasip2`), so that `cargo run -- serve --examples` and `cargo test` find them
//! without an extra step. Each plugin is built by its own cargo invocation, so that each
//! gets the SDK with only its own world (features unify within one build).
//!
//! Outputs, as compile-time environment variables of this package:
//! - `PARCOURS_BUILTIN_PLUGINS_DIR`: one folder per first-party plugin (manifest +
//!   component);
//! - `PARCOURS_TEST_PLUGINS_DIR`: the same for the test guests.
//!
//! A toolchain without the `wasm32-wasip2` target (rustup does not install the targets of
//! `rust-toolchain.toml` by itself when `RUSTUP_AUTO_INSTALL=0`) gets it through
//! `rustup target add` before any guest is built; without rustup, the build stops at once
//! with the one command to run. A guest that fails to build stops the build with its
//! compiler errors in the message, not buried above it.

use std::path::{Path, PathBuf};
use std::process::Command;

/// (package, folder with its manifest, component file name, test-only)
const GUESTS: &[(&str, &str, &str, bool)] = &[
    (
        "parcours-plugin-webhook",
        "plugins/webhook",
        "parcours_plugin_webhook.wasm",
        false,
    ),
    (
        "parcours-plugin-http-json",
        "plugins/http-json",
        "parcours_plugin_http_json.wasm",
        false,
    ),
    (
        "parcours-plugin-std",
        "plugins/std",
        "parcours_plugin_std.wasm",
        false,
    ),
    (
        "parcours-test-hostile",
        "tests/guests/hostile",
        "parcours_test_hostile.wasm",
        true,
    ),
];

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    for watched in ["wit", "sdk", "plugins", "tests/guests"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    // A folder of its own, so the nested build never waits on the outer one's lock.
    let target_dir = root.join("target").join("guests");
    ensure_wasm_target();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let builtin = out.join("plugins");
    let test = out.join("test-plugins");
    for (package, folder, wasm, test_only) in GUESTS {
        let output = Command::new(&cargo)
            .current_dir(&root)
            .args([
                "build",
                "--profile",
                "guest",
                "--target",
                "wasm32-wasip2",
                "--package",
                package,
            ])
            .arg("--target-dir")
            .arg(&target_dir)
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("CARGO_BUILD_TARGET")
            // `cargo clippy` runs build scripts with its wrapper set: the guests are
            // built, not linted, here.
            .env_remove("RUSTC_WORKSPACE_WRAPPER")
            .env_remove("RUSTC_WRAPPER")
            .env_remove("CLIPPY_ARGS")
            .output()
            .expect("running cargo to build the plugins");
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            panic!(
                "building {package} for wasm32-wasip2 failed:\n{}",
                errors_of(&stderr)
            );
        }
        let dest = if *test_only { &test } else { &builtin };
        let name = Path::new(folder).file_name().expect("folder name");
        let dir = dest.join(name);
        std::fs::create_dir_all(&dir).expect("creating the plugin folder");
        let built = target_dir.join("wasm32-wasip2/guest").join(wasm);
        std::fs::copy(&built, dir.join(wasm))
            .unwrap_or_else(|e| panic!("copying {}: {e}", built.display()));
        std::fs::copy(
            root.join(folder).join("plugin.toml"),
            dir.join("plugin.toml"),
        )
        .expect("copying the manifest");
    }
    println!(
        "cargo:rustc-env=PARCOURS_BUILTIN_PLUGINS_DIR={}",
        builtin.display()
    );
    println!(
        "cargo:rustc-env=PARCOURS_TEST_PLUGINS_DIR={}",
        test.display()
    );
}

/// The sysroot of the compiler cargo runs, where installed targets live.
fn sysroot() -> Option<PathBuf> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

fn wasm_target_installed() -> bool {
    sysroot().is_some_and(|root| root.join("lib/rustlib/wasm32-wasip2/lib").is_dir())
}

/// Installs the wasm32-wasip2 target through rustup when it is missing, or stops the build
/// at once, naming the command to run.
fn ensure_wasm_target() {
    if wasm_target_installed() {
        return;
    }
    // Under a rustup proxy, RUSTUP_TOOLCHAIN names the toolchain this build runs with.
    let added = Command::new("rustup")
        .args(["target", "add", "wasm32-wasip2"])
        .status()
        .is_ok_and(|status| status.success());
    if added && wasm_target_installed() {
        println!(
            "cargo:warning=installed the wasm32-wasip2 target (rustup target add wasm32-wasip2)"
        );
        return;
    }
    panic!(
        "the wasm32-wasip2 target, needed to build the first-party plugins, is not installed \
         for this toolchain and rustup could not add it; run `rustup target add wasm32-wasip2` \
         (or install the target with your distribution's Rust) and build again"
    );
}

/// The lines of a failed guest build that say why: its `error` lines and what follows each,
/// or its last lines when it printed none.
fn errors_of(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().collect();
    let mut picked = Vec::new();
    let mut follow = 0;
    for line in &lines {
        if line.starts_with("error") {
            follow = 6;
        }
        if follow > 0 {
            picked.push(*line);
            follow -= 1;
        }
    }
    if picked.is_empty() {
        picked = lines[lines.len().saturating_sub(20)..].to_vec();
    }
    picked.join("\n")
}
