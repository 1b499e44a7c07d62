//! Micro-benchmarks, each beside its floor measured in the same run:
//! - an inline condition as the engine evaluates it (the compiled fast path), as rhai
//!   alone evaluates it (the general path), and, with `--features zen`, as
//!   zen-expression (GoRules) evaluates it, vs the same logic as a native closure over the
//!   same JSON;
//! - an action plugin call on a fresh isolated instance (the engine's way) vs a call of
//!   the built-in `log` action (no WebAssembly: the floor of the executor path);
//! - a bare wasmtime instantiation and call of an empty export of a core module, with
//!   the same pooling allocator and epoch interruption (the floor of any plugin call);
//! - the same SDK action built as a core module (`wasm32-unknown-unknown`, encoded as a
//!   component at install: no WASI imports, the SDK's arena allocator) beside the same
//!   SDK built for `wasm32-wasip2` (`hostile`'s `ok` mode), and the `no_std` lean guest;
//! - the same call for a Rust, a Python (componentize-py) and a JavaScript
//!   (componentize-js) guest, on a fresh instance and on a warm reused one (manifest
//!   `[instances] reuse = true`). The Python and JavaScript guests are built by
//!   `examples/plugins/build.sh` (python3 and node needed).
//!
//! - a message rendered as a `message` node renders it (the examples' welcome email:
//!   subject, text and HTML in Liquid, the HTML's values escaped) vs the same three
//!   strings built with `format!` from the same JSON (the floor).
//!
//! `cargo bench --bench micro`

mod support;

use parcours_engine::actions::{ActionCall, ActionRegistry};
use parcours_engine::expr::{EvalEnv, Expr, ExprEngine, ScopeData};
use parcours_engine::settings::{ExprLimits, PluginSettings};
use serde_json::{Value, json};

fn main() {
    divan::main();
}

const CONDITION: &str =
    r#"event.data.amount > 100 && profile.tier == "gold" && event.data.items.len() >= 2"#;

fn inputs() -> (Value, Value) {
    (
        json!({"type": "order", "data": {"amount": 150, "items": ["a", "b", "c"]}}),
        json!({"tier": "gold", "email": "a@example.com"}),
    )
}

fn env() -> EvalEnv {
    EvalEnv {
        now: "2026-03-02T08:00:00Z".parse().expect("time"),
        tz: jiff::tz::TimeZone::UTC,
        call: None,
    }
}

