//! Structured logging through the host.
//!
//! ```
//! gatehouse_sdk::log::info("checked request", &[("path", "/admin"), ("rule", "deny[0]")]);
//! ```
//!
//! Natively the lines are captured; see [`crate::testing::take_logs`].

use crate::host::LogLevel;

/// Logs `message` with `fields` at `level`.
pub fn log(level: LogLevel, message: &str, fields: &[(&str, &str)]) {
    let fields: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    crate::sys::log(level, message, &fields);
}

/// Logs at trace level.
pub fn trace(message: &str, fields: &[(&str, &str)]) {
    log(LogLevel::Trace, message, fields);
}

/// Logs at debug level.
pub fn debug(message: &str, fields: &[(&str, &str)]) {
    log(LogLevel::Debug, message, fields);
}

/// Logs at info level.
pub fn info(message: &str, fields: &[(&str, &str)]) {
    log(LogLevel::Info, message, fields);
}

/// Logs at warn level.
pub fn warn(message: &str, fields: &[(&str, &str)]) {
    log(LogLevel::Warn, message, fields);
}

/// Logs at error level.
pub fn error(message: &str, fields: &[(&str, &str)]) {
    log(LogLevel::Error, message, fields);
}
