//! Credential detectors, modelled on gitleaks' default rule set
//! (`config/gitleaks.toml`): cloud keys (AWS, GCP, Azure), source-forge,
//! chat and AI provider tokens, JWTs, PEM private keys, passwords in
//! connection strings and `curl` commands, `Authorization` headers, and
//! `secret = "..."` assignments checked for entropy. Keyword-anchored
//! detectors mask only the value (`span`), keeping the key name readable.
//! The long tail of services whose tokens carry a recognisable prefix is in
//! `services.rs`; `plugins/secrets/README.md` has the coverage table
//! against gitleaks.

mod services;

use super::Detector;
use super::checks::{
    assigned_value, authorization, authorization_value, curl_password, curl_user, generic_secret,
    jwt_base64, service_secret,
};

pub use services::SERVICES;

pub const SECRETS: &[Detector] = &[
    Detector::new(
        "aws-access-key-id",
        r"(?-u:\b)(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA|AIDA|AROA)[A-Z0-9]{16}(?-u:\b)",
    ),
    Detector::new(
        "aws-secret-access-key",
        r#"(?i-u:aws[A-Za-z0-9_.-]{0,20}secret[A-Za-z0-9_.-]{0,20})["']?(?-u:\s){0,3}(?::=|=>|=|:)(?-u:\s){0,3}["']?[A-Za-z0-9/+]{40}(?-u:\b)"#,
    )
    .value(assigned_value),
    Detector::new("gcp-api-key", r"(?-u:\b)AIza[0-9A-Za-z_-]{35}(?-u:\b)"),
    Detector::new(
        "gcp-oauth-client-secret",
        r"(?-u:\b)GOCSPX-[A-Za-z0-9_-]{28}(?-u:\b)",
    ),
    Detector::new("gcp-access-token", r"(?-u:\b)ya29\.[0-9A-Za-z_-]{30,512}"),
    Detector::new(
        "azure-client-secret",
        r"(?-u:\b)[A-Za-z0-9_~.]{3}[0-9]Q~[A-Za-z0-9_~.-]{31,34}",
    ),
    Detector::new(
        "azure-storage-key",
        r"(?i-u:AccountKey|SharedAccessKey)=[A-Za-z0-9+/]{43,86}={0,2}",
    )
    .value(assigned_value),
    Detector::new(
        "azure-sas-signature",
        r"[?&]sig=[A-Za-z0-9%+/]{43,100}(?:%3D|=){0,2}",
    )
    .value(assigned_value),
    Detector::new(
        "github-token",
        r"(?-u:\b)(?:(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})(?-u:\b)",
    ),
    // Routable tokens end with `.` and a 9-character suffix.
    Detector::new(
        "gitlab-token",
        r"(?-u:\b)(?:(?:glpat|glptt|gldt|glft|glcbt|glimt|glrt|glrtr|glagent|gloas|glsoat|glffct)-[A-Za-z0-9_-]{20,300}(?:\.[0-9a-z]{9})?|GR1348941[A-Za-z0-9_-]{20,64})",
    ),
    Detector::new("gitlab-session-cookie", r"_gitlab_session=[0-9a-z]{32}(?-u:\b)")
        .value(assigned_value),
    Detector::new(
        "slack-token",
        r"(?-u:\b)(?:xox[abposre]|xapp)-[A-Za-z0-9-]{10,250}",
    ),
    Detector::new(
        "slack-webhook",
        r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_/+-]{20,120}",
    ),
    Detector::new(
        "stripe-key",
        r"(?-u:\b)(?:(?:sk|rk)_(?:live|test|prod)_[A-Za-z0-9]{16,247}|whsec_[A-Za-z0-9]{32,64})(?-u:\b)",
    ),
    Detector::new(
        "anthropic-api-key",
        r"(?-u:\b)sk-ant-(?:api|admin)[0-9]{2}-[A-Za-z0-9_-]{32,128}",
    ),
    Detector::new(
        "openai-api-key",
        r"(?-u:\b)sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,200}T3BlbkFJ[A-Za-z0-9_-]{20,200}|(?-u:\b)sk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,200}",
    ),
    Detector::new(
        "jwt",
        r"(?-u:\b)eyJ[A-Za-z0-9_-]{8,512}\.eyJ[A-Za-z0-9_-]{8,4096}\.[A-Za-z0-9_-]{16,700}",
    ),
    // `ZXlK` is `eyJ` encoded again; the check decodes it.
    Detector::new("jwt-base64", r"(?-u:\b)ZXlK[A-Za-z0-9+/_-]{60,4096}={0,2}").checked(jwt_base64),
    // `\\` and `n`: keys inside JSON strings (GCP service-account files) have
    // escaped line breaks.
    Detector::new(
        "private-key",
        r"-----BEGIN[A-Z ]{0,20} PRIVATE KEY(?: BLOCK)?-----[A-Za-z0-9+/=\t\n\r :,\\-]{32,8192}?-----END[A-Z ]{0,20} PRIVATE KEY(?: BLOCK)?-----",
    ),
    Detector::new(
        "connection-string-password",
        r"(?-u:\b)[a-z][a-z0-9+.-]{1,20}://[\x21-\x2E\x30-\x39\x3B-\x3F\x41-\x7E]{1,128}:[\x21-\x2E\x30-\x3F\x41-\x7E]{1,256}@",
    ),
    Detector::new(
        "connection-string-kv-password",
        r"(?i-u:(?:server|data source|host|user id|uid|username|user)=[\x20-\x3A\x3C-\x7E]{1,128};(?:[\x20-\x3A\x3F-\x7E]{1,40}=[\x20-\x3A\x3C-\x7E]{0,128};){0,8}[ \t]{0,2}(?:password|pwd)=)[\x21\x23-\x26\x28-\x3A\x3C-\x7E]{1,128}",
    )
    .value(kv_password),
    Detector::new(
        "generic-secret",
        r#"(?i-u:(?:secret|token|passwd|password|pwd|api[_-]?key|apikey|access[_-]?key|auth[_-]?key|credential|private[_-]?key)s?[A-Za-z0-9_.-]{0,16})["']?(?-u:\s){0,3}(?::=|=>|=|:)(?-u:\s){0,3}["'`]?[A-Za-z0-9/+=_.~!@#$%^&*-]{12,128}["'`]?"#,
    )
    .checked(generic_secret)
    .value(assigned_value),
    // gitleaks' keyword rules: services whose credentials have no prefix of
    // their own, found by the service's name in the key. Names short enough
    // to sit inside ordinary words (`lob`, `sumo`, `linear`) are left out.
    Detector::new(
        "service-secret",
        r#"(?i-u:(?:adafruit|airtable|algolia|alibaba|asana|atlassian|confluence|jira|beamer|bitbucket|bittrex|cloudflare|codecov|cohere|co_api_key|coinbase|confluent|contentful|datadog|deepseek|discord|droneci|dropbox|etsy|facebook|fastly|finicity|finnhub|flickr|freshbooks|gitter|gocardless|heroku|hubspot|intercom|jfrog|artifactory|bintray|kraken|kucoin|launchdarkly|linkedin|linked_in|mailchimp|mailgun|mapbox|mattermost|maxmind|messagebird|message_bird|meraki|mistral|netlify|newrelic|new_relic|nytimes|okta|plaid|privateai|private_ai|rapidapi|sendbird|sentry|snyk|sonar|squarespace|sumologic|telegram|travis|twitch|twitter|yandex|zendesk)[A-Za-z0-9_.-]{0,20})["']?(?-u:\s){0,3}(?::=|=>|=|:)(?-u:\s){0,3}["'`]?[A-Za-z0-9_=+/.%-]{15,128}["'`]?"#,
    )
    .checked(service_secret)
    .value(assigned_value),
    // `Authorization: Bearer ...` pasted into text (a curl command in a
    // prompt, a logged request); masks the credential, keeps the scheme.
    Detector::new(
        "authorization-header",
        r#"(?i-u:authorization)["']?(?-u:\s){0,3}[:=](?-u:\s){0,3}["']?(?i-u:bearer|basic|token|apikey|api-key|digest)[ \t]{1,3}[A-Za-z0-9._~+/=-]{12,4096}"#,
    )
    .checked(authorization)
    .value(authorization_value),
    Detector::new(
        "curl-user-password",
        r#"(?-u:\b)curl(?:[ \t][\t\x20-\x7E]{0,256}?)?[ \t](?:-u|--user)[ \t=]{1,3}["']?[A-Za-z0-9._@+-]{1,64}:[^\s"'`]{3,128}["']?"#,
    )
    .checked(curl_user)
    .value(curl_password),
];

/// The value after the last `password=` / `pwd=` of a connection string.
fn kv_password(m: &[u8]) -> std::ops::Range<usize> {
    let lower = m.to_ascii_lowercase();
    let find = |needle: &[u8]| {
        lower
            .windows(needle.len())
            .rposition(|w| w == needle)
            .map(|i| i + needle.len())
    };
    let start = find(b"password=").or_else(|| find(b"pwd=")).unwrap_or(0);
    start..m.len()
}

#[cfg(test)]
mod tests;
