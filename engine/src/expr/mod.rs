//! Rhai expressions: the engine's limits, compilation and evaluation.
//!
//! Owns the rhai `Engine` configuration (limits, disabled symbols, helper functions) and
//! the conversion of instance data into expression scope. It never touches the store and
//! never blocks: an expression sees only the values it is given. One [`ExprEngine`] per
//! worker, since a shared rhai `Engine` does not scale across threads.

mod calls;
mod fast;
pub mod time;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use jiff::Timestamp;
use jiff::tz::TimeZone;
use rhai::{AST, Dynamic, Engine, Scope};
use serde_json::Value;

pub use calls::ExternalCall;
pub use time::{DateTime, Duration};

use crate::settings::ExprLimits;

/// The names every expression may use.
pub const SCOPE_NAMES: [&str; 5] = ["event", "events", "profile", "journey", "actions"];

/// A compiled expression and its source.
#[derive(Clone)]
pub struct Expr {
    src: Arc<str>,
    ast: Arc<AST>,
    /// Which of [`SCOPE_NAMES`] the source mentions (bit i for name i): only those are
    /// converted into the scope at each evaluation.
    uses: u8,
    /// The same expression on the compiled fast path, when it lies in its subset.
    fast: Option<Arc<fast::Fast>>,
}

impl Expr {
    pub fn source(&self) -> &str {
        &self.src
    }

    /// The source as quoted in messages: whole when short, else its start and an
    /// ellipsis, so that an error about a 16 KB expression stays readable and small.
    pub fn excerpt(&self) -> String {
        excerpt(&self.src, 1, 1)
    }

    /// Whether the expression may read the scope variable `name`.
    pub fn uses(&self, name: &str) -> bool {
        SCOPE_NAMES
            .iter()
            .position(|n| *n == name)
            .is_some_and(|i| self.uses & (1 << i) != 0)
    }

    /// The plugin functions and data sources the expression calls.
    pub fn external_calls(&self) -> Vec<ExternalCall> {
        calls::external_calls(&self.ast)
    }

    /// Whether the expression also runs on the compiled fast path (see `expr::fast`).
    pub fn has_fast_path(&self) -> bool {
        self.fast.is_some()
    }
}

/// The scope names that appear as whole words in `src`. Over-approximates (a name in a
/// string literal counts), never misses: rhai identifiers are ASCII word characters.
fn scope_names_used(src: &str) -> u8 {
    let mut mask = 0;
    for word in src.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if let Some(i) = SCOPE_NAMES.iter().position(|n| *n == word) {
            mask |= 1 << i;
        }
    }
    mask
}

impl fmt::Debug for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Expr({:?})", self.src)
    }
}

