//! Typed access to the policy's settings JSON.

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
