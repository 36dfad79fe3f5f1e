//! The configuration file: one typed tree, read from TOML and validated at
//! load so that a bad key is reported with its path before anything starts.
//!
//! Secrets never appear inline: a credential names an environment variable or
//! a file, and is read when the configuration is loaded.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// A configuration problem, with the key it concerns.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {key}: {message}")]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
}

/// More connection threads than this is a typo, not a configuration.
const MAX_WORKER_THREADS: usize = 1024;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub audit: AuditConfig,
    #[serde(default)]
    pub policies: PoliciesConfig,
    #[serde(default)]
    pub admin: Option<AdminConfig>,
    #[serde(default)]
    pub masking: MaskingConfig,
    #[serde(default)]
    pub identity: IdentityConfig,
    #[serde(default)]
    pub approvals: ApprovalsConfig,
    #[serde(default)]
    pub connections: Vec<ConnectionConfig>,
    #[serde(default)]
    pub runtime: RuntimeConfig,
}

/// The process's threads.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Threads that run connections (reading, masking, forwarding, TLS).
    /// Policies run on a separate pool of blocking threads. Unset: one per
    /// CPU (or `TOKIO_WORKER_THREADS`). On a small machine shared with the
    /// database, fewer threads wake each other less: see the README's
    /// "Performance".
    pub worker_threads: Option<usize>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// `sqlite://path/to/file.db` (created when missing) or `postgres://...`.
    #[serde(default = "default_database")]
    pub database: String,
    /// What happens to new requests while the store cannot be written.
    #[serde(default)]
    pub on_store_failure: StoreFailureMode,
    /// How many records may wait for the store before new requests are refused.
    #[serde(default = "default_backlog")]
    pub max_backlog: usize,
    /// How many bytes of each body are kept in an audit record.
    #[serde(default = "default_body_capture")]
    pub body_capture_bytes: usize,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            database: default_database(),
            on_store_failure: StoreFailureMode::default(),
            max_backlog: default_backlog(),
            body_capture_bytes: default_body_capture(),
        }
    }
}

fn default_database() -> String {
    "sqlite://gatehouse.db".into()
}
fn default_backlog() -> usize {
    10_000
}
fn default_body_capture() -> usize {
    16 * 1024
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum StoreFailureMode {
    /// Refuse new requests with a clear error until the store recovers.
    #[default]
    Reject,
    /// Keep serving; records wait in memory (up to `max_backlog`).
    Continue,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoliciesConfig {
    /// The watched folder of `.wasm` components (with optional `NAME.json` settings).
    #[serde(default = "default_policy_dir")]
    pub dir: PathBuf,
    /// Where compiled components are cached, keyed by their sha256.
    #[serde(default = "default_cache_dir")]
    pub cache_dir: PathBuf,
    #[serde(default)]
    pub defaults: PolicyLimits,
    /// Per-policy overrides, by policy name (the file stem).
    #[serde(default)]
    pub overrides: BTreeMap<String, PolicyLimits>,
}

impl Default for PoliciesConfig {
    fn default() -> Self {
        Self {
            dir: default_policy_dir(),
            cache_dir: default_cache_dir(),
            defaults: PolicyLimits::default(),
            overrides: BTreeMap::new(),
        }
    }
}

fn default_policy_dir() -> PathBuf {
    "policies".into()
}
fn default_cache_dir() -> PathBuf {
    ".gatehouse/cache".into()
}

/// Limits for one policy call. Unset fields fall back to the defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyLimits {
    pub timeout_ms: Option<u64>,
    pub memory_mb: Option<u64>,
    pub on_failure: Option<FailureMode>,
}

/// What a failed policy call (trap, timeout, bad output) counts as.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum FailureMode {
    #[default]
    Closed,
    Open,
}

/// The resolved limits of one policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EffectiveLimits {
    pub timeout: Duration,
    pub memory_bytes: usize,
    pub on_failure: FailureMode,
}

pub const DEFAULT_TIMEOUT_MS: u64 = 50;
pub const DEFAULT_MEMORY_MB: u64 = 64;
/// The engine's ceiling for any one policy's linear memory.
pub const MAX_MEMORY_MB: u64 = 1024;