/// The first place where brackets (`(`, `[`, `{`, `#{`) nest deeper than `max`, outside
/// string literals: `(depth, line, column)`. This is what `expr.max_expr_depth` bounds;
/// rhai's own count of its grammar's levels (about two per bracket, more for some
/// operators) is set well above it as a backstop.
fn nesting_over(src: &str, max: usize) -> Option<(usize, usize, usize)> {
    let mut depth = 0usize;
    let (mut line, mut column) = (1, 0);
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in src.chars() {
        if c == '\n' {
            line += 1;
            column = 0;
        } else {
            column += 1;
        }
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '`' | '\'' => quote = Some(c),
            '(' | '[' | '{' => {
                depth += 1;
                if depth > max {
                    return Some((depth, line, column));
                }
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

/// rhai's expression levels per bracket of nesting, with room to spare: with 2, 64
/// nested `(1 + …) * 2` went over rhai's limit at 49 brackets; 3 was just enough for
/// every shape in `max_expr_depth_counts_brackets_as_documented`.
const RHAI_LEVELS_PER_BRACKET: usize = 4;

/// Longest quote of an expression in a message, in characters.
const EXCERPT_CHARS: usize = 80;

/// `src` as quoted in a message: whole when at most [`EXCERPT_CHARS`] characters,
/// else a window of that many around `line`/`column` (1-based; where a fault is) with
/// `…` where text was left out.
pub fn excerpt(src: &str, line: usize, column: usize) -> String {
    let chars: Vec<char> = src.chars().collect();
    if chars.len() <= EXCERPT_CHARS {
        return src.to_string();
    }
    // The fault's offset in characters.
    let mut at = 0;
    let mut l = 1;
    for (i, c) in chars.iter().enumerate() {
        if l == line {
            at = i + column.saturating_sub(1);
            break;
        }
        if *c == '\n' {
            l += 1;
        }
    }
    let at = at.min(chars.len());
    let start = at
        .saturating_sub(EXCERPT_CHARS / 2)
        .min(chars.len() - EXCERPT_CHARS);
    let end = start + EXCERPT_CHARS;
    let mut out = String::new();
    if start > 0 {
        out.push('…');
    }
    out.extend(&chars[start..end]);
    if end < chars.len() {
        out.push('…');
    }
    out
}

/// A syntax error, with its position in the expression text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "syntax error at line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

/// An evaluation failure (bad types, missing functions, a limit reached).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalError(pub String);

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EvalError {}

/// What an evaluation may know besides its scope: the time, the zone to read it in, and
/// which instance and node it runs for (for data-source look-ups).
#[derive(Debug, Clone)]
pub struct EvalEnv {
    pub now: Timestamp,
    pub tz: TimeZone,
    pub call: Option<Arc<CallInfo>>,
}

/// The instance and node an evaluation runs for.
#[derive(Debug, Clone, Default)]
pub struct CallInfo {
    pub journey_id: String,
    pub version: u32,
    pub node_id: String,
    pub instance_id: String,
    pub profile_id: String,
    /// Where plugin calls made by the evaluation are recorded (plugin, what, duration,
    /// outcome), for the node's step event.
    pub calls: Option<PluginCallLog>,
    /// Look-ups this instance already made (`source\u{1f}key` -> record): an instance sees
    /// one answer per key for its whole life, whatever the connector's TTL.
    pub lookups: Option<LookupMemo>,
    /// The audiences the profile belongs to (`in_audience("name")`).
    pub audiences: Arc<std::collections::BTreeSet<String>>,
}

/// An instance's remembered look-ups.
pub type LookupMemo = Arc<std::sync::Mutex<serde_json::Map<String, Value>>>;

/// A shared list of plugin calls made while a node runs.
pub type PluginCallLog = Arc<std::sync::Mutex<Vec<Value>>>;

/// Functions and data sources that live outside the engine (plugins). Calls are
/// synchronous from the expression's point of view.
pub trait ExternalFunctions: Send + Sync {
    /// Changes whenever the set of functions changes, so engines can be rebuilt.
    fn generation(&self) -> u64;
    /// (module, function, number of parameters) for every function.
    fn signatures(&self) -> Vec<(String, String, usize)>;
    /// Calls `module::name(args...)`.
    fn call(
        &self,
        module: &str,
        name: &str,
        args: Vec<Value>,
        call: &CallInfo,
    ) -> Result<Value, String>;
    /// Looks a key up in a data source.
    fn lookup(&self, source: &str, key: &str, call: &CallInfo) -> Result<Option<Value>, String>;
    /// The same plugins' channel providers, when they can have some (the runtime finds
    /// message providers there: one handle to the plugins, not two).
    fn provider_plugins(self: Arc<Self>) -> Option<Arc<dyn crate::channels::ProviderPlugins>> {
        None
    }
}

/// The values an expression sees, as JSON.
#[derive(Debug, Default, Clone)]
pub struct ScopeData<'a> {
    pub event: Option<&'a Value>,
    pub events: Option<&'a Value>,
    pub profile: Option<&'a Value>,
    pub journey: Option<&'a Value>,
    pub actions: Option<&'a Value>,
}

impl ScopeData<'_> {
    /// The rhai scope for `expr`: only the variables it uses are converted.
    fn to_scope(&self, expr: &Expr) -> Result<Scope<'static>, EvalError> {
        let mut scope = Scope::new();
        let entries = [
            ("event", self.event),
            ("events", self.events),
            ("profile", self.profile),
            ("journey", self.journey),
            ("actions", self.actions),
        ];
        for (i, (name, value)) in entries.into_iter().enumerate() {
            if expr.uses & (1 << i) == 0 {
                continue;
            }
            let value = match value {
                Some(v) => json_to_dynamic(v)?,
                None => Dynamic::from_map(rhai::Map::new()),
            };
            scope.push_constant_dynamic(name, value);
        }
        Ok(scope)
    }
}

