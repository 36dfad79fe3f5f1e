//! Credential detectors, modelled on gitleaks' default rule set: cloud keys
//! (AWS, GCP, Azure), source-forge and SaaS tokens with a recognisable
//! prefix, JWTs, PEM private keys, passwords in connection strings, and
//! generic `secret = "..."` assignments checked for entropy. Keyword-anchored
//! detectors mask only the value (`span`), keeping the key name readable.

use super::Detector;
use super::checks::{assigned_value, generic_secret};

pub const SECRETS: &[Detector] = &[
    Detector::new(
        "aws-access-key-id",
        r"(?-u:\b)(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA|AIDA|AROA)[A-Z0-9]{16}(?-u:\b)",
    ),
    Detector::new(
        "aws-secret-access-key",
        r#"(?i:aws[A-Za-z0-9_.-]{0,20}secret[A-Za-z0-9_.-]{0,20})["']?\s{0,3}(?::=|=>|=|:)\s{0,3}["']?[A-Za-z0-9/+]{40}(?-u:\b)"#,
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
        r"(?i:AccountKey|SharedAccessKey)=[A-Za-z0-9+/]{43,86}={0,2}",
    )
    .value(assigned_value),
    Detector::new("azure-sas-signature", r"[?&]sig=[A-Za-z0-9%+/]{43,100}(?:%3D|=){0,2}")
        .value(assigned_value),
    Detector::new(
        "github-token",
        r"(?-u:\b)(?:(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})(?-u:\b)",
    ),
    Detector::new(
        "gitlab-token",
        r"(?-u:\b)(?:(?:glpat|glptt|gldt|glft|glcbt|glimt|glrt|glrtr|glagent|gloas|glsoat)-[A-Za-z0-9_-]{20,64}|GR1348941[A-Za-z0-9_-]{20,64})(?-u:\b)",
    ),
    Detector::new("slack-token", r"(?-u:\b)xox[abposre]-[A-Za-z0-9-]{10,250}"),
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
        r"(?i:(?:server|data source|host|user id|uid|username|user)=[\x20-\x3A\x3C-\x7E]{1,128};(?:[\x20-\x3A\x3F-\x7E]{1,40}=[\x20-\x3A\x3C-\x7E]{0,128};){0,8}[ \t]{0,2}(?:password|pwd)=)[\x21\x23-\x26\x28-\x3A\x3C-\x7E]{1,128}",
    )
    .value(kv_password),
    Detector::new(
        "generic-secret",
        r#"(?i:[A-Za-z0-9_.-]{0,24}(?:secret|token|passwd|password|pwd|api[_-]?key|apikey|access[_-]?key|auth[_-]?key|credential|private[_-]?key)s?[A-Za-z0-9_.-]{0,16})["']?\s{0,3}(?::=|=>|=|:)\s{0,3}["'`]?[A-Za-z0-9/+=_.~!@#$%^&*-]{12,128}["'`]?"#,
    )
    .checked(generic_secret)
    .value(assigned_value),
    // SaaS tokens with a distinctive prefix (gitleaks' long tail).
    Detector::new("npm-token", r"(?-u:\b)npm_[A-Za-z0-9]{36}(?-u:\b)"),
    Detector::new("pypi-token", r"pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,1000}"),
    Detector::new("huggingface-token", r"(?-u:\b)hf_[A-Za-z]{34}(?-u:\b)"),
    Detector::new(
        "sendgrid-key",
        r"(?-u:\b)SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}(?-u:\b)",
    ),
    Detector::new("twilio-key", r"(?-u:\b)SK[0-9a-fA-F]{32}(?-u:\b)"),
    Detector::new("shopify-token", r"(?-u:\b)shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}(?-u:\b)"),
    Detector::new("digitalocean-token", r"(?-u:\b)do[opr]_v1_[a-f0-9]{64}(?-u:\b)"),
    Detector::new("doppler-token", r"(?-u:\b)dp\.pt\.[A-Za-z0-9]{43}(?-u:\b)"),
    Detector::new("vault-token", r"(?-u:\b)hv[sb]\.[A-Za-z0-9_-]{24,200}"),
    Detector::new(
        "grafana-token",
        r"(?-u:\b)(?:glc_[A-Za-z0-9+/]{32,400}={0,2}|glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8})",
    ),
    Detector::new("linear-api-key", r"(?-u:\b)lin_api_[A-Za-z0-9]{40}(?-u:\b)"),
    Detector::new("postman-token", r"(?-u:\b)PMAK-[a-f0-9]{24}-[a-f0-9]{34}(?-u:\b)"),
    Detector::new("databricks-token", r"(?-u:\b)dapi[a-f0-9]{32}(?:-[0-9])?(?-u:\b)"),
    Detector::new("new-relic-key", r"(?-u:\b)NRAK-[A-Z0-9]{27}(?-u:\b)"),
    Detector::new("pulumi-token", r"(?-u:\b)pul-[a-f0-9]{40}(?-u:\b)"),
    Detector::new(
        "age-secret-key",
        r"AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}",
    ),
    Detector::new(
        "sentry-token",
        r"(?-u:\b)(?:sntrys_eyJ[A-Za-z0-9+/=_-]{30,400}|sntryu_[a-f0-9]{64})",
    ),
    Detector::new(
        "square-token",
        r"(?-u:\b)(?:EAAA[A-Za-z0-9_-]{60}|sq0(?:atp|csp)-[A-Za-z0-9_-]{22,43})(?-u:\b)",
    ),
    Detector::new("mailgun-key", r"(?-u:\b)key-[a-f0-9]{32}(?-u:\b)"),
    Detector::new("dynatrace-token", r"dt0c01\.[A-Z0-9]{24}\.[A-Z0-9]{64}"),
    Detector::new("telegram-bot-token", r"(?-u:\b)[0-9]{8,10}:AA[A-Za-z0-9_-]{33}(?-u:\b)"),
    Detector::new("planetscale-token", r"(?-u:\b)pscale_(?:tkn|pw|oauth)_[A-Za-z0-9=._-]{32,64}"),
    Detector::new("heroku-key", r"(?-u:\b)HRKU-AA[0-9A-Za-z_-]{58}"),
    Detector::new("openshift-token", r"(?-u:\b)sha256~[A-Za-z0-9_-]{43}(?-u:\b)"),
    Detector::new("rubygems-key", r"(?-u:\b)rubygems_[a-f0-9]{48}(?-u:\b)"),
    Detector::new("prefect-key", r"(?-u:\b)pnu_[A-Za-z0-9]{36}(?-u:\b)"),
    Detector::new("sendinblue-key", r"(?-u:\b)xkeysib-[a-f0-9]{64}-[A-Za-z0-9]{16}(?-u:\b)"),
    Detector::new("easypost-key", r"(?-u:\b)EZ[AT]K[A-Za-z0-9]{54}(?-u:\b)"),
    Detector::new("shippo-token", r"(?-u:\b)shippo_(?:live|test)_[a-fA-F0-9]{40}(?-u:\b)"),
    Detector::new("duffel-token", r"(?-u:\b)duffel_(?:test|live)_[A-Za-z0-9_=-]{43}"),
    Detector::new("mapbox-secret-token", r"(?-u:\b)sk\.eyJ[A-Za-z0-9_-]{50,400}\.[A-Za-z0-9_-]{20,100}"),
    Detector::new("clojars-token", r"(?-u:\b)CLOJARS_[a-z0-9]{60}(?-u:\b)"),
    Detector::new("typeform-token", r"(?-u:\b)tfp_[A-Za-z0-9_.=-]{59}"),
    Detector::new("flutterwave-key", r"(?-u:\b)FLW(?:SECK|PUBK)_TEST-[a-hA-H0-9]{32}-X"),
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
