//! Every credential detector: true positives in context (obviously fake,
//! correctly shaped values) and near misses that must not match, each on
//! its own and all of them compiled into one rule list as the `secrets`
//! plugin's decision is. The values are written with a `|` inside, removed
//! before use, so that this file is not itself full of matches for the
//! false-positive measurement (`tests/tests/detector_matches.rs` reads
//! `host/src`) or for secret scanners.

use std::collections::BTreeSet;

use crate::mask::{MaskCompiler, MaskMethod, MaskRule, MaskTarget, stream};

use super::super::{find, find_all, secret_names};

/// (detector, text, the part of the text it masks).
const FOUND: &[(&str, &str, &str)] = &[
    (
        "aws-access-key-id",
        "aws id AKIA|3XTPLPFT75V2SEH6",
        "AKIA|3XTPLPFT75V2SEH6",
    ),
    (
        "aws-secret-access-key",
        "aws_secret_access_key = 1vRt|/1fjORS+6ilI8ihN5KXSc7Tvo+hBKqFYY+kv",
        "1vRt|/1fjORS+6ilI8ihN5KXSc7Tvo+hBKqFYY+kv",
    ),
    (
        "gcp-api-key",
        "maps key AIza|Sy5ZJr3J1TWDtkwtDDb_xHKas1VOqg6YYZY here",
        "AIza|Sy5ZJr3J1TWDtkwtDDb_xHKas1VOqg6YYZY",
    ),
    (
        "gcp-oauth-client-secret",
        "client GOCSPX-|n9ZhyiA4uoRgnatmUdjAWtGSU8po",
        "GOCSPX-|n9ZhyiA4uoRgnatmUdjAWtGSU8po",
    ),
    (
        "gcp-access-token",
        "bearer ya29.|_799NksnRH9ucAUsdMlHUvTCQCyEZDz-TddJ8HyS5SUkCnD8zRA9a9SkpXz9",
        "ya29.|_799NksnRH9ucAUsdMlHUvTCQCyEZDz-TddJ8HyS5SUkCnD8zRA9a9SkpXz9",
    ),
    (
        "azure-client-secret",
        "secret 4lB8|Q~YOvfZ8UzDzV8fUkkibjL5DZPjN0MEQ7wjJ end",
        "4lB8|Q~YOvfZ8UzDzV8fUkkibjL5DZPjN0MEQ7wjJ",
    ),
    (
        "azure-storage-key",
        "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=qcbn|r3yBdGBLEPH1qhT61qtc4xatws8phP9nhFyJfm5di4PzJ59FHz5r1pY4OjE2jBMptUsGr7CmY+uCu3ZR1z==;EndpointSuffix=core.windows.net",
        "qcbn|r3yBdGBLEPH1qhT61qtc4xatws8phP9nhFyJfm5di4PzJ59FHz5r1pY4OjE2jBMptUsGr7CmY+uCu3ZR1z==",
    ),
    (
        "azure-sas-signature",
        "https://acct.blob.core.windows.net/c?sv=2022-11-02&sig=wufU|xbvJDCTbyvHNsG9eh6Yo%4gfqrc5XlrWi0B26R0%3D&se=2030",
        "wufU|xbvJDCTbyvHNsG9eh6Yo%4gfqrc5XlrWi0B26R0%3D",
    ),
    (
        "github-token",
        "token ghp_|8qzjI6GKFSufrdZSlB5er8bOfZqfM2oeq3hD ok",
        "ghp_|8qzjI6GKFSufrdZSlB5er8bOfZqfM2oeq3hD",
    ),
    (
        "github-token",
        "GH_PAT=github_pat_|avJA76rNicHTp8hkqdlm7t_OtHWnsCGRlrwZbqcabUGJmGEp7CgQ0PBQFI14zGtSnovm14TUOizwd1iaeO",
        "github_pat_|avJA76rNicHTp8hkqdlm7t_OtHWnsCGRlrwZbqcabUGJmGEp7CgQ0PBQFI14zGtSnovm14TUOizwd1iaeO",
    ),
    (
        "gitlab-token",
        "GITLAB glpat-|G3uhkWKFLf6xuI5aHUQP",
        "glpat-|G3uhkWKFLf6xuI5aHUQP",
    ),
    (
        "gitlab-token",
        "routable glpat-|FeNBTxaQWk8JzFalHlsZfYcMMDk.7jyu5jsjc end",
        "glpat-|FeNBTxaQWk8JzFalHlsZfYcMMDk.7jyu5jsjc",
    ),
    (
        "gitlab-token",
        "flags glffct-|2rcDkdfrUnW5gcF_Ha6i",
        "glffct-|2rcDkdfrUnW5gcF_Ha6i",
    ),
    (
        "gitlab-session-cookie",
        "Cookie: _gitlab_session=68f7|e4qeqpno35ye4scmejvqtia4d5rg; path=/",
        "68f7|e4qeqpno35ye4scmejvqtia4d5rg",
    ),
    (
        "slack-token",
        "bot xoxb-|374847771834-170471874633-eLfjVHq8xiM0OGr4hTxoF54F",
        "xoxb-|374847771834-170471874633-eLfjVHq8xiM0OGr4hTxoF54F",
    ),
    (
        "slack-token",
        "app xapp-|1-AZBKA52ZTJ0-5651505561304-qxezyex1rdrgdsjpr16umx1bz99nfd02is5d9ik40vstqqzpt49zhkken659o2v2",
        "xapp-|1-AZBKA52ZTJ0-5651505561304-qxezyex1rdrgdsjpr16umx1bz99nfd02is5d9ik40vstqqzpt49zhkken659o2v2",
    ),
    (
        "slack-webhook",
        "post to https://hooks.slack.com/services/|T1I9MPFLV/B9FUPXQMB/V3AyAVHnyrvWdFrK9xiRGHOY",
        "https://hooks.slack.com/services/|T1I9MPFLV/B9FUPXQMB/V3AyAVHnyrvWdFrK9xiRGHOY",
    ),
    (
        "stripe-key",
        "STRIPE sk_live_|32nfr5pyzPCB9t2039bicBTW",
        "sk_live_|32nfr5pyzPCB9t2039bicBTW",
    ),
    (
        "stripe-key",
        "hook whsec_|5ZE9LFaez7770H2DCpYgojjHRg80USP2",
        "whsec_|5ZE9LFaez7770H2DCpYgojjHRg80USP2",
    ),
    (
        "anthropic-api-key",
        "key sk-ant-api03-|6kfaqDeMqG3omjMyXHCabM6JOF8EFd0Nhcy-1kGD2VD-eR1UYzaLiA-zNyD7CHLn-xC_1hsYgBds1ghxY5OokvQyx7eNWAA",
        "sk-ant-api03-|6kfaqDeMqG3omjMyXHCabM6JOF8EFd0Nhcy-1kGD2VD-eR1UYzaLiA-zNyD7CHLn-xC_1hsYgBds1ghxY5OokvQyx7eNWAA",
    ),
    (
        "openai-api-key",
        "key sk-proj-|VQ4vnakJkS1pAWTN3lg8zV5yPU8d0FZfWe7ihGyiRUIQfHOJMaidDn87XGT3BlbkFJ3-q-xbMtEPO6UkzYuF0ie9Pu2njHkAm1-5wDr16EpLLJIVGHz4FxFEtKyP",
        "sk-proj-|VQ4vnakJkS1pAWTN3lg8zV5yPU8d0FZfWe7ihGyiRUIQfHOJMaidDn87XGT3BlbkFJ3-q-xbMtEPO6UkzYuF0ie9Pu2njHkAm1-5wDr16EpLLJIVGHz4FxFEtKyP",
    ),
    (
        "jwt",
        "Authorization header was eyJh|bGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJmYWtlLXVzZXIiLCJpYXQiOjE3MDAwMDAwMDB9.PtYgjmUhBel31iEl2hpChYgCfrL1spNxnyVmihA-2O7 today",
        "eyJh|bGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJmYWtlLXVzZXIiLCJpYXQiOjE3MDAwMDAwMDB9.PtYgjmUhBel31iEl2hpChYgCfrL1spNxnyVmihA-2O7",
    ),
    (
        "jwt-base64",
        "encoded ZXlK|aGJHY2lPaUpJVXpJMU5pSXNJblI1Y0NJNklrcFhWQ0o5LmV5SnpkV0lpT2lKbVlXdGxMWFZ6WlhJaUxDSnBZWFFpT2pFM01EQXdNREF3TURCOS5QdFlnam1VaEJlbDMxaUVsMmhwQ2hZZ0Nmckwxc3BOeG55Vm1paEEtMk83 end",
        "ZXlK|aGJHY2lPaUpJVXpJMU5pSXNJblI1Y0NJNklrcFhWQ0o5LmV5SnpkV0lpT2lKbVlXdGxMWFZ6WlhJaUxDSnBZWFFpT2pFM01EQXdNREF3TURCOS5QdFlnam1VaEJlbDMxaUVsMmhwQ2hZZ0Nmckwxc3BOeG55Vm1paEEtMk83",
    ),
    (
        "private-key",
        "-----BEGIN RSA PRIVATE KEY-----\n|iYGFDm7ena8D5VfLDpgyyjVw5HanSBeVRsfAGeAbP0VxNjAe/9i0mYtluYI0KN1g\n-----END RSA PRIVATE KEY-----",
        "-----BEGIN RSA PRIVATE KEY-----\n|iYGFDm7ena8D5VfLDpgyyjVw5HanSBeVRsfAGeAbP0VxNjAe/9i0mYtluYI0KN1g\n-----END RSA PRIVATE KEY-----",
    ),
    (
        "connection-string-password",
        "dsn postgres|://app:tVK4wAAb3XZxPmzU@db:5432/app",
        "postgres|://app:tVK4wAAb3XZxPmzU@",
    ),
    (
        "connection-string-kv-password",
        "Server=db;Database=app;User Id=sa;Pass|word=zn8a|B5kBh0fzK4;",
        "zn8a|B5kBh0fzK4",
    ),
    (
        "generic-secret",
        "DB_PASSWORD: \"xDXk|iadJjPZ6zfKN7x\"",
        "xDXk|iadJjPZ6zfKN7x",
    ),
    (
        "service-secret",
        "TWITTER_CONSUMER_KEY = VGkj|wskHk7egyFWZY9Zmti18c",
        "VGkj|wskHk7egyFWZY9Zmti18c",
    ),
    (
        "service-secret",
        "datadog_app_key: fa1c|257c6f561c5cb347611a3ce9d97dcbee500f",
        "fa1c|257c6f561c5cb347611a3ce9d97dcbee500f",
    ),
    (
        "service-secret",
        "MAILCHIMP_KEY = 94c8|286793b2b023a60e4e81e11e3f79-us21",
        "94c8|286793b2b023a60e4e81e11e3f79-us21",
    ),
    (
        "service-secret",
        "maxmind_license: Xx6c|TC_yxcTWsABPMZqwpy2Li7Nm2TLxeQnv_mmk",
        "Xx6c|TC_yxcTWsABPMZqwpy2Li7Nm2TLxeQnv_mmk",
    ),
    (
        "authorization-header",
        "curl -H 'Authorization: Bearer 7E56|w8ZniqT3Ul4-ffqkOkg-Wrdioyq.KvCiSGuP' https://api.example.com",
        "7E56|w8ZniqT3Ul4-ffqkOkg-Wrdioyq.KvCiSGuP",
    ),
    (
        "curl-user-password",
        "cu|rl -u deploy:5Nr5|0DjqG96EnLqN https://ci.internal/api",
        "5Nr5|0DjqG96EnLqN",
    ),
    (
        "huggingface-token",
        "HF hf_|GpuxcmlzkOrRuykYYqhXHdOxCJHLSgqIOz",
        "hf_|GpuxcmlzkOrRuykYYqhXHdOxCJHLSgqIOz",
    ),
    (
        "huggingface-token",
        "org api_org_|VZxqyxKjxvWfColNVdsHqtOLQuUaVcojsN",
        "api_org_|VZxqyxKjxvWfColNVdsHqtOLQuUaVcojsN",
    ),
    (
        "perplexity-api-key",
        "pplx pplx-|OBAGx5diFoNPcbdaKwtgHwIoALtLinxN1Ekia7ZpTjCgeOj3",
        "pplx-|OBAGx5diFoNPcbdaKwtgHwIoALtLinxN1Ekia7ZpTjCgeOj3",
    ),
    (
        "groq-api-key",
        "groq gsk_|QYrzZq9adP0J5wMPLCM7HUFpk5acdIbzlpkd6XgaNJQ8mjAmHMPG",
        "gsk_|QYrzZq9adP0J5wMPLCM7HUFpk5acdIbzlpkd6XgaNJQ8mjAmHMPG",
    ),
    (
        "replicate-token",
        "replicate r8_|PPA0NlGtetOd4UYETIay2BV6DfVPClogqoPch",
        "r8_|PPA0NlGtetOd4UYETIay2BV6DfVPClogqoPch",
    ),
    (
        "xai-api-key",
        "grok xai-|v5V7S82qTdrOJRBRY6HqsP795nf4Gakq5p1Vm8kV6um4yvMpy62O6SQ1IEE1HSa2bB9UoK4tYnzNLeK6",
        "xai-|v5V7S82qTdrOJRBRY6HqsP795nf4Gakq5p1Vm8kV6um4yvMpy62O6SQ1IEE1HSa2bB9UoK4tYnzNLeK6",
    ),
    (
        "openrouter-key",
        "router sk-or-v1-|5410335b400141212b62c376631129f34369aad80b891baf90d0d3bf16295d06",
        "sk-or-v1-|5410335b400141212b62c376631129f34369aad80b891baf90d0d3bf16295d06",
    ),
    (
        "alibaba-access-key-id",
        "aliyun LTAI|sWWdawFgFSY0l9FLw91G",
        "LTAI|sWWdawFgFSY0l9FLw91G",
    ),
    (
        "cloudflare-origin-ca-key",
        "origin v1.0-|85967f532f3ab3cc2d0b698d-5c7e41ba4ea5ee874ae7689447ab57a683536c4499d863386ce10cd79e048c07dd7753eda83d7c58dfe0d5a0cf318656b3e6f0bade65c3b188cc102ddb8379c7ce65426f74bde94fb7",
        "v1.0-|85967f532f3ab3cc2d0b698d-5c7e41ba4ea5ee874ae7689447ab57a683536c4499d863386ce10cd79e048c07dd7753eda83d7c58dfe0d5a0cf318656b3e6f0bade65c3b188cc102ddb8379c7ce65426f74bde94fb7",
    ),
    (
        "digitalocean-token",
        "do dop_v1_|8c8d5f08b79affd2b49c12a4b0062983475eb46c5296f62e338d74ff1fe4f7f5",
        "dop_v1_|8c8d5f08b79affd2b49c12a4b0062983475eb46c5296f62e338d74ff1fe4f7f5",
    ),
    (
        "heroku-key",
        "heroku HRKU-AA|auP7-L7V21jxUdcfQm9_seB1qRmUR8AK3R2GgLLT-ZQISA-pQyOMqlfZZg",
        "HRKU-AA|auP7-L7V21jxUdcfQm9_seB1qRmUR8AK3R2GgLLT-ZQISA-pQyOMqlfZZg",
    ),
    (
        "flyio-token",
        "fly fo1_|ZMnafy8hWskBf6wmxe1mbVrNHMx1eOc3g-fp1Z5ibXt",
        "fo1_|ZMnafy8hWskBf6wmxe1mbVrNHMx1eOc3g-fp1Z5ibXt",
    ),
    (
        "flyio-token",
        "FlyV1 fm2_|80nk8Btb2abplBpq8cJF5xgUskL/6GgebhbkXNNv+hOV48vsoUu19X5IQLJhQbtN2FWXWD5KaPHI2ufKssJ/Sk+WzDNhY7AGbX6lTiDYHP9zyBylxLUTZtFf/VnV7ktOdSJcmeA+BHJ2m5qGeRzxWkdgeV6+iYplGODlYx5uVECweGThdgH9",
        "fm2_|80nk8Btb2abplBpq8cJF5xgUskL/6GgebhbkXNNv+hOV48vsoUu19X5IQLJhQbtN2FWXWD5KaPHI2ufKssJ/Sk+WzDNhY7AGbX6lTiDYHP9zyBylxLUTZtFf/VnV7ktOdSJcmeA+BHJ2m5qGeRzxWkdgeV6+iYplGODlYx5uVECweGThdgH9",
    ),
    (
        "scalingo-token",
        "scalingo tk-us-|hmsOazM4n8PVGXpV9Wv4Esb7yeuCjVr5mXcj5RPD9oUsQChx",
        "tk-us-|hmsOazM4n8PVGXpV9Wv4Esb7yeuCjVr5mXcj5RPD9oUsQChx",
    ),
    (
        "terraform-cloud-token",
        "tfc TCJ4jC3jrAApjb.atlasv1.|ILQvH_nO69othB9KpGzU3HEEmXL1uhLsc4Rr4aKxU3f0BJxrxDwzkl-JwAryNzbi",
        ".atlasv1.|ILQvH_nO69othB9KpGzU3HEEmXL1uhLsc4Rr4aKxU3f0BJxrxDwzkl-JwAryNzbi",
    ),
    (
        "openshift-token",
        "oc login --token sha256~|0hSQK-lb09rIFxUeuVaT5jpTFPWhLn-5drcFlCxvnNG",
        "sha256~|0hSQK-lb09rIFxUeuVaT5jpTFPWhLn-5drcFlCxvnNG",
    ),
    (
        "databricks-token",
        "dbx dapi|003680e7e3b35183ef8333c4774ec50c",
        "dapi|003680e7e3b35183ef8333c4774ec50c",
    ),
    (
        "planetscale-token",
        "ps pscale_tkn_|1eYgURZEQ3PZgPsTF2bUnxiP3zcCr1Y6ffeIIemGpb3",
        "pscale_tkn_|1eYgURZEQ3PZgPsTF2bUnxiP3zcCr1Y6ffeIIemGpb3",
    ),
    (
        "clickhouse-cloud-key",
        "ch 4b1d|p8cshtwPkhdM996G5rfDLI7jChGi4s6AKsrpVf",
        "4b1d|p8cshtwPkhdM996G5rfDLI7jChGi4s6AKsrpVf",
    ),
    (
        "pulumi-token",
        "pulumi pul-|9e7c6be9ff907a76cc0b57aaf89691052be1ceb3",
        "pul-|9e7c6be9ff907a76cc0b57aaf89691052be1ceb3",
    ),
    (
        "vault-token",
        "vault login hvs.|Ct1RTrzJm8Iq0na0p-Yt1JoW56KTLTYXPa-W4MxMs3WDlQPFPA2bdgG-MN33X7TfS5biDm0VZty1_Z4RlvUOUjNwoLR1uLA",
        "hvs.|Ct1RTrzJm8Iq0na0p-Yt1JoW56KTLTYXPa-W4MxMs3WDlQPFPA2bdgG-MN33X7TfS5biDm0VZty1_Z4RlvUOUjNwoLR1uLA",
    ),
    (
        "doppler-token",
        "doppler dp.pt.|G5mAldOKMgwKOOUcSAaYatTSJa6tz1gLaQbmlFXJKr3",
        "dp.pt.|G5mAldOKMgwKOOUcSAaYatTSJa6tz1gLaQbmlFXJKr3",
    ),
    (
        "atlassian-api-token",
        "jira ATATT3|sz0psundmjv_73hbPsETJveImiSy5XcgCYf4gEFCfuwOa6M1G-iFXC0NZ_cFlwvTWxaLYUoQXQZip2SFXy7KSE3eJdRtEqlzIq47EuVTBZWAM8AD5qH4VFZBqplIXdsNbXlwDPyniUMyiNlCKqZKTZ7qJwdUS0d7FZTmxLoICfZfu3zMtWfNwD-G3S",
        "ATATT3|sz0psundmjv_73hbPsETJveImiSy5XcgCYf4gEFCfuwOa6M1G-iFXC0NZ_cFlwvTWxaLYUoQXQZip2SFXy7KSE3eJdRtEqlzIq47EuVTBZWAM8AD5qH4VFZBqplIXdsNbXlwDPyniUMyiNlCKqZKTZ7qJwdUS0d7FZTmxLoICfZfu3zMtWfNwD-G3S",
    ),
    (
        "sourcegraph-token",
        "src sgp_|03911731a6b2dc78_2bdeae16d4f6185578715bbd26944ff770e4b944",
        "sgp_|03911731a6b2dc78_2bdeae16d4f6185578715bbd26944ff770e4b944",
    ),
    (
        "harness-token",
        "harness pat.|EQp2vt7ZAoLbU_AfhJMzoN.C9hkuCDKxskJecaDWFfVTvVK.qgPF9BFmYIuaw6fPsON7",
        "pat.|EQp2vt7ZAoLbU_AfhJMzoN.C9hkuCDKxskJecaDWFfVTvVK.qgPF9BFmYIuaw6fPsON7",
    ),
    (
        "octopus-deploy-key",
        "octo API-|QPFIBBZJSXL7KGTUYLWUOXI9XQ",
        "API-|QPFIBBZJSXL7KGTUYLWUOXI9XQ",
    ),
    (
        "1password-token",
        "op A3-|N515KT-FJOKI2ZFC24-61JSE-D60VE-2ALKY",
        "A3-|N515KT-FJOKI2ZFC24-61JSE-D60VE-2ALKY",
    ),
    (
        "grafana-token",
        "grafana glsa_|saCZKRwKmEfIuHDBI6O3jz9MNfZZdURv_9dbf49a0",
        "glsa_|saCZKRwKmEfIuHDBI6O3jz9MNfZZdURv_9dbf49a0",
    ),
    (
        "sentry-token",
        "sentry sntryu_|67e24bdb7ec83756378368f7e732d2e433ec56f24b1c71b106e934d263b5ba08",
        "sntryu_|67e24bdb7ec83756378368f7e732d2e433ec56f24b1c71b106e934d263b5ba08",
    ),
    (
        "new-relic-key",
        "nr NRAK-|HPX67W5CWGW9UHCPQWM2B2HB5HE",
        "NRAK-|HPX67W5CWGW9UHCPQWM2B2HB5HE",
    ),
    (
        "dynatrace-token",
        "dt dt0c01.|QLJ9SYJQ8R2ABVJ564CCELZ4.K2ZO7EXV7NTICNKX3V3YWUAV4VOBP3CJJRYRE6QW7IC9GM1GXSPJETVX6PW9ZVDV",
        "dt0c01.|QLJ9SYJQ8R2ABVJ564CCELZ4.K2ZO7EXV7NTICNKX3V3YWUAV4VOBP3CJJRYRE6QW7IC9GM1GXSPJETVX6PW9ZVDV",
    ),
    (
        "linear-api-key",
        "linear lin_api_|Qu4YEGx5pZpwjina43QDzCzKXt7kLejtUtqUKJQ7",
        "lin_api_|Qu4YEGx5pZpwjina43QDzCzKXt7kLejtUtqUKJQ7",
    ),
    (
        "postman-token",
        "postman PMAK-|a26259bebd2fa5880587061c-e6936714122a40680a06aa0fca51d12afc",
        "PMAK-|a26259bebd2fa5880587061c-e6936714122a40680a06aa0fca51d12afc",
    ),
    (
        "prefect-key",
        "prefect pnu_|q8D3ab7uKPudANTU1vkfbjnjHX1fw0xBwIRL",
        "pnu_|q8D3ab7uKPudANTU1vkfbjnjHX1fw0xBwIRL",
    ),
    (
        "notion-token",
        "notion ntn_|82995394704PXJTDJrxHH8riqaJEgPZXxjOozWf7bNihdI",
        "ntn_|82995394704PXJTDJrxHH8riqaJEgPZXxjOozWf7bNihdI",
    ),
    (
        "readme-api-key",
        "readme rdme_|6n9lqxjlk7bwp25nwy3nubgaezwdoy0yobqbq1pownu1rt5nk4ritsfva5pku2ndnxc2l1",
        "rdme_|6n9lqxjlk7bwp25nwy3nubgaezwdoy0yobqbq1pownu1rt5nk4ritsfva5pku2ndnxc2l1",
    ),
    (
        "infracost-token",
        "infracost ico-|3i7tRbZhj6ai6tjGVwgWkDRzfAvP6QTz",
        "ico-|3i7tRbZhj6ai6tjGVwgWkDRzfAvP6QTz",
    ),
    (
        "frameio-token",
        "frameio fio-u-|QeEzberD3ncgOiop_r2awCsoT-jSBCjIwbHIifzg0UIbPf6KQ0IZ2O1XtXX0saEG",
        "fio-u-|QeEzberD3ncgOiop_r2awCsoT-jSBCjIwbHIifzg0UIbPf6KQ0IZ2O1XtXX0saEG",
    ),
    (
        "defined-networking-token",
        "dn dnkey-|WEzolegZP4O6a88RWEWTiYIPjC-HH8S9CsiUAvUEwt6wfPWU2p0tGWnUTM5lJYL5o59wtaqU_EVRWGc",
        "dnkey-|WEzolegZP4O6a88RWEWTiYIPjC-HH8S9CsiUAvUEwt6wfPWU2p0tGWnUTM5lJYL5o59wtaqU_EVRWGc",
    ),
    (
        "adobe-client-secret",
        "adobe p8e-|JmaKqdLltTIr6uqpq1CfHOF2fmiB9YsN",
        "p8e-|JmaKqdLltTIr6uqpq1CfHOF2fmiB9YsN",
    ),
    (
        "settlemint-token",
        "sm sm_pat_|3efWCyzHAF75PWYb",
        "sm_pat_|3efWCyzHAF75PWYb",
    ),
    (
        "age-secret-key",
        "age AGE-SECRET-KEY-1|XAAM67TYUELGQWVEZJ4CA89WYQXL9DARV47R6G6RF54VQT3S95CSNE6RNN",
        "AGE-SECRET-KEY-1|XAAM67TYUELGQWVEZJ4CA89WYQXL9DARV47R6G6RF54VQT3S95CSNE6RNN",
    ),
    (
        "mapbox-secret-token",
        "mapbox sk.eyJ|FW3GNzqgAV7_sURz6gObi0PeJC4LzA6Z4AAhx3pgrj-xbv-CLBusAm7mzlg1.CG42thrfu5LDOtNHPBtDYe",
        "sk.eyJ|FW3GNzqgAV7_sURz6gObi0PeJC4LzA6Z4AAhx3pgrj-xbv-CLBusAm7mzlg1.CG42thrfu5LDOtNHPBtDYe",
    ),
    (
        "typeform-token",
        "typeform tfp_|uyjPsoPISfmDjUlBvRzhc1whQ7nP8HHesFwbWYF476fmFr3tMLIWfmiErX5",
        "tfp_|uyjPsoPISfmDjUlBvRzhc1whQ7nP8HHesFwbWYF476fmFr3tMLIWfmiErX5",
    ),
    (
        "telegram-bot-token",
        "bot 3940|991053:AAtMgwQS59FQUwoMi6mouY7eefm0q1TjVuU",
        "3940|991053:AAtMgwQS59FQUwoMi6mouY7eefm0q1TjVuU",
    ),
    (
        "microsoft-teams-webhook",
        "teams https://contoso.webhook.office.com/webhookb2/|52a0f948-4f83-ae75-18b6-9c64773031f6@725480dc-72a3-a2e5-0add-127454b4667a/IncomingWebhook/20f1fa2261bd2b5ff4891e5dc9328776/e7f1ccac-c27a-d909-f03f-dd9e4a62bce1",
        "https://contoso.webhook.office.com/webhookb2/|52a0f948-4f83-ae75-18b6-9c64773031f6@725480dc-72a3-a2e5-0add-127454b4667a/IncomingWebhook/20f1fa2261bd2b5ff4891e5dc9328776/e7f1ccac-c27a-d909-f03f-dd9e4a62bce1",
    ),
    (
        "discord-webhook",
        "discord https://discord.com/api/webhooks/|451427683130626452/UvCSYN-OyuYbawnF6GTmWrG1jQ4ILUNWh--UchpW5Nt6eP9raIsyfYwJELd10kW-UJPu",
        "https://discord.com/api/webhooks/|451427683130626452/UvCSYN-OyuYbawnF6GTmWrG1jQ4ILUNWh--UchpW5Nt6eP9raIsyfYwJELd10kW-UJPu",
    ),
    (
        "sendgrid-key",
        "sendgrid SG.|-gSrzhuNvNgMXUxIN8zP4Z.nHUYOX8IoA50uOftJ80jJYUYKpH5bfNTUHFim0oNvwp",
        "SG.|-gSrzhuNvNgMXUxIN8zP4Z.nHUYOX8IoA50uOftJ80jJYUYKpH5bfNTUHFim0oNvwp",
    ),
    (
        "mailgun-key",
        "mailgun key-|ccaccfab54d946a2d207dc684477391c",
        "key-|ccaccfab54d946a2d207dc684477391c",
    ),
    (
        "sendinblue-key",
        "brevo xkeysib-|aa766907508db2823ccd71ba82f4dee6a63c59620e66869002b6d08b5ab9315b-A5bZTDXgvg2jxX4E",
        "xkeysib-|aa766907508db2823ccd71ba82f4dee6a63c59620e66869002b6d08b5ab9315b-A5bZTDXgvg2jxX4E",
    ),
    (
        "twilio-key",
        "twilio SK|f2aaf438c6b8068dc5d44036c002e162",
        "SK|f2aaf438c6b8068dc5d44036c002e162",
    ),
    (
        "square-token",
        "square sq0atp-|PR7_AaFATWnmqz464ig8vZ",
        "sq0atp-|PR7_AaFATWnmqz464ig8vZ",
    ),
    (
        "plaid-access-token",
        "plaid access-sandbox-|7ff43fc2-770c-601e-1c77-1d814e0f3354",
        "access-sandbox-|7ff43fc2-770c-601e-1c77-1d814e0f3354",
    ),
    (
        "braintree-token",
        "bt access_token$production$|7k6ug6yaeb9f698e$19ec0605e636d32b32732b89994fa602",
        "access_token$production$|7k6ug6yaeb9f698e$19ec0605e636d32b32732b89994fa602",
    ),
    (
        "flutterwave-key",
        "flw FLWSECK_TEST-|cbdg8465gcabae5bf160e013a24df6f7-X",
        "FLWSECK_TEST-|cbdg8465gcabae5bf160e013a24df6f7-X",
    ),
    (
        "flutterwave-key",
        "flw enc FLWSECK_TEST-|20ha59a2h932",
        "FLWSECK_TEST-|20ha59a2h932",
    ),
    (
        "shopify-token",
        "shopify shpat_|07a2531adab23e5617d266908d35e59c",
        "shpat_|07a2531adab23e5617d266908d35e59c",
    ),
    (
        "shippo-token",
        "shippo shippo_live_|7a80268422c922202b243f8e5389cd5e3eaa60c7",
        "shippo_live_|7a80268422c922202b243f8e5389cd5e3eaa60c7",
    ),
    (
        "easypost-key",
        "easypost EZAK|g2nZwQvrNa2me5fkYQQLtQqlcjEg1dyqPfKLodesar27i79wxIUlix",
        "EZAK|g2nZwQvrNa2me5fkYQQLtQqlcjEg1dyqPfKLodesar27i79wxIUlix",
    ),
    (
        "duffel-token",
        "duffel duffel_test_|GVUvoFvKWdCyCXUE8HagmWVEKd84_oo6_lZp_9wD24h",
        "duffel_test_|GVUvoFvKWdCyCXUE8HagmWVEKd84_oo6_lZp_9wD24h",
    ),
    (
        "npm-token",
        "npm publish with npm_|hmerxCEp7vJdeGoEVnKN3972yhd8BHdpHkG3",
        "npm_|hmerxCEp7vJdeGoEVnKN3972yhd8BHdpHkG3",
    ),
    (
        "pypi-token",
        "pypi pypi-AgEIcHlwaS5vcmc|OBmk9H76qj5OmAJUip89Gxbd8eD-rUsXPfVxDc6k5BeK4ryMOziZdvbU9Di9V_BBy8zN6I",
        "pypi-AgEIcHlwaS5vcmc|OBmk9H76qj5OmAJUip89Gxbd8eD-rUsXPfVxDc6k5BeK4ryMOziZdvbU9Di9V_BBy8zN6I",
    ),
    (
        "rubygems-key",
        "gem rubygems_|7a1d5ad0b57048efc48738d444a157d52ed8748d31d30929",
        "rubygems_|7a1d5ad0b57048efc48738d444a157d52ed8748d31d30929",
    ),
    (
        "clojars-token",
        "clojars CLOJARS_|li0e7yt6h2p57x79m1eqylqp0x7qed4nua24vl3uo1fn80zioxxy5xionrhc",
        "CLOJARS_|li0e7yt6h2p57x79m1eqylqp0x7qed4nua24vl3uo1fn80zioxxy5xionrhc",
    ),
    (
        "docker-hub-token",
        "docker login -u ci -p dckr_pat_|rZ1j86QTS3Ow9cuYVoLAFzVMGui",
        "dckr_pat_|rZ1j86QTS3Ow9cuYVoLAFzVMGui",
    ),
    (
        "artifactory-token",
        "jfrog AKCp|MD2Q4XLcm5aMIAUJrbeZa1lfSpalolq5TYpbbhf7fmjEveHwusAVE3qvd7fqkqfeNdSqi",
        "AKCp|MD2Q4XLcm5aMIAUJrbeZa1lfSpalolq5TYpbbhf7fmjEveHwusAVE3qvd7fqkqfeNdSqi",
    ),
    (
        "nuget-api-key",
        "nuget push -k oy2|vv7jmdj3ysbote6gejm45of63iamng5pq3vdbobosn5",
        "oy2|vv7jmdj3ysbote6gejm45of63iamng5pq3vdbobosn5",
    ),
    (
        "crates-io-token",
        "cargo login cio|Nm5lntQ5qikdoDXv0TTR9SYZtzuHUtdX",
        "cio|Nm5lntQ5qikdoDXv0TTR9SYZtzuHUtdX",
    ),
];

