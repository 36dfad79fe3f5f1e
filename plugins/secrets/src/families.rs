//! Which host detectors make up each family. The names are the host's
//! (`host/src/mask/detectors/secrets.rs` and `secrets/services.rs`); the
//! host refuses a decision that names a detector it does not know, so a
//! drift fails loudly. Each detector is in exactly one family; the order of
//! the families is the order of the rules in a decision (at one position,
//! the earlier rule wins).

pub const FAMILIES: &[(&str, &[&str])] = &[
    ("aws", &["aws-access-key-id", "aws-secret-access-key"]),
    (
        "gcp",
        &["gcp-api-key", "gcp-oauth-client-secret", "gcp-access-token"],
    ),
    (
        "azure",
        &[
            "azure-client-secret",
            "azure-storage-key",
            "azure-sas-signature",
        ],
    ),
    ("github", &["github-token"]),
    ("gitlab", &["gitlab-token", "gitlab-session-cookie"]),
    ("slack", &["slack-token", "slack-webhook"]),
    ("stripe", &["stripe-key"]),
    ("openai", &["openai-api-key"]),
    ("anthropic", &["anthropic-api-key"]),
    (
        "ai",
        &[
            "huggingface-token",
            "perplexity-api-key",
            "groq-api-key",
            "replicate-token",
            "xai-api-key",
            "openrouter-key",
        ],
    ),
    (
        "cloud",
        &[
            "alibaba-access-key-id",
            "cloudflare-origin-ca-key",
            "digitalocean-token",
            "heroku-key",
            "flyio-token",
            "scalingo-token",
            "terraform-cloud-token",
            "openshift-token",
            "databricks-token",
            "planetscale-token",
            "clickhouse-cloud-key",
            "pulumi-token",
            "vault-token",
            "doppler-token",
        ],
    ),
    (
        "devtools",
        &[
            "atlassian-api-token",
            "sourcegraph-token",
            "harness-token",
            "octopus-deploy-key",
            "1password-token",
            "grafana-token",
            "sentry-token",
            "new-relic-key",
            "dynatrace-token",
            "linear-api-key",
            "postman-token",
            "prefect-key",
            "notion-token",
            "readme-api-key",
            "infracost-token",
            "frameio-token",
            "defined-networking-token",
            "adobe-client-secret",
            "settlemint-token",
            "age-secret-key",
            "mapbox-secret-token",
            "typeform-token",
        ],
    ),
    (
        "messaging",
        &[
            "telegram-bot-token",
            "microsoft-teams-webhook",
            "discord-webhook",
            "sendgrid-key",
            "mailgun-key",
            "sendinblue-key",
            "twilio-key",
        ],
    ),
    (
        "payment",
        &[
            "square-token",
            "plaid-access-token",
            "braintree-token",
            "flutterwave-key",
            "shopify-token",
            "shippo-token",
            "easypost-key",
            "duffel-token",
        ],
    ),
    (
        "registry",
        &[
            "npm-token",
            "pypi-token",
            "rubygems-key",
            "clojars-token",
            "docker-hub-token",
            "artifactory-token",
            "nuget-api-key",
            "crates-io-token",
        ],
    ),
    ("jwt", &["jwt", "jwt-base64"]),
    ("private-key", &["private-key"]),
    (
        "connection-string",
        &[
            "connection-string-password",
            "connection-string-kv-password",
            "curl-user-password",
        ],
    ),
    (
        "generic",
        &["generic-secret", "service-secret", "authorization-header"],
    ),
];

/// Names that stand for several families. `saas` was, before the
/// categories, the one family of prefixed third-party tokens; it now means
/// all of them, so a configuration naming it masks at least what it did.
pub const ALIASES: &[(&str, &[&str])] = &[(
    "saas",
    &[
        "ai",
        "cloud",
        "devtools",
        "messaging",
        "payment",
        "registry",
    ],
)];

/// The families a name selects: itself, or an alias's members.
pub fn expand(name: &str) -> Option<Vec<&'static str>> {
    if let Some((n, _)) = FAMILIES.iter().find(|(n, _)| *n == name) {
        return Some(vec![*n]);
    }
    ALIASES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, members)| members.to_vec())
}

pub fn is_detector(name: &str) -> bool {
    FAMILIES.iter().any(|(_, ds)| ds.contains(&name))
}

/// Every family and alias name, for error messages and the schema.
pub fn family_names() -> Vec<&'static str> {
    FAMILIES.iter().chain(ALIASES).map(|(n, _)| *n).collect()
}
