//! Native unit testing without WASM (only on non-`wasm32` targets).
//!
//! Host imports read thread-local values here: [`with_settings`],
//! [`with_now`]; log lines are captured for [`take_logs`]. Each test thread
//! starts with `{}` settings, the real clock, and no logs.
//!
//! ```
//! use gatehouse_sdk::{log, now_ms, settings_json, testing};
//!
//! testing::with_settings(r#"{"a": 1}"#, || {
//!     assert_eq!(settings_json(), r#"{"a": 1}"#);
//! });
//! testing::with_now(1_700_000_000_000, || assert_eq!(now_ms(), 1_700_000_000_000));
//! log::warn("hello", &[("k", "v")]);
//! let logs = testing::take_logs();
//! assert_eq!(logs[0].message, "hello");
//! assert_eq!(logs[0].field("k"), Some("v"));
//! ```

use crate::host::LogLevel;
use crate::sys::imp::{LOGS, NOW_MS, SETTINGS};
use crate::types::{Context, Delegator, Principal, PrincipalKind, Protocol, Session};

/// One captured `log` call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    pub level: LogLevel,
    pub message: String,
    pub fields: Vec<(String, String)>,
}

impl LogLine {
    /// The first value of field `key`.
    pub fn field(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Runs `f` with the host's `settings()` returning `json`; restores the
/// previous value afterwards, also on panic.
pub fn with_settings<R>(json: &str, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<String>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let prev = self.0.take();
            SETTINGS.with(|s| *s.borrow_mut() = prev);
        }
    }
    let prev = SETTINGS.with(|s| s.borrow_mut().replace(json.to_owned()));
    let _restore = Restore(prev);
    f()
}

/// Runs `f` with the host's `now-ms()` returning `ms`.
pub fn with_now<R>(ms: u64, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<u64>);
    impl Drop for Restore {
        fn drop(&mut self) {
            NOW_MS.with(|n| n.set(self.0));
        }
    }
    let prev = NOW_MS.with(|n| n.replace(Some(ms)));
    let _restore = Restore(prev);
    f()
}

/// Takes (and clears) the log lines captured on this thread.
pub fn take_logs() -> Vec<LogLine> {
    LOGS.with(|l| std::mem::take(&mut *l.borrow_mut()))
}

/// A copy of the log lines captured on this thread so far.
pub fn logs() -> Vec<LogLine> {
    LOGS.with(|l| l.borrow().clone())
}

/// Starts a [`Context`]: subject `test-user`, issuer `test`, human, no
/// groups, connection `test`, protocol `http`, request id `req-1`.
pub fn context() -> ContextBuilder {
    ContextBuilder {
        ctx: Context {
            principal: Principal {
                subject: "test-user".into(),
                issuer: "test".into(),
                kind: PrincipalKind::Human,
                groups: Vec::new(),
                acting_for: None,
            },
            session: Session {
                id: "session-1".into(),
                connection: "test".into(),
                protocol: Protocol::Http,
                client_addr: "127.0.0.1:40000".into(),
            },
            labels: Vec::new(),
            request_id: "req-1".into(),
        },
    }
}

/// Builds a [`Context`] for tests; see [`context`].
#[derive(Clone, Debug)]
pub struct ContextBuilder {
    ctx: Context,
}

impl ContextBuilder {
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.ctx.principal.subject = subject.into();
        self
    }

    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.ctx.principal.issuer = issuer.into();
        self
    }

    pub fn kind(mut self, kind: PrincipalKind) -> Self {
        self.ctx.principal.kind = kind;
        self
    }

    /// Adds groups.
    pub fn groups<I, S>(mut self, groups: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.ctx
            .principal
            .groups
            .extend(groups.into_iter().map(Into::into));
        self
    }

    pub fn acting_for(mut self, subject: impl Into<String>, issuer: impl Into<String>) -> Self {
        self.ctx.principal.acting_for = Some(Delegator {
            subject: subject.into(),
            issuer: issuer.into(),
        });
        self
    }

    pub fn connection(mut self, name: impl Into<String>) -> Self {
        self.ctx.session.connection = name.into();
        self
    }

    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.ctx.session.protocol = protocol;
        self
    }

    pub fn session_id(mut self, id: impl Into<String>) -> Self {
        self.ctx.session.id = id.into();
        self
    }

    pub fn client_addr(mut self, addr: impl Into<String>) -> Self {
        self.ctx.session.client_addr = addr.into();
        self
    }

    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.ctx.labels.push((key.into(), value.into()));
        self
    }

    pub fn request_id(mut self, id: impl Into<String>) -> Self {
        self.ctx.request_id = id.into();
        self
    }

    pub fn build(self) -> Context {
        self.ctx
    }
}

impl From<ContextBuilder> for Context {
    fn from(b: ContextBuilder) -> Self {
        b.build()
    }
}

/// Starts an HTTP request fixture: `https`, authority `upstream.test`, no
/// query, headers or body (complete). Convert it with `.into()` into the
/// `http-request` type that [`crate::export_policy!`] generated for `http`.
pub fn http_request(method: &str, path: &str) -> HttpRequestFixture {
    HttpRequestFixture {
        method: method.to_owned(),
        scheme: "https".into(),
        authority: "upstream.test".into(),
        path: path.to_owned(),
        query: None,
        headers: Vec::new(),
        body: Vec::new(),
        body_complete: true,
    }
}

/// The fields of the WIT `http-request` record; see [`http_request`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HttpRequestFixture {
    pub method: String,
    pub scheme: String,
    pub authority: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub body_complete: bool,
}

impl HttpRequestFixture {
    pub fn scheme(mut self, scheme: impl Into<String>) -> Self {
        self.scheme = scheme.into();
        self
    }

    pub fn authority(mut self, authority: impl Into<String>) -> Self {
        self.authority = authority.into();
        self
    }

    pub fn query(mut self, query: impl Into<String>) -> Self {
        self.query = Some(query.into());
        self
    }

    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    pub fn body_complete(mut self, complete: bool) -> Self {
        self.body_complete = complete;
        self
    }
}

/// Starts an HTTP response fixture with `status` and no headers.
pub fn http_response(status: u16) -> HttpResponseFixture {
    HttpResponseFixture {
        status,
        headers: Vec::new(),
    }
}

/// The fields of the WIT `http-response` record; see [`http_response`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HttpResponseFixture {
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

impl HttpResponseFixture {
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}
