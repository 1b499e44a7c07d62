//! JSON Schemas of action parameters: checked when a journey is validated (what can be
//! known then) and on every call (the rendered parameters).

use indexmap::IndexMap;
use serde_json::Value;

/// A compiled parameter schema.
pub struct ParamsSchema {
    schema: Value,
    validator: jsonschema::Validator,
}

impl std::fmt::Debug for ParamsSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ParamsSchema({})", self.schema)
    }
}

impl ParamsSchema {
    /// Compiles a schema; the error says what is wrong with it.
    pub fn new(schema: Value) -> Result<ParamsSchema, String> {
        let validator = jsonschema::validator_for(&schema).map_err(|e| e.to_string())?;
        Ok(ParamsSchema { schema, validator })
    }

    pub fn schema(&self) -> &Value {
        &self.schema
    }

    /// Checks rendered parameters; the error names the first faulty place.
    pub fn validate(&self, params: &Value) -> Result<(), String> {
        match self.validator.iter_errors(params).next() {
            None => Ok(()),
            Some(e) => {
                let at = e.instance_path().to_string();
                Err(if at.is_empty() {
                    e.to_string()
                } else {
                    format!("{at}: {e}")
                })
            }
        }
    }

    /// Checks what a definition fixes before any expression runs: required parameters
    /// present, no unknown parameter when the schema forbids them, and literal values
    /// against their property's schema. Expression parameters are checked on each call.
    /// Returns (parameter name or empty, message) pairs.
    pub fn check_definition(&self, params: &IndexMap<String, Value>) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        let props = self.schema.get("properties").and_then(Value::as_object);
        if let Some(required) = self.schema.get("required").and_then(Value::as_array) {
            for name in required.iter().filter_map(Value::as_str) {
                if !params.contains_key(name) {
                    problems.push((
                        String::new(),
                        format!("missing required parameter `{name}`"),
                    ));
                }
            }
        }
        let closed = self.schema.get("additionalProperties") == Some(&Value::Bool(false));
        for (name, value) in params {
            let prop = props.and_then(|p| p.get(name));
            match prop {
                None if closed => {
                    let known: Vec<&str> = props
                        .map(|p| p.keys().map(String::as_str).collect())
                        .unwrap_or_default();
                    problems.push((
                        name.clone(),
                        format!("unknown parameter (expected one of: {})", known.join(", ")),
                    ));
                }
                Some(prop) if !value.is_string() => {
                    if let Ok(v) = jsonschema::validator_for(prop)
                        && let Some(e) = v.iter_errors(value).next()
                    {
                        problems.push((name.clone(), e.to_string()));
                    }
                }
                _ => {}
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn definition_checks_required_unknown_and_literals() {
        let s = ParamsSchema::new(json!({
            "type": "object", "required": ["url"], "additionalProperties": false,
            "properties": {"url": {"type": "string"}, "retries": {"type": "integer"}}
        }))
        .unwrap();
        let mut p = IndexMap::new();
        p.insert("retries".to_string(), json!("x"));
        p.insert("nope".to_string(), json!(1));
        let problems = s.check_definition(&p);
        assert!(
            problems
                .iter()
                .any(|(n, m)| n.is_empty() && m.contains("`url`")),
            "{problems:?}"
        );
        assert!(problems.iter().any(|(n, _)| n == "nope"), "{problems:?}");
        p.insert("retries".to_string(), json!(true));
        assert!(s.check_definition(&p).iter().any(|(n, _)| n == "retries"));
        assert!(s.validate(&json!({"url": 5})).unwrap_err().contains("/url"));
        assert!(s.validate(&json!({"url": "http://x"})).is_ok());
    }
}
