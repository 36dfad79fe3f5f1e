//! Test policy: on-request returns a deny whose reason is 8 MiB long, with 100 000 annotations.

use gatehouse_sdk::allow;
use gatehouse_sdk::types::{Context, Decision, Protocol};

gatehouse_sdk::export_policy!(HugeOutput, wit: "../../../wit", hooks: [http]);

use bindings::http::{HttpRequest, HttpResponse};

pub struct HugeOutput;

impl bindings::meta::Guest for HugeOutput {
    fn describe() -> bindings::meta::Description {
        bindings::meta::Description {
            name: "huge-output".into(),
            version: "1.0.0".into(),
            summary: "Test policy: on-request returns a deny whose reason is 8 MiB long, with 100 000 annotations.".into(),
            protocols: vec![Protocol::Http],
            settings_schema: String::new(),
        }
    }

    fn validate_config(_settings: String) -> Result<(), String> {
        Ok(())
    }
}

/// Length of the deny reason: 8 MiB.
pub const REASON_BYTES: usize = 8 << 20;
/// Number of annotations.
pub const ANNOTATIONS: usize = 100_000;

impl bindings::http::Guest for HugeOutput {
    fn on_request(_: Context, _: HttpRequest) -> Decision {
        let mut d = gatehouse_sdk::deny("x".repeat(REASON_BYTES));
        d.annotations = (0..ANNOTATIONS)
            .map(|i| (format!("k{i}"), format!("v{i}")))
            .collect();
        d
    }

    fn on_response(_: Context, _: HttpRequest, _: HttpResponse) -> Decision {
        allow()
    }
}
