//! Test policy: on-request allocates 1 MiB chunks and writes every page until the allocator fails (then aborts).

use gatehouse_sdk::allow;
use gatehouse_sdk::types::{Context, Decision, Protocol};

gatehouse_sdk::export_policy!(MemoryBomb, wit: "../../../wit", hooks: [http]);

use bindings::http::{HttpRequest, HttpResponse};

pub struct MemoryBomb;

impl bindings::meta::Guest for MemoryBomb {
    fn describe() -> bindings::meta::Description {
        bindings::meta::Description {
            name: "memory-bomb".into(),
            version: "1.0.0".into(),
            summary: "Test policy: on-request allocates 1 MiB chunks and writes every page until the allocator fails (then aborts).".into(),
            protocols: vec![Protocol::Http],
            settings_schema: String::new(),
        }
    }

    fn validate_config(_settings: String) -> Result<(), String> {
        Ok(())
    }
}

const CHUNK: usize = 1 << 20;
const PAGE: usize = 4096;

impl bindings::http::Guest for MemoryBomb {
    fn on_request(_: Context, _: HttpRequest) -> Decision {
        let mut chunks: Vec<Vec<u8>> = Vec::new();
        loop {
            let mut chunk = vec![0u8; CHUNK];
            // Touch every page so the memory is really used.
            for i in (0..CHUNK).step_by(PAGE) {
                chunk[i] = core::hint::black_box(i as u8 | 1);
            }
            chunks.push(core::hint::black_box(chunk));
            core::hint::black_box(&chunks);
        }
    }

    fn on_response(_: Context, _: HttpRequest, _: HttpResponse) -> Decision {
        allow()
    }
}
