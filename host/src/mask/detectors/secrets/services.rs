//! Tokens of third-party services that carry a recognisable prefix or
//! shape, grouped as the `secrets` plugin's families group them (AI
//! providers, cloud platforms, developer tools, messaging, payments,
//! package registries). Most follow gitleaks' rules of the same service;
//! a few services gitleaks does not cover yet (Groq, Replicate, xAI,
//! OpenRouter, Docker Hub, crates.io, NuGet, Discord webhooks, Braintree)
//! follow the providers' documented formats. Where a prefix is short enough
//! to start an ordinary identifier, a check asks for letters and digits.

use super::super::Detector;
use super::super::checks::random_body;

pub const SERVICES: &[Detector] = &[
    // --- AI providers (besides OpenAI and Anthropic).
    Detector::new(
        "huggingface-token",
        r"(?-u:\b)(?:hf_|api_org_)[A-Za-z]{34}(?-u:\b)",
    ),
    Detector::new(
        "perplexity-api-key",
        r"(?-u:\b)pplx-[A-Za-z0-9]{48}(?-u:\b)",
    ),
    Detector::new("groq-api-key", r"(?-u:\b)gsk_[A-Za-z0-9]{52}(?-u:\b)"),
    Detector::new("replicate-token", r"(?-u:\b)r8_[A-Za-z0-9]{37}(?-u:\b)"),
    Detector::new("xai-api-key", r"(?-u:\b)xai-[A-Za-z0-9_-]{70,120}"),
    Detector::new("openrouter-key", r"(?-u:\b)sk-or-v1-[a-f0-9]{64}(?-u:\b)"),
    // --- Cloud and infrastructure platforms (besides AWS, GCP and Azure).
    Detector::new(
        "alibaba-access-key-id",
        r"(?-u:\b)LTAI[A-Za-z0-9]{20}(?-u:\b)",
    ),
    Detector::new(
        "cloudflare-origin-ca-key",
        r"(?-u:\b)v1\.0-[a-f0-9]{24}-[a-f0-9]{146}(?-u:\b)",
    ),
    Detector::new(
        "digitalocean-token",
        r"(?-u:\b)do[opr]_v1_[a-f0-9]{64}(?-u:\b)",
    ),
    Detector::new("heroku-key", r"(?-u:\b)HRKU-AA[0-9A-Za-z_-]{58}"),
    Detector::new(
        "flyio-token",
        r"(?-u:\b)(?:fo1_[A-Za-z0-9_-]{43}|(?:fm1[ar]|fm2)_[A-Za-z0-9+/]{100,2048}={0,3})",
    ),
    Detector::new("scalingo-token", r"(?-u:\b)tk-us-[A-Za-z0-9_-]{48}"),
    // The token's 14-character id before `.atlasv1.` stays readable: a
    // pattern starting with that run costs the combined matcher too much.
    Detector::new("terraform-cloud-token", r"\.atlasv1\.[A-Za-z0-9_=-]{60,70}"),
    Detector::new(
        "openshift-token",
        r"(?-u:\b)sha256~[A-Za-z0-9_-]{43}(?-u:\b)",
    ),
    Detector::new(
        "databricks-token",
        r"(?-u:\b)dapi[a-f0-9]{32}(?:-[0-9])?(?-u:\b)",
    ),
    Detector::new(
        "planetscale-token",
        r"(?-u:\b)pscale_(?:tkn|pw|oauth)_[A-Za-z0-9=._-]{32,64}",
    ),
    Detector::new(
        "clickhouse-cloud-key",
        r"(?-u:\b)4b1d[A-Za-z0-9]{38}(?-u:\b)",
    )
    .checked(random_body),
    Detector::new("pulumi-token", r"(?-u:\b)pul-[a-f0-9]{40}(?-u:\b)"),
    Detector::new("vault-token", r"(?-u:\b)hv[sb]\.[A-Za-z0-9_-]{24,300}"),
    Detector::new("doppler-token", r"(?-u:\b)dp\.pt\.[A-Za-z0-9]{43}(?-u:\b)"),
    // --- Developer tools: source control and CI/CD beyond GitHub and
    // GitLab, secret stores, observability, project tools.
    Detector::new("atlassian-api-token", r"(?-u:\b)ATATT3[A-Za-z0-9_=-]{186}"),
    Detector::new(
        "sourcegraph-token",
        r"(?-u:\b)sgp_(?:(?:[a-fA-F0-9]{16}|local)_)?[a-fA-F0-9]{40}(?-u:\b)",
    ),
    Detector::new(
        "harness-token",
        r"(?-u:\b)(?:pat|sat)\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9]{24}\.[A-Za-z0-9]{20}(?-u:\b)",
    ),
    Detector::new("octopus-deploy-key", r"(?-u:\b)API-[A-Z0-9]{26}(?-u:\b)").checked(random_body),
    Detector::new(
        "1password-token",
        r"(?-u:\b)(?:A3-[A-Z0-9]{6}-(?:[A-Z0-9]{11}|[A-Z0-9]{6}-[A-Z0-9]{5})-[A-Z0-9]{5}-[A-Z0-9]{5}-[A-Z0-9]{5}|ops_eyJ[A-Za-z0-9+/]{250,4000}={0,3})",
    ),
    Detector::new(
        "grafana-token",
        r"(?-u:\b)(?:glc_[A-Za-z0-9+/]{32,400}={0,2}|glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}|eyJrIjoi[A-Za-z0-9]{70,400}={0,3})",
    ),
    Detector::new(
        "sentry-token",
        r"(?-u:\b)(?:sntrys_eyJ[A-Za-z0-9+/=_-]{30,400}|sntryu_[a-f0-9]{64})",
    ),
    Detector::new(
        "new-relic-key",
        r"(?-u:\b)(?:NRAK-[A-Z0-9]{27}|NRII-[A-Za-z0-9-]{32}|NRJS-[a-f0-9]{19})",
    ),
    Detector::new("dynatrace-token", r"dt0c01\.[A-Z0-9]{24}\.[A-Z0-9]{64}"),
    Detector::new("linear-api-key", r"(?-u:\b)lin_api_[A-Za-z0-9]{40}(?-u:\b)"),
    Detector::new(
        "postman-token",
        r"(?-u:\b)PMAK-[a-f0-9]{24}-[a-f0-9]{34}(?-u:\b)",
    ),
    Detector::new("prefect-key", r"(?-u:\b)pnu_[A-Za-z0-9]{36}(?-u:\b)"),
    Detector::new(
        "notion-token",
        r"(?-u:\b)ntn_[0-9]{11}[A-Za-z0-9]{35}(?-u:\b)",
    ),
    Detector::new("readme-api-key", r"(?-u:\b)rdme_[a-z0-9]{70}(?-u:\b)"),
    Detector::new("infracost-token", r"(?-u:\b)ico-[A-Za-z0-9]{32}(?-u:\b)"),
    Detector::new("frameio-token", r"(?-u:\b)fio-u-[A-Za-z0-9_=-]{64}"),
    Detector::new(
        "defined-networking-token",
        r"(?-u:\b)dnkey-[A-Za-z0-9=_-]{26}-[A-Za-z0-9=_-]{52}",
    ),
    Detector::new(
        "adobe-client-secret",
        r"(?-u:\b)p8e-[A-Za-z0-9]{32}(?-u:\b)",
    ),
    Detector::new(
        "settlemint-token",
        r"(?-u:\b)sm_(?:aat|pat|sat)_[A-Za-z0-9]{16}(?-u:\b)",
    ),
    Detector::new(
        "age-secret-key",
        r"AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}",
    ),
    Detector::new(
        "mapbox-secret-token",
        r"(?-u:\b)sk\.eyJ[A-Za-z0-9_-]{50,400}\.[A-Za-z0-9_-]{20,100}",
    ),
    Detector::new("typeform-token", r"(?-u:\b)tfp_[A-Za-z0-9_.=-]{59}"),
    // (Mailchimp keys and MaxMind license keys start with a long run of
    // hex or letters, which costs the combined matcher more than it is worth:
    // `service-secret` finds them by name.)
    // --- Messaging: chat (besides Slack), e-mail and SMS.
    Detector::new(
        "telegram-bot-token",
        r"(?-u:\b)[0-9]{8,10}:AA[A-Za-z0-9_-]{33}(?-u:\b)",
    ),
    Detector::new(
        "microsoft-teams-webhook",
        r"https://[A-Za-z0-9-]{1,64}\.webhook\.office\.com/webhookb2/[A-Za-z0-9-]{36}@[A-Za-z0-9-]{36}/IncomingWebhook/[A-Za-z0-9]{32}/[A-Za-z0-9-]{36}(?:/V2[A-Za-z0-9_-]{20,100})?",
    ),
    Detector::new(
        "discord-webhook",
        r"https://(?:ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks/[0-9]{17,20}/[A-Za-z0-9_-]{60,80}",
    ),
    Detector::new(
        "sendgrid-key",
        r"(?-u:\b)SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}(?-u:\b)",
    ),
    Detector::new("mailgun-key", r"(?-u:\b)key-[a-f0-9]{32}(?-u:\b)"),
    Detector::new(
        "sendinblue-key",
        r"(?-u:\b)xkeysib-[a-f0-9]{64}-[A-Za-z0-9]{16}(?-u:\b)",
    ),
    Detector::new("twilio-key", r"(?-u:\b)SK[0-9a-fA-F]{32}(?-u:\b)"),
    // --- Payments and commerce (besides Stripe).
    Detector::new(
        "square-token",
        r"(?-u:\b)(?:EAAA[A-Za-z0-9_-]{60}|sq0(?:atp|csp)-[A-Za-z0-9_-]{22,43})(?-u:\b)",
    ),
    Detector::new(
        "plaid-access-token",
        r"(?-u:\b)access-(?:sandbox|development|production)-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(?-u:\b)",
    ),
    Detector::new(
        "braintree-token",
        r"(?-u:\b)access_token\$(?:production|sandbox)\$[0-9a-z]{16}\$[0-9a-f]{32}(?-u:\b)",
    ),
    Detector::new(
        "flutterwave-key",
        r"(?-u:\b)(?:FLW(?:SECK|PUBK)_TEST-[a-hA-H0-9]{32}-X|FLWSECK_TEST-[a-hA-H0-9]{12}(?-u:\b))",
    ),
    Detector::new(
        "shopify-token",
        r"(?-u:\b)shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}(?-u:\b)",
    ),
    Detector::new(
        "shippo-token",
        r"(?-u:\b)shippo_(?:live|test)_[a-fA-F0-9]{40}(?-u:\b)",
    ),
    Detector::new("easypost-key", r"(?-u:\b)EZ[AT]K[A-Za-z0-9]{54}(?-u:\b)"),
    Detector::new(
        "duffel-token",
        r"(?-u:\b)duffel_(?:test|live)_[A-Za-z0-9_=-]{43}",
    ),
    // --- Package registries.
    Detector::new("npm-token", r"(?-u:\b)npm_[A-Za-z0-9]{36}(?-u:\b)"),
    Detector::new("pypi-token", r"pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,1000}"),
    Detector::new("rubygems-key", r"(?-u:\b)rubygems_[a-f0-9]{48}(?-u:\b)"),
    Detector::new("clojars-token", r"(?-u:\b)CLOJARS_[a-z0-9]{60}(?-u:\b)"),
    Detector::new(
        "docker-hub-token",
        r"(?-u:\b)dckr_(?:pat_[A-Za-z0-9_-]{27}|oat_[A-Za-z0-9_-]{32})",
    ),
    Detector::new(
        "artifactory-token",
        r"(?-u:\b)(?:AKCp[A-Za-z0-9]{69}|cmVmd[A-Za-z0-9]{59})(?-u:\b)",
    ),
    Detector::new("nuget-api-key", r"(?-u:\b)oy2[a-z2-7]{43}(?-u:\b)").checked(random_body),
    Detector::new("crates-io-token", r"(?-u:\b)cio[A-Za-z0-9]{32}(?-u:\b)").checked(random_body),
];
