//! Builds the first-party plugins and the test guests to WebAssembly (profile `guest`):
//! the SDK plugins to core modules (`wasm32-unknown-unknown`, encoded as components when
//! the host installs them), the sandbox test guests to components (`wasm32-wasip2`), so
//! that `cargo run -- serve --examples` and `cargo test` find them without an extra step.
//! Each plugin is built by its own cargo invocation, so that each gets the SDK with only
//! its own world (features unify within one build).
//!
//! Outputs, as compile-time environment variables of this package:
//! - `PARCOURS_BUILTIN_PLUGINS_DIR`: one folder per first-party plugin (manifest +
//!   component);
//! - `PARCOURS_TEST_PLUGINS_DIR`: the same for the test guests;
//! - `PARCOURS_ASSETS`: a Rust file (`include!`d by `src/cli/assets.rs`) listing what the
//!   binary carries, each file by `include_bytes!` so that rustc rebuilds the binary when
//!   one changes: the first-party plugins, the example journeys and resources, the SDK's
//!   sources and the WIT (for `plugin new`). The binary then runs from any folder.
//!
//! A toolchain without the `wasm32-wasip2` or `wasm32-unknown-unknown` target (rustup
//! does not install the targets of `rust-toolchain.toml` by itself when
//! `RUSTUP_AUTO_INSTALL=0`) gets it through `rustup target add` before any guest is
//! built; without rustup, the build stops at once with the one command to run. A guest
//! that fails to build stops the build with its compiler errors in the message, not
//! buried above it.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The target of plugins that need no WASI beyond what they import by name
/// (`wasi:http`): a core module, which the host encodes as a component at install, and
/// which imports only what its code calls (see `engine/src/plugins/encode.rs`).
const CORE: &str = "wasm32-unknown-unknown";
/// The target of guests that reach WASI through the standard library (the sandbox tests).
const WASIP2: &str = "wasm32-wasip2";

