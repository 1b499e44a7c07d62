//! Expression functions: `<name>::double(21)` in a condition or a parameter.

use parcours_sdk::functions::{Functions, Signature};
use parcours_sdk::{Error, Value, json};

pub struct Plugin;

impl Functions for Plugin {
    fn describe() -> Vec<Signature> {
        vec![Signature {
            name: "double",
            params: &["int"],
            result: "int",
            description: "twice its argument",
        }]
    }

    fn call(name: &str, args: Vec<Value>) -> Result<Value, Error> {
        match (name, args.as_slice()) {
            ("double", [n]) => {
                let n = n
                    .as_i64()
                    .ok_or_else(|| Error::InvalidInput("double: takes one integer".into()))?;
                Ok(json!(n * 2))
            }
            ("double", _) => Err(Error::InvalidInput("double: takes one integer".into())),
            (other, _) => Err(Error::InvalidInput(format!("no function {other}"))),
        }
    }
}

parcours_sdk::export_functions!(Plugin);
