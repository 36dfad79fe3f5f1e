//! The web console, served by the admin listener: static pages (embedded in
//! the binary, no build step) that call the admin API as the signed-in
//! person. Pending approvals with their full context and approve/deny,
//! sessions with filters, a step-by-step session replay, policy status.
//!
//! Sign-in is the OpenID provider's (`signin`). The console session is the
//! person's own access token in an HttpOnly, `SameSite=Strict` cookie: every
//! API call is authenticated exactly like a bearer token (signature, issuer,
//! audience, expiry, groups), works on any replica, and ends when the token
//! does. Requests that change state with the cookie must also carry
//! `X-Gatehouse-Console: 1`, which a cross-site form cannot send.

pub mod signin;

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;

use self::signin::{ConsoleIssuer, FLOW_TTL_SECS, Flow, SignInError};
use super::AdminResponse;
use crate::identity::Authenticator;

/// The console session cookie.
pub const SESSION_COOKIE: &str = "gatehouse_console";
/// The sign-in flow cookie (see `signin`).
const FLOW_COOKIE: &str = "gatehouse_console_flow";
/// Required, with the session cookie, on requests that change state.
pub const CSRF_HEADER: &str = "x-gatehouse-console";
/// A console session never outlives this, whatever the token says.
const SESSION_MAX_SECS: u64 = 12 * 3600;

const APP_HTML: &str = include_str!("../../console/index.html");
const APP_JS: &str = include_str!("../../console/app.js");
const APP_CSS: &str = include_str!("../../console/app.css");
const ICON_SVG: &str = include_str!("../../console/icon.svg");

/// No inline script or style anywhere; nothing framed; nothing fetched
/// from elsewhere.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

pub struct Console {
    issuers: Vec<Arc<ConsoleIssuer>>,
    /// Where browsers reach the admin listener, without a trailing slash.
    public_url: String,
}

impl Console {
    pub fn new(issuers: Vec<Arc<ConsoleIssuer>>, public_url: &str) -> Self {
        Self {
            issuers,
            public_url: public_url.trim_end_matches('/').to_string(),
        }
    }

    fn redirect_uri(&self) -> String {
        format!("{}/console/callback", self.public_url)
    }

    fn secure(&self) -> bool {
        self.public_url.starts_with("https://")
    }

    fn cookie(&self, name: &str, value: &str, path: &str, max_age: u64, same_site: &str) -> String {
        let secure = if self.secure() { "; Secure" } else { "" };
        format!(
            "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite={same_site}{secure}"
        )
    }
}

pub fn serves(path: &str) -> bool {
    path == "/console" || path.starts_with("/console/")
}

pub async fn handle(
    console: &Console,
    auth: &Authenticator,
    req: Request<Incoming>,
) -> AdminResponse {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    match (req.method().clone(), path.as_str()) {
        (Method::GET, "/console") => redirect(StatusCode::SEE_OTHER, "/console/", None),
        (Method::GET, "/console/") => match session_token(req.headers()) {
            Some(t) if auth.authenticate(&t).await.is_ok() => {
                page(StatusCode::OK, APP_HTML.to_string())
            }
            _ => signin_page(console, param(&query, "error").as_deref()),
        },
        (Method::GET, "/console/app.js") => asset("text/javascript; charset=utf-8", APP_JS),
        (Method::GET, "/console/app.css") => asset("text/css; charset=utf-8", APP_CSS),
        (Method::GET, "/console/icon.svg") => asset("image/svg+xml", ICON_SVG),
        (Method::GET, "/console/login") => login(console, &query).await,
        (Method::GET, "/console/callback") => callback(console, auth, req.headers(), &query).await,
        (Method::POST, "/console/logout") => {
            let clear = console.cookie(SESSION_COOKIE, "", "/", 0, "Strict");
            redirect(StatusCode::SEE_OTHER, "/console/", Some(clear))
        }
        (Method::GET, "/console/me") => match session_token(req.headers()) {
            None => super::error(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "not signed in to the console",
            ),
            Some(t) => match auth.authenticate(&t).await {
                Ok(p) => super::json_reply(StatusCode::OK, serde_json::json!(p.record())),
                Err(e) => super::error(
                    StatusCode::UNAUTHORIZED,
                    "unauthenticated",
                    &format!("the console session ended: {e}; sign in again"),
                ),
            },
        },
        _ => super::error(StatusCode::NOT_FOUND, "not_found", "no such console page"),
    }
}

