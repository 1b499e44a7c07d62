//! The compiled fast path for the common subset of expressions: field access
//! (`event.data.amount`, `profile?.tier`, `event.data["k"]`, `items[0]`), literals,
//! comparisons, boolean logic, `??`, arithmetic, `in`, `.len()` and `in_audience(..)`.
//!
//! Such an expression is parsed a second time, after rhai accepted it, into a small
//! tree evaluated directly over the JSON values of the scope: nothing is converted, no
//! rhai state is set up. Its answers are rhai's: the operators follow rhai's built-in
//! ones (including the relative-epsilon float comparisons of a checked build and the
//! `false` of comparisons between different non-numeric types), and whenever the
//! evaluation meets something it does not model exactly (an error rhai would raise, an
//! array or map compared, an integer overflow, a number JSON holds outside `i64`/`f64`)
//! it declines and rhai evaluates the whole expression. It never answers differently
//! from rhai; tests compare the two on every operator and value kind, and the expression
//! fuzz target compares them on every input it generates.
//!
//! This module never calls plugins and never copies a value read from the scope (only a
//! string answer of `eval_json` is copied out). Its work is bounded by the expression's
//! size (at most [`MAX_NODES`] nodes, [`MAX_DEPTH`] levels) plus one pass over an array
//! or a string for `in` and `.len()`.

use serde_json::Value;

use super::{EvalEnv, SCOPE_NAMES, ScopeData};

