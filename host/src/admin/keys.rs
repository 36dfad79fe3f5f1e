//! `/v1/keys`: list, create and revoke Gatehouse API keys (administrators only).

use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::json;

use super::{AdminResponse, AdminState, error, json_reply};
use crate::identity::{KeyError, NewKey, Principal, PrincipalKind};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateKey {
    name: String,
    owner: String,
    #[serde(default = "agent")]
    kind: String,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    connections: Vec<String>,
    expires_in_secs: Option<u64>,
}

fn agent() -> String {
    "agent".into()
}

pub async fn handle(
    state: &AdminState,
    req: Request<Incoming>,
    admin: &Principal,
) -> AdminResponse {
    let path = req.uri().path().to_string();
    match (req.method().clone(), path.as_str()) {
        (Method::GET, "/v1/keys") => match state.keys.list().await {
            Ok(keys) => json_reply(StatusCode::OK, json!({"keys": keys})),
            Err(e) => super::store_unavailable("store", "listing keys", &e),
        },
        (Method::POST, "/v1/keys") => create(state, req, admin).await,
        (Method::DELETE, p) => {
            let id = p.trim_start_matches("/v1/keys/");
            match state.keys.revoke(id).await {
                Ok(()) => {
                    tracing::info!(admin = %admin.subject, key = id, "API key revoked");
                    json_reply(StatusCode::OK, json!({"revoked": id}))
                }
                Err(KeyError::NotFound(_)) => error(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    &format!("no active key {id}"),
                ),
                Err(e) => super::store_unavailable("store", "revoking the key", &e),
            }
        }
        _ => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "use GET or POST /v1/keys, DELETE /v1/keys/ID",
        ),
    }
}

async fn create(state: &AdminState, req: Request<Incoming>, admin: &Principal) -> AdminResponse {
    let body = match Limited::new(req.into_body(), 64 * 1024).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                &format!("cannot read the body: {e}"),
            );
        }
    };
    let k: CreateKey = match serde_json::from_slice(&body) {
        Ok(k) => k,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                &format!("invalid key request: {e}"),
            );
        }
    };
    let Some(kind) = PrincipalKind::parse(&k.kind) else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "kind must be agent, service or human",
        );
    };
    let new = NewKey {
        name: k.name,
        owner: k.owner,
        kind,
        groups: k.groups,
        connections: k.connections,
        expires_at_ms: k
            .expires_in_secs
            .map(|s| crate::audit::record::now_ms() + (s as i64) * 1000),
    };
    match state.keys.create(&new).await {
        Ok((info, secret)) => {
            tracing::info!(admin = %admin.subject, key = %info.id, name = %info.name, "API key created");
            json_reply(StatusCode::CREATED, json!({"key": secret, "info": info}))
        }
        Err(KeyError::Invalid(m)) => error(StatusCode::BAD_REQUEST, "bad_request", &m),
        Err(e) => super::store_unavailable("store", "creating the key", &e),
    }
}
