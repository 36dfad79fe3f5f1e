//! Typed access to the policy's settings JSON.

pub mod fields;

use std::sync::{Arc, Mutex, PoisonError};

use serde::de::DeserializeOwned;

use crate::decision::{clip_reason, deny};
use crate::types::Decision;

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
///
/// Every hook of a policy starts the same way: read the settings, or fail
/// closed. [`get_or_deny`](Self::get_or_deny) is that start:
///
/// ```
/// use gatehouse_sdk::settings::SettingsCache;
/// use gatehouse_sdk::{allow, deny, parse_settings, testing};
/// use gatehouse_sdk::types::Decision;
///
/// #[derive(serde::Deserialize)]
/// #[serde(deny_unknown_fields)]
/// struct Settings { read_only: bool }
///
/// static SETTINGS: SettingsCache<Settings> = SettingsCache::new();
///
/// fn on_write() -> Decision {
///     let settings = match SETTINGS.get_or_deny("freeze", parse_settings) {
///         Ok(s) => s,
///         Err(refusal) => return refusal,
///     };
///     if settings.read_only { deny("the database is read-only today") } else { allow() }
/// }
///
/// testing::with_settings(r#"{"read_only": true}"#, || assert!(on_write().deny_reason().is_some()));
/// testing::with_settings(r#"{"read_only": false}"#, || assert!(on_write().is_allow()));
/// // Settings the host should have refused at load: every call fails closed, and says why.
/// testing::with_settings(r#"{"read_onyl": true}"#, || {
///     let d = on_write();
///     assert!(d.deny_reason().unwrap().starts_with("freeze is misconfigured: invalid settings"));
///     assert_eq!(d.annotation("rule"), Some("settings"));
/// });
/// assert_eq!(testing::take_logs()[0].message, "freeze settings are invalid");
/// ```
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

    /// [`get`](Self::get), failing closed: settings that do not parse (the
    /// host runs `validate-config` at load, so only a host that skipped it
    /// sends them) log an error and become a deny, `"POLICY is
    /// misconfigured: ERROR"` annotated `rule` = `settings`, for the hook to
    /// return as its decision.
    pub fn get_or_deny(
        &self,
        policy: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Arc<T>, Decision> {
        self.get(parse).map_err(|e| {
            crate::log::error(&format!("{policy} settings are invalid"), &[("error", &e)]);
            deny(clip_reason(format!("{policy} is misconfigured: {e}")))
                .annotate("rule", "settings")
        })
    }
}
