//! The node kinds of a journey, one file each.
//!
//! Each activity owns its definition (serde), its compilation (validation with located
//! errors) and its behaviour when an instance enters it, when its timer fires and when an
//! event arrives for a paused instance. Activities never touch the store, never read the
//! system clock and never decide what happens to the instance beyond the [`Outcome`] they
//! return: the runtime records steps and persists state. Adding a node kind means one new
//! file here plus one line in [`node_kinds!`] and one in [`crate::model::NodeDef`].

pub mod action;
pub mod call;
mod compiling;
pub mod condition;
pub mod end;
pub mod jump;
pub mod message;
pub mod reaction;
pub mod split;
pub mod update_profile;
pub mod wait;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::{Value, json};

use crate::actions::{ActionRegistry, CallDone, CallRequest};
use crate::code::Code;
pub use compiling::{Catalog, Cx, NodeRef, PluginCall};
use std::sync::Arc;

use crate::expr::{
    CallInfo, EvalEnv, EvalError, Expr, ExprEngine, LookupMemo, PluginCallLog, ScopeData,
};
use crate::journal::Instance;
use crate::model::{Event, NodeDef};
use crate::settings::Settings;

/// Where the instance goes after a node has run.
#[derive(Debug, PartialEq)]
pub enum Move {
    /// On to a node, or (with `None`) to the end of the journey.
    Goto(Option<NodeRef>),
    /// Stay on this node until the timer fires or an event arrives.
    Pause { wake_at: Option<Timestamp> },
    /// Enter the profile into another journey with `data`, then go to `next`; if it
    /// cannot enter, take `on_error` (or end the instance as failed).
    Jump {
        journey: String,
        data: Value,
        next: Option<NodeRef>,
        on_error: Option<NodeRef>,
    },
    /// The node failed: take `on_error`, or end the instance as failed.
    Fail {
        code: Code,
        message: String,
        on_error: Option<NodeRef>,
    },
    /// Stay on this node until `until`, for a reason the step records with `code` (a
    /// message held by quiet hours); the timer then runs the node again.
    Defer {
        until: Timestamp,
        code: Code,
        message: String,
    },
    /// The node did not do its work, on purpose and for a reason (a message to a profile
    /// that unsubscribed): the step records the code, and the instance goes on to `next`.
    Skip {
        code: Code,
        message: String,
        next: Option<NodeRef>,
    },
    /// Make this call, then hand its answer to the node ([`Activity::on_result`]). The
    /// runtime decides where the call runs: within the step, or after the instance was
    /// committed as calling (a slow call never holds other profiles up).
    Call(Box<CallRequest>),
}

/// What a node did: the move, and details for its step event.
#[derive(Debug, PartialEq)]
pub struct Outcome {
    pub next: Move,
    pub detail: Option<Value>,
    /// A message sent by this step, counted for frequency caps under this key
    /// ([`crate::channels::FrequencyCap::key`]).
    pub counted: Option<String>,
}

impl Outcome {
    pub fn goto(next: Option<NodeRef>) -> Self {
        Self {
            next: Move::Goto(next),
            detail: None,
            counted: None,
        }
    }

    pub fn pause(wake_at: Option<Timestamp>) -> Self {
        Self {
            next: Move::Pause { wake_at },
            detail: None,
            counted: None,
        }
    }

    pub fn fail(code: Code, message: impl Into<String>, on_error: Option<NodeRef>) -> Self {
        Self {
            next: Move::Fail {
                code,
                message: message.into(),
                on_error,
            },
            detail: None,
            counted: None,
        }
    }

    pub fn defer(until: Timestamp, code: Code, message: impl Into<String>) -> Self {
        Self {
            next: Move::Defer {
                until,
                code,
                message: message.into(),
            },
            detail: None,
            counted: None,
        }
    }

    pub fn skip(code: Code, message: impl Into<String>, next: Option<NodeRef>) -> Self {
        Self {
            next: Move::Skip {
                code,
                message: message.into(),
                next,
            },
            detail: None,
            counted: None,
        }
    }

    pub fn call(request: CallRequest) -> Self {
        Self {
            next: Move::Call(Box::new(request)),
            detail: None,
            counted: None,
        }
    }

    pub fn with_detail(mut self, detail: Value) -> Self {
        self.detail = Some(detail);
        self
    }
}

/// The journey version a node runs in, as far as a node needs to know it.
#[derive(Debug, Clone, Copy)]
pub struct Version<'a> {
    pub id: &'a str,
    pub version: u32,
    /// How split nodes assign branches (recorded with the version).
    pub split_hash: crate::ids::SplitHash,
    /// Actions record what they would send instead of calling plugins (a draft in test
    /// mode with dry runs).
    pub dry_run: bool,
}