/// A configured rhai engine. Cheap to use, ≈0.5 ms to build: build one per worker.
pub struct ExprEngine {
    engine: Engine,
    /// The generation of the external functions registered in `engine`.
    generation: u64,
    limits: ExprLimits,
    /// Operations of the current evaluation, closures included: rhai's own counter starts
    /// afresh in every closure call (`xs.map(|x| ...)`), so it cannot bound nested ones.
    operations: Arc<AtomicU64>,
}

/// The tag of the termination that [`ExprEngine`] raises when operations run out.
const OUT_OF_OPERATIONS: &str = "operations";

impl ExprEngine {
    pub fn new(limits: &ExprLimits) -> Self {
        Self::with_functions(limits, None)
    }

    /// An engine that can also call plugin functions (`module::name(...)`) and look
    /// keys up in data sources (`lookup("source", key)`).
    pub fn with_functions(
        limits: &ExprLimits,
        external: Option<Arc<dyn ExternalFunctions>>,
    ) -> Self {
        let mut engine = Engine::new();
        engine.set_max_operations(limits.max_operations);
        engine.set_max_call_levels(limits.max_call_levels);
        // The setting bounds bracket nesting (`nesting_over`); rhai counts its grammar's
        // levels, several per bracket, so its own limit is a backstop well above.
        let rhai_depth = limits
            .max_expr_depth
            .saturating_mul(RHAI_LEVELS_PER_BRACKET)
            + 16;
        engine.set_max_expr_depths(rhai_depth, rhai_depth);
        engine.set_max_string_size(limits.max_string_size);
        engine.set_max_array_size(limits.max_array_size);
        engine.set_max_map_size(limits.max_map_size);
        engine.set_strict_variables(true);
        engine.disable_symbol("eval");
        engine.on_print(|_| {});
        engine.on_debug(|_, _, _| {});
        time::register(&mut engine);
        engine.register_fn("in_audience", |ctx: rhai::NativeCallContext, name: &str| {
            ctx.tag()
                .and_then(|t| t.clone().try_cast::<EvalEnv>())
                .and_then(|env| env.call)
                .is_some_and(|call| call.audiences.contains(name))
        });
        let generation = external.as_ref().map_or(0, |x| x.generation());
        register_external(&mut engine, external);
        let operations = Arc::new(AtomicU64::new(0));
        let counter = operations.clone();
        let max = limits.max_operations;
        engine.on_progress(move |_| {
            let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
            (n > max).then(|| Dynamic::from(OUT_OF_OPERATIONS))
        });
        Self {
            engine,
            generation,
            limits: limits.clone(),
            operations,
        }
    }

