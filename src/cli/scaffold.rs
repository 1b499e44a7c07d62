//! `parcours plugin new`: a plugin project in Rust, Python or JavaScript that builds
//! anywhere with one command, from what the binary carries (the templates in
//! `sdk/scaffold/`, the SDK, the WIT and its WASI dependencies, the Python HTTP helper,
//! the pinned toolchains).
//!
//! Owns the layout of a new project: sources, contract, toolchain pins, a manifest whose
//! component path is the build's own output, a sample input with stubs, a local receiver
//! and a journey that uses the plugin, and a README whose commands work as written.
//! Must never read the source tree the binary was built from, and never write into a
//! folder that exists.

use std::path::{Path, PathBuf};

use clap::ValueEnum;

use super::assets::{PYTHON_LIB, SCAFFOLD, TOOLCHAINS, WASI_WIT, WIT};

/// The language a plugin is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    #[value(alias = "javascript")]
    Js,
}

/// What a plugin is: the world it targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum World {
    Action,
    DataSource,
    Functions,
}

impl World {
    fn as_str(self) -> &'static str {
        match self {
            World::Action => "action",
            World::DataSource => "data-source",
            World::Functions => "functions",
        }
    }
}

/// A template of `sdk/scaffold/`, by its path there.
fn template(path: &str) -> anyhow::Result<&'static [u8]> {
    SCAFFOLD
        .iter()
        .find(|(name, _)| *name == path)
        .map(|(_, bytes)| *bytes)
        .ok_or_else(|| anyhow::anyhow!("this build carries no template {path}"))
}

/// A template as text with its `{name}`-style placeholders filled.
fn filled(path: &str, values: &[(&str, &str)]) -> anyhow::Result<String> {
    let mut text = String::from_utf8_lossy(template(path)?).into_owned();
    for (key, value) in values {
        text = text.replace(&format!("{{{key}}}"), value);
    }
    Ok(text)
}

/// A carried file by its name in a group.
fn carried(group: &[(&str, &'static [u8])], name: &str) -> anyhow::Result<&'static [u8]> {
    group
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, b)| *b)
        .ok_or_else(|| anyhow::anyhow!("this build carries no {name}"))
}

/// The one command that builds a project of `lang`, run in its folder.
pub fn build_command(lang: Lang) -> &'static str {
    match lang {
        // `--target-dir` on the command line wins over CARGO_TARGET_DIR: the component is
        // where the manifest says, whatever the environment.
        Lang::Rust => "cargo build --release --target wasm32-wasip2 --target-dir target",
        Lang::Python => "python3 build.py",
        Lang::Js => "npm ci && npm run build",
    }
}

/// Writes the project `dir/name` and returns its path.
pub fn new_project(name: &str, lang: Lang, world: World, dir: &Path) -> anyhow::Result<PathBuf> {
    parcours_engine::compile::check_id(name).map_err(|m| anyhow::anyhow!("plugin name: {m}"))?;
    if world == World::Functions && name.contains('-') {
        anyhow::bail!(
            "plugin name: {name:?} cannot be a module of expressions (`{name}::f()`); a functions plugin's name has no `-` (try {:?})",
            name.replace('-', "_")
        );
    }
    let project = dir.join(name);
    if project.exists() {
        anyhow::bail!("{} already exists", project.display());
    }
    let id = name.replace('-', "_");
    let kind = world.as_str();
    let (component, memory_mb) = match lang {
        Lang::Rust => (format!("target/wasm32-wasip2/release/{id}.wasm"), "32"),
        // The interpreters (CPython, SpiderMonkey) need room of their own.
        Lang::Python | Lang::Js => (format!("build/{name}.wasm"), "64"),
    };
    let values = [
        ("name", name),
        ("id", id.as_str()),
        ("kind", kind),
        ("component", component.as_str()),
        ("memory_mb", memory_mb),
    ];
    let mut files: Vec<(String, Vec<u8>)> = vec![
        (
            "plugin.toml".into(),
            filled(&format!("shared/plugin-{kind}.toml"), &values)?.into_bytes(),
        ),
        (
            "journey.yaml".into(),
            filled(&format!("shared/journey-{kind}.yaml"), &values)?.into_bytes(),
        ),
        (
            "test/input.json".into(),
            filled(&format!("shared/input-{kind}.json"), &values)?.into_bytes(),
        ),
        (
            "test/stubs.json".into(),
            template(&format!("shared/stubs-{kind}.json"))?.to_vec(),
        ),
        (
            "test/receiver.py".into(),
            template("shared/receiver.py")?.to_vec(),
        ),
        (
            "README.md".into(),
            readme(name, lang, world, &component).into_bytes(),
        ),
    ];
    match lang {
        Lang::Rust => rust_files(name, &id, world, &mut files)?,
        Lang::Python => python_files(world, &mut files)?,
        Lang::Js => js_files(&values, world, &mut files)?,
    }
    fs_err::create_dir_all(&project)?;
    for (relative, bytes) in &files {
        let path = project.join(relative);
        if let Some(parent) = path.parent() {
            fs_err::create_dir_all(parent)?;
        }
        fs_err::write(&path, bytes)?;
    }
    if lang == Lang::Rust {
        // The SDK and the WIT it is built against travel with the project: it builds
        // without the Parcours source tree, against this engine's plugin contract.
        super::assets::write_sdk(&project.join("parcours-sdk"))?;
    }
    Ok(project)
}

