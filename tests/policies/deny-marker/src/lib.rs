//! Test policy for hot reload: `on-request` denies with the reason from the
//! settings key `"reason"` (default `denied by deny-marker`), after spinning
//! for `"spin_iters"` loop iterations when set (to keep a call in flight);
//! `on-response` allows.

use gatehouse_sdk::types::{Context, Decision, Protocol};
use gatehouse_sdk::{allow, deny};

gatehouse_sdk::export_policy!(DenyMarker, wit: "../../../wit", hooks: [http]);

use bindings::http::{HttpRequest, HttpResponse};

/// The reason used when settings give none.
pub const DEFAULT_REASON: &str = "denied by deny-marker";

#[derive(serde::Deserialize, Default)]
struct Settings {
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    spin_iters: u64,
}

pub struct DenyMarker;

impl bindings::meta::Guest for DenyMarker {
    fn describe() -> bindings::meta::Description {
        bindings::meta::Description {
            name: "deny-marker".into(),
            version: "1.0.0".into(),
            summary: "Denies every request with the reason from settings (test policy)".into(),
            protocols: vec![Protocol::Http],
            settings_schema: r#"{"type":"object","properties":{"reason":{"type":"string"},"spin_iters":{"type":"integer","minimum":0}}}"#
                .into(),
        }
    }

    fn validate_config(settings: String) -> Result<(), String> {
        gatehouse_sdk::parse_settings::<Settings>(&settings).map(|_| ())
    }
}

impl bindings::http::Guest for DenyMarker {
    fn on_request(_: Context, _: HttpRequest) -> Decision {
        let settings = gatehouse_sdk::settings::<Settings>().unwrap_or_default();
        let mut x = 0u64;
        for i in 0..settings.spin_iters {
            x = x.wrapping_add(std::hint::black_box(i));
        }
        std::hint::black_box(x);
        let reason = settings.reason.unwrap_or_else(|| DEFAULT_REASON.to_owned());
        deny(reason).annotate("policy", "deny-marker")
    }

    fn on_response(_: Context, _: HttpRequest, _: HttpResponse) -> Decision {
        allow().annotate("policy", "deny-marker")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bindings::http::Guest as _;
    use gatehouse_sdk::testing;

    #[test]
    fn reason_from_settings() {
        let call = || {
            DenyMarker::on_request(
                testing::context().build(),
                testing::http_request("GET", "/").into(),
            )
        };
        assert_eq!(call().deny_reason(), Some(DEFAULT_REASON));
        let d = testing::with_settings(r#"{"reason": "v2"}"#, call);
        assert_eq!(d.deny_reason(), Some("v2"));
    }
}