    /// The generation of external functions this engine was built with.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Compiles an expression once; the result is shared by every evaluation.
    pub fn compile(&self, src: &str) -> Result<Expr, SyntaxError> {
        if src.len() > self.limits.max_source_bytes {
            return Err(SyntaxError {
                line: 1,
                column: 1,
                message: format!(
                    "expression is {} bytes long, more than the limit of {} (expr.max_source_bytes)",
                    src.len(),
                    self.limits.max_source_bytes
                ),
            });
        }
        if let Some((depth, line, column)) = nesting_over(src, self.limits.max_expr_depth) {
            return Err(SyntaxError {
                line,
                column,
                message: format!(
                    "brackets nest {depth} deep here, more than the limit of {} (expr.max_expr_depth)",
                    self.limits.max_expr_depth
                ),
            });
        }
        // Declared for strict variables, not as constants: the optimizer would fold a
        // constant's placeholder value into the expression (`f(profile)` would pass `()`).
        let mut scope = Scope::new();
        for name in SCOPE_NAMES {
            scope.push_dynamic(name, Dynamic::UNIT);
        }
        match self.engine.compile_expression_with_scope(&scope, src) {
            Ok(ast) => Ok(Expr {
                src: src.into(),
                ast: Arc::new(ast),
                uses: scope_names_used(src),
                fast: fast::Fast::parse(src)
                    .filter(|f| f.size() <= self.limits.max_operations)
                    .map(Arc::new),
            }),
            Err(err) => Err(SyntaxError {
                line: err.1.line().unwrap_or(1),
                column: err.1.position().unwrap_or(1),
                message: match *err.0 {
                    // rhai's own depth counts its grammar's levels, about two per bracket.
                    rhai::ParseErrorType::ExprTooDeep => format!(
                        "the expression nests too deeply (expr.max_expr_depth is {})",
                        self.limits.max_expr_depth
                    ),
                    ref other => other.to_string(),
                },
            }),
        }
    }

    /// Evaluates an expression to a rhai value, always with rhai (the fast path answers
    /// only [`eval_bool`](Self::eval_bool) and [`eval_json`](Self::eval_json)).
    pub fn eval(
        &mut self,
        expr: &Expr,
        data: &ScopeData<'_>,
        env: &EvalEnv,
    ) -> Result<Dynamic, EvalError> {
        let mut scope = data.to_scope(expr)?;
        self.engine.set_default_tag(Dynamic::from(env.clone()));
        self.operations.store(0, Ordering::Relaxed);
        self.engine
            .eval_ast_with_scope::<Dynamic>(&mut scope, &expr.ast)
            .map_err(|e| match root_cause(&e) {
                rhai::EvalAltResult::ErrorTerminated(..)
                | rhai::EvalAltResult::ErrorTooManyOperations(..) => EvalError(format!(
                    "`{}` needed more than {} operations (expr.max_operations)",
                    expr.excerpt(),
                    self.limits.max_operations
                )),
                rhai::EvalAltResult::ErrorDataTooLarge(what, _) => {
                    let (setting, limit) = if what.contains("string") {
                        ("expr.max_string_size", self.limits.max_string_size)
                    } else if what.contains("array") {
                        ("expr.max_array_size", self.limits.max_array_size)
                    } else {
                        ("expr.max_map_size", self.limits.max_map_size)
                    };
                    EvalError(format!(
                        "`{}`: {what} over the limit of {limit} ({setting})",
                        expr.excerpt()
                    ))
                }
                _ => EvalError(e.to_string()),
            })
    }

    /// Evaluates an expression that must give `true` or `false`.
    pub fn eval_bool(
        &mut self,
        expr: &Expr,
        data: &ScopeData<'_>,
        env: &EvalEnv,
    ) -> Result<bool, EvalError> {
        if let Some(answer) = expr.fast.as_ref().and_then(|f| f.eval_bool(data, env)) {
            return Ok(answer);
        }
        let value = self.eval(expr, data, env)?;
        value.as_bool().map_err(|type_name| {
            EvalError(format!(
                "expected true or false, got {type_name} ({value}) from `{}`",
                expr.excerpt()
            ))
        })
    }

    /// Evaluates an expression to JSON (date-times become RFC 3339 strings).
    pub fn eval_json(
        &mut self,
        expr: &Expr,
        data: &ScopeData<'_>,
        env: &EvalEnv,
    ) -> Result<Value, EvalError> {
        match Self::eval_json_fast(expr, data, env) {
            Some(answer) => Ok(answer),
            None => self.eval_json_general(expr, data, env),
        }
    }

    /// [`eval_json`](Self::eval_json) without the fast path: what rhai alone answers
    /// (the reference the fast path is checked against).
    pub fn eval_json_general(
        &mut self,
        expr: &Expr,
        data: &ScopeData<'_>,
        env: &EvalEnv,
    ) -> Result<Value, EvalError> {
        let value = self.eval(expr, data, env)?;
        dynamic_to_json(&value)
    }