/// Runs `eval` on the compiled condition with the event and profile as its scope.
fn bench_condition<T>(
    bencher: divan::Bencher,
    eval: impl Fn(&mut ExprEngine, &Expr, &ScopeData<'_>, &EvalEnv) -> T,
) {
    let mut ee = ExprEngine::new(&ExprLimits::default());
    let expr = ee.compile(CONDITION).expect("compiles");
    let (event, profile) = inputs();
    let env = env();
    bencher.bench_local(|| {
        let data = ScopeData {
            event: Some(&event),
            profile: Some(&profile),
            ..Default::default()
        };
        eval(&mut ee, divan::black_box(&expr), &data, &env)
    });
}

/// The engine's way: `eval_bool`, which takes the compiled fast path for this condition.
#[divan::bench(sample_size = 64)]
fn condition_engine_fast_path(bencher: divan::Bencher) {
    bench_condition(bencher, |ee, expr, data, env| {
        assert!(expr.has_fast_path());
        ee.eval_bool(expr, data, env).expect("evaluates")
    });
}

/// rhai alone (what any expression outside the fast path's subset costs): the scope's
/// maps converted from JSON, the compiled AST evaluated.
#[divan::bench(sample_size = 64)]
fn condition_rhai_general(bencher: divan::Bencher) {
    bench_condition(bencher, |ee, expr, data, env| {
        ee.eval_json_general(expr, data, env).expect("evaluates")
    });
}

/// zen-expression with the event and profile converted from JSON for each evaluation
/// (as an engine meets them: a new event each time), compiled once, VM reused.
#[cfg(feature = "zen")]
#[divan::bench(sample_size = 64)]
fn condition_zen_expression(bencher: divan::Bencher) {
    let (expr, mut vm) = zen();
    let (event, profile) = inputs();
    bencher.bench_local(|| {
        let context = json!({"event": &event, "profile": &profile});
        expr.evaluate_with(context.into(), &mut vm)
            .expect("evaluates")
    });
}

/// zen-expression at its best: the context converted once and reused.
#[cfg(feature = "zen")]
#[divan::bench(sample_size = 64)]
fn condition_zen_expression_context_reused(bencher: divan::Bencher) {
    let (expr, mut vm) = zen();
    let (event, profile) = inputs();
    let context: zen_expression::Variable = json!({"event": event, "profile": profile}).into();
    bencher.bench_local(|| {
        expr.evaluate_with(context.clone(), &mut vm)
            .expect("evaluates")
    });
}

#[cfg(feature = "zen")]
fn zen() -> (
    zen_expression::Expression<zen_expression::expression::Standard>,
    zen_expression::vm::VM,
) {
    let src =
        r#"event.data.amount > 100 and profile.tier == "gold" and len(event.data.items) >= 2"#;
    let expr = zen_expression::Isolate::new()
        .compile_standard(src)
        .expect("zen compiles");
    let mut vm = zen_expression::vm::VM::new();
    let (event, profile) = inputs();
    let answer = expr
        .evaluate_with(json!({"event": event, "profile": profile}).into(), &mut vm)
        .expect("zen evaluates");
    assert_eq!(answer, zen_expression::Variable::Bool(true));
    (expr, vm)
}

#[divan::bench(sample_size = 64)]
fn condition_native_closure_floor(bencher: divan::Bencher) {
    let (event, profile) = inputs();
    let cond = |e: &Value, p: &Value| {
        e["data"]["amount"].as_f64().unwrap_or(0.0) > 100.0
            && p["tier"] == "gold"
            && e["data"]["items"].as_array().map_or(0, Vec::len) >= 2
    };
    bencher.bench_local(|| cond(divan::black_box(&event), divan::black_box(&profile)));
}

fn call() -> ActionCall {
    ActionCall {
        action: "hostile".into(),
        journey_id: "bench".into(),
        version: 1,
        node_id: "act".into(),
        instance_id: "i".into(),
        profile_id: "p".into(),
        attempt: 1,
        idempotency_key: "i:act:1".into(),
        deadline: jiff::Timestamp::now(),
        params: json!({"mode": "ok", "url": "https://example.com/hooks/abc", "body": {"email": "a@example.com", "plan": "pro", "amount": 150}}),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime")
}

/// The action registry of a plugin host that installed the plugins of `dir`.
fn installed(rt: &tokio::runtime::Runtime, dir: &std::path::Path) -> ActionRegistry {
    installed_with(rt, dir, PluginSettings::default())
}

fn installed_with(
    rt: &tokio::runtime::Runtime,
    dir: &std::path::Path,
    settings: PluginSettings,
) -> ActionRegistry {
    let actions = ActionRegistry::default();
    rt.block_on(support::install_plugins(&actions, dir, settings))
        .expect("plugins");
    actions
}

#[divan::bench]
fn plugin_call_fresh_instance(bencher: divan::Bencher) {
    let rt = runtime();
    let actions = installed(&rt, std::path::Path::new(env!("PARCOURS_TEST_PLUGINS_DIR")));
    let entry = actions.resolve("hostile").expect("hostile plugin");
    let call = call();
    bencher.bench_local(|| rt.block_on(entry.executor.call(&call)).expect("call"));
}

/// The fresh-instance call with `plugins.memory_keep_resident_bytes` set to each value,
/// without `PAGEMAP_SCAN`: zeroing more memory with `memset` at the end of a call against
/// returning it to the kernel and faulting it back in.
#[divan::bench(args = [0, 64 << 10, 256 << 10, 1 << 20])]
fn plugin_call_fresh_keep_resident(bencher: divan::Bencher, keep_resident: usize) {
    bench_fresh(bencher, keep_resident, false);
}

/// The same with `plugins.memory_pagemap_scan` (the default): only the pages the call
/// wrote are reset, up to `memory_keep_resident_bytes`, and stay resident.
#[divan::bench(args = [64 << 10, 1 << 20, 4 << 20, 16 << 20])]
fn plugin_call_fresh_pagemap_scan(bencher: divan::Bencher, keep_resident: usize) {
    bench_fresh(bencher, keep_resident, true);
}

fn bench_fresh(bencher: divan::Bencher, keep_resident: usize, pagemap_scan: bool) {
    let rt = runtime();
    let settings = PluginSettings {
        memory_keep_resident_bytes: keep_resident,
        memory_pagemap_scan: pagemap_scan,
        ..PluginSettings::default()
    };
    let actions = installed_with(
        &rt,
        std::path::Path::new(env!("PARCOURS_TEST_PLUGINS_DIR")),
        settings,
    );
    let entry = actions.resolve("hostile").expect("hostile plugin");
    let call = call();
    bencher.bench_local(|| rt.block_on(entry.executor.call(&call)).expect("call"));
}

/// A fresh call of the leanest Rust guest (tests/guests/lean: no WASI imports, memory
/// never grows): the host's and wasmtime's share of a fresh call, without what the
/// standard library's WASI imports and allocator add.
#[divan::bench]
fn plugin_call_fresh_lean(bencher: divan::Bencher) {
    let rt = runtime();
    let actions = installed(&rt, std::path::Path::new(env!("PARCOURS_TEST_PLUGINS_DIR")));
    let entry = actions.resolve("lean").expect("lean plugin");
    let mut call = call();
    call.action = "lean".into();
    bencher.bench_local(|| rt.block_on(entry.executor.call(&call)).expect("call"));
}

/// A fresh call of an SDK action built as a core module (tests/guests/echo: what
/// `hostile` answers in its `ok` mode, without the WASI imports of a `wasm32-wasip2`
/// build, allocating from the SDK's arena): compare with `plugin_call_fresh_instance`.
#[divan::bench]
fn plugin_call_fresh_sdk_core(bencher: divan::Bencher) {
    let rt = runtime();
    let actions = installed(&rt, std::path::Path::new(env!("PARCOURS_TEST_PLUGINS_DIR")));
    let entry = actions.resolve("core_echo").expect("core_echo plugin");
    let mut call = call();
    call.action = "core_echo".into();
    bencher.bench_local(|| rt.block_on(entry.executor.call(&call)).expect("call"));
}

#[divan::bench]
fn plugin_call_builtin_floor(bencher: divan::Bencher) {
    let rt = runtime();
    let actions = ActionRegistry::with_builtins();
    let entry = actions.resolve("log").expect("log");
    let call = call();
    bencher.bench_local(|| rt.block_on(entry.executor.call(&call)).expect("call"));
}

/// `(module (func (export "f")))`, encoded by hand.
const EMPTY_MODULE: &[u8] = &[
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
    0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // types: () -> ()
    0x03, 0x02, 0x01, 0x00, // functions: one of type 0
    0x07, 0x05, 0x01, 0x01, b'f', 0x00, 0x00, // exports: "f" = function 0
    0x0a, 0x04, 0x01, 0x02, 0x00, 0x0b, // code: empty body
];

/// Fresh store, instance of a pre-instantiated empty module from the pooling allocator,
/// call of its empty export: what any plugin call costs at least.
#[divan::bench]
fn plugin_call_bare_wasmtime_floor(bencher: divan::Bencher) {
    use wasmtime::{
        Config, Engine, InstanceAllocationStrategy, Linker, Module, PoolingAllocationConfig, Store,
    };
    let mut config = Config::new();
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(
        PoolingAllocationConfig::default(),
    ));
    config.epoch_interruption(true);
    let engine = Engine::new(&config).expect("engine");
    let module = Module::new(&engine, EMPTY_MODULE).expect("module");
    let linker: Linker<()> = Linker::new(&engine);
    let pre = linker.instantiate_pre(&module).expect("pre-instantiate");
    bencher.bench_local(|| {
        let mut store = Store::new(&engine, ());
        store.set_epoch_deadline(1_000);
        let instance = pre.instantiate(&mut store).expect("instantiate");
        let f = instance
            .get_typed_func::<(), ()>(&mut store, "f")
            .expect("export");
        f.call(&mut store, ()).expect("call");
    });
}

/// The test guests of each language and where they are built.
fn guest(language: &str) -> (std::path::PathBuf, &'static str) {
    match language {
        "rust" => (
            std::path::Path::new(env!("PARCOURS_TEST_PLUGINS_DIR")).join("hostile"),
            "hostile",
        ),
        "python" => (polyglot().join("python-hostile"), "py-hostile"),
        _ => (polyglot().join("js-hostile"), "js-hostile"),
    }
}

fn polyglot() -> std::path::PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = root.join("target").join("polyglot-plugins");
    let status = std::process::Command::new("bash")
        .arg(root.join("examples/plugins/build.sh"))
        .arg(&out)
        .status()
        .expect("examples/plugins/build.sh");
    assert!(
        status.success(),
        "building the Python and JavaScript guests failed"
    );
    out
}

