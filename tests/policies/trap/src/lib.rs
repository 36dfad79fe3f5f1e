//! Test policy: on-request traps (a panic, which is `unreachable` under panic=abort).

use gatehouse_sdk::allow;
use gatehouse_sdk::types::{Context, Decision, Protocol};

gatehouse_sdk::export_policy!(Trap, wit: "../../../wit", hooks: [http]);

use bindings::http::{HttpRequest, HttpResponse};

pub struct Trap;

impl bindings::meta::Guest for Trap {
    fn describe() -> bindings::meta::Description {
        bindings::meta::Description {
            name: "trap".into(),
            version: "1.0.0".into(),
            summary:
                "Test policy: on-request traps (a panic, which is `unreachable` under panic=abort)."
                    .into(),
            protocols: vec![Protocol::Http],
            settings_schema: String::new(),
        }
    }

    fn validate_config(_settings: String) -> Result<(), String> {
        Ok(())
    }
}

impl bindings::http::Guest for Trap {
    fn on_request(_: Context, _: HttpRequest) -> Decision {
        if core::hint::black_box(true) {
            panic!("trap policy: on-request traps by design");
        }
        allow()
    }

    fn on_response(_: Context, _: HttpRequest, _: HttpResponse) -> Decision {
        allow()
    }
}