impl PoliciesConfig {
    pub fn limits_for(&self, policy: &str) -> EffectiveLimits {
        let specific = self.overrides.get(policy);
        let pick = |f: fn(&PolicyLimits) -> Option<u64>, default: u64| {
            specific
                .and_then(f)
                .or_else(|| f(&self.defaults))
                .unwrap_or(default)
        };
        EffectiveLimits {
            timeout: Duration::from_millis(pick(|l| l.timeout_ms, DEFAULT_TIMEOUT_MS)),
            memory_bytes: (pick(|l| l.memory_mb, DEFAULT_MEMORY_MB) * 1024 * 1024) as usize,
            on_failure: specific
                .and_then(|l| l.on_failure)
                .or(self.defaults.on_failure)
                .unwrap_or_default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    /// The URL browsers reach this listener at (behind a proxy or TLS
    /// terminator); the console's sign-in redirect is built from it.
    /// Default: `http://LISTEN` (`https://` with `tls`) with the bound address.
    pub public_url: Option<String>,
    /// Serve the admin API and the console over TLS with this certificate.
    pub tls: Option<TlsConfig>,
    /// Groups whose members may change state through the admin API (keys).
    /// Empty: no one may; the API stays read-only.
    #[serde(default)]
    pub admin_groups: Vec<String>,
    /// Groups whose members may read the audit trail through the admin API
    /// (sessions, events, replays, exports, connections), besides admins.
    #[serde(default)]
    pub auditor_groups: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskingConfig {
    /// Key for `hash` masks, from the environment or a file. Without it a
    /// random key is made at start, so hashes only correlate within one run.
    pub hash_key: Option<SecretRef>,
}

/// Where identities come from besides Gatehouse API keys.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// OpenID Connect issuers whose bearer tokens are accepted.
    #[serde(default)]
    pub oidc: Vec<OidcIssuerConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcIssuerConfig {
    /// The issuer URL; discovery reads `ISSUER/.well-known/openid-configuration`.
    pub issuer: String,
    /// The `aud` a token must carry.
    pub audience: String,
    /// The claim holding groups: a list, or a string split on `groups_separator`.
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    #[serde(default = "default_groups_separator")]
    pub groups_separator: String,
    /// Extra groups granted when a claim has a given value.
    #[serde(default)]
    pub claim_groups: Vec<ClaimGroups>,
    /// A claim naming the person an agent acts for, besides RFC 8693 `act`.
    pub delegation_claim: Option<String>,
    /// Allowed clock skew for `exp` and `nbf`.
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
    /// How often the signing keys are fetched again.
    #[serde(default = "default_jwks_refresh")]
    pub jwks_refresh_secs: u64,
    /// At most one extra key fetch per this interval when a token names an unknown key.
    #[serde(default = "default_unknown_kid_interval")]
    pub unknown_kid_refresh_secs: u64,
    /// Extra CA certificates (PEM) for reaching the issuer.
    pub ca_file: Option<PathBuf>,
    /// The public OAuth client `gatehouse login` uses at this issuer (device
    /// flow, or authorization code with PKCE). Published, with the scopes, at
    /// the admin listener's `/v1/login`; it is not a secret.
    pub cli_client_id: Option<String>,
    /// Scopes `gatehouse login` asks for; `offline_access` gets a refresh token.
    #[serde(default = "default_cli_scopes")]
    pub cli_scopes: Vec<String>,
    /// The OAuth client the web console signs people in with (authorization
    /// code + PKCE). Register `ADMIN_URL/console/callback` as its redirect
    /// URI, where ADMIN_URL is `admin.public_url`.
    pub console_client_id: Option<String>,
    /// The console client's secret, when the provider registered it as a
    /// confidential client; a public client has none.
    pub console_client_secret: Option<SecretRef>,
    /// Scopes the console asks for.
    #[serde(default = "default_console_scopes")]
    pub console_scopes: Vec<String>,
}

fn default_console_scopes() -> Vec<String> {
    vec!["openid".into()]
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimGroups {
    pub claim: String,
    pub value: String,
    pub groups: Vec<String>,
}

fn default_groups_claim() -> String {
    "groups".into()
}
fn default_groups_separator() -> String {
    " ".into()
}
fn default_leeway() -> u64 {
    30
}
fn default_jwks_refresh() -> u64 {
    3600
}
fn default_unknown_kid_interval() -> u64 {
    10
}
fn default_cli_scopes() -> Vec<String> {
    vec!["openid".into(), "offline_access".into()]
}
/// RFC 6749 3.3: a scope is printable ASCII without space, '"' or '\\'.
fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
}

/// Requests held for a person (`crate::approval`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalsConfig {
    /// Distinct approvers needed before a held request runs (any one denial
    /// denies). Stored with each approval when it is made.
    #[serde(default = "default_min_approvals")]
    pub min_approvals: u32,
    /// This process's name among replicas sharing a PostgreSQL store. Give
    /// each replica a stable, unique one: on restart it then marks its own
    /// earlier waits abandoned at once. Default: a new random id per start
    /// (a dead replica's waits are abandoned once its heartbeat is stale).
    pub replica_id: Option<String>,
    /// How often a replica also reads the store for decisions made
    /// elsewhere, besides LISTEN/NOTIFY (the fallback if a notification is lost).
    #[serde(default = "default_approval_poll")]
    pub poll_interval_ms: u64,
    /// The longest grant an approval leaves behind, whatever a policy asks
    /// for: longer grants are shortened to this. Default 8 hours.
    #[serde(default = "default_max_grant_secs")]
    pub max_grant_secs: u32,
    pub webhook: Option<WebhookConfig>,
}

impl Default for ApprovalsConfig {
    fn default() -> Self {
        Self {
            min_approvals: default_min_approvals(),
            replica_id: None,
            poll_interval_ms: default_approval_poll(),
            max_grant_secs: default_max_grant_secs(),
            webhook: None,
        }
    }
}

pub const MAX_MIN_APPROVALS: u32 = 10;

fn default_min_approvals() -> u32 {
    1
}
fn default_approval_poll() -> u64 {
    500
}
fn default_max_grant_secs() -> u32 {
    8 * 3600
}
/// A week: grants are for a task, not standing access.
pub const MAX_GRANT_SECS: u32 = 7 * 24 * 3600;

/// Where new and decided approvals are posted.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// `https://...`, or `{ env = "VAR" }` / `{ file = "PATH" }` for URLs
    /// that hold a secret (a Slack incoming webhook does).
    pub url: WebhookUrl,
    #[serde(default)]
    pub format: WebhookFormat,
    /// The admin listener's public URL (as `admin.public_url`); approvals are
    /// linked to the console as `{console_url}/console/#/approvals/{id}`.
    /// Required for `format = "slack"`, whose messages carry approve/deny links.
    pub console_url: Option<String>,
    /// Deliveries tried per message, with exponential backoff between them.
    #[serde(default = "default_webhook_attempts")]
    pub max_attempts: u32,
    /// How long one delivery may take.
    #[serde(default = "default_webhook_timeout")]
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum WebhookUrl {
    Inline(String),
    Secret(SecretRef),
}

impl WebhookConfig {
    /// The URL, read from its source, checked to be http(s) with a host.
    pub fn resolve_url(&self) -> Result<String, String> {
        let url = match &self.url {
            WebhookUrl::Inline(u) => u.clone(),
            WebhookUrl::Secret(s) => s.resolve()?,
        };
        check_http_url(&url)?;
        Ok(url)
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// `{"event": "approval.created" | "approval.decided", "approval": {...}}`.
    #[default]
    Json,
    /// A Slack incoming-webhook message with approve/deny links to the console.
    Slack,
}

fn default_webhook_attempts() -> u32 {
    5
}
fn default_webhook_timeout() -> u64 {
    5_000
}

/// An `http://` or `https://` URL with a host; the message never repeats
/// the URL, which may hold a secret.
fn check_http_url(url: &str) -> Result<(), String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|_| "is not a URL (expected https://HOST/...)".to_string())?;
    if !matches!(uri.scheme_str(), Some("http") | Some("https")) {
        return Err("must start with https:// (or http://)".into());
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err("has no host".into());
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ProtocolKind {
    Http,
    Postgres,
    /// HTTP with the LLM adapter (OpenAI-compatible and Anthropic APIs).
    Llm,
    /// HTTP with the MCP adapter (JSON-RPC over streamable HTTP).
    Mcp,
    /// HTTP with the Kubernetes API adapter.
    Kubernetes,
}

impl ProtocolKind {
    /// Whether the connection is served by the HTTP proxy (with or
    /// without a protocol adapter).
    pub fn is_http(self) -> bool {
        !matches!(self, ProtocolKind::Postgres)
    }

    /// The name used in configs, audit records and the policy's context.
    pub fn name(self) -> &'static str {
        match self {
            ProtocolKind::Http => "http",
            ProtocolKind::Postgres => "postgres",
            ProtocolKind::Llm => "llm",
            ProtocolKind::Mcp => "mcp",
            ProtocolKind::Kubernetes => "kubernetes",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionConfig {
    pub name: String,
    pub protocol: ProtocolKind,
    pub listen: SocketAddr,
    /// `http://host:port` or `https://host:port`, optionally with a base path.
    pub upstream: String,
    /// Policy names (file stems in the policy folder), called in this order.
    #[serde(default)]
    pub policies: Vec<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Groups allowed to use this connection; empty lets any authenticated caller in.
    #[serde(default)]
    pub allowed_groups: Vec<String>,
    /// The credential Gatehouse adds to upstream requests.
    pub credential: Option<HeaderCredential>,
    /// Serve TLS to clients.
    pub tls: Option<TlsConfig>,
    /// Extra CA certificates (PEM) trusted for an `https` upstream.
    pub upstream_ca_file: Option<PathBuf>,
    /// How many request-body bytes policies see.
    #[serde(default = "default_inspect")]
    pub inspect_body_bytes: usize,
    /// How long to wait for the upstream's response head.
    #[serde(default = "default_upstream_timeout")]
    pub upstream_timeout_ms: u64,
    /// Largest JSON body that `json-pointer` masks will hold in memory.
    #[serde(default = "default_json_mask_limit")]
    pub json_mask_limit_bytes: usize,
    /// Largest request body a protocol adapter (llm, mcp, kubernetes) reads
    /// whole; a bigger one it needs is refused, never passed unchecked.
    #[serde(default = "default_body_limit")]
    pub body_limit_bytes: usize,
    /// How many bytes of an upgraded stream's data (`kubectl exec`) the audit
    /// trail keeps per stream; later frames are recorded without their data.
    #[serde(default = "default_stream_record")]
    pub stream_record_bytes: u64,
    /// PostgreSQL specifics; required when `protocol = "postgres"`.
    pub postgres: Option<PostgresSettings>,
    /// LLM specifics, for `protocol = "llm"` (all optional).
    pub llm: Option<LlmSettings>,
}

/// How the LLM adapter reads a connection's traffic.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmSettings {
    /// Which API the upstream speaks; `auto` tells by the path
    /// (`/messages` is Anthropic's, the rest OpenAI's).
    #[serde(default)]
    pub provider: LlmProvider,
    /// Forward POSTs to paths the adapter does not read (say, file uploads)
    /// with only the `http` hook. Off: they are refused.
    #[serde(default)]
    pub pass_unknown_paths: bool,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LlmProvider {
    #[default]
    Auto,
    #[serde(rename = "openai")]
    OpenAi,
    Anthropic,
}

/// How Gatehouse logs in to a PostgreSQL upstream, and what it accepts from clients.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSettings {
    /// The upstream role Gatehouse logs in as; clients never learn it.
    pub user: String,
    /// Its password (for SCRAM-SHA-256, md5 or cleartext); none for trust.
    pub password: Option<SecretRef>,
    /// Pins every session to this database; a client asking for another is refused.
    pub database: Option<String>,
    /// TLS to the upstream.
    #[serde(default)]
    pub upstream_tls: UpstreamTls,
    /// Lets clients send their Gatehouse credential over a listener without
    /// TLS. Off by default: only for loopback and tests. SCRAM never sends
    /// it, so SCRAM logins need no TLS.
    #[serde(default)]
    pub allow_cleartext_password: bool,
    /// How clients prove who they are: `auto`, `scram-sha-256` or `password`.
    #[serde(default)]
    pub client_auth: ClientAuth,
    /// Largest single protocol message accepted from either side.
    #[serde(default = "default_pg_max_message")]
    pub max_message_bytes: usize,
    /// How long to wait for the upstream to accept and authenticate.
    #[serde(default = "default_pg_connect_timeout")]
    pub connect_timeout_ms: u64,
}

/// How a PostgreSQL client logs in to Gatehouse.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub enum ClientAuth {
    /// SCRAM-SHA-256 when the user name is the id of an API key that has a
    /// SCRAM verifier; otherwise the credential (key or OIDC token) as a
    /// cleartext password.
    #[default]
    #[serde(rename = "auto")]
    Auto,
    /// SCRAM-SHA-256 with an API key only. Nothing is accepted in cleartext,
    /// so OIDC tokens cannot log in.
    #[serde(rename = "scram-sha-256")]
    ScramSha256,
    /// Always the credential as a cleartext password.
    #[serde(rename = "password")]
    Password,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum UpstreamTls {
    /// Plain TCP.
    #[default]
    Disable,
    /// TLS, certificate verified against the system roots and `upstream_ca_file`.
    VerifyFull,
}

fn default_pg_max_message() -> usize {
    64 * 1024 * 1024
}
fn default_pg_connect_timeout() -> u64 {
    10_000
}

fn default_upstream_timeout() -> u64 {
    60_000
}
fn default_inspect() -> usize {
    64 * 1024
}
fn default_json_mask_limit() -> usize {
    8 * 1024 * 1024
}
fn default_body_limit() -> usize {
    4 * 1024 * 1024
}
fn default_stream_record() -> u64 {
    1024 * 1024
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderCredential {
    /// Header to set, e.g. `authorization`.
    pub header: String,
    /// Prefix before the secret, e.g. `Bearer `.
    #[serde(default)]
    pub prefix: String,
    pub secret: SecretRef,
}

/// Where a secret comes from. Inline values are not accepted.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    pub env: Option<String>,
    pub file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

impl SecretRef {
    /// Reads the secret; the error names the source, never the value.
    pub fn resolve(&self) -> Result<String, String> {
        match (&self.env, &self.file) {
            (Some(var), None) => {
                std::env::var(var).map_err(|_| format!("environment variable {var} is not set"))
            }
            (None, Some(file)) => std::fs::read_to_string(file)
                .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
                .map_err(|e| format!("cannot read {}: {e}", file.display())),
            _ => Err("give exactly one of `env` or `file`".into()),
        }
    }
}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates configuration text; `path` is used in messages and
    /// to resolve relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.make_paths_relative_to(base);
        config
            .validate()
            .map_err(|(key, message)| ConfigError::Invalid {
                path: path.to_path_buf(),
                key,
                message,
            })?;
        Ok(config)
    }

    fn make_paths_relative_to(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.policies.dir);
        fix(&mut self.policies.cache_dir);
        if let Some(rest) = self.audit.database.strip_prefix("sqlite://")
            && !rest.starts_with('/')
            && !rest.starts_with(':')
        {
            self.audit.database = format!("sqlite://{}", base.join(rest).display());
        }
        for c in &mut self.connections {
            if let Some(tls) = &mut c.tls {
                fix(&mut tls.cert_file);
                fix(&mut tls.key_file);
            }
            if let Some(ca) = &mut c.upstream_ca_file {
                fix(ca);
            }
            if let Some(cred) = &mut c.credential
                && let Some(f) = &mut cred.secret.file
            {
                fix(f);
            }
            if let Some(pg) = &mut c.postgres
                && let Some(f) = pg.password.as_mut().and_then(|p| p.file.as_mut())
            {
                fix(f);
            }
        }
        if let Some(tls) = self.admin.as_mut().and_then(|a| a.tls.as_mut()) {
            fix(&mut tls.cert_file);
            fix(&mut tls.key_file);
        }
        for o in &mut self.identity.oidc {
            if let Some(ca) = &mut o.ca_file {
                fix(ca);
            }
            if let Some(f) = o
                .console_client_secret
                .as_mut()
                .and_then(|s| s.file.as_mut())
            {
                fix(f);
            }
        }
        if let Some(key) = &mut self.masking.hash_key
            && let Some(f) = &mut key.file
        {
            fix(f);
        }
        if let Some(WebhookUrl::Secret(s)) = self.approvals.webhook.as_mut().map(|w| &mut w.url)
            && let Some(f) = &mut s.file
        {
            fix(f);
        }
    }

    fn validate(&self) -> Result<(), (String, String)> {
        let db = &self.audit.database;
        if !(db.starts_with("sqlite:")
            || db.starts_with("postgres://")
            || db.starts_with("postgresql://"))
        {
            return Err((
                "audit.database".into(),
                format!("expected sqlite://FILE or postgres://..., got {db:?}"),
            ));
        }
        if self.audit.max_backlog == 0 {
            return Err(("audit.max_backlog".into(), "must be at least 1".into()));
        }
        if let Some(n) = self.runtime.worker_threads
            && !(1..=MAX_WORKER_THREADS).contains(&n)
        {
            return Err((
                "runtime.worker_threads".into(),
                format!(
                    "must be between 1 and {MAX_WORKER_THREADS} (omit it for one per CPU), got {n}"
                ),
            ));
        }
        let check_limits = |key: &str, l: &PolicyLimits| -> Result<(), (String, String)> {
            if l.timeout_ms == Some(0) {
                return Err((format!("{key}.timeout_ms"), "must be at least 1".into()));
            }
            if let Some(mb) = l.memory_mb
                && !(1..=MAX_MEMORY_MB).contains(&mb)
            {
                return Err((
                    format!("{key}.memory_mb"),
                    format!("must be between 1 and {MAX_MEMORY_MB}"),
                ));
            }
            Ok(())
        };
        check_limits("policies.defaults", &self.policies.defaults)?;
        for (name, l) in &self.policies.overrides {
            check_limits(&format!("policies.overrides.{name}"), l)?;
        }
        let mut names = std::collections::HashSet::new();
        let mut listens = std::collections::HashSet::new();
        for (i, c) in self.connections.iter().enumerate() {
            let key = |field: &str| format!("connections[{i}].{field}");
            if c.name.is_empty()
                || !c
                    .name
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
            {
                return Err((key("name"), "use letters, digits, '-' and '_'".into()));
            }
            if !names.insert(&c.name) {
                return Err((
                    key("name"),
                    format!("{:?} is used by another connection", c.name),
                ));
            }
            if c.listen.port() != 0 && !listens.insert(c.listen) {
                return Err((
                    key("listen"),
                    format!("{} is used by another connection", c.listen),
                ));
            }
            let uri: http::Uri = c
                .upstream
                .parse()
                .map_err(|e| (key("upstream"), format!("not a URL: {e}")))?;
            match (c.protocol, uri.scheme_str()) {
                (p, Some("http") | Some("https")) if p.is_http() => {}
                (p, _) if p.is_http() => {
                    return Err((
                        key("upstream"),
                        "must start with http:// or https://".into(),
                    ));
                }
                (ProtocolKind::Postgres, Some("postgres") | Some("postgresql")) => {
                    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
                        return Err((
                            key("upstream"),
                            "holds credentials; give the role in postgres.user and the password in postgres.password".into(),
                        ));
                    }
                    if uri.path().len() > 1 {
                        return Err((
                            key("upstream"),
                            "names a database; pin one with postgres.database instead".into(),
                        ));
                    }
                }
                (_, _) => {
                    return Err((
                        key("upstream"),
                        "must look like postgres://HOST:PORT".into(),
                    ));
                }
            }
            if uri.host().is_none() {
                return Err((key("upstream"), "has no host".into()));
            }
            match (c.protocol, &c.postgres) {
                (ProtocolKind::Postgres, None) => {
                    return Err((
                        key("postgres"),
                        "is required for protocol = \"postgres\" (at least `user`)".into(),
                    ));
                }
                (ProtocolKind::Postgres, Some(pg)) => {
                    if pg.user.is_empty() {
                        return Err((key("postgres.user"), "must not be empty".into()));
                    }
                    if let Some(p) = &pg.password {
                        p.resolve().map_err(|m| (key("postgres.password"), m))?;
                    }
                    if pg.max_message_bytes < 8 * 1024 {
                        return Err((
                            key("postgres.max_message_bytes"),
                            "must be at least 8192".into(),
                        ));
                    }
                    if pg.connect_timeout_ms == 0 {
                        return Err((
                            key("postgres.connect_timeout_ms"),
                            "must be at least 1".into(),
                        ));
                    }
                    if pg.client_auth == ClientAuth::ScramSha256 && pg.allow_cleartext_password {
                        return Err((
                            key("postgres.allow_cleartext_password"),
                            "has no effect with client_auth = \"scram-sha-256\", which never accepts a cleartext password; remove one of them".into(),
                        ));
                    }
                    if c.credential.is_some() {
                        return Err((
                            key("credential"),
                            "is for HTTP connections; PostgreSQL credentials go in postgres.user and postgres.password".into(),
                        ));
                    }
                }
                (_, Some(_)) => {
                    return Err((
                        key("postgres"),
                        "is only for protocol = \"postgres\"".into(),
                    ));
                }
                (_, None) => {}
            }
            for (j, p) in c.policies.iter().enumerate() {
                if p.is_empty() || p.contains(['/', '\\', '.']) {
                    return Err((
                        format!("connections[{i}].policies[{j}]"),
                        "a policy name is a file stem, e.g. \"http-guard\"".into(),
                    ));
                }
            }
            if c.upstream_timeout_ms == 0 {
                return Err((key("upstream_timeout_ms"), "must be at least 1".into()));
            }
            if c.llm.is_some() && c.protocol != ProtocolKind::Llm {
                return Err((key("llm"), "is only for protocol = \"llm\"".into()));
            }
            if c.body_limit_bytes < 1024 {
                return Err((key("body_limit_bytes"), "must be at least 1024".into()));
            }
            if let Some(cred) = &c.credential {
                http::HeaderName::from_bytes(cred.header.as_bytes()).map_err(|_| {
                    (
                        key("credential.header"),
                        format!("{:?} is not a header name", cred.header),
                    )
                })?;
                cred.secret
                    .resolve()
                    .map_err(|m| (key("credential.secret"), m))?;
            }
            if let Some(tls) = &c.tls {
                for (field, p) in [
                    ("tls.cert_file", &tls.cert_file),
                    ("tls.key_file", &tls.key_file),
                ] {
                    if !p.exists() {
                        return Err((key(field), format!("{} does not exist", p.display())));
                    }
                }
            }
        }
        for (i, o) in self.identity.oidc.iter().enumerate() {
            let key = |field: &str| format!("identity.oidc[{i}].{field}");
            let url: http::Uri = o
                .issuer
                .parse()
                .map_err(|e| (key("issuer"), format!("not a URL: {e}")))?;
            let loopback = matches!(
                url.host(),
                Some("127.0.0.1") | Some("localhost") | Some("[::1]")
            );
            match url.scheme_str() {
                Some("https") => {}
                Some("http") if loopback => {}
                _ => {
                    return Err((
                        key("issuer"),
                        "must be an https:// URL (http:// only on loopback, for tests)".into(),
                    ));
                }
            }
            if o.audience.is_empty() {
                return Err((key("audience"), "must not be empty".into()));
            }
            if o.jwks_refresh_secs == 0 || o.unknown_kid_refresh_secs == 0 {
                return Err((
                    key("jwks_refresh_secs"),
                    "refresh intervals must be at least 1 second".into(),
                ));
            }
            if self.identity.oidc[..i].iter().any(|p| p.issuer == o.issuer) {
                return Err((key("issuer"), format!("{} is configured twice", o.issuer)));
            }
            if o.cli_client_id
                .as_deref()
                .is_some_and(|c| c.trim().is_empty())
            {
                return Err((
                    key("cli_client_id"),
                    "must not be empty (leave it out to offer no `gatehouse login` here)".into(),
                ));
            }
            if let Some(bad) = o.cli_scopes.iter().find(|s| !is_scope_token(s)) {
                return Err((
                    key("cli_scopes"),
                    format!("{bad:?} is not a scope: one word of printable ASCII each"),
                ));
            }
            if o.console_client_id
                .as_deref()
                .is_some_and(|c| c.trim().is_empty())
            {
                return Err((
                    key("console_client_id"),
                    "must not be empty (leave it out to offer no console sign-in here)".into(),
                ));
            }
            if let Some(bad) = o.console_scopes.iter().find(|s| !is_scope_token(s)) {
                return Err((
                    key("console_scopes"),
                    format!("{bad:?} is not a scope: one word of printable ASCII each"),
                ));
            }
            if let Some(secret) = &o.console_client_secret {
                if o.console_client_id.is_none() {
                    return Err((
                        key("console_client_secret"),
                        "needs console_client_id".into(),
                    ));
                }
                secret
                    .resolve()
                    .map_err(|m| (key("console_client_secret"), m))?;
            }
        }
        if let Some(tls) = self.admin.as_ref().and_then(|a| a.tls.as_ref()) {
            for (field, p) in [
                ("admin.tls.cert_file", &tls.cert_file),
                ("admin.tls.key_file", &tls.key_file),
            ] {
                if !p.exists() {
                    return Err((field.to_string(), format!("{} does not exist", p.display())));
                }
            }
        }
        if let Some(url) = self.admin.as_ref().and_then(|a| a.public_url.as_deref()) {
            check_public_url(url).map_err(|m| ("admin.public_url".to_string(), m))?;
        }
        if let Some(k) = &self.masking.hash_key {
            k.resolve()
                .map_err(|m| ("masking.hash_key".to_string(), m))?;
        }
        self.validate_approvals()
    }

    fn validate_approvals(&self) -> Result<(), (String, String)> {
        let a = &self.approvals;
        if !(1..=MAX_MIN_APPROVALS).contains(&a.min_approvals) {
            return Err((
                "approvals.min_approvals".into(),
                format!(
                    "must be between 1 and {MAX_MIN_APPROVALS} (the number of distinct approvers a held request needs), got {}",
                    a.min_approvals
                ),
            ));
        }
        if !(1..=MAX_GRANT_SECS).contains(&a.max_grant_secs) {
            return Err((
                "approvals.max_grant_secs".into(),
                format!(
                    "must be between 1 and {MAX_GRANT_SECS} seconds (the longest grant an approval leaves), got {}",
                    a.max_grant_secs
                ),
            ));
        }
        if let Some(id) = &a.replica_id
            && (id.is_empty()
                || id.len() > 64
                || !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            return Err((
                "approvals.replica_id".into(),
                "use 1-64 letters, digits, '-', '_' and '.', unique per replica".into(),
            ));
        }
        if !(50..=10_000).contains(&a.poll_interval_ms) {
            return Err((
                "approvals.poll_interval_ms".into(),
                "must be between 50 and 10000".into(),
            ));
        }
        if let Some(w) = &a.webhook {
            w.resolve_url()
                .map_err(|m| ("approvals.webhook.url".to_string(), m))?;
            match &w.console_url {
                Some(c) => check_http_url(c)
                    .map_err(|m| ("approvals.webhook.console_url".to_string(), m))?,
                None if w.format == WebhookFormat::Slack => {
                    return Err((
                        "approvals.webhook.console_url".into(),
                        "is required with format = \"slack\": messages carry approve/deny links to {console_url}/console/#/approvals/ID".into(),
                    ));
                }
                None => {}
            }
            if !(1..=20).contains(&w.max_attempts) {
                return Err((
                    "approvals.webhook.max_attempts".into(),
                    "must be between 1 and 20".into(),
                ));
            }
            if !(1..=60_000).contains(&w.timeout_ms) {
                return Err((
                    "approvals.webhook.timeout_ms".into(),
                    "must be between 1 and 60000".into(),
                ));
            }
        }
        Ok(())
    }
}

/// `admin.public_url`: where browsers reach the admin listener.
fn check_public_url(url: &str) -> Result<(), String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    if !matches!(uri.scheme_str(), Some("http") | Some("https")) || uri.host().is_none() {
        return Err(format!(
            "{url:?} must be an http:// or https:// URL with a host, e.g. https://gatehouse-admin.example.com"
        ));
    }
    if !uri.path().trim_end_matches('/').is_empty() || uri.query().is_some() {
        return Err(format!(
            "{url:?} must not have a path or query: the console lives at /console under it"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/gatehouse/gatehouse.toml"))
    }

    const MINIMAL: &str = r#"
        [[connections]]
        name = "api"
        protocol = "http"
        listen = "127.0.0.1:0"
        upstream = "http://127.0.0.1:9000"
        policies = ["http-guard"]
    "#;

    #[test]
    fn minimal_config_loads_with_defaults() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.audit.database, "sqlite:///etc/gatehouse/gatehouse.db");
        assert_eq!(c.policies.dir, PathBuf::from("/etc/gatehouse/policies"));
        let limits = c.policies.limits_for("http-guard");
        assert_eq!(limits.timeout, Duration::from_millis(50));
        assert_eq!(limits.on_failure, FailureMode::Closed);
    }