/// `language` then `fresh` or `warm`.
#[divan::bench(args = ["rust fresh", "rust warm", "python fresh", "python warm", "js fresh", "js warm"])]
fn plugin_call_by_language(bencher: divan::Bencher, case: &str) {
    let (language, mode) = case.split_once(' ').expect("case");
    let (built, name) = guest(language);
    let dir = tempfile::tempdir().expect("temp dir");
    let folder = dir.path().join(name);
    std::fs::create_dir_all(&folder).expect("folder");
    let mut component = String::new();
    for entry in std::fs::read_dir(&built).expect("built guest") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "wasm") {
            component = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            std::os::unix::fs::symlink(&path, folder.join(&component)).expect("link");
        }
    }
    let reuse = if mode == "warm" {
        "[instances]\nreuse = true\n"
    } else {
        ""
    };
    std::fs::write(
        folder.join("plugin.toml"),
        format!("name = \"{name}\"\nversion = \"0.1.0\"\nkind = \"action\"\ncomponent = \"{component}\"\n[limits]\nmemory_mb = 128\n{reuse}"),
    )
    .expect("manifest");
    let rt = runtime();
    let actions = installed(&rt, dir.path());
    let entry = actions.resolve(name).expect("guest");
    let mut call = call();
    call.action = name.into();
    call.deadline = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(3600);
    bencher.bench_local(|| rt.block_on(entry.executor.call(&call)).expect("call"));
}

