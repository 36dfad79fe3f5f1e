//! Test policy: tries to read the environment, the filesystem, the network
//! and the clocks, and denies with a reason that reports what it saw. The
//! host must grant none of it, and both clocks must be frozen.

use gatehouse_sdk::deny;
use gatehouse_sdk::types::{Context, Decision, Protocol};

gatehouse_sdk::export_policy!(SandboxProbe, wit: "../../../wit", hooks: [http]);

use bindings::http::{HttpRequest, HttpResponse};

pub struct SandboxProbe;

impl bindings::meta::Guest for SandboxProbe {
    fn describe() -> bindings::meta::Description {
        bindings::meta::Description {
            name: "sandbox-probe".into(),
            version: "1.0.0".into(),
            summary: "Reports what the sandbox grants (test policy)".into(),
            protocols: vec![Protocol::Http],
            settings_schema: String::new(),
        }
    }

    fn validate_config(_settings: String) -> Result<(), String> {
        Ok(())
    }
}

fn probe() -> String {
    let env = std::env::vars().count();
    let args = std::env::args().count();
    let fs_root = std::fs::read_dir("/")
        .map(|d| d.count().to_string())
        .unwrap_or_else(|_| "denied".into());
    let fs_file = std::fs::read_to_string("/etc/passwd")
        .map(|_| "read")
        .unwrap_or("denied");
    let net = std::net::TcpStream::connect("127.0.0.1:5432")
        .map(|_| "connected")
        .unwrap_or("denied");
    let wall1 = std::time::SystemTime::now();
    let mono1 = std::time::Instant::now();
    // Burn a little time; a live clock would move.
    let mut x = 0u64;
    for i in 0..2_000_000u64 {
        x = x.wrapping_add(std::hint::black_box(i));
    }
    std::hint::black_box(x);
    let wall_moved = std::time::SystemTime::now() != wall1;
    let mono_moved = std::time::Instant::now() != mono1;
    let wall_ms = wall1
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let host_ms = gatehouse_sdk::now_ms() as u128;
    format!(
        "env={env} args={args} fs_root={fs_root} fs_file={fs_file} net={net} wall_moved={wall_moved} mono_moved={mono_moved} wall_matches_host={}",
        wall_ms == host_ms
    )
}

impl bindings::http::Guest for SandboxProbe {
    fn on_request(_: Context, _: HttpRequest) -> Decision {
        deny(probe())
    }

    fn on_response(_: Context, _: HttpRequest, _: HttpResponse) -> Decision {
        deny(probe())
    }
}