/// The credential a console request carries: the session cookie, accepted
/// for reads, and for writes only with the console's header. A refusal is
/// the message of a 403.
pub fn cookie_credential(
    method: &Method,
    headers: &HeaderMap,
) -> Result<Option<String>, &'static str> {
    let Some(token) = session_token(headers) else {
        return Ok(None);
    };
    let safe = matches!(*method, Method::GET | Method::HEAD);
    if !safe && headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()) != Some("1") {
        return Err(
            "a console request that changes state must carry the X-Gatehouse-Console: 1 header",
        );
    }
    Ok(Some(token))
}

fn session_token(headers: &HeaderMap) -> Option<String> {
    cookie(headers, SESSION_COOKIE).filter(|t| !t.is_empty())
}

async fn login(console: &Console, query: &str) -> AdminResponse {
    let index = param(query, "issuer")
        .and_then(|i| i.parse::<usize>().ok())
        .unwrap_or(0);
    let Some(issuer) = console.issuers.get(index) else {
        return signin_page(
            console,
            Some(&SignInError::UnknownIssuer(index).to_string()),
        );
    };
    match issuer.start(index, &console.redirect_uri()).await {
        Ok((url, flow)) => {
            let c = console.cookie(
                FLOW_COOKIE,
                &flow.encode(),
                "/console/callback",
                FLOW_TTL_SECS,
                "Lax",
            );
            redirect(StatusCode::FOUND, &url, Some(c))
        }
        Err(e) => {
            tracing::warn!(error = %e, "console sign-in could not start");
            signin_page(console, Some(&e.to_string()))
        }
    }
}

