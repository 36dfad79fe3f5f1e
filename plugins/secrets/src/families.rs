//! Which host detectors make up each family. The names are the host's
//! (`host/src/mask/detectors/secrets.rs`); the host refuses a decision that
//! names a detector it does not know, so a drift fails loudly.

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
    ("gitlab", &["gitlab-token"]),
    ("slack", &["slack-token", "slack-webhook"]),
    ("stripe", &["stripe-key"]),
    ("openai", &["openai-api-key"]),
    ("anthropic", &["anthropic-api-key"]),
    ("jwt", &["jwt"]),
    ("private-key", &["private-key"]),
    (
        "connection-string",
        &[
            "connection-string-password",
            "connection-string-kv-password",
        ],
    ),
    ("generic", &["generic-secret"]),
    (
        "saas",
        &[
            "npm-token",
            "pypi-token",
            "huggingface-token",
            "sendgrid-key",
            "twilio-key",
            "shopify-token",
            "digitalocean-token",
            "doppler-token",
            "vault-token",
            "grafana-token",
            "linear-api-key",
            "postman-token",
            "databricks-token",
            "new-relic-key",
            "pulumi-token",
            "age-secret-key",
            "sentry-token",
            "square-token",
            "mailgun-key",
            "dynatrace-token",
            "telegram-bot-token",
            "planetscale-token",
            "heroku-key",
            "openshift-token",
            "rubygems-key",
            "prefect-key",
            "sendinblue-key",
            "easypost-key",
            "shippo-token",
            "duffel-token",
            "mapbox-secret-token",
            "clojars-token",
            "typeform-token",
            "flutterwave-key",
        ],
    ),
];

pub fn family(name: &str) -> Option<&'static [&'static str]> {
    FAMILIES.iter().find(|(n, _)| *n == name).map(|(_, d)| *d)
}

pub fn is_detector(name: &str) -> bool {
    FAMILIES.iter().any(|(_, ds)| ds.contains(&name))
}

pub fn family_names() -> Vec<&'static str> {
    FAMILIES.iter().map(|(n, _)| *n).collect()
}
