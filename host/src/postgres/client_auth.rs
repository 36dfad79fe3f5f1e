//! How a PostgreSQL client proves its Gatehouse identity: the choice
//! between the credential as a cleartext password and SCRAM-SHA-256, and
//! the SASL conversation for SCRAM. The SCRAM arithmetic is in
//! [`super::scram`]; this is the part that talks to the client.
//!
//! SCRAM needs a verifier stored in advance, which only API keys have: the
//! client gives the key id as its user name and the whole key as its
//! password. An OIDC token cannot be known in advance, so it only ever
//! travels as a cleartext password (over TLS unless explicitly allowed).
//! SCRAM never sends the secret, so it is allowed without TLS.

use std::path::Path;

use super::PgProxy;
use super::codec::{self, WireError, backend};
use super::scram::{self, ServerExchange, Verifier};
use super::session::Fatal;
use super::transport::{FrameReader, PgStream, send};
use crate::config::ClientAuth;
use crate::identity::keys::{KeyInfo, ScramKey};
use crate::identity::{AuthError, Principal, keys::ApiKeys};

/// A refusal, with what was presented for the audit record.
type Refusal = (Fatal, Option<String>);

/// How this session's client logs in.
pub(super) enum Login {
    /// The credential as a cleartext password.
    Password,
    /// SCRAM with the key its user name names.
    Scram(Box<(Verifier, KeyInfo)>),
}

/// The key id in a startup `user`: 16 hex digits, with or without `ghk_`.
pub fn key_id(user: &str) -> Option<String> {
    let id = user.strip_prefix("ghk_").unwrap_or(user);
    (id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| id.to_ascii_lowercase())
}

/// The `tls-server-end-point` binding data of the listener's certificate
/// (the first in its PEM file); `None` when its signature algorithm allows
/// none, and then SCRAM-SHA-256-PLUS is not offered.
pub fn end_point(cert_file: &Path) -> Result<Option<Vec<u8>>, String> {
    let text = std::fs::read(cert_file).map_err(|e| format!("{}: {e}", cert_file.display()))?;
    let leaf = rustls_pemfile::certs(&mut text.as_slice())
        .next()
        .ok_or_else(|| format!("{}: no PEM certificate found", cert_file.display()))?
        .map_err(|e| format!("{}: {e}", cert_file.display()))?;
    let data = scram::tls_server_end_point(&leaf);
    if data.is_none() {
        tracing::warn!(
            cert = %cert_file.display(),
            "the certificate's signature algorithm names no hash for tls-server-end-point; SCRAM-SHA-256-PLUS is not offered"
        );
    }
    Ok(data)
}

impl PgProxy {
    /// Picks the login method from the connection's `client_auth` and the
    /// startup `user`.
    pub(super) async fn choose_login(&self, params: &[(String, String)]) -> Result<Login, Refusal> {
        if self.client_auth == ClientAuth::Password {
            return Ok(Login::Password);
        }
        let scram_only = self.client_auth == ClientAuth::ScramSha256;
        let user = params
            .iter()
            .find(|(k, _)| k == "user")
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
        let Some(id) = key_id(user) else {
            if !scram_only {
                return Ok(Login::Password);
            }
            return Err((
                Fatal {
                    sqlstate: "28000",
                    message: format!(
                        "connection {} accepts only SCRAM-SHA-256 logins with a Gatehouse API key, and the user name is not a key id",
                        self.name
                    ),
                    hint: Some(
                        "give the key id (the 16 hex digits after ghk_) as the user name and the whole key as the password; OIDC tokens need a connection with client_auth = \"auto\" or \"password\", over TLS",
                    ),
                },
                None,
            ));
        };
        let presented = format!("key:{id}");
        match self.auth.keys().scram_key(&id).await {
            Ok(ScramKey::Found(verifier, info)) => Ok(Login::Scram(Box::new((verifier, info)))),
            Ok(ScramKey::NoVerifier(_) | ScramKey::Unknown) if !scram_only => Ok(Login::Password),
            Ok(ScramKey::NoVerifier(_)) => Err((
                Fatal {
                    sqlstate: "28000",
                    message: format!(
                        "API key {id} was made before Gatehouse kept SCRAM verifiers, and connection {} accepts only SCRAM-SHA-256",
                        self.name
                    ),
                    hint: Some("create a new key with `gatehouse keys create` and revoke this one"),
                },
                Some(presented),
            )),
            Ok(ScramKey::Unknown) => Err(refused(AuthError::Unknown, presented)),
            Err(e) => Err(refused(e, presented)),
        }
    }