/// A parsed fast-path expression.
#[derive(Debug)]
pub(crate) struct Fast {
    root: Node,
    /// Nodes in the tree.
    size: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arith {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

#[derive(Debug)]
enum Node {
    Unit,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Box<str>),
    /// Index into [`SCOPE_NAMES`].
    Var(usize),
    Prop {
        target: Box<Node>,
        name: Box<str>,
        elvis: bool,
    },
    Index {
        target: Box<Node>,
        index: Box<Node>,
        elvis: bool,
    },
    Len {
        target: Box<Node>,
        elvis: bool,
    },
    Not(Box<Node>),
    Neg(Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Coalesce(Box<Node>, Box<Node>),
    Cmp(Cmp, Box<Node>, Box<Node>),
    Arith(Arith, Box<Node>, Box<Node>),
    /// `needle in haystack`; `negated` for `!in`.
    In {
        needle: Box<Node>,
        haystack: Box<Node>,
        negated: bool,
    },
    InAudience(Box<Node>),
}

/// A value during evaluation: a scalar, or a borrowed array or map.
#[derive(Debug, Clone, Copy)]
enum Val<'a> {
    Unit,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
    /// An array or an object.
    Json(&'a Value),
    /// A scope variable without data: an empty map, as rhai sees it.
    Empty,
}

impl Fast {
    /// Parses `src` when it lies inside the subset; `None` otherwise (rhai alone then).
    pub(crate) fn parse(src: &str) -> Option<Fast> {
        let tokens = lex(src)?;
        let mut p = Parser {
            tokens,
            pos: 0,
            depth: 0,
        };
        let root = p.expr(0)?;
        let size = root.size();
        (p.pos == p.tokens.len() && size <= MAX_NODES).then_some(Fast { root, size })
    }

    /// How many nodes the tree has (each costs rhai at least one operation).
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// `Some(answer)` when the expression evaluates to a boolean inside the subset.
    pub(crate) fn eval_bool(&self, data: &ScopeData<'_>, env: &EvalEnv) -> Option<bool> {
        match eval(&self.root, data, env)? {
            Val::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// `Some(value)` when the expression evaluates to a scalar inside the subset (arrays
    /// and maps are left to rhai, whose conversion orders map keys).
    pub(crate) fn eval_json(&self, data: &ScopeData<'_>, env: &EvalEnv) -> Option<Value> {
        Some(match eval(&self.root, data, env)? {
            Val::Unit => Value::Null,
            Val::Bool(b) => Value::Bool(b),
            Val::Int(i) => Value::from(i),
            Val::Float(f) if f.is_finite() => Value::from(f),
            Val::Str(s) => Value::String(s.to_string()),
            Val::Float(_) | Val::Json(_) | Val::Empty => return None,
        })
    }
}

impl Node {
    fn size(&self) -> u64 {
        1 + match self {
            Node::Unit
            | Node::Bool(_)
            | Node::Int(_)
            | Node::Float(_)
            | Node::Str(_)
            | Node::Var(_) => 0,
            Node::Prop { target, .. } | Node::Len { target, .. } => target.size(),
            Node::Not(x) | Node::Neg(x) | Node::InAudience(x) => x.size(),
            Node::Index { target, index, .. } => target.size() + index.size(),
            Node::And(a, b)
            | Node::Or(a, b)
            | Node::Coalesce(a, b)
            | Node::Cmp(_, a, b)
            | Node::Arith(_, a, b) => a.size() + b.size(),
            Node::In {
                needle, haystack, ..
            } => needle.size() + haystack.size(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Lexing and parsing

#[derive(Debug, Clone, PartialEq)]
enum Tok<'a> {
    Ident(&'a str),
    Int(i64),
    Float(f64),
    Str(&'a str),
    /// Punctuation and operators, as written (`!in` for the negated `in`).
    Op(&'static str),
}

const OPS: [&str; 22] = [
    "?.", "?[", "??", "==", "!=", "<=", ">=", "&&", "||", ".", "[", "]", "(", ")", "<", ">", "!",
    "+", "-", "*", "/", "%",
];

fn is_ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Splits `src` into tokens; `None` on anything outside the subset (comments, escapes,
/// characters, numbers written with `_`, exponents or radix prefixes, `::`, ...).
fn lex(src: &str) -> Option<Vec<Tok<'_>>> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() {
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            let float = i + 1 < b.len() && b[i] == b'.' && b[i + 1].is_ascii_digit();
            if float {
                i += 1;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
            }
            if i < b.len() && (is_ident_char(b[i]) || (b[i] == b'.' && float)) {
                return None;
            }
            let text = &src[start..i];
            out.push(if float {
                Tok::Float(text.parse().ok()?)
            } else {
                Tok::Int(text.parse().ok()?)
            });
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < b.len() && is_ident_char(b[i]) {
                i += 1;
            }
            out.push(Tok::Ident(&src[start..i]));
        } else if c == b'"' {
            let start = i + 1;
            let len = src[start..].find('"')?;
            let text = &src[start..start + len];
            if text.contains(['\\', '\n', '\r']) {
                return None;
            }
            out.push(Tok::Str(text));
            i = start + len + 1;
        } else if src[i..].starts_with("!in") && !b.get(i + 3).is_some_and(|c| is_ident_char(*c)) {
            out.push(Tok::Op("!in"));
            i += 3;
        } else if src[i..].starts_with("//") || src[i..].starts_with("/*") {
            return None;
        } else {
            // The longest operator that starts here; anything else (`=`, `&`, `|`, `:`,
            // `{`, `'`, ...) is outside the subset. Operators the subset lacks that begin
            // like one it has (`<<`, `**`, `..`, `+=`) fail to parse further on.
            let op = OPS
                .iter()
                .filter(|op| src[i..].starts_with(**op))
                .max_by_key(|op| op.len())?;
            out.push(Tok::Op(op));
            i += op.len();
        }
    }
    Some(out)
}

struct Parser<'a> {
    tokens: Vec<Tok<'a>>,
    pos: usize,
    /// Nesting of the current parse, bounded by [`MAX_DEPTH`].
    depth: usize,
}

/// The deepest nesting the fast path takes (rhai's own `expr.max_expr_depth` applies
/// first); deeper expressions are left to rhai.
const MAX_DEPTH: usize = 32;

/// The most nodes the fast path takes: evaluation recurses once per level of the tree.
const MAX_NODES: u64 = 256;

/// Binary operators of the subset with rhai's precedences (all bind to the left).
fn binary(op: &str) -> Option<u8> {
    Some(match op {
        "||" => 30,
        "&&" => 60,
        "==" | "!=" => 90,
        "in" | "!in" => 110,
        "<" | "<=" | ">" | ">=" => 130,
        "??" => 135,
        "+" | "-" => 150,
        "*" | "/" | "%" => 180,
        _ => return None,
    })
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<&Tok<'a>> {
        self.tokens.get(self.pos)
    }

    fn eat(&mut self, op: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Op(o)) if *o == op) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn peek_binary(&self) -> Option<(&'static str, u8)> {
        match self.peek()? {
            Tok::Op(op) => binary(op).map(|p| (*op, p)),
            Tok::Ident("in") => Some(("in", 110)),
            _ => None,
        }
    }

    fn expr(&mut self, min: u8) -> Option<Node> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return None;
        }
        let node = self.binary_chain(min);
        self.depth -= 1;
        node
    }

    fn binary_chain(&mut self, min: u8) -> Option<Node> {
        let mut lhs = self.unary()?;
        while let Some((op, prec)) = self.peek_binary() {
            if prec < min {
                break;
            }
            self.pos += 1;
            let rhs = Box::new(self.expr(prec + 1)?);
            let lhs_box = Box::new(lhs);
            lhs = match op {
                "||" => Node::Or(lhs_box, rhs),
                "&&" => Node::And(lhs_box, rhs),
                "??" => Node::Coalesce(lhs_box, rhs),
                "in" | "!in" => Node::In {
                    needle: lhs_box,
                    haystack: rhs,
                    negated: op == "!in",
                },
                "==" => Node::Cmp(Cmp::Eq, lhs_box, rhs),
                "!=" => Node::Cmp(Cmp::Ne, lhs_box, rhs),
                "<" => Node::Cmp(Cmp::Lt, lhs_box, rhs),
                "<=" => Node::Cmp(Cmp::Le, lhs_box, rhs),
                ">" => Node::Cmp(Cmp::Gt, lhs_box, rhs),
                ">=" => Node::Cmp(Cmp::Ge, lhs_box, rhs),
                "+" => Node::Arith(Arith::Add, lhs_box, rhs),
                "-" => Node::Arith(Arith::Sub, lhs_box, rhs),
                "*" => Node::Arith(Arith::Mul, lhs_box, rhs),
                "/" => Node::Arith(Arith::Div, lhs_box, rhs),
                _ => Node::Arith(Arith::Rem, lhs_box, rhs),
            };
        }
        Some(lhs)
    }

    fn unary(&mut self) -> Option<Node> {
        if self.eat("!") {
            return Some(Node::Not(Box::new(self.expr(u8::MAX)?)));
        }
        if self.eat("-") {
            return Some(match self.expr(u8::MAX)? {
                Node::Int(i) => Node::Int(i.checked_neg()?),
                Node::Float(f) => Node::Float(-f),
                other => Node::Neg(Box::new(other)),
            });
        }
        self.postfix()
    }

    fn postfix(&mut self) -> Option<Node> {
        let mut node = self.primary()?;
        loop {
            let elvis = match self.peek() {
                Some(Tok::Op("?.")) | Some(Tok::Op("?[")) => true,
                Some(Tok::Op(".")) | Some(Tok::Op("[")) => false,
                _ => return Some(node),
            };
            let dot = matches!(self.peek(), Some(Tok::Op(".")) | Some(Tok::Op("?.")));
            self.pos += 1;
            let target = Box::new(node);
            node = if dot {
                let Some(Tok::Ident(name)) = self.peek().cloned() else {
                    return None;
                };
                self.pos += 1;
                if self.eat("(") {
                    if name != "len" || !self.eat(")") {
                        return None;
                    }
                    Node::Len { target, elvis }
                } else {
                    Node::Prop {
                        target,
                        name: name.into(),
                        elvis,
                    }
                }
            } else {
                let index = Box::new(self.expr(0)?);
                if !self.eat("]") {
                    return None;
                }
                Node::Index {
                    target,
                    index,
                    elvis,
                }
            };
        }
    }

    fn primary(&mut self) -> Option<Node> {
        let tok = self.peek()?.clone();
        self.pos += 1;
        Some(match tok {
            Tok::Int(i) => Node::Int(i),
            Tok::Float(f) => Node::Float(f),
            Tok::Str(s) => Node::Str(s.into()),
            Tok::Op("(") => {
                if self.eat(")") {
                    return Some(Node::Unit);
                }
                let inner = self.expr(0)?;
                if !self.eat(")") {
                    return None;
                }
                inner
            }
            Tok::Ident("true") => Node::Bool(true),
            Tok::Ident("false") => Node::Bool(false),
            Tok::Ident("in_audience") => {
                if !self.eat("(") {
                    return None;
                }
                let arg = self.expr(0)?;
                if !self.eat(")") {
                    return None;
                }
                Node::InAudience(Box::new(arg))
            }
            Tok::Ident(name) => {
                let i = SCOPE_NAMES.iter().position(|n| *n == name)?;
                // A scope name called as a function is not a variable.
                if matches!(self.peek(), Some(Tok::Op("("))) {
                    return None;
                }
                Node::Var(i)
            }
            Tok::Op(_) => return None,
        })
    }
}

// ---------------------------------------------------------------------------------------
// Evaluation

fn scope_value<'a>(data: &ScopeData<'a>, i: usize) -> Option<&'a Value> {
    match i {
        0 => data.event,
        1 => data.events,
        2 => data.profile,
        3 => data.journey,
        _ => data.actions,
    }
}

fn from_json(v: &Value) -> Option<Val<'_>> {
    Some(match v {
        Value::Null => Val::Unit,
        Value::Bool(b) => Val::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Val::Int(i),
            None if n.is_f64() => Val::Float(n.as_f64()?),
            None => return None,
        },
        Value::String(s) => Val::Str(s),
        Value::Array(_) | Value::Object(_) => Val::Json(v),
    })
}

