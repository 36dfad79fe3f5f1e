//! A real OpenID provider for tests: `oidc-provider` (the certified Node
//! package) started from `tests/oidc/provider.mjs`, with clients that get
//! JWT access tokens through the client-credentials grant. Test-only
//! endpoints rotate its signing key and expose the private key, so tests can
//! also sign tokens with deliberately bad claims using the provider's key.
//!
//! For `gatehouse login` it also plays the person: [`Person`] drives the
//! provider's own pages (device code entry, login, consent) over HTTP with a
//! cookie jar, the way a browser would.

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

/// Someone at a browser, signing in at the provider's real pages.
pub struct Person {
    http: reqwest::Client,
    jar: std::sync::Arc<reqwest::cookie::Jar>,
    issuer: String,
    login: String,
}

impl OidcProvider {
    /// A person who signs in as `login` (any password is accepted; the
    /// provider gives `alice@example.com` the group `dev` and
    /// `root@example.com` `gatehouse-admins` and `dev`).
    pub fn person(&self, login: &str) -> Person {
        let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
        Person {
            http: reqwest::Client::builder()
                .no_proxy()
                .cookie_provider(jar.clone())
                .build()
                .expect("HTTP client"),
            jar,
            issuer: self.issuer.clone(),
            login: login.to_string(),
        }
    }
}

impl Person {
    /// Enters `user_code` at the verification page, confirms it, signs in and
    /// consents. Panics with the page if a step does not land where expected.
    pub async fn approve_device(&self, user_code: &str) {
        let confirm = self.enter_code(user_code).await;
        let login_page = self
            .post(
                &format!("{}/device", self.issuer),
                &[
                    ("xsrf", hidden(&confirm, "xsrf").as_str()),
                    ("user_code", user_code),
                    ("confirm", "yes"),
                ],
            )
            .await;
        let done = self.sign_in_and_consent(login_page).await;
        assert!(
            done.1.contains("Sign-in Success"),
            "the device sign-in did not succeed: {}",
            done.1
        );
    }

    /// Enters `user_code` and then refuses ("abort") on the confirmation page.
    pub async fn deny_device(&self, user_code: &str) {
        let confirm = self.enter_code(user_code).await;
        let (_, page) = self
            .post(
                &format!("{}/device", self.issuer),
                &[
                    ("xsrf", hidden(&confirm, "xsrf").as_str()),
                    ("user_code", user_code),
                    ("abort", "yes"),
                ],
            )
            .await;
        assert!(page.contains("interrupted"), "abort did not land: {page}");
    }

    /// Opens an authorization URL (as `gatehouse login --browser` prints it),
    /// signs in and consents; the provider then redirects to the CLI's
    /// loopback listener, which this client follows. Returns that last page.
    pub async fn authorize(&self, url: &str) -> String {
        self.sign_in_at(url).await.1
    }

    /// Opens a page that sends the browser to the provider to sign in (a web
    /// application's login link), signs in, consents, and follows the
    /// provider back to the application. Returns the application's last page.
    pub async fn sign_in_at(&self, url: &str) -> (String, String) {
        let resp = self
            .http
            .get(url)
            .send()
            .await
            .expect("authorization request");
        let page = (resp.url().to_string(), resp.text().await.expect("page"));
        self.sign_in_and_consent(page).await
    }

    /// A cookie this browser holds for `url`.
    pub fn cookie(&self, url: &str, name: &str) -> Option<String> {
        use reqwest::cookie::CookieStore;
        let header = self.jar.cookies(&url.parse().ok()?)?;
        header
            .to_str()
            .ok()?
            .split("; ")
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    }

    async fn enter_code(&self, user_code: &str) -> String {
        let form = self
            .http
            .get(format!("{}/device", self.issuer))
            .send()
            .await
            .expect("device page")
            .text()
            .await
            .expect("device page");
        let (_, confirm) = self
            .post(
                &format!("{}/device", self.issuer),
                &[
                    ("xsrf", hidden(&form, "xsrf").as_str()),
                    ("user_code", user_code),
                ],
            )
            .await;
        assert!(
            confirm.contains("op.deviceConfirmForm"),
            "the code was not accepted: {confirm}"
        );
        confirm
    }

    /// From the login page: signs in, then consents. Returns where the
    /// provider sent the browser afterwards.
    async fn sign_in_and_consent(&self, login_page: (String, String)) -> (String, String) {
        let (url, page) = login_page;
        assert!(
            page.contains("name=\"login\""),
            "expected the login form: {page}"
        );
        let consent = self
            .post(
                &url,
                &[
                    ("prompt", "login"),
                    ("login", self.login.as_str()),
                    ("password", "any"),
                ],
            )
            .await;
        assert!(
            consent.1.contains("value=\"consent\""),
            "expected the consent form: {}",
            consent.1
        );
        self.post(&consent.0, &[("prompt", "consent")]).await
    }

    /// Posts a form and follows the redirects; returns the final URL and page.
    async fn post(&self, url: &str, form: &[(&str, &str)]) -> (String, String) {
        let resp = self
            .http
            .post(url)
            .form(form)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {url}: {e}"));
        let url = resp.url().to_string();
        (url, resp.text().await.expect("page"))
    }
}

/// The value of a hidden form field.
fn hidden(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} field in: {page}"))
        + marker.len();
    let len = page[start..].find('"').expect("end of the value");
    page[start..start + len].to_string()
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
