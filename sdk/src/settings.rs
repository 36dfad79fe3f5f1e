//! Typed access to the policy's settings JSON.

pub mod fields;

use std::sync::{Arc, Mutex, PoisonError};

use serde::de::DeserializeOwned;

/// The raw settings JSON from the host (`{}` when none were given).
pub fn settings_json() -> String {
    crate::sys::settings()
}

/// The host's settings, parsed into `T`.
///
/// An empty string counts as `{}`. The error names the line and column.
///
/// ```
/// #[derive(serde::Deserialize, Default)]
/// struct Settings { #[serde(default)] reason: Option<String> }
///
/// gatehouse_sdk::testing::with_settings(r#"{"reason": "no"}"#, || {
///     let s: Settings = gatehouse_sdk::settings().unwrap();
///     assert_eq!(s.reason.as_deref(), Some("no"));
/// });
/// ```
pub fn settings<T: DeserializeOwned>() -> Result<T, String> {
    parse_settings(&settings_json())
}

/// Parses a settings JSON string (as `validate-config` receives it) into `T`.
pub fn parse_settings<T: DeserializeOwned>(json: &str) -> Result<T, String> {
    let json = if json.trim().is_empty() { "{}" } else { json };
    serde_json::from_str(json).map_err(|e| format!("invalid settings: {e}"))
}

/// Milliseconds since the Unix epoch, frozen by the host for the whole decision.
pub fn now_ms() -> u64 {
    crate::sys::now_ms()
}

/// Settings parsed once per settings text. A guest may be instantiated
/// for every decision, but where an instance is reused the parse is not
/// repeated; a change of settings is noticed by comparing the text.
pub struct SettingsCache<T> {
    parsed: Mutex<Option<(String, Arc<T>)>>,
}

impl<T> Default for SettingsCache<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> SettingsCache<T> {
    pub const fn new() -> Self {
        Self {
            parsed: Mutex::new(None),
        }
    }

    /// The current settings, parsed with `parse` unless the same text was parsed before.
    pub fn get(&self, parse: impl FnOnce(&str) -> Result<T, String>) -> Result<Arc<T>, String> {
        let json = settings_json();
        let mut parsed = self.parsed.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((text, value)) = parsed.as_ref()
            && *text == json
        {
            return Ok(Arc::clone(value));
        }
        let value = Arc::new(parse(&json)?);
        *parsed = Some((json, Arc::clone(&value)));
        Ok(value)
    }
}
