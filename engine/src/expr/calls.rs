//! What an expression calls outside the engine: plugin functions (`module::name(..)`) and
//! data sources (`lookup("source", key)`), read from its compiled syntax tree.
//!
//! The engine asks before it removes a plugin that a runnable journey version may still
//! call. This module only reads a tree; it never evaluates anything.

use rhai::{AST, ASTNode, Expr as Node, Stmt};

/// A call an expression makes outside the engine.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum ExternalCall {
    /// `module::name(..)`: a function of the functions plugin `module`.
    Function { module: String, name: String },
    /// `lookup(source, key)`: a data source, named by a string literal; `None` when the
    /// name is computed, so that any data source may be called.
    Lookup { source: Option<String> },
}

impl std::fmt::Display for ExternalCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExternalCall::Function { module, name } => write!(f, "{module}::{name}()"),
            ExternalCall::Lookup {
                source: Some(source),
            } => write!(f, "lookup({source:?}, ..)"),
            ExternalCall::Lookup { source: None } => {
                f.write_str("lookup(..) with a computed source")
            }
        }
    }
}

/// Every external call in `ast`, each once, in order.
pub(super) fn external_calls(ast: &AST) -> Vec<ExternalCall> {
    let mut calls = Vec::new();
    ast.walk(&mut |path: &[ASTNode]| {
        // A call is an expression, or a statement when it is the whole body (a closure's).
        let call = match path.last() {
            Some(ASTNode::Expr(Node::FnCall(call, _))) => Some(call),
            Some(ASTNode::Stmt(Stmt::FnCall(call, _))) => Some(call),
            _ => None,
        };
        if let Some(call) = call {
            if !call.namespace.is_empty() {
                calls.push(ExternalCall::Function {
                    module: call.namespace.root().to_string(),
                    name: call.name.to_string(),
                });
            } else if call.name == "lookup" && call.args.len() == 2 {
                let source = match &call.args[0] {
                    Node::StringConstant(s, _) => Some(s.to_string()),
                    _ => None,
                };
                calls.push(ExternalCall::Lookup { source });
            }
        }
        true
    });
    calls.sort();
    calls.dedup();
    calls
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::Value;

    use crate::expr::{CallInfo, ExprEngine, ExternalFunctions};
    use crate::settings::ExprLimits;

    /// Two functions plugins, as the registry offers them (unknown modules do not parse).
    struct Plugins;

    impl ExternalFunctions for Plugins {
        fn generation(&self) -> u64 {
            1
        }
        fn signatures(&self) -> Vec<(String, String, usize)> {
            vec![
                ("loyalty".into(), "tier".into(), 1),
                ("scoring".into(), "score".into(), 2),
            ]
        }
        fn call(&self, _: &str, _: &str, _: Vec<Value>, _: &CallInfo) -> Result<Value, String> {
            Ok(Value::Null)
        }
        fn lookup(&self, _: &str, _: &str, _: &CallInfo) -> Result<Option<Value>, String> {
            Ok(None)
        }
    }

    fn calls(src: &str) -> Vec<String> {
        let engine = ExprEngine::with_functions(&ExprLimits::default(), Some(Arc::new(Plugins)));
        let expr = engine.compile(src).expect("compiles");
        expr.external_calls()
            .iter()
            .map(|c| c.to_string())
            .collect()
    }

    #[test]
    fn finds_functions_and_sources_anywhere_in_the_tree() {
        assert_eq!(
            calls(r#"loyalty::tier(profile.id) == "gold" && lookup("crm", event.data.id).vip"#),
            ["loyalty::tier()", r#"lookup("crm", ..)"#]
        );
        assert_eq!(
            calls("[1, 2].map(|x| scoring::score(x, loyalty::tier(x))).len() > 0"),
            ["loyalty::tier()", "scoring::score()"]
        );
        assert_eq!(
            calls("lookup(event.data.source, 1) ?? lookup(\"crm\", 2)"),
            ["lookup(..) with a computed source", r#"lookup("crm", ..)"#]
        );
    }

    #[test]
    fn plain_expressions_call_nothing_outside() {
        assert!(calls("event.data.amount > 100 && profile.tier in [\"gold\"]").is_empty());
        // A string that looks like a call is a string.
        assert!(calls(r#"event.data.note == "loyalty::tier(1)""#).is_empty());
        // Built-in functions are not plugins.
        assert!(calls("now() > datetime(event.data.at)").is_empty());
    }
}
