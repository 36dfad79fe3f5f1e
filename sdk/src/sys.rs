//! The seam between the SDK's wrappers and the host imports.
//!
//! On `wasm32` every call goes to the host. Natively (unit tests) the
//! generated imports would panic, so the calls read and write thread-local
//! values that [`crate::testing`] sets.

#[cfg(target_arch = "wasm32")]
mod imp {
    use crate::host::{self, LogLevel};

    pub(crate) fn log(level: LogLevel, message: &str, fields: &[(String, String)]) {
        host::log(level, message, fields);
    }

    pub(crate) fn settings() -> String {
        host::settings()
    }

    pub(crate) fn now_ms() -> u64 {
        host::now_ms()
    }
}

#[cfg(not(target_arch = "wasm32"))]
pub(crate) mod imp {
    use crate::host::LogLevel;
    use crate::testing::LogLine;
    use std::cell::{Cell, RefCell};

    thread_local! {
        pub(crate) static SETTINGS: RefCell<Option<String>> = const { RefCell::new(None) };
        pub(crate) static NOW_MS: Cell<Option<u64>> = const { Cell::new(None) };
        pub(crate) static LOGS: RefCell<Vec<LogLine>> = const { RefCell::new(Vec::new()) };
    }

    pub(crate) fn log(level: LogLevel, message: &str, fields: &[(String, String)]) {
        LOGS.with(|logs| {
            logs.borrow_mut().push(LogLine {
                level,
                message: message.to_owned(),
                fields: fields.to_vec(),
            });
        });
    }

    pub(crate) fn settings() -> String {
        SETTINGS.with(|s| s.borrow().clone().unwrap_or_else(|| "{}".to_owned()))
    }

    pub(crate) fn now_ms() -> u64 {
        NOW_MS.with(Cell::get).unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        })
    }
}

pub(crate) use imp::{log, now_ms, settings};