async fn callback(
    console: &Console,
    auth: &Authenticator,
    headers: &HeaderMap,
    query: &str,
) -> AdminResponse {
    let clear_flow = console.cookie(FLOW_COOKIE, "", "/console/callback", 0, "Lax");
    let fail = |message: String| {
        tracing::info!(reason = %message, "console sign-in failed");
        let mut r = signin_page(console, Some(&message));
        if let Ok(v) = HeaderValue::from_str(&clear_flow) {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
        r
    };
    if let Some(e) = param(query, "error") {
        let detail = param(query, "error_description").unwrap_or_default();
        return fail(SignInError::Refused(format!("{e} {detail}").trim().to_string()).to_string());
    }
    let flow = cookie(headers, FLOW_COOKIE).and_then(|c| Flow::decode(&c));
    let (Some(flow), Some(state), Some(code)) = (flow, param(query, "state"), param(query, "code"))
    else {
        return fail(SignInError::StateMismatch.to_string());
    };
    if !signin::same_secret(&flow.state, &state) {
        return fail(SignInError::StateMismatch.to_string());
    }
    let Some(issuer) = console.issuers.get(flow.issuer) else {
        return fail(SignInError::UnknownIssuer(flow.issuer).to_string());
    };
    let signed_in = match issuer.finish(flow, &code, &console.redirect_uri()).await {
        Ok(s) => s,
        Err(e) => return fail(e.to_string()),
    };
    // The token must be one Gatehouse accepts, or every page would fail.
    let principal = match auth.authenticate(&signed_in.access_token).await {
        Ok(p) => p,
        Err(e) => {
            return fail(format!(
                "the provider signed you in, but Gatehouse does not accept its token: {e}"
            ));
        }
    };
    tracing::info!(subject = %principal.subject, issuer = %issuer.issuer, "signed in to the console");
    let max_age = signed_in
        .expires_in_secs
        .unwrap_or(3600)
        .min(SESSION_MAX_SECS);
    let session = console.cookie(
        SESSION_COOKIE,
        &signed_in.access_token,
        "/",
        max_age,
        "Strict",
    );
    // A page, not a redirect: the browser arrived here from the provider
    // (cross-site), and a Strict cookie is only sent on the same-site
    // navigation this page starts.
    let mut r = page(
        StatusCode::OK,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Signed in · Gatehouse</title><link rel=\"icon\" href=\"/console/icon.svg\"><meta http-equiv=\"refresh\" content=\"0;url=/console/\"></head><body><p>Signed in. <a href=\"/console/\">Continue to the console</a>.</p></body></html>".to_string(),
    );
    for c in [session, clear_flow] {
        if let Ok(v) = HeaderValue::from_str(&c) {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    r
}

fn signin_page(console: &Console, error: Option<&str>) -> AdminResponse {
    let mut body = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>Sign in · Gatehouse console</title><link rel=\"icon\" href=\"/console/icon.svg\"><link rel=\"stylesheet\" href=\"/console/app.css\"></head><body><main class=\"signin\"><h1>Gatehouse console</h1>",
    );
    if let Some(e) = error {
        body.push_str(&format!(
            "<p class=\"error\" role=\"alert\">{}</p>",
            escape(e)
        ));
    }
    if console.issuers.is_empty() {
        body.push_str("<p>No sign-in is configured. Set <code>console_client_id</code> on an <code>[[identity.oidc]]</code> issuer.</p>");
    } else {
        body.push_str("<ul class=\"issuers\">");
        for (i, issuer) in console.issuers.iter().enumerate() {
            body.push_str(&format!(
                "<li><a class=\"button\" href=\"/console/login?issuer={i}\">Sign in with {}</a></li>",
                escape(&issuer.issuer)
            ));
        }
        body.push_str("</ul>");
    }
    body.push_str("</main></body></html>");
    page(StatusCode::OK, body)
}

fn page(status: StatusCode, html: String) -> AdminResponse {
    let mut r = Response::new(Full::new(Bytes::from(html)));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    security_headers(h);
    r
}

fn asset(content_type: &'static str, text: &'static str) -> AdminResponse {
    let mut r = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    security_headers(h);
    r
}

fn security_headers(h: &mut HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

fn redirect(status: StatusCode, location: &str, cookie: Option<String>) -> AdminResponse {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    if let Some(v) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

/// A cookie's value from the request's `Cookie` headers.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// A query parameter, percent-decoded.
fn param(query: &str, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_others_and_writes_need_the_console_header() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; gatehouse_console=tok; b=2"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("tok"));
        assert_eq!(cookie(&h, "gatehouse"), None);
        assert_eq!(
            cookie_credential(&Method::GET, &h)
                .ok()
                .flatten()
                .as_deref(),
            Some("tok")
        );
        let refused = cookie_credential(&Method::POST, &h).expect_err("no header");
        assert!(refused.contains("X-Gatehouse-Console"), "{refused}");
        h.insert(CSRF_HEADER, HeaderValue::from_static("1"));
        assert_eq!(
            cookie_credential(&Method::POST, &h)
                .ok()
                .flatten()
                .as_deref(),
            Some("tok")
        );
        assert!(
            cookie_credential(&Method::POST, &HeaderMap::new())
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn cookies_follow_the_public_url_scheme() {
        let c = Console::new(vec![], "https://admin.example.com/");
        assert_eq!(
            c.redirect_uri(),
            "https://admin.example.com/console/callback"
        );
        let s = c.cookie(SESSION_COOKIE, "t", "/", 60, "Strict");
        assert!(
            s.contains("HttpOnly") && s.contains("SameSite=Strict") && s.ends_with("; Secure"),
            "{s}"
        );
        let plain = Console::new(vec![], "http://127.0.0.1:9").cookie(
            SESSION_COOKIE,
            "t",
            "/",
            60,
            "Strict",
        );
        assert!(!plain.contains("Secure"), "{plain}");
    }

    #[test]
    fn error_text_is_escaped_on_the_signin_page() {
        let r = signin_page(
            &Console::new(vec![], "http://x"),
            Some("<script>x</script>"),
        );
        let csp = r.headers().get(header::CONTENT_SECURITY_POLICY).unwrap();
        assert!(csp.to_str().unwrap().contains("script-src 'self'"));
        assert_eq!(
            escape("<a href=\"x\">'&"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;"
        );
    }
}