fn eval<'a>(node: &'a Node, data: &ScopeData<'a>, env: &EvalEnv) -> Option<Val<'a>> {
    Some(match node {
        Node::Unit => Val::Unit,
        Node::Bool(b) => Val::Bool(*b),
        Node::Int(i) => Val::Int(*i),
        Node::Float(f) => Val::Float(*f),
        Node::Str(s) => Val::Str(s),
        Node::Var(i) => match scope_value(data, *i) {
            Some(v) => from_json(v)?,
            None => Val::Empty,
        },
        Node::Prop {
            target,
            name,
            elvis,
        } => match eval(target, data, env)? {
            Val::Unit if *elvis => Val::Unit,
            Val::Json(Value::Object(map)) => map.get(&**name).map_or(Some(Val::Unit), from_json)?,
            Val::Empty => Val::Unit,
            _ => return None,
        },
        Node::Index {
            target,
            index,
            elvis,
        } => {
            let target = eval(target, data, env)?;
            if *elvis && matches!(target, Val::Unit) {
                return Some(Val::Unit);
            }
            match (target, eval(index, data, env)?) {
                (Val::Json(Value::Object(map)), Val::Str(k)) => {
                    map.get(k).map_or(Some(Val::Unit), from_json)?
                }
                (Val::Empty, Val::Str(_)) => Val::Unit,
                (Val::Json(Value::Array(items)), Val::Int(i)) => {
                    let len = i64::try_from(items.len()).ok()?;
                    let at = if i < 0 { len.checked_add(i)? } else { i };
                    from_json(items.get(usize::try_from(at).ok()?)?)?
                }
                _ => return None,
            }
        }
        Node::Len { target, elvis } => match eval(target, data, env)? {
            Val::Unit if *elvis => Val::Unit,
            Val::Json(Value::Array(items)) => Val::Int(i64::try_from(items.len()).ok()?),
            Val::Json(Value::Object(map)) => Val::Int(i64::try_from(map.len()).ok()?),
            Val::Empty => Val::Int(0),
            Val::Str(s) => Val::Int(i64::try_from(s.chars().count()).ok()?),
            _ => return None,
        },
        Node::Not(x) => match eval(x, data, env)? {
            Val::Bool(b) => Val::Bool(!b),
            _ => return None,
        },
        Node::Neg(x) => match eval(x, data, env)? {
            Val::Int(i) => Val::Int(i.checked_neg()?),
            Val::Float(f) => Val::Float(-f),
            _ => return None,
        },
        Node::And(a, b) => match eval(a, data, env)? {
            Val::Bool(false) => Val::Bool(false),
            Val::Bool(true) => match eval(b, data, env)? {
                Val::Bool(b) => Val::Bool(b),
                _ => return None,
            },
            _ => return None,
        },
        Node::Or(a, b) => match eval(a, data, env)? {
            Val::Bool(true) => Val::Bool(true),
            Val::Bool(false) => match eval(b, data, env)? {
                Val::Bool(b) => Val::Bool(b),
                _ => return None,
            },
            _ => return None,
        },
        Node::Coalesce(a, b) => match eval(a, data, env)? {
            Val::Unit => eval(b, data, env)?,
            v => v,
        },
        Node::Cmp(op, a, b) => Val::Bool(compare(*op, eval(a, data, env)?, eval(b, data, env)?)?),
        Node::Arith(op, a, b) => arith(*op, eval(a, data, env)?, eval(b, data, env)?)?,
        Node::In {
            needle,
            haystack,
            negated,
        } => {
            let needle = eval(needle, data, env)?;
            let found = match (eval(haystack, data, env)?, needle) {
                (Val::Str(hay), Val::Str(n)) => hay.contains(n),
                (Val::Json(Value::Object(map)), Val::Str(k)) => map.contains_key(k),
                (Val::Empty, Val::Str(_)) => false,
                (Val::Json(Value::Array(items)), n) if !matches!(n, Val::Json(_) | Val::Empty) => {
                    let mut found = false;
                    for item in items {
                        if compare(Cmp::Eq, from_json(item)?, n)? {
                            found = true;
                            break;
                        }
                    }
                    found
                }
                _ => return None,
            };
            Val::Bool(found != *negated)
        }
        Node::InAudience(name) => match eval(name, data, env)? {
            Val::Str(name) => Val::Bool(
                env.call
                    .as_ref()
                    .is_some_and(|call| call.audiences.contains(name)),
            ),
            _ => return None,
        },
    })
}

