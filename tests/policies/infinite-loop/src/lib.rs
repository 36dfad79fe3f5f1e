//! Test policy: on-request loops forever (black_box keeps the loop).

use gatehouse_sdk::allow;
use gatehouse_sdk::types::{Context, Decision, Protocol};

gatehouse_sdk::export_policy!(InfiniteLoop, wit: "../../../wit", hooks: [http]);

use bindings::http::{HttpRequest, HttpResponse};

pub struct InfiniteLoop;

impl bindings::meta::Guest for InfiniteLoop {
    fn describe() -> bindings::meta::Description {
        bindings::meta::Description {
            name: "infinite-loop".into(),
            version: "1.0.0".into(),
            summary: "Test policy: on-request loops forever (black_box keeps the loop).".into(),
            protocols: vec![Protocol::Http],
            settings_schema: String::new(),
        }
    }

    fn validate_config(_settings: String) -> Result<(), String> {
        Ok(())
    }
}

impl bindings::http::Guest for InfiniteLoop {
    #[allow(clippy::empty_loop)]
    fn on_request(_: Context, _: HttpRequest) -> Decision {
        let mut n: u64 = 0;
        loop {
            n = core::hint::black_box(n.wrapping_add(1));
        }
    }

    fn on_response(_: Context, _: HttpRequest, _: HttpResponse) -> Decision {
        allow()
    }
}