/// What a node may see and change while it runs.
pub struct StepCx<'a> {
    pub journey: Version<'a>,
    pub node_id: &'a str,
    pub instance: &'a mut Instance,
    /// The profile as expressions see it; updated in place by `update_profile`.
    pub profile: &'a mut Value,
    /// Merge patches to apply to the stored profile, in order.
    pub profile_patches: &'a mut Vec<Value>,
    /// The profile's counted entries (capping rule or message key, time): what
    /// frequency caps count.
    pub counted: &'a [(String, Timestamp)],
    pub now: Timestamp,
    /// The zone for waits and time expressions (the journey's or the profile's).
    pub tz: TimeZone,
    pub exprs: &'a mut ExprEngine,
    pub actions: &'a ActionRegistry,
    pub settings: &'a Settings,
    pub metrics: &'a crate::metrics::Metrics,
    pub throttle: &'a crate::actions::Throttle,
    /// Templates and providers of `message` nodes.
    pub messaging: &'a crate::channels::Messaging,
    /// Plugin calls (look-ups, functions) made by this node's expressions.
    pub plugin_calls: PluginCallLog,
    /// The instance's look-up cache while the node runs (written back after).
    pub lookups: LookupMemo,
    /// Who the node's expressions run for (built once per node, shared by its
    /// evaluations); holds `plugin_calls` and `lookups`.
    pub call: Arc<CallInfo>,
}

impl StepCx<'_> {
    fn env(&self) -> EvalEnv {
        EvalEnv {
            now: self.now,
            tz: self.tz.clone(),
            call: Some(self.call.clone()),
        }
    }

    /// Adds the plugin calls this node made to its outcome's details, and keeps the
    /// look-ups it made in the instance.
    fn attach_plugin_calls(&mut self, mut outcome: Outcome) -> Outcome {
        let lookups = self
            .lookups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if lookups.len() != self.instance.data.lookups.len() {
            self.instance.data.lookups = lookups;
        }
        let calls =
            std::mem::take(&mut *self.plugin_calls.lock().unwrap_or_else(|p| p.into_inner()));
        if calls.is_empty() {
            return outcome;
        }
        // An expression that failed because a plugin it called was stopped by the
        // sandbox (time, memory, output...) failed for that reason: the step carries the
        // plugin's code, as an action's would, not `EXPR_EVAL`.
        if let Move::Fail { code, .. } = &mut outcome.next
            && *code == Code::ExprEval
            && let Some(fault) = calls.iter().find_map(|c| {
                c["outcome"]
                    .as_str()
                    .and_then(Code::parse)
                    .filter(|c| c.as_str().starts_with("PLUGIN_"))
            })
        {
            *code = fault;
        }
        match &mut outcome.detail {
            Some(Value::Object(map)) => {
                map.insert("plugin_calls".into(), Value::Array(calls));
            }
            other => {
                let previous = other.take();
                let mut map = serde_json::Map::new();
                if let Some(p) = previous {
                    map.insert("detail".into(), p);
                }
                map.insert("plugin_calls".into(), Value::Array(calls));
                *other = Some(Value::Object(map));
            }
        }
        outcome
    }

    fn journey_value(&self) -> Value {
        json!({
            "id": self.journey.id,
            "version": self.journey.version,
            "instance_id": self.instance.id,
            "entered_at": self.instance.entered_at.to_string(),
            "node": self.node_id,
        })
    }

    /// Evaluates with a scope holding only what `expr` reads.
    fn with_scope<T>(
        &mut self,
        expr: &Expr,
        f: impl FnOnce(&mut ExprEngine, &ScopeData<'_>, &EvalEnv) -> Result<T, EvalError>,
    ) -> Result<T, EvalError> {
        let env = self.env();
        let journey = expr.uses("journey").then(|| self.journey_value());
        let events = expr
            .uses("events")
            .then(|| Value::Object(self.instance.data.events.clone()));
        let actions = expr
            .uses("actions")
            .then(|| Value::Object(self.instance.data.actions.clone()));
        let data = ScopeData {
            event: Some(&self.instance.data.event),
            events: events.as_ref(),
            profile: Some(self.profile),
            journey: journey.as_ref(),
            actions: actions.as_ref(),
        };
        f(self.exprs, &data, &env)
    }

    pub fn eval_bool(&mut self, expr: &Expr) -> Result<bool, EvalError> {
        self.with_scope(expr, |ee, data, env| ee.eval_bool(expr, data, env))
    }

    pub fn eval_json(&mut self, expr: &Expr) -> Result<Value, EvalError> {
        self.with_scope(expr, |ee, data, env| ee.eval_json(expr, data, env))
    }

    pub fn eval_datetime(&mut self, expr: &Expr) -> Result<Timestamp, EvalError> {
        self.with_scope(expr, |ee, data, env| ee.eval_datetime(expr, data, env))
    }
}