/// rhai's built-in comparison operators; `None` where rhai would raise an error or
/// call a registered function (arrays and maps).
fn compare(op: Cmp, a: Val<'_>, b: Val<'_>) -> Option<bool> {
    use std::cmp::Ordering;
    let ordering = match (a, b) {
        (Val::Int(x), Val::Int(y)) => x.cmp(&y),
        (Val::Float(x), Val::Float(y)) => return Some(float_compare(op, x, y)),
        #[allow(clippy::cast_precision_loss, reason = "rhai compares as floats")]
        (Val::Int(x), Val::Float(y)) => return Some(float_compare(op, x as f64, y)),
        #[allow(clippy::cast_precision_loss, reason = "rhai compares as floats")]
        (Val::Float(x), Val::Int(y)) => return Some(float_compare(op, x, y as f64)),
        (Val::Str(x), Val::Str(y)) => x.cmp(y),
        (Val::Bool(x), Val::Bool(y)) => x.cmp(&y),
        (Val::Unit, Val::Unit) => return Some(op == Cmp::Eq),
        (Val::Json(_) | Val::Empty, _) | (_, Val::Json(_) | Val::Empty) => return None,
        // Different kinds (not both numbers): rhai's defaults.
        _ => return Some(op == Cmp::Ne),
    };
    Some(match op {
        Cmp::Eq => ordering == Ordering::Equal,
        Cmp::Ne => ordering != Ordering::Equal,
        Cmp::Lt => ordering == Ordering::Less,
        Cmp::Le => ordering != Ordering::Greater,
        Cmp::Gt => ordering == Ordering::Greater,
        Cmp::Ge => ordering != Ordering::Less,
    })
}

