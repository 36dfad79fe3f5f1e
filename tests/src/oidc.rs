//! A real OpenID provider for tests: `oidc-provider` (the certified Node
//! package) started from `tests/oidc/provider.mjs`, with clients that get
//! JWT access tokens through the client-credentials grant. Test-only
//! endpoints rotate its signing key and expose the private key, so tests can
//! also sign tokens with deliberately bad claims using the provider's key.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use base64::Engine as _;
use rsa::pkcs1::EncodeRsaPrivateKey;
use serde_json::Value;

use crate::root;

pub struct OidcProvider {
    child: Child,
    pub issuer: String,
}

impl OidcProvider {
    pub fn start() -> OidcProvider {
        let dir = root().join("tests/oidc");
        assert!(
            dir.join("node_modules").exists(),
            "run `npm ci` in tests/oidc (make test does)"
        );
        let mut child = Command::new("node")
            .arg("provider.mjs")
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start node tests/oidc/provider.mjs");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut issuer = None;
        loop {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(line) if line == "ready" => break,
                Ok(line) => {
                    if let Some(url) = line.strip_prefix("listening oidc ") {
                        issuer = Some(url.to_string());
                    }
                }
                Err(_) => panic!("the OpenID provider did not start"),
            }
        }
        OidcProvider {
            child,
            issuer: issuer.expect("issuer"),
        }
    }

    fn client() -> reqwest::Client {
        crate::http_client()
    }

    /// A token through the real client-credentials grant.
    pub async fn token(&self, client_id: &str) -> String {
        let resp = Self::client()
            .post(format!("{}/token", self.issuer))
            .basic_auth(client_id, Some(format!("{client_id}-secret")))
            .form(&[
                ("grant_type", "client_credentials"),
                ("resource", "gatehouse"),
            ])
            .send()
            .await
            .expect("token request");
        let body: Value = resp.json().await.expect("token response");
        body["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no token: {body}"))
            .to_string()
    }

    /// Switches the provider to a new signing key; returns its key id.
    pub async fn rotate(&self) -> String {
        let v: Value = Self::client()
            .post(format!("{}/__test/rotate", self.issuer))
            .send()
            .await
            .expect("rotate")
            .json()
            .await
            .expect("rotate response");
        v["kid"].as_str().expect("kid").to_string()
    }

    /// The provider's current signing key: its id, and its RSA components.
    async fn current_key(&self) -> (String, impl Fn(&str) -> rsa::BigUint) {
        let jwk: Value = Self::client()
            .get(format!("{}/__test/private-jwk", self.issuer))
            .send()
            .await
            .expect("private jwk")
            .json()
            .await
            .expect("jwk");
        let kid = jwk["kid"].as_str().expect("kid").to_string();
        let component = move |k: &str| {
            let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(jwk[k].as_str().expect(k))
                .expect("b64");
            rsa::BigUint::from_bytes_be(&bytes)
        };
        (kid, component)
    }

    /// Signs `claims` with the provider's current private key (RS256).
    pub async fn sign(&self, claims: &Value, kid: Option<&str>) -> String {
        let (current_kid, n) = self.current_key().await;
        let key = rsa::RsaPrivateKey::from_components(n("n"), n("e"), n("d"), vec![n("p"), n("q")])
            .expect("rsa key");
        let der = key.to_pkcs1_der().expect("der");
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some(kid.map(str::to_string).unwrap_or(current_kid));
        let encoding = jsonwebtoken::EncodingKey::from_rsa_der(der.as_bytes());
        jsonwebtoken::encode(&header, claims, &encoding).expect("sign")
    }

    /// The provider's current public key as PEM (for the HS256 confusion attack).
    pub async fn public_pem(&self) -> String {
        let (_, n) = self.current_key().await;
        let key = rsa::RsaPublicKey::new(n("n"), n("e")).expect("public key");
        rsa::pkcs1::EncodeRsaPublicKey::to_pkcs1_pem(&key, rsa::pkcs8::LineEnding::LF).expect("pem")
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
