//! Test policy: allows every request and response, annotated `policy=allow-all`.

use gatehouse_sdk::allow;
use gatehouse_sdk::types::{Context, Decision, Protocol};

gatehouse_sdk::export_policy!(AllowAll, wit: "../../../wit", hooks: [http]);

use bindings::http::{HttpRequest, HttpResponse};

pub struct AllowAll;

impl bindings::meta::Guest for AllowAll {
    fn describe() -> bindings::meta::Description {
        bindings::meta::Description {
            name: "allow-all".into(),
            version: "1.0.0".into(),
            summary: "Allows everything (test policy)".into(),
            protocols: vec![Protocol::Http],
            settings_schema: String::new(),
        }
    }

    fn validate_config(_settings: String) -> Result<(), String> {
        Ok(())
    }
}

impl bindings::http::Guest for AllowAll {
    fn on_request(_: Context, _: HttpRequest) -> Decision {
        allow().annotate("policy", "allow-all")
    }

    fn on_response(_: Context, _: HttpRequest, _: HttpResponse) -> Decision {
        allow().annotate("policy", "allow-all")
    }
}