    /// The SASL conversation: AuthenticationSASL, SASLContinue, SASLFinal.
    /// Returns who the key belongs to, and the key id for the audit record.
    pub(super) async fn scram_login(
        &self,
        client: &mut FrameReader<PgStream>,
        verifier: Verifier,
        info: KeyInfo,
    ) -> Result<(Principal, String), Refusal> {
        let presented = format!("key:{}", info.id);
        let wire = |e: WireError| (Fatal::new("08P01", e.to_string()), Some(presented.clone()));
        let binding = if client.get_mut().is_tls() {
            self.tls_end_point.as_deref()
        } else {
            None
        };
        let offer = backend::auth_sasl(scram::mechanisms(binding.is_some()));
        send(client.get_mut(), &offer).await.map_err(wire)?;

        let body = sasl_response(client, "SASLInitialResponse")
            .await
            .map_err(wire)?;
        let (mechanism, first) = codec::decode_sasl_initial(&body).map_err(wire)?;
        let first = first.ok_or_else(|| {
            wire(WireError::Malformed(
                "SASLInitialResponse without a client-first-message".into(),
            ))
        })?;
        let method = match mechanism {
            scram::SCRAM_SHA_256 => scram::SCRAM_SHA_256,
            scram::SCRAM_SHA_256_PLUS => scram::SCRAM_SHA_256_PLUS,
            _ => "other",
        };
        let scram_failed = |e: scram::ScramError| {
            tracing::info!(reason = "scram", method, presented = %presented, error = %e, "authentication refused");
            let mut f = Fatal::new(
                e.sqlstate(),
                format!("Gatehouse authentication failed: {e}"),
            );
            if e == scram::ScramError::WrongProof {
                f.hint = Some(
                    "the password must be the whole API key (ghk_<id>_<secret>) whose id is the user name",
                );
            }
            (f, Some(presented.clone()))
        };
        let (exchange, server_first) =
            ServerExchange::start(mechanism, first, &verifier, binding).map_err(scram_failed)?;
        send(
            client.get_mut(),
            &backend::auth_sasl_continue(server_first.as_bytes()),
        )
        .await
        .map_err(wire)?;

        let body = sasl_response(client, "SASLResponse").await.map_err(wire)?;
        let server_final = exchange.finish(&body).map_err(scram_failed)?;
        let principal = ApiKeys::principal(&info).map_err(|e| refused(e, presented.clone()))?;
        send(
            client.get_mut(),
            &backend::auth_sasl_final(server_final.as_bytes()),
        )
        .await
        .map_err(wire)?;
        tracing::info!(method, presented = %presented, "client authenticated");
        Ok((principal, presented))
    }
}

/// The body of the client's next SASL message (both kinds are tagged `p`).
async fn sasl_response(
    client: &mut FrameReader<PgStream>,
    what: &str,
) -> Result<bytes::Bytes, WireError> {
    let frame = client.next().await?;
    if frame.tag != b'p' {
        return Err(WireError::Malformed(format!(
            "expected a {what}, got {:?}",
            frame.tag as char
        )));
    }
    Ok(frame.body)
}

/// A refused key, as the cleartext path words it.
fn refused(e: AuthError, presented: String) -> Refusal {
    tracing::info!(reason = e.label(), presented = %presented, "authentication refused");
    let sqlstate = match e {
        AuthError::Store(_) => "58000",
        _ => "28P01",
    };
    (
        Fatal::new(sqlstate, format!("Gatehouse authentication failed: {e}")),
        Some(presented),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_that_are_key_ids() {
        assert_eq!(
            key_id("0123456789abcdef").as_deref(),
            Some("0123456789abcdef")
        );
        assert_eq!(
            key_id("ghk_0123456789ABCDEF").as_deref(),
            Some("0123456789abcdef")
        );
        for not in [
            "",
            "agent",
            "0123456789abcde",
            "0123456789abcdefa",
            "ghk_",
            "ghk_0123456789abcdeg",
            "0123456789abcdef_",
        ] {
            assert_eq!(key_id(not), None, "{not:?}");
        }
    }
}