/// (detector, text it must not match): wrong lengths, alphabets and
/// prefixes, placeholders, references to variables, ids that are not
/// secrets.
const MISSED: &[(&str, &str)] = &[
    ("aws-access-key-id", "key AKIA|123456789ABCDE short"),
    ("aws-access-key-id", "xAKIA|IOSFODNN7EXAMPLEX inside a word"),
    (
        "aws-secret-access-key",
        "aws_secret_access_key = ${AWS_SECRET_ACCESS_KEY}",
    ),
    ("gcp-api-key", "AIza|Sy-too-short-4u"),
    ("gcp-oauth-client-secret", "GOCSPX-|short123"),
    ("gcp-access-token", "ya29.|short"),
    ("azure-client-secret", "abc8Q~|short"),
    ("azure-storage-key", "AccountKey=|short=="),
    ("azure-sas-signature", "?sv=2022&sig=|short"),
    ("github-token", "ghp_|tooShort123"),
    ("github-token", "ghx_|sbeKXgzg2sye9b2Rann76dEyTzAeKOmXRrvf"),
    ("gitlab-token", "glpat-|short"),
    ("gitlab-session-cookie", "_gitlab_session=|short"),
    ("slack-token", "xoxz-|1234567890abc"),
    ("slack-token", "xoxb-|short"),
    ("slack-webhook", "https://hooks.slack.com/services/T0/B0"),
    ("stripe-key", "sk_live_|short"),
    ("stripe-key", "pk_live_|tva9AW7hipTgadDZFlRJmCGm"),
    ("anthropic-api-key", "sk-ant-|api03-short"),
    ("openai-api-key", "sk-|proj-short"),
    ("jwt", "eyJ|hbGciOi.eyJ|zdWIi.sig"),
    (
        "jwt-base64",
        "ZXlK|Q0pYRENHTG1sWkdFT05ZbGdDdGpmSVpTT2NNekNQVk5Qa05hSGVkY21wTWJYRHVDTG1Ib09zRmFRZkRQckFKZlRxdVdvRw==",
    ),
    (
        "private-key",
        "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n-----END PUBLIC KEY-----",
    ),
    (
        "connection-string-password",
        "postgres://db.internal:5432/app",
    ),
    ("connection-string-password", "see https://example.com/a@b"),
    (
        "connection-string-kv-password",
        "Server=db;Database=app;Integrated Security=true;",
    ),
    ("generic-secret", "password = \"changeme-please-123\""),
    ("generic-secret", "token: aaaaaaaaaaaaaaaa"),
    ("generic-secret", "api_key = os.environ[\"API_KEY\"]"),
    ("service-secret", "twitter_handle = \"gatehouse_project\""),
    ("service-secret", "discord_channel_id: 123456789012345678"),
    ("service-secret", "DATADOG_APP_KEY=${DATADOG_APP_KEY}"),
    (
        "service-secret",
        "twitter_api_key = \"your-twitter-api-key-1\"",
    ),
    ("authorization-header", "Authorization: Bearer ${TOKEN}"),
    (
        "authorization-header",
        "Authorization: Bearer <your-token-here>",
    ),
    (
        "authorization-header",
        "\"Authorization\": f\"Bearer {api_key}\"",
    ),
    (
        "authorization-header",
        "Authorization: Bearer YOUR_ACCESS_TOKEN_1",
    ),
    (
        "curl-user-password",
        "curl -u admin:$PASSWORD https://ci.internal",
    ),
    (
        "curl-user-password",
        "curl -u user:password https://ci.internal",
    ),
    (
        "curl-user-password",
        "curl -u admin:*** https://ci.internal",
    ),
    (
        "curl-user-password",
        "the password of a `curl -u user:password` match",
    ),
    ("huggingface-token", "hf_|short"),
    ("perplexity-api-key", "pplx-|short1"),
    (
        "groq-api-key",
        "gsk_|UXiAPyhzAnar3ZLt4bnlz2MPKgcjnCqaXNv1syee",
    ),
    ("replicate-token", "r8_|fnLOpaMxxNDi9LE1Ki3ylOjt6o0NpU"),
    (
        "xai-api-key",
        "xai-|mkVO8JmR8y4EMfAdggcG9qpVTzqA05MFsHl7Ueio",
    ),
    (
        "openrouter-key",
        "sk-or-v1-|f2866028de71159b42b4ea410fb9102f29a422eb",
    ),
    ("alibaba-access-key-id", "LTAI|Vc57VVTiY96vwfRE5e3"),
    (
        "cloudflare-origin-ca-key",
        "v1.0-|d0f0cc022238daceee2092f0-short",
    ),
    (
        "digitalocean-token",
        "dop_v1_|73ff80b9465aef7ac86d66c7a644fb12853ef86dcfaea21818b904ce6087413",
    ),
    ("heroku-key", "HRKU-|AAshort"),
    ("flyio-token", "fo1_|short"),
    ("scalingo-token", "tk-us-|short"),
    ("terraform-cloud-token", "abc.atlasv1.|short"),
    ("openshift-token", "sha256~|short"),
    ("databricks-token", "dapi|e3b266f850f1578b5c72dc4ee60caea"),
    ("planetscale-token", "pscale_tkn_|short"),
    (
        "clickhouse-cloud-key",
        "4b1d|PngUZPThnpyftIYuqTbwGfcCvJAXrFbnZeBZcl",
    ),
    (
        "pulumi-token",
        "pul-|a4f4ef27e9589c6948f6d30c01c3f252edc87ff",
    ),
    ("vault-token", "hvs.|short"),
    ("doppler-token", "dp.pt.|short"),
    ("atlassian-api-token", "ATATT3|short"),
    ("sourcegraph-token", "sgp_|short"),
    ("harness-token", "pat.|short.x.y"),
    ("octopus-deploy-key", "API-|EKNPQKDGNTAIEWYABGEHAVJKXL"),
    ("1password-token", "A3-|ABCDEF-short"),
    ("grafana-token", "glsa_|short"),
    ("sentry-token", "sntryu_|short"),
    ("new-relic-key", "NRAK-|short"),
    ("dynatrace-token", "dt0c01.|short"),
    ("linear-api-key", "lin_api_|short"),
    ("postman-token", "PMAK-|short"),
    ("prefect-key", "pnu_|short"),
    ("notion-token", "ntn_|short"),
    ("readme-api-key", "rdme_|short"),
    ("infracost-token", "ico-|short"),
    ("frameio-token", "fio-u-|short"),
    ("defined-networking-token", "dnkey-|short"),
    ("adobe-client-secret", "p8e-|short"),
    ("settlemint-token", "sm_pat_|short"),
    ("age-secret-key", "AGE-SECRET-KEY-1|short"),
    (
        "mapbox-secret-token",
        "pk.|eyJpNFgFULh2GNqTmSH4BbyOA0HNkIn3OIOnHn2INL2io6VOZw5luMu57mnXm4g.i4piUfqygB18AIYTimzORZ",
    ),
    ("typeform-token", "tfp_|short"),
    ("telegram-bot-token", "12345:AA|short"),
    (
        "microsoft-teams-webhook",
        "https://contoso.webhook.office.com/webhookb2/short",
    ),
    (
        "discord-webhook",
        "https://discord.com/api/webhooks/123/short",
    ),
    ("sendgrid-key", "SG.|short.short"),
    ("mailgun-key", "key-|036bb3a62f301f46536559314e23ace"),
    ("sendinblue-key", "xkeysib-|short"),
    ("twilio-key", "SK|5c652a9f30b1789a6c52cf63c03378e"),
    ("square-token", "sq0atp-|short"),
    (
        "plaid-access-token",
        "access-staging-|c16c0388-8ad3-e21c-5cf5-f1dfd9c9b9f8",
    ),
    ("braintree-token", "access_token$production$|short"),
    (
        "flutterwave-key",
        "FLWSECK-|2eeaad3ac00af0a3fbd01eda2b1cd3ba-X",
    ),
    ("shopify-token", "shpat_|de361b43be4de8db4947f39b8868767"),
    ("shippo-token", "shippo_live_|short"),
    ("easypost-key", "EZAK|short"),
    ("duffel-token", "duffel_test_|short"),
    ("npm-token", "npm_|short"),
    ("pypi-token", "pypi-|AgEIcHlwaS5vcmcshort"),
    ("rubygems-key", "rubygems_|short"),
    ("clojars-token", "CLOJARS_|short"),
    ("docker-hub-token", "dckr_pat_|short"),
    ("artifactory-token", "AKCp|short"),
    (
        "nuget-api-key",
        "oy2|qugvbubaiinatbdhricycvfrhulpplgkkpxeczdozty",
    ),
    ("crates-io-token", "cio|XnCBVqyZjxjPMusJWVlBPxLgDufIfBKK"),
];