/// (package, folder with its manifest, component file name, test-only, target)
const GUESTS: &[(&str, &str, &str, bool, &str)] = &[
    (
        "parcours-plugin-webhook",
        "plugins/webhook",
        "parcours_plugin_webhook.wasm",
        false,
        CORE,
    ),
    (
        "parcours-plugin-http-json",
        "plugins/http-json",
        "parcours_plugin_http_json.wasm",
        false,
        CORE,
    ),
    (
        "parcours-plugin-std",
        "plugins/std",
        "parcours_plugin_std.wasm",
        false,
        CORE,
    ),
    (
        "parcours-plugin-sms",
        "plugins/sms",
        "parcours_plugin_sms.wasm",
        false,
        CORE,
    ),
    (
        "parcours-plugin-push",
        "plugins/push",
        "parcours_plugin_push.wasm",
        false,
        CORE,
    ),
    (
        "parcours-test-hostile",
        "tests/guests/hostile",
        "parcours_test_hostile.wasm",
        true,
        WASIP2,
    ),
    (
        "parcours-test-lean",
        "tests/guests/lean",
        "parcours_test_lean.wasm",
        true,
        WASIP2,
    ),
    (
        "parcours-test-echo",
        "tests/guests/echo",
        "parcours_test_echo.wasm",
        true,
        CORE,
    ),
];

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    for watched in [
        "wit",
        "sdk",
        "plugins",
        "tests/guests",
        "examples/journeys",
        "examples/resources.yaml",
        "examples/plugins/wit",
        "examples/plugins/python/lib",
        "examples/plugins/python/requirements.txt",
        "examples/plugins/js/package-lock.json",
        "rust-toolchain.toml",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    // A folder of its own, so the nested build never waits on the outer one's lock.
    let target_dir = root.join("target").join("guests");
    ensure_wasm_targets();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let builtin = out.join("plugins");
    let test = out.join("test-plugins");
    for (package, folder, wasm, test_only, target) in GUESTS {
        let output = Command::new(&cargo)
            .current_dir(&root)
            .args([
                "build",
                "--profile",
                "guest",
                "--target",
                target,
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
                "building {package} for {target} failed:\n{}",
                errors_of(&stderr)
            );
        }
        let dest = if *test_only { &test } else { &builtin };
        let name = Path::new(folder).file_name().expect("folder name");
        let dir = dest.join(name);
        std::fs::create_dir_all(&dir).expect("creating the plugin folder");
        let built = target_dir.join(target).join("guest").join(wasm);
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
    let assets = out.join("assets.rs");
    std::fs::write(&assets, assets_source(&root, &builtin)).expect("writing assets.rs");
    println!("cargo:rustc-env=PARCOURS_ASSETS={}", assets.display());
    println!(
        "cargo:rustc-env=PARCOURS_TEST_PLUGINS_DIR={}",
        test.display()
    );
}

/// Every file under `dir` (recursively), as (path relative to `dir` with `/`, path).
fn files_under(dir: &Path) -> Vec<(String, PathBuf)> {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<(String, PathBuf)>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
            .map(|e| e.expect("a folder entry").path())
            .collect();
        entries.sort();
        for path in entries {
            // Caches a toolchain writes beside sources are not sources.
            if path
                .file_name()
                .is_some_and(|n| n == "__pycache__" || n == "node_modules")
            {
                continue;
            }
            if path.is_dir() {
                walk(&path, base, out);
            } else {
                let relative = path
                    .strip_prefix(base)
                    .expect("under its base")
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                out.push((relative, path));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out
}

/// The Rust source of the assets: one `(relative path, bytes)` table per group.
fn assets_source(root: &Path, builtin: &Path) -> String {
    let file = |relative: &str| {
        let name = relative.rsplit('/').next().unwrap_or(relative).to_string();
        (name, root.join(relative))
    };
    let groups: [(&str, Vec<(String, PathBuf)>); 8] = [
        ("BUILTIN_PLUGINS", files_under(builtin)),
        ("EXAMPLES", {
            let mut files: Vec<(String, PathBuf)> = files_under(&root.join("examples/journeys"))
                .into_iter()
                .map(|(name, path)| (format!("journeys/{name}"), path))
                .collect();
            files.push((
                "resources.yaml".into(),
                root.join("examples/resources.yaml"),
            ));
            files
        }),
        ("SDK_SOURCES", files_under(&root.join("sdk/src"))),
        ("WIT", files_under(&root.join("wit"))),
        // What `plugin new` writes besides the SDK: the templates, and for Python and
        // JavaScript the WASI interfaces, the HTTP helper and the pinned toolchains.
        ("SCAFFOLD", files_under(&root.join("sdk/scaffold"))),
        (
            "WASI_WIT",
            files_under(&root.join("examples/plugins/wit/deps")),
        ),
        (
            "PYTHON_LIB",
            files_under(&root.join("examples/plugins/python/lib")),
        ),
        (
            "TOOLCHAINS",
            vec![
                file("examples/plugins/python/requirements.txt"),
                file("examples/plugins/js/package-lock.json"),
            ],
        ),
    ];
    let mut out = String::from("// Generated by build.rs: what the binary carries.\n");
    // The toolchain this repository pins, which `plugin new` pins in a Rust project.
    let pins = std::fs::read_to_string(root.join("rust-toolchain.toml"))
        .expect("reading rust-toolchain.toml");
    let channel = pins
        .lines()
        .find_map(|l| {
            let value = l.trim().strip_prefix("channel")?.trim().strip_prefix('=')?;
            Some(value.trim().trim_matches('"').to_string())
        })
        .expect("rust-toolchain.toml names a channel");
    out.push_str(&format!("pub static RUST_TOOLCHAIN: &str = {channel:?};\n"));
    for (name, files) in groups {
        out.push_str(&format!("pub static {name}: &[(&str, &[u8])] = &[\n"));
        for (relative, path) in files {
            out.push_str(&format!(
                "    ({relative:?}, include_bytes!({:?})),\n",
                path.display().to_string()
            ));
        }
        out.push_str("];\n");
    }
    out
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

fn wasm_target_installed(target: &str) -> bool {
    sysroot().is_some_and(|root| root.join("lib/rustlib").join(target).join("lib").is_dir())
}

/// Installs the WebAssembly targets the guests are built for through rustup when they
/// are missing, or stops the build at once, naming the command to run.
fn ensure_wasm_targets() {
    for target in [WASIP2, CORE] {
        if wasm_target_installed(target) {
            continue;
        }
        // Under a rustup proxy, RUSTUP_TOOLCHAIN names the toolchain this build runs with.
        let added = Command::new("rustup")
            .args(["target", "add", target])
            .status()
            .is_ok_and(|status| status.success());
        if added && wasm_target_installed(target) {
            println!("cargo:warning=installed the {target} target (rustup target add {target})");
            continue;
        }
        panic!(
            "the {target} target, needed to build the first-party plugins, is not installed \
             for this toolchain and rustup could not add it; run `rustup target add {target}` \
             (or install the target with your distribution's Rust) and build again"
        );
    }
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