    /// What the fast path alone answers (`None` where it leaves the expression to rhai).
    pub fn eval_json_fast(expr: &Expr, data: &ScopeData<'_>, env: &EvalEnv) -> Option<Value> {
        expr.fast.as_ref().and_then(|f| f.eval_json(data, env))
    }

    /// Evaluates an expression that must give a date-time (or an RFC 3339 / civil
    /// date-time string, read in the evaluation's zone).
    pub fn eval_datetime(
        &mut self,
        expr: &Expr,
        data: &ScopeData<'_>,
        env: &EvalEnv,
    ) -> Result<Timestamp, EvalError> {
        let value = self.eval(expr, data, env)?;
        if let Some(dt) = value.clone().try_cast::<DateTime>() {
            return Ok(dt.0);
        }
        if let Ok(s) = value.clone().into_immutable_string() {
            return time::parse_datetime(&s, &env.tz).map_err(EvalError);
        }
        Err(EvalError(format!(
            "expected a date-time, got {} from `{}`",
            value.type_name(),
            expr.excerpt()
        )))
    }
}

/// Registers plugin functions as static modules and the `lookup` function.
fn register_external(engine: &mut Engine, external: Option<Arc<dyn ExternalFunctions>>) {
    let lookup_ext = external.clone();
    engine.register_fn(
        "lookup",
        move |ctx: rhai::NativeCallContext,
              source: &str,
              key: Dynamic|
              -> Result<Dynamic, Box<rhai::EvalAltResult>> {
            let Some(ext) = &lookup_ext else {
                return Err(format!("no data source {source:?} is installed").into());
            };
            let key = match key.clone().into_immutable_string() {
                Ok(s) => s.to_string(),
                Err(_) => key.to_string(),
            };
            let call = ctx
                .tag()
                .and_then(|t| t.clone().try_cast::<EvalEnv>())
                .and_then(|env| env.call)
                .unwrap_or_default();
            match ext.lookup(source, &key, &call) {
                Ok(Some(v)) => json_to_dynamic(&v).map_err(|e| e.0.into()),
                Ok(None) => Ok(Dynamic::UNIT),
                Err(e) => Err(e.into()),
            }
        },
    );
    let Some(ext) = external else { return };
    let mut modules: std::collections::BTreeMap<String, rhai::Module> = Default::default();
    for (module, name, arity) in ext.signatures() {
        let ext = ext.clone();
        let (m, n) = (module.clone(), name.clone());
        let (module_name, name_for_log) = (module.clone(), name.clone());
        let call = move |ctx: rhai::NativeCallContext,
                         args: Vec<Dynamic>|
              -> Result<Dynamic, Box<rhai::EvalAltResult>> {
            let args = args
                .iter()
                .map(|a| dynamic_to_json(a).map_err(|e| e.0))
                .collect::<Result<Vec<_>, _>>()?;
            let info = ctx
                .tag()
                .and_then(|t| t.clone().try_cast::<EvalEnv>())
                .and_then(|env| env.call)
                .unwrap_or_default();
            let out = ext.call(&m, &n, args, &info)?;
            json_to_dynamic(&out).map_err(|e| e.0.into())
        };
        let module = modules.entry(module).or_default();
        type D = Dynamic;
        match arity {
            0 => {
                module.set_native_fn(name, move |ctx: rhai::NativeCallContext| call(ctx, vec![]));
            }
            1 => {
                module.set_native_fn(name, move |ctx: rhai::NativeCallContext, a: D| {
                    call(ctx, vec![a])
                });
            }
            2 => {
                module.set_native_fn(name, move |ctx: rhai::NativeCallContext, a: D, b: D| {
                    call(ctx, vec![a, b])
                });
            }
            3 => {
                module.set_native_fn(
                    name,
                    move |ctx: rhai::NativeCallContext, a: D, b: D, c: D| call(ctx, vec![a, b, c]),
                );
            }
            4 => {
                module.set_native_fn(
                    name,
                    move |ctx: rhai::NativeCallContext, a: D, b: D, c: D, d: D| {
                        call(ctx, vec![a, b, c, d])
                    },
                );
            }
            5 => {
                module.set_native_fn(
                    name,
                    move |ctx: rhai::NativeCallContext, a: D, b: D, c: D, d: D, e: D| {
                        call(ctx, vec![a, b, c, d, e])
                    },
                );
            }
            6 => {
                module.set_native_fn(
                    name,
                    move |ctx: rhai::NativeCallContext, a: D, b: D, c: D, d: D, e: D, f: D| {
                        call(ctx, vec![a, b, c, d, e, f])
                    },
                );
            }
            _ => {
                tracing::warn!(module = %module_name, function = %name_for_log, "functions with more than 6 parameters cannot be called from expressions")
            }
        }
    }
    for (name, module) in modules {
        engine.register_static_module(name, module.into());
    }
}