fn rust_files(
    name: &str,
    id: &str,
    world: World,
    files: &mut Vec<(String, Vec<u8>)>,
) -> anyhow::Result<()> {
    let feature = world.as_str();
    files.push((
        "Cargo.toml".into(),
        format!(
            r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"

# A workspace of its own.
[workspace]

[lib]
name = "{id}"
crate-type = ["cdylib"]

[dependencies]
parcours-sdk = {{ path = "parcours-sdk", features = ["{feature}"] }}
serde = {{ version = "1", features = ["derive"] }}

[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
strip = true
"#
        )
        .into_bytes(),
    ));
    // The toolchain this engine was built with, with the WebAssembly target.
    files.push((
        "rust-toolchain.toml".into(),
        format!(
            "[toolchain]\nchannel = \"{}\"\ntargets = [\"wasm32-wasip2\"]\n",
            super::assets::RUST_TOOLCHAIN
        )
        .into_bytes(),
    ));
    files.push(("Cargo.lock".into(), cargo_lock(name)?.into_bytes()));
    files.push((".gitignore".into(), b"/target\n".to_vec()));
    files.push((
        "src/lib.rs".into(),
        template(&format!("rust/{feature}.rs"))?.to_vec(),
    ));
    Ok(())
}

/// The lock file of the SDK's dependencies (the versions the engine's own plugins are
/// built with) for a project named `name`, in the order cargo writes it (packages by
/// name), so that a build leaves it as it is.
fn cargo_lock(name: &str) -> anyhow::Result<String> {
    let text = String::from_utf8_lossy(template("rust/Cargo.lock")?)
        .replace("{version}", env!("CARGO_PKG_VERSION"));
    let separator = "\n[[package]]\n";
    let mut blocks = text.split(separator);
    let header = blocks.next().unwrap_or_default().to_string();
    let mut packages: Vec<String> = blocks
        .map(|b| {
            b.replacen(r#"name = "{name}""#, &format!("name = {name:?}"), 1)
                .trim_end()
                .to_string()
        })
        .collect();
    // Stable: versions of one name keep the order cargo wrote.
    packages.sort_by_key(|b| {
        b.lines()
            .next()
            .unwrap_or_default()
            .trim_start_matches("name = ")
            .trim_matches('"')
            .to_string()
    });
    Ok(packages
        .iter()
        .fold(header, |out, p| format!("{out}{separator}{p}\n")))
}

fn python_files(world: World, files: &mut Vec<(String, Vec<u8>)>) -> anyhow::Result<()> {
    let kind = world.as_str();
    files.push(("build.py".into(), template("python/build.py")?.to_vec()));
    // The pinned toolchain, without the repository's own comment.
    let pins: String = String::from_utf8_lossy(carried(TOOLCHAINS, "requirements.txt")?)
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    files.push((
        "requirements.txt".into(),
        format!("# The plugin toolchain, pinned; build.py installs it in .venv/.\n{pins}")
            .into_bytes(),
    ));
    files.push((
        "src/app.py".into(),
        template(&format!("python/{kind}.py"))?.to_vec(),
    ));
    if world != World::Functions {
        files.push((
            "src/parcours_http.py".into(),
            carried(PYTHON_LIB, "parcours_http.py")?.to_vec(),
        ));
    }
    files.push((
        "wit/world.wit".into(),
        template("python/world.wit")?.to_vec(),
    ));
    for (name, bytes) in WIT {
        files.push((format!("wit/deps/{name}"), bytes.to_vec()));
    }
    for (name, bytes) in WASI_WIT {
        files.push((format!("wit/deps/{name}"), bytes.to_vec()));
    }
    files.push((".gitignore".into(), b"/.venv/\n/build/\n".to_vec()));
    Ok(())
}

fn js_files(
    values: &[(&str, &str)],
    world: World,
    files: &mut Vec<(String, Vec<u8>)>,
) -> anyhow::Result<()> {
    files.push(("build.mjs".into(), template("js/build.mjs")?.to_vec()));
    files.push((
        "package.json".into(),
        filled("js/package.json", values)?.into_bytes(),
    ));
    // The lock of the repository's JavaScript plugins, under this project's name: `npm
    // ci` installs exactly the versions the engine's own plugins are built with.
    let name = values
        .iter()
        .find(|(k, _)| *k == "name")
        .map(|(_, v)| *v)
        .unwrap_or_default();
    let mut lock: serde_json::Value =
        serde_json::from_slice(carried(TOOLCHAINS, "package-lock.json")?)?;
    lock["name"] = name.into();
    lock["version"] = "0.1.0".into();
    if let Some(root) = lock["packages"].get_mut("") {
        root["name"] = name.into();
        root["version"] = "0.1.0".into();
    }
    files.push((
        "package-lock.json".into(),
        (serde_json::to_string_pretty(&lock)? + "\n").into_bytes(),
    ));
    files.push((
        "src/index.js".into(),
        template(&format!("js/{}.js", world.as_str()))?.to_vec(),
    ));
    for (name, bytes) in WIT {
        files.push((format!("wit/{name}"), bytes.to_vec()));
    }
    files.push((".gitignore".into(), b"/node_modules/\n/build/\n".to_vec()));
    Ok(())
}

/// The README: the commands from an empty folder to a journey that uses the plugin.
fn readme(name: &str, lang: Lang, world: World, component: &str) -> String {
    let kind = world.as_str();
    let id = name.replace('-', "_");
    let build = build_command(lang);
    let (language, toolchain, source) = match lang {
        Lang::Rust => (
            "Rust",
            "Rust with the `wasm32-wasip2` target (`rust-toolchain.toml` pins the version; where rustup does not add targets by itself, run `rustup target add wasm32-wasip2` once)",
            "`src/lib.rs`, against the SDK in `parcours-sdk/`",
        ),
        Lang::Python => (
            "Python",
            "Python 3.10 or later; `build.py` installs componentize-py (pinned in `requirements.txt`) in `.venv/`",
            "`src/app.py`, with the HTTP helper `src/parcours_http.py`",
        ),
        Lang::Js => (
            "JavaScript",
            "Node.js 18 or later with npm; `npm ci` installs componentize-js (pinned in `package-lock.json`)",
            "`src/index.js`",
        ),
    };
    let sample = match world {
        World::Action => {
            "It POSTs `{profile_id, journey_id, message}` to the manifest's `url` with the step's `Idempotency-Key`."
        }
        World::DataSource => {
            "`lookup(\"NAME\", key)` reads `{url}{key}` as JSON (404: no record), cached 60 s."
        }
        World::Functions => "Expressions call `NAME::double(n)`.",
    }
    .replace("NAME", name);
    let send = match world {
        World::Action => format!(
            r#"parcours event send --type {name}_tried --profile ada --data '{{"text": "Hi"}}'"#
        ),
        World::DataSource => format!("parcours event send --type {name}_tried --profile ada"),
        World::Functions => {
            format!(r#"parcours event send --type {name}_tried --profile ada --data '{{"n": 21}}'"#)
        }
    };
    // Only actions have parameters, and only journeys' actions are pinned to a version:
    // expressions call the newest installed data source or function plugin.
    let (declares, upgrade) = match world {
        World::Action => (
            "(hosts, memory, time) and the schema of its parameters",
            format!(
                "the install names the
journeys that still take entries on the older one (a published journey keeps the plugin
versions it was published with), and `parcours journey upgrade-plugins try_{id}` publishes
them against the new one."
            ),
        ),
        World::DataSource | World::Functions => (
            "(hosts, memory, time)",
            "expressions call the newest
installed version of a data source or function plugin from then on; published journeys
need nothing new."
                .to_string(),
        ),
    };
    format!(
        r#"# {name}

A Parcours {kind} plugin in {language}. {sample}

The code is in {source}; the manifest, `plugin.toml`, declares what the plugin may do
{declares}. `wit/` holds the contract of the
engine that created this project.

## Build

Needs {toolchain}.

```sh
{build}
```

writes `{component}`, the component `plugin.toml` names. Nothing is written beside the
sources.

## Test

```sh
parcours plugin test plugin.toml --input test/input.json --stubs test/stubs.json
```

runs one call in the engine's sandbox, with the HTTP answers of `test/stubs.json`, and
prints the result, the logs, each request with its headers and body, and the time and
memory used. Against a real endpoint instead: start the local receiver, which prints
every request it gets, and let the plugin reach it:

```sh
python3 test/receiver.py &
parcours plugin test plugin.toml --input test/input.json --allow-network 127.0.0.0/8
```

## Run in an engine

```sh
parcours serve --plugin-allow-network 127.0.0.0/8 &
parcours journey validate journey.yaml
parcours plugin install plugin.toml
parcours journey publish journey.yaml
{send}
```

The engine refuses internal addresses unless told (`--plugin-allow-network`); point
`url` and `allowed_hosts` in `plugin.toml` at your service to go further. A new
version: raise `version` in `plugin.toml`, build and install it; {upgrade}
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_action_readme_speaks_of_parameters_and_pinned_versions() {
        for lang in [Lang::Rust, Lang::Python, Lang::Js] {
            let action = readme("greet", lang, World::Action, "x.wasm");
            assert!(action.contains("the schema of its parameters"));
            assert!(action.contains("upgrade-plugins try_greet"));
            for world in [World::DataSource, World::Functions] {
                let other = readme("greet", lang, world, "x.wasm");
                assert!(!other.contains("parameters"), "{other}");
                assert!(!other.contains("upgrade-plugins"), "{other}");
                assert!(other.contains("the newest\ninstalled version"), "{other}");
            }
        }
    }

    #[test]
    fn every_language_and_world_has_its_templates() {
        for lang in [Lang::Rust, Lang::Python, Lang::Js] {
            for world in [World::Action, World::DataSource, World::Functions] {
                let dir = tempfile::tempdir().unwrap();
                let project = new_project("probe", lang, world, dir.path())
                    .unwrap_or_else(|e| panic!("{lang:?} {world:?}: {e}"));
                let manifest = std::fs::read_to_string(project.join("plugin.toml")).unwrap();
                assert!(!manifest.contains("{name}"), "{manifest}");
                let parsed = parcours_engine::plugins::parse_manifest(&manifest)
                    .unwrap_or_else(|e| panic!("{lang:?} {world:?}: {e}"));
                assert_eq!(parsed.kind.as_str(), world.as_str());
                let journey = std::fs::read_to_string(project.join("journey.yaml")).unwrap();
                assert!(!journey.contains("{name}") && !journey.contains("{id}"));
            }
        }
    }

    #[test]
    fn the_javascript_template_pins_what_the_lock_holds() {
        let package: serde_json::Value =
            serde_json::from_slice(template("js/package.json").unwrap()).unwrap();
        let lock: serde_json::Value =
            serde_json::from_slice(carried(TOOLCHAINS, "package-lock.json").unwrap()).unwrap();
        assert_eq!(
            package["dependencies"], lock["packages"][""]["dependencies"],
            "sdk/scaffold/js/package.json and examples/plugins/js/package-lock.json"
        );
    }

    /// What cargo itself wrote for a project named `loyaltyrs` is what the template
    /// gives for that name.
    #[test]
    fn the_lock_file_is_in_cargos_order_for_any_name() {
        let lock = cargo_lock("zz-last").unwrap();
        assert!(lock.trim_end().ends_with("name = \"zz-last\"\nversion = \"0.1.0\"\ndependencies = [\n \"parcours-sdk\",\n \"serde\",\n]"), "{lock}");
        let lock = cargo_lock("aa-first").unwrap();
        let first = lock.find("[[package]]").unwrap();
        assert!(
            lock[first..].starts_with("[[package]]\nname = \"aa-first\""),
            "{lock}"
        );
        assert!(lock.starts_with("# This file is automatically @generated by Cargo."));
    }

    #[test]
    fn a_functions_plugin_name_must_be_a_module_name() {
        let dir = tempfile::tempdir().unwrap();
        let e = new_project("my-fns", Lang::Python, World::Functions, dir.path()).unwrap_err();
        assert!(e.to_string().contains("\"my_fns\""), "{e}");
    }
}