/// rhai's float comparisons in a checked build: relative to the larger magnitude, with
/// `f64::EPSILON` as the tolerance.
fn float_compare(op: Cmp, x: f64, y: f64) -> bool {
    let max = if x * y == 0.0 {
        1.0
    } else {
        x.abs().max(y.abs())
    };
    if max == 0.0 {
        return matches!(op, Cmp::Eq | Cmp::Ge | Cmp::Le);
    }
    match op {
        Cmp::Eq => (x - y).abs() / max <= f64::EPSILON,
        Cmp::Ne => (x - y).abs() / max > f64::EPSILON,
        Cmp::Gt => (x - y) / max > f64::EPSILON,
        Cmp::Ge => (x - y) / max > -f64::EPSILON,
        Cmp::Lt => (y - x) / max > f64::EPSILON,
        Cmp::Le => (y - x) / max > -f64::EPSILON,
    }
}

/// rhai's built-in arithmetic on numbers: checked on integers (an overflow or a
/// division by zero is an error there, so `None` here), plain on floats.
fn arith<'a>(op: Arith, a: Val<'a>, b: Val<'a>) -> Option<Val<'a>> {
    #[allow(clippy::cast_precision_loss, reason = "rhai computes as floats")]
    let (x, y) = match (a, b) {
        (Val::Int(x), Val::Int(y)) => {
            return Some(Val::Int(match op {
                Arith::Add => x.checked_add(y)?,
                Arith::Sub => x.checked_sub(y)?,
                Arith::Mul => x.checked_mul(y)?,
                Arith::Div => x.checked_div(y)?,
                Arith::Rem => x.checked_rem(y)?,
            }));
        }
        (Val::Float(x), Val::Float(y)) => (x, y),
        (Val::Int(x), Val::Float(y)) => (x as f64, y),
        (Val::Float(x), Val::Int(y)) => (x, y as f64),
        _ => return None,
    };
    Some(Val::Float(match op {
        Arith::Add => x + y,
        Arith::Sub => x - y,
        Arith::Mul => x * y,
        Arith::Div => x / y,
        Arith::Rem => x % y,
    }))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use serde_json::{Value, json};

    use crate::expr::{CallInfo, EvalEnv, ExprEngine, ScopeData};
    use crate::settings::ExprLimits;

    /// One value of every kind the fast path meets, and some edge cases.
    fn values() -> Vec<Value> {
        vec![
            json!(null),
            json!(true),
            json!(false),
            json!(0),
            json!(1),
            json!(-1),
            json!(7),
            json!(i64::MAX),
            json!(i64::MIN),
            json!(u64::MAX),
            json!(1.0),
            json!(1.5),
            json!(0.0),
            json!(-2.5),
            json!(1e300),
            json!(7.000_000_000_000_001),
            json!("a"),
            json!("b"),
            json!(""),
            json!("ab"),
            json!("gold"),
            json!([1, "a", null, 1.5]),
            json!([]),
            json!({"a": 1, "x": {"y": 2}}),
            json!({}),
        ]
    }

    struct Check {
        ee: ExprEngine,
        event: Value,
        profile: Value,
        env: EvalEnv,
        answered: usize,
    }

    impl Check {
        fn new() -> Self {
            let data: serde_json::Map<String, Value> = values()
                .into_iter()
                .enumerate()
                .map(|(i, v)| (format!("v{i}"), v))
                .collect();
            Check {
                ee: ExprEngine::new(&ExprLimits::default()),
                event: json!({"type": "order", "data": data}),
                profile: json!({"tier": "gold", "tags": ["vip", "new"], "score": 12.5}),
                env: EvalEnv {
                    now: "2026-03-02T08:00:00Z".parse().expect("time"),
                    tz: jiff::tz::TimeZone::UTC,
                    call: Some(Arc::new(CallInfo {
                        audiences: Arc::new(BTreeSet::from(["gold".to_string()])),
                        ..Default::default()
                    })),
                },
                answered: 0,
            }
        }

        /// The fast path's answer for `src`, checked against rhai's.
        fn check(&mut self, src: &str) -> Option<Value> {
            let Ok(expr) = self.ee.compile(src) else {
                return None;
            };
            let data = ScopeData {
                event: Some(&self.event),
                profile: Some(&self.profile),
                ..Default::default()
            };
            let fast = ExprEngine::eval_json_fast(&expr, &data, &self.env)?;
            let general = self.ee.eval_json_general(&expr, &data, &self.env);
            assert_eq!(
                Ok(&fast),
                general.as_ref(),
                "`{src}`: the fast path answered {fast}, rhai {general:?}"
            );
            self.answered += 1;
            Some(fast)
        }
    }

    #[test]
    fn every_operator_on_every_kind_of_value_answers_as_rhai_does() {
        let mut c = Check::new();
        let n = values().len();
        let binary = [
            "==", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/", "%", "&&", "||", "??", "in",
            "!in",
        ];
        for op in binary {
            for i in 0..n {
                for j in 0..n {
                    c.check(&format!("event.data.v{i} {op} event.data.v{j}"));
                }
            }
        }
        for i in 0..n {
            for form in [
                "!event.data.v{i}",
                "-event.data.v{i}",
                "event.data.v{i}.len()",
                "event.data.v{i}?.len()",
                "event.data.v{i}.a",
                "event.data.v{i}?.a",
                "event.data.v{i}?.x.y",
                "event.data.v{i}.x?.y",
                "event.data.v{i}[0]",
                "event.data.v{i}[-1]",
                "event.data.v{i}[9]",
                "event.data.v{i}[\"a\"]",
                "event.data.v{i}?[\"a\"]",
                "event.data.v{i} ?? 5",
                "\"a\" in event.data.v{i}",
                "1 in event.data.v{i}",
                "in_audience(event.data.v{i})",
                "events.x == event.data.v{i}",
                "events.len() < event.data.v{i}",
                "\"a\" in events",
            ] {
                c.check(&form.replace("{i}", &i.to_string()));
            }
        }
        // A fast path that declined everything would pass the loop above.
        assert!(c.answered > 3_500, "only {} answers", c.answered);
    }

    #[test]
    fn precedence_literals_and_scope_follow_rhai() {
        let mut c = Check::new();
        for (src, expected) in [
            ("1 + 2 * 3 == 7 && !false || 1 < 0", json!(true)),
            ("1 < 2 == true", json!(true)),
            ("2 - 3 - 4", json!(-5)),
            ("-2 * 3", json!(-6)),
            ("7 % 3 + 10 / 4", json!(3)),
            ("10 / 4.0", json!(2.5)),
            ("(1 + 2) * 3", json!(9)),
            ("\"a\" in \"cab\" == true", json!(true)),
            ("\"z\" !in \"cab\"", json!(true)),
            ("!in_audience(\"gold\")", json!(false)),
            (
                "in_audience(\"silver\") || profile.tier == \"gold\"",
                json!(true),
            ),
            (
                "profile.tags.len() >= 2 && \"vip\" in profile.tags",
                json!(true),
            ),
            ("profile.tags[1]", json!("new")),
            ("profile[\"tier\"]", json!("gold")),
            ("profile.score * 2 > 20", json!(true)),
            ("profile.missing ?? \"none\"", json!("none")),
            ("profile?.missing?.deeper", json!(null)),
            ("journey.id", json!(null)),
            ("()", json!(null)),
            ("event.type", json!("order")),
            ("\t1 <= 1.0000000000000002\n", json!(true)),
            ("true && (false || !false)", json!(true)),
        ] {
            assert_eq!(c.check(src), Some(expected.clone()), "`{src}`");
        }
    }

    #[test]
    fn text_outside_the_subset_is_left_to_rhai() {
        let ee = ExprEngine::new(&ExprLimits::default());
        for src in [
            "event.data.amount > 1_000",
            "0x10 > 1",
            "1e3 > 1",
            "\"a\\n\" == \"a\"",
            "'a' == 'a'",
            "event.data.amount > 1 // comment",
            "let x = 1; x > 0",
            "if true { 1 } else { 2 }",
            "[1, 2].len() == 2",
            "#{a: 1}.a == 1",
            "profile.tier.to_upper() == \"GOLD\"",
            "days(1) > days(0)",
            "now() > now()",
            "1 << 2 == 4",
            "2 ** 3 == 8",
            "profile.tier == `gold`",
            "true & false",
            "1..3 == 1..3",
        ] {
            if let Ok(expr) = ee.compile(src) {
                assert!(!expr.has_fast_path(), "`{src}` took the fast path");
            }
        }
        for src in [
            "event.data.amount > 100",
            "!in_audience(\"gold\")",
            "profile?.tier != \"gold\"",
        ] {
            assert!(ee.compile(src).expect(src).has_fast_path(), "`{src}`");
        }
    }
}