/// The error under any "in call to function" wrappers.
fn root_cause(e: &rhai::EvalAltResult) -> &rhai::EvalAltResult {
    match e {
        rhai::EvalAltResult::ErrorInFunctionCall(_, _, inner, _) => root_cause(inner),
        other => other,
    }
}

fn json_to_dynamic(value: &Value) -> Result<Dynamic, EvalError> {
    rhai::serde::to_dynamic(value).map_err(|e| EvalError(e.to_string()))
}

/// Converts an expression result back to JSON.
pub fn dynamic_to_json(value: &Dynamic) -> Result<Value, EvalError> {
    if let Some(dt) = value.clone().try_cast::<DateTime>() {
        return Ok(Value::String(dt.0.to_string()));
    }
    if let Some(d) = value.clone().try_cast::<Duration>() {
        return Ok(Value::String(d.0.to_string()));
    }
    rhai::serde::from_dynamic(value).map_err(|e| EvalError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env() -> EvalEnv {
        EvalEnv {
            now: "2026-03-02T08:30:00Z".parse().unwrap(),
            tz: TimeZone::get("Europe/Paris").unwrap(),
            call: None,
        }
    }

    #[test]
    fn max_expr_depth_counts_brackets_as_documented() {
        let limits = ExprLimits::default();
        let e = ExprEngine::new(&limits);
        let n = limits.max_expr_depth;
        let wrap = |open: &str, inner: &str, close: &str, k: usize| {
            format!("{}{inner}{}", open.repeat(k), close.repeat(k))
        };
        // Exactly the limit compiles, whatever the brackets and what is between them.
        for src in [
            wrap("(", "true", ")", n),
            wrap("(1 + ", "1", ") * 2", n),
            wrap("[", "1", "]", n),
            wrap("abs(", "-1", ")", n),
            wrap("#{a: ", "1", "}", n),
            wrap("(!", "true", ")", n),
        ] {
            assert!(
                e.compile(&src).is_ok(),
                "{n} deep: {:?}",
                e.compile(&src).err()
            );
        }
        // One more is refused, naming the setting, at the bracket that goes over.
        let err = e.compile(&wrap("(", "true", ")", n + 1)).unwrap_err();
        assert!(err.message.contains("expr.max_expr_depth"), "{err}");
        assert_eq!(err.column, n + 1);
        // rhai's own limit is the backstop for nesting without brackets.
        let err = e
            .compile(&format!("{}true", "!".repeat(1_000)))
            .unwrap_err();
        assert!(err.message.contains("expr.max_expr_depth"), "{err}");
        // Brackets in strings do not count.
        let quoted = format!("\"{}\" == \"x\"", "(".repeat(n + 10));
        assert!(e.compile(&quoted).is_ok());
    }

    #[test]
    fn excerpts_are_bounded_and_centred_on_the_fault() {
        let short = "event.data.amount > 10";
        assert_eq!(excerpt(short, 1, 5), short);
        let long = format!("{} && oops(", "a > 1".repeat(100));
        let quoted = excerpt(&long, 1, long.len());
        assert!(quoted.chars().count() <= EXCERPT_CHARS + 2, "{quoted}");
        assert!(
            quoted.starts_with('…') && quoted.contains("oops("),
            "{quoted}"
        );
    }

    #[test]
    fn conditions_see_event_and_profile() {
        let mut ee = ExprEngine::new(&ExprLimits::default());
        let expr = ee
            .compile(r#"event.data.amount > 100 && profile.tier == "gold""#)
            .unwrap();
        let event = json!({"data": {"amount": 150}});
        let profile = json!({"tier": "gold"});
        let data = ScopeData {
            event: Some(&event),
            profile: Some(&profile),
            ..Default::default()
        };
        assert!(ee.eval_bool(&expr, &data, &env()).unwrap());
    }

    #[test]
    fn only_mentioned_scope_names_count_as_used() {
        let ee = ExprEngine::new(&ExprLimits::default());
        let e = ee
            .compile("events.order.data.n > 1 && profile.vip")
            .unwrap();
        assert!(e.uses("events") && e.uses("profile"));
        assert!(!e.uses("event") && !e.uses("actions") && !e.uses("journey"));
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let ee = ExprEngine::new(&ExprLimits::default());
        let err = ee.compile("event.data.amount >").unwrap_err();
        assert_eq!(err.line, 1);
        assert!(err.column >= 19, "{err}");
        let err = ee.compile("evnt.type == 1").unwrap_err();
        assert!(err.message.contains("evnt"), "{err}");
    }

    #[test]
    fn operation_limit_stops_runaway_expressions() {
        let limits = ExprLimits {
            max_operations: 1_000,
            ..Default::default()
        };
        let mut ee = ExprEngine::new(&limits);
        // Closures: rhai's own counter restarts in each closure call.
        let chain = ".map(|a| a + 1)".repeat(10);
        let expr = ee.compile(&format!("event.xs{chain}.len()")).unwrap();
        let xs: Vec<i64> = (0..100).collect();
        let event = json!({ "xs": xs });
        let data = ScopeData {
            event: Some(&event),
            ..Default::default()
        };
        let err = ee.eval(&expr, &data, &env()).unwrap_err();
        assert!(err.0.to_lowercase().contains("operations"), "{err}");
    }

    #[test]
    fn non_boolean_condition_is_an_error() {
        let mut ee = ExprEngine::new(&ExprLimits::default());
        let expr = ee.compile("42").unwrap();
        let err = ee
            .eval_bool(&expr, &ScopeData::default(), &env())
            .unwrap_err();
        assert!(err.0.contains("expected true or false"), "{err}");
    }
}

#[cfg(test)]
mod external_tests {
    use super::*;
    use serde_json::json;

    /// `echo::first(x)` gives back its argument, as a plugin function would.
    struct Echo;

    impl ExternalFunctions for Echo {
        fn generation(&self) -> u64 {
            1
        }
        fn signatures(&self) -> Vec<(String, String, usize)> {
            vec![("echo".into(), "first".into(), 1)]
        }
        fn call(
            &self,
            _module: &str,
            _name: &str,
            args: Vec<Value>,
            _info: &CallInfo,
        ) -> Result<Value, String> {
            Ok(args.into_iter().next().unwrap_or(Value::Null))
        }
        fn lookup(&self, _: &str, _: &str, _: &CallInfo) -> Result<Option<Value>, String> {
            Ok(None)
        }
    }

    #[test]
    fn scope_maps_reach_plugin_functions_whole() {
        let mut ee = ExprEngine::with_functions(&ExprLimits::default(), Some(Arc::new(Echo)));
        let profile = json!({"id": "ada", "email": "ada@example.com", "orders": 3});
        let data = ScopeData {
            profile: Some(&profile),
            ..Default::default()
        };
        let env = EvalEnv {
            now: "2026-03-02T08:30:00Z".parse().unwrap(),
            tz: TimeZone::UTC,
            call: None,
        };
        for src in ["echo::first(profile)", "echo::first(profile.email)"] {
            let expr = ee.compile(src).unwrap();
            let got = ee.eval_json(&expr, &data, &env).unwrap();
            let want = if src.ends_with("email)") {
                json!("ada@example.com")
            } else {
                profile.clone()
            };
            assert_eq!(got, want, "{src}");
        }
    }
}
