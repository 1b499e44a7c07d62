//! Structured logging through the host (the plugin has no stdout of its own).

use crate::world::parcours::plugin::host::{self, Level};

fn emit(level: Level, message: &str, fields: &serde_json::Value) {
    let fields = if fields.is_null() {
        String::new()
    } else {
        fields.to_string()
    };
    host::log(level, message, &fields);
}

pub fn debug(message: &str) {
    emit(Level::Debug, message, &serde_json::Value::Null);
}

pub fn info(message: &str) {
    emit(Level::Info, message, &serde_json::Value::Null);
}

pub fn warn(message: &str) {
    emit(Level::Warn, message, &serde_json::Value::Null);
}

pub fn error(message: &str) {
    emit(Level::Error, message, &serde_json::Value::Null);
}

/// A log line with structured fields (a JSON object).
pub fn with_fields(message: &str, fields: serde_json::Value) {
    emit(Level::Info, message, &fields);
}