    #[test]
    fn overrides_win_over_defaults() {
        let text = format!(
            "{MINIMAL}\n[policies.defaults]\ntimeout_ms = 20\n[policies.overrides.slow]\ntimeout_ms = 200\non_failure = \"open\"\n"
        );
        let c = parse(&text).unwrap();
        assert_eq!(
            c.policies.limits_for("slow").timeout,
            Duration::from_millis(200)
        );
        assert_eq!(c.policies.limits_for("slow").on_failure, FailureMode::Open);
        assert_eq!(
            c.policies.limits_for("other").timeout,
            Duration::from_millis(20)
        );
    }

    #[test]
    fn errors_name_the_key() {
        let bad = MINIMAL.replace("http://127.0.0.1:9000", "ftp://x");
        let e = parse(&bad).unwrap_err().to_string();
        assert!(e.contains("connections[0].upstream"), "{e}");

        let bad = MINIMAL.replace("\"http-guard\"", "\"../evil\"");
        let e = parse(&bad).unwrap_err().to_string();
        assert!(e.contains("connections[0].policies[0]"), "{e}");

        let e = parse(&format!("{MINIMAL}\n[policies.defaults]\nmemory_mb = 0\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("policies.defaults.memory_mb"), "{e}");
    }

    #[test]
    fn worker_threads_are_optional_and_checked() {
        assert_eq!(parse(MINIMAL).unwrap().runtime.worker_threads, None);
        let c = parse(&format!("{MINIMAL}\n[runtime]\nworker_threads = 1\n")).unwrap();
        assert_eq!(c.runtime.worker_threads, Some(1));
        for bad in ["0", "100000"] {
            let e = parse(&format!("{MINIMAL}\n[runtime]\nworker_threads = {bad}\n"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("runtime.worker_threads"), "{e}");
            assert!(e.contains("between 1 and 1024"), "{e}");
        }
        let e = parse(&format!("{MINIMAL}\n[runtime]\nworkers = 2\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("workers"), "{e}");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let e = parse(&format!("{MINIMAL}\nbogus = 1\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("bogus"), "{e}");
    }

    #[test]
    fn cli_login_settings_are_checked() {
        let oidc =
            "[[identity.oidc]]\nissuer = \"https://login.example.com\"\naudience = \"gatehouse\"\n";
        let c = parse(&format!(
            "{MINIMAL}\n{oidc}cli_client_id = \"gatehouse-cli\"\n"
        ))
        .unwrap();
        assert_eq!(c.identity.oidc[0].cli_scopes, ["openid", "offline_access"]);
        let e = parse(&format!("{MINIMAL}\n{oidc}cli_client_id = \" \"\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("identity.oidc[0].cli_client_id"), "{e}");
        let e = parse(&format!(
            "{MINIMAL}\n{oidc}cli_scopes = [\"openid profile\"]\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("identity.oidc[0].cli_scopes"), "{e}");
    }

    #[test]
    fn postgres_client_auth_is_checked() {
        let pg = |extra: &str| {
            format!(
                "[[connections]]\nname = \"db\"\nprotocol = \"postgres\"\nlisten = \"127.0.0.1:0\"\nupstream = \"postgres://127.0.0.1:5432\"\n[connections.postgres]\nuser = \"app\"\n{extra}"
            )
        };
        let auth = |c: &Config| c.connections[0].postgres.as_ref().unwrap().client_auth;
        assert_eq!(auth(&parse(&pg("")).unwrap()), ClientAuth::Auto);
        let c = parse(&pg("client_auth = \"scram-sha-256\"\n")).unwrap();
        assert_eq!(auth(&c), ClientAuth::ScramSha256);
        let c = parse(&pg("client_auth = \"password\"\n")).unwrap();
        assert_eq!(auth(&c), ClientAuth::Password);
        let e = parse(&pg("client_auth = \"md5\"\n"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("client_auth") && e.contains("scram-sha-256"),
            "{e}"
        );
        let e = parse(&pg(
            "client_auth = \"scram-sha-256\"\nallow_cleartext_password = true\n",
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("connections[0].postgres.allow_cleartext_password"),
            "{e}"
        );
    }

    #[test]
    fn approval_settings_are_checked() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.approvals.min_approvals, 1);
        assert!(c.approvals.webhook.is_none());
        let c = parse(&format!("{MINIMAL}\n[approvals]\nmin_approvals = 2\n")).unwrap();
        assert_eq!(c.approvals.min_approvals, 2);
        let e = parse(&format!("{MINIMAL}\n[approvals]\nmin_approvals = 0\n"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("approvals.min_approvals") && e.contains("distinct approvers"),
            "{e}"
        );
        let e = parse(&format!("{MINIMAL}\n[approvals]\nreplica_id = \"a b\"\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("approvals.replica_id"), "{e}");

        let hook = |body: &str| parse(&format!("{MINIMAL}\n[approvals.webhook]\n{body}\n"));
        let c = hook("url = \"https://hooks.example.com/x\"").unwrap();
        let w = c.approvals.webhook.unwrap();
        assert_eq!(w.format, WebhookFormat::Json);
        assert_eq!(w.resolve_url().unwrap(), "https://hooks.example.com/x");
        let e = hook("url = \"ftp://x\"").unwrap_err().to_string();
        assert!(e.contains("approvals.webhook.url"), "{e}");
        let e = hook("url = \"https://h/x\"\nformat = \"slack\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("approvals.webhook.console_url"), "{e}");
        hook("url = \"https://h/x\"\nformat = \"slack\"\nconsole_url = \"https://console.example.com\"")
            .unwrap();
        let e = hook("url = \"https://h/x\"\nformat = \"teams\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("teams"), "{e}");
        let e = hook("url = { env = \"GATEHOUSE_TEST_UNSET_HOOK\" }")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("approvals.webhook.url") && e.contains("GATEHOUSE_TEST_UNSET_HOOK"),
            "{e}"
        );
        let e = hook("url = \"https://h/x\"\nmax_attempts = 0")
            .unwrap_err()
            .to_string();
        assert!(e.contains("approvals.webhook.max_attempts"), "{e}");
    }

    #[test]
    fn inline_secrets_are_refused() {
        let text = format!(
            "{MINIMAL}\n[connections.credential]\nheader = \"authorization\"\nsecret = \"hunter2\"\n"
        );
        assert!(parse(&text).is_err());
        let text = format!(
            "{MINIMAL}\n[connections.credential]\nheader = \"authorization\"\nsecret = {{ env = \"GATEHOUSE_TEST_UNSET_VAR\" }}\n"
        );
        let e = parse(&text).unwrap_err().to_string();
        assert!(e.contains("GATEHOUSE_TEST_UNSET_VAR is not set"), "{e}");
    }
}