fn unsplit(s: &str) -> String {
    s.replace('|', "")
}

fn matches(name: &str, text: &str) -> Vec<String> {
    let d = find(name).unwrap_or_else(|| panic!("no detector {name}"));
    find_all(d, text.as_bytes())
        .into_iter()
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .collect()
}

#[test]
fn every_credential_detector_has_cases_both_ways() {
    let names: BTreeSet<&str> = secret_names().into_iter().collect();
    let found: BTreeSet<&str> = FOUND.iter().map(|c| c.0).collect();
    let missed: BTreeSet<&str> = MISSED.iter().map(|c| c.0).collect();
    let no_found: Vec<_> = names.difference(&found).collect();
    let no_missed: Vec<_> = names.difference(&missed).collect();
    assert!(no_found.is_empty(), "no true positive for {no_found:?}");
    assert!(no_missed.is_empty(), "no near miss for {no_missed:?}");
    for name in found.union(&missed) {
        assert!(names.contains(name), "cases for unknown detector {name}");
    }
}

/// Runs every case, then fails once listing every case that failed.
fn check_all<T>(cases: &[T], failure: impl Fn(&T) -> Option<String>) {
    let failed: Vec<String> = cases.iter().filter_map(failure).collect();
    assert!(
        failed.is_empty(),
        "{} failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

#[test]
fn true_positives() {
    check_all(FOUND, |(name, text, part)| {
        let got = matches(name, &unsplit(text));
        (got != [unsplit(part)]).then(|| format!("{name} in {text:?}: {got:?}"))
    });
}

#[test]
fn near_misses() {
    check_all(MISSED, |(name, text)| {
        let got = matches(name, &unsplit(text));
        (!got.is_empty()).then(|| format!("{name} in {text:?}: {got:?}"))
    });
}

/// A recognised token assigned to a secret-sounding name is found by both
/// its own detector and `generic-secret`; the match that starts first (the
/// name's) wins, so the value is masked whole under the generic label.
#[test]
fn assigned_tokens_are_masked_whole() {
    let rules: Vec<MaskRule> = ["aws-access-key-id", "vault-token", "generic-secret"]
        .map(|n| MaskRule {
            target: MaskTarget::Detector(n.into()),
            method: MaskMethod::Redact,
        })
        .to_vec();
    let compiled = MaskCompiler::new(b"k".to_vec())
        .compile(&rules, &[])
        .unwrap();
    let matcher = compiled.text.clone().unwrap();
    for (text, masked) in [
        (
            "export AWS_ACCESS_KEY_ID=AKIA|3XTPLPFT75V2SEH6",
            "export AWS_ACCESS_KEY_ID=[MASKED:generic-secret]",
        ),
        (
            "VAULT_TOKEN=hvs.|CAESIJ7x0p1a2b3c4d5e6f7g8h9i0j",
            "VAULT_TOKEN=[MASKED:generic-secret]",
        ),
        (
            "aws id AKIA|3XTPLPFT75V2SEH6",
            "aws id [MASKED:aws-access-key-id]",
        ),
    ] {
        let got = stream::mask_all(&matcher, &compiled.hash_key, unsplit(text).as_bytes());
        assert_eq!(String::from_utf8_lossy(&got), masked);
    }
}

/// All credential detectors in one rule list, through the stream masker:
/// each true positive is masked with its own detector's label (no other
/// detector takes it first), and the text around it is left alone.
#[test]
fn one_rule_list_masks_each_with_its_own_label() {
    let rules: Vec<MaskRule> = secret_names()
        .into_iter()
        .map(|n| MaskRule {
            target: MaskTarget::Detector(n.into()),
            method: MaskMethod::Redact,
        })
        .collect();
    let compiled = MaskCompiler::new(b"k".to_vec())
        .compile(&rules, &[])
        .expect("every credential detector in one list");
    let matcher = compiled.text.clone().expect("text rules");
    check_all(FOUND, |(name, text, part)| {
        let text = unsplit(text);
        let expected = text.replacen(&unsplit(part), &format!("[MASKED:{name}]"), 1);
        let masked = stream::mask_all(&matcher, &compiled.hash_key, text.as_bytes());
        let masked = String::from_utf8_lossy(&masked);
        (masked != expected).then(|| format!("{name}: {masked}"))
    });
}