/// The examples' welcome email as a `message` node renders it for one profile.
#[divan::bench(sample_size = 64)]
fn message_render_welcome(bencher: divan::Bencher) {
    use parcours_engine::channels::{RenderInput, RenderLimits, Template};
    let text = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/resources.yaml"
    ))
    .expect("resources");
    let resources =
        parcours_engine::model::parse_resources(&text, parcours_engine::model::Format::Yaml)
            .expect("resources parse");
    let def = resources.templates["welcome"].clone();
    let template = Template::compile(def).expect("compiles");
    let (event, profile) = welcome_inputs();
    let input = RenderInput {
        profile,
        event: Some(event),
        now: "2026-03-02T08:00:00Z".parse().expect("time"),
        ..Default::default()
    };
    let limits = RenderLimits {
        max_bytes: 1 << 20,
        time: std::time::Duration::from_secs(1),
    };
    bencher.bench_local(|| {
        template
            .render(divan::black_box(&input), None, limits)
            .expect("renders")
    });
}

/// The floor: the same subject, text and HTML built by `format!` from the same JSON.
#[divan::bench(sample_size = 64)]
fn message_render_native_floor(bencher: divan::Bencher) {
    let (event, profile) = welcome_inputs();
    bencher.bench_local(|| {
        let (event, profile) = divan::black_box((&event, &profile));
        let name = profile["first_name"].as_str().unwrap_or("there");
        let at: jiff::Timestamp = event["timestamp"]
            .as_str()
            .and_then(|t| t.parse().ok())
            .unwrap_or_default();
        let day = at
            .to_zoned(jiff::tz::TimeZone::get("Europe/Paris").expect("zone"))
            .strftime("%B %-d")
            .to_string();
        let escaped = name.replace('&', "&amp;").replace('<', "&lt;");
        (
            format!("Welcome, {name}!"),
            format!("Hi {name},\n\nThanks for signing up on {day}. Your account is ready.\n"),
            format!("<p>Hi {escaped},</p>\n<p>Thanks for signing up on {day}. Your account is ready.</p>\n"),
        )
    });
}

fn welcome_inputs() -> (Value, Value) {
    (
        json!({"type": "signup", "timestamp": "2026-03-02T08:00:00Z", "data": {}}),
        json!({"id": "ann", "first_name": "Ann", "email": "ann@example.com", "timezone": "Europe/Paris"}),
    )
}