/// The behaviour every node kind implements.
#[allow(async_fn_in_trait, reason = "dispatched statically through NodeKind")]
pub trait Activity {
    /// The nodes this one may lead to.
    fn successors(&self) -> Vec<NodeRef>;

    /// Whether instances stay on this node for a while (wait, reaction): loops must pass
    /// through such a node.
    fn pauses(&self) -> bool {
        false
    }

    /// An instance arrives at this node.
    async fn enter(&self, cx: &mut StepCx<'_>) -> Outcome;

    /// The timer this node asked for (with [`Move::Pause`]) fired.
    async fn on_timer(&self, _cx: &mut StepCx<'_>) -> Outcome {
        Outcome::fail(
            Code::UnexpectedTimer,
            "this node does not wait for time",
            None,
        )
    }

    /// An event of the instance's profile arrived while the instance is paused here;
    /// `None` leaves the instance where it is.
    fn on_event(&self, _cx: &mut StepCx<'_>, _event: &Event) -> Option<Outcome> {
        None
    }

    /// The call this node asked for (with [`Move::Call`]) is over.
    fn on_result(&self, _cx: &mut StepCx<'_>, _done: CallDone) -> Outcome {
        Outcome::fail(Code::UnexpectedResult, "this node makes no calls", None)
    }
}

macro_rules! node_kinds {
    ($($variant:ident($module:ident::$compiled:ident, $name:literal)),* $(,)?) => {
        /// A compiled node of any kind.
        #[derive(Debug)]
        pub enum NodeKind {
            $($variant($module::$compiled)),*
        }

        impl NodeKind {
            /// The kind's name, as written in definitions (`type`).
            pub fn name(&self) -> &'static str {
                match self { $(NodeKind::$variant(_) => $name),* }
            }

            pub fn successors(&self) -> Vec<NodeRef> {
                match self { $(NodeKind::$variant(a) => a.successors()),* }
            }

            pub fn pauses(&self) -> bool {
                match self { $(NodeKind::$variant(a) => a.pauses()),* }
            }

            pub async fn enter(&self, cx: &mut StepCx<'_>) -> Outcome {
                let outcome = match self { $(NodeKind::$variant(a) => a.enter(cx).await),* };
                cx.attach_plugin_calls(outcome)
            }

            pub async fn on_timer(&self, cx: &mut StepCx<'_>) -> Outcome {
                let outcome = match self { $(NodeKind::$variant(a) => a.on_timer(cx).await),* };
                cx.attach_plugin_calls(outcome)
            }

            pub fn on_event(&self, cx: &mut StepCx<'_>, event: &Event) -> Option<Outcome> {
                let outcome = match self { $(NodeKind::$variant(a) => a.on_event(cx, event)),* };
                outcome.map(|o| cx.attach_plugin_calls(o))
            }

            pub fn on_result(&self, cx: &mut StepCx<'_>, done: CallDone) -> Outcome {
                let outcome = match self { $(NodeKind::$variant(a) => a.on_result(cx, done)),* };
                cx.attach_plugin_calls(outcome)
            }
        }

        /// Compiles one node definition: its label and, when valid, the compiled node.
        pub(crate) fn compile(def: &NodeDef, path: &str, cx: &mut Cx) -> (Option<String>, Option<NodeKind>) {
            match def {
                $(NodeDef::$variant(d) => (d.label.clone(), d.compile(path, cx).map(NodeKind::$variant))),*
            }
        }
    };
}

impl NodeKind {
    /// Whether an instance paused on this node waits for events of `event_type`: a
    /// reaction that awaits that type.
    pub fn awaits(&self, event_type: &str) -> bool {
        matches!(self, NodeKind::Reaction(r) if r.awaits(event_type))
    }

    /// Whether an instance reaching this node waits while its journey holds actions (a
    /// pause): only action and message nodes reach outside the engine.
    pub fn held_by_pause(&self) -> bool {
        matches!(self, NodeKind::Action(_) | NodeKind::Message(_))
    }
}

node_kinds! {
    Condition(condition::Condition, "condition"),
    Split(split::Split, "split"),
    Wait(wait::Wait, "wait"),
    Reaction(reaction::Reaction, "reaction"),
    Action(action::Action, "action"),
    Message(message::Message, "message"),
    UpdateProfile(update_profile::UpdateProfile, "update_profile"),
    Jump(jump::Jump, "jump"),
    End(end::End, "end"),
}
