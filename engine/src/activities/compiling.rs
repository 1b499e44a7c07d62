//! What activities compile against: node references, the catalog of what a journey may
//! refer to outside itself, and the compile context ([`Cx`]) that resolves targets,
//! expressions, durations and dates and collects every problem with its path.
//!
//! It stands in `activities` so that each node kind compiles itself without importing
//! the journey compiler ([`crate::compile`] drives it). It never runs a node.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::str::FromStr;
use std::sync::Arc;

use cranelift_entity::entity_impl;
use jiff::{Span, Timestamp};

use crate::actions::ActionRegistry;
use crate::expr::{Expr, ExprEngine, ExternalCall};
use crate::model::{Channel, Problems};

/// A node of a compiled journey: an index into `compile::Journey::nodes`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeRef(u32);
entity_impl!(NodeRef, "node");

/// What a journey may refer to outside itself.
#[derive(Clone, Default)]
pub struct Catalog {
    /// The actions that action nodes may call, with their versions and schemas.
    pub actions: ActionRegistry,
    /// Names of the audiences that exist.
    pub audiences: Arc<BTreeSet<String>>,
    /// Ids of the capping rules that exist.
    pub capping_rules: Arc<BTreeSet<String>>,
    /// Message templates that exist, with their channels.
    pub templates: Arc<BTreeMap<String, Channel>>,
    /// Subscription groups defined, with their channels (each channel's built-in group,
    /// named after it, exists without a definition).
    pub groups: Arc<BTreeMap<String, Channel>>,
    /// Message providers that exist (empty: not known here, not checked).
    pub providers: Arc<BTreeSet<String>>,
}

/// A call a journey version makes outside the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginCall {
    /// An action node's action, pinned to the version it was validated against.
    Action { name: String, version: String },
    /// A plugin function or data source called from an expression.
    Expr(ExternalCall),
    /// A `message` node's provider, by name (a provider plugin's latest version).
    Provider { name: String },
}

impl std::fmt::Display for PluginCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PluginCall::Action { name, version } => write!(f, "action {name}@{version}"),
            PluginCall::Expr(call) => call.fmt(f),
            PluginCall::Provider { name } => write!(f, "provider {name}"),
        }
    }
}

/// The helpers activities use to compile their definitions; collects every problem and
/// every call outside the engine.
pub struct Cx<'a> {
    pub(crate) problems: Problems,
    /// Where the journey calls plugins (and built-in actions): (path, call).
    pub(crate) calls: Vec<(String, PluginCall)>,
    pub(crate) ids: HashMap<String, NodeRef>,
    exprs: &'a ExprEngine,
    pub catalog: &'a Catalog,
}

impl<'a> Cx<'a> {
    pub(crate) fn new(exprs: &'a ExprEngine, catalog: &'a Catalog) -> Self {
        Cx {
            problems: Problems::default(),
            calls: Vec::new(),
            ids: HashMap::new(),
            exprs,
            catalog,
        }
    }

    pub fn problem(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(path, message);
    }

    /// Resolves a node id that must exist.
    pub fn target(&mut self, path: &str, id: &str) -> Option<NodeRef> {
        let found = self.ids.get(id).copied();
        if found.is_none() {
            self.problem(path, format!("{id:?} is not a node of this journey"));
        }
        found
    }

    /// Resolves an optional node id: `Some(None)` when there is none ("the journey ends
    /// here"), `None` when it names no node (the problem is recorded).
    pub fn opt_target(&mut self, path: &str, id: Option<&String>) -> Option<Option<NodeRef>> {
        match id {
            Some(id) => self.target(path, id).map(Some),
            None => Some(None),
        }
    }

    /// Records a call outside the engine made at `path`.
    pub fn call(&mut self, path: &str, call: PluginCall) {
        self.calls.push((path.to_string(), call));
    }

    pub fn expr(&mut self, path: &str, src: &str) -> Option<Expr> {
        match self.exprs.compile(src) {
            Ok(e) => {
                for call in e.external_calls() {
                    self.call(path, PluginCall::Expr(call));
                }
                Some(e)
            }
            Err(e) => {
                let quoted = crate::expr::excerpt(src, e.line, e.column);
                self.problem(path, format!("{quoted:?}: {e}"));
                None
            }
        }
    }

    pub fn duration(&mut self, path: &str, text: &str) -> Option<Span> {
        match Span::from_str(text) {
            Ok(span) if span.is_negative() => {
                self.problem(path, format!("{text:?} is negative"));
                None
            }
            Ok(span) => Some(span),
            Err(_) => {
                self.problem(
                    path,
                    format!("{text:?} is not an ISO-8601 duration (like P2D, PT12H or P1DT30M)"),
                );
                None
            }
        }
    }

    /// Checks that an audience exists.
    pub fn audience(&mut self, path: &str, name: &str) {
        if !self.catalog.audiences.contains(name) {
            self.problem(
                path,
                format!("there is no audience {name:?} (create it with PUT /v1/audiences/{name})"),
            );
        }
    }

    pub fn timestamp(&mut self, path: &str, text: &str) -> Option<Timestamp> {
        match Timestamp::from_str(text) {
            Ok(ts) => Some(ts),
            Err(_) => {
                self.problem(
                    path,
                    format!("{text:?} is not an RFC 3339 date-time with an offset (like 2026-12-01T09:00:00Z)"),
                );
                None
            }
        }
    }
}
