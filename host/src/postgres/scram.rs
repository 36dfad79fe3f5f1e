//! The server side of SCRAM-SHA-256 and SCRAM-SHA-256-PLUS (RFC 5802,
//! RFC 7677) for clients that log in with a Gatehouse API key, and the
//! verifier the key store keeps for that, in PostgreSQL's format. Pure: no
//! I/O; randomness only for salts and nonces.
//!
//! The client proves it holds the key without sending it, so a SCRAM login
//! needs no TLS. With TLS, `-PLUS` also binds the proof to the server's
//! certificate (`tls-server-end-point`, RFC 5929), which defeats a relay in
//! the middle.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha224, Sha256, Sha384, Sha512};
use subtle::ConstantTimeEq;

pub const SCRAM_SHA_256: &str = "SCRAM-SHA-256";
pub const SCRAM_SHA_256_PLUS: &str = "SCRAM-SHA-256-PLUS";
/// PostgreSQL's default (`scram_iterations`).
pub const ITERATIONS: u32 = 4096;
const SALT_LEN: usize = 16;
/// PostgreSQL's server nonce length, before base64.
const SERVER_NONCE_LEN: usize = 18;
const CHANNEL_BINDING_TYPE: &str = "tls-server-end-point";

/// Why an exchange failed. Messages never contain the password or a proof.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    #[error("malformed SCRAM message: {0}")]
    Malformed(String),
    #[error("the client chose SASL mechanism {0:?}, which this server did not offer")]
    Mechanism(String),
    #[error("{0}")]
    Unsupported(&'static str),
    #[error("SCRAM channel binding: {0}")]
    ChannelBinding(&'static str),
    #[error("the SCRAM proof does not match the key")]
    WrongProof,
    #[error("invalid SCRAM verifier: {0}")]
    Verifier(&'static str),
}

impl ScramError {
    /// The SQLSTATE PostgreSQL itself uses for the same failure.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            ScramError::Unsupported(_) => "0A000",
            ScramError::WrongProof => "28P01",
            ScramError::Verifier(_) => "58000",
            ScramError::Malformed(_) | ScramError::Mechanism(_) | ScramError::ChannelBinding(_) => {
                "08P01"
            }
        }
    }
}

fn malformed(what: impl Into<String>) -> ScramError {
    ScramError::Malformed(what.into())
}

/// What the server keeps to check a password without knowing it:
/// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, the format of
/// `pg_authid.rolpassword`.
#[derive(Clone, PartialEq, Eq)]
pub struct Verifier {
    iterations: u32,
    salt: Vec<u8>,
    stored_key: [u8; 32],
    server_key: [u8; 32],
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier for `password` with a fresh random salt.
    ///
    /// PostgreSQL's clients apply SASLprep (RFC 4013) to the password before
    /// salting it. Gatehouse keys are `ghk_` and lowercase hex, printable
    /// ASCII, for which SASLprep changes nothing, so the key is used as is.
    /// Any other password would have to be SASLprep'd here first.
    pub fn generate(password: &str) -> Verifier {
        debug_assert!(password.bytes().all(|b| b.is_ascii_graphic()));
        let mut salt = [0u8; SALT_LEN];
        rand::rng().fill_bytes(&mut salt);
        Verifier::with_salt(password, &salt, ITERATIONS)
    }

    pub fn with_salt(password: &str, salt: &[u8], iterations: u32) -> Verifier {
        let salted = salted_password(password.as_bytes(), salt, iterations);
        let client_key = hmac(&salted, b"Client Key");
        Verifier {
            iterations,
            salt: salt.to_vec(),
            stored_key: Sha256::digest(client_key).into(),
            server_key: hmac(&salted, b"Server Key"),
        }
    }

    pub fn parse(text: &str) -> Result<Verifier, ScramError> {
        let bad = || ScramError::Verifier("expected SCRAM-SHA-256$ITER:SALT$STOREDKEY:SERVERKEY");
        let rest = text.strip_prefix("SCRAM-SHA-256$").ok_or_else(bad)?;
        let (params, keys) = rest.split_once('$').ok_or_else(bad)?;
        let (iterations, salt) = params.split_once(':').ok_or_else(bad)?;
        let (stored, server) = keys.split_once(':').ok_or_else(bad)?;
        let iterations: u32 = iterations.parse().map_err(|_| bad())?;
        let salt = B64.decode(salt).map_err(|_| bad())?;
        let key = |s: &str| -> Result<[u8; 32], ScramError> {
            B64.decode(s)
                .ok()
                .and_then(|k| k.try_into().ok())
                .ok_or_else(bad)
        };
        if iterations == 0 || salt.is_empty() {
            return Err(bad());
        }
        Ok(Verifier {
            iterations,
            salt,
            stored_key: key(stored)?,
            server_key: key(server)?,
        })
    }
}

impl std::fmt::Display for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SCRAM-SHA-256${}:{}${}:{}",
            self.iterations,
            B64.encode(&self.salt),
            B64.encode(self.stored_key),
            B64.encode(self.server_key)
        )
    }
}

/// The mechanisms to offer in AuthenticationSASL, strongest first (as
/// PostgreSQL does). `-PLUS` only when there is a channel to bind to.
pub fn mechanisms(plus: bool) -> &'static [&'static str] {
    if plus {
        &[SCRAM_SHA_256_PLUS, SCRAM_SHA_256]
    } else {
        &[SCRAM_SHA_256]
    }
}

/// The server's half of one exchange, between client-first and
/// client-final.
pub struct ServerExchange {
    stored_key: [u8; 32],
    server_key: [u8; 32],
    /// What `c=` must carry: the GS2 header, plus the binding data for -PLUS.
    channel_binding: Vec<u8>,
    nonce: String,
    /// client-first-message-bare "," server-first-message
    auth_message_start: String,
}

impl ServerExchange {
    /// Reads the client-first-message that came with the client's choice of
    /// `mechanism`, and returns the server-first-message to send.
    /// `binding` is the `tls-server-end-point` data when the server offered
    /// SCRAM-SHA-256-PLUS (a TLS connection), `None` otherwise.
    pub fn start(
        mechanism: &str,
        client_first: &[u8],
        verifier: &Verifier,
        binding: Option<&[u8]>,
    ) -> Result<(ServerExchange, String), ScramError> {
        let mut raw = [0u8; SERVER_NONCE_LEN];
        rand::rng().fill_bytes(&mut raw);
        Self::start_with_nonce(mechanism, client_first, verifier, binding, &B64.encode(raw))
    }

    fn start_with_nonce(
        mechanism: &str,
        client_first: &[u8],
        verifier: &Verifier,
        binding: Option<&[u8]>,
        server_nonce: &str,
    ) -> Result<(ServerExchange, String), ScramError> {
        let plus = match mechanism {
            SCRAM_SHA_256 => false,
            SCRAM_SHA_256_PLUS if binding.is_some() => true,
            other => return Err(ScramError::Mechanism(other.into())),
        };
        let first = ClientFirst::parse(client_first)?;
        let channel_binding = match (first.flag, plus) {
            (Gs2Flag::Bound, true) => {
                let mut c = first.gs2_header.as_bytes().to_vec();
                c.extend_from_slice(binding.unwrap_or_default());
                c
            }
            (Gs2Flag::Bound, false) => {
                return Err(malformed(
                    "the client chose SCRAM-SHA-256 without channel binding, but its message asks for channel binding",
                ));
            }
            (_, true) => {
                return Err(malformed(
                    "the client chose SCRAM-SHA-256-PLUS, but its message does not ask for channel binding",
                ));
            }
            (Gs2Flag::ClientThinksUnsupported, false) if binding.is_some() => {
                // RFC 5802 §6: the client can bind but believes the server
                // cannot, though this server offered -PLUS. Someone removed
                // it from the list on the way.
                return Err(ScramError::ChannelBinding(
                    "the client supports channel binding but thinks this server does not, though it offered SCRAM-SHA-256-PLUS (a downgrade attempt?)",
                ));
            }
            (_, false) => first.gs2_header.as_bytes().to_vec(),
        };
        let nonce = format!("{}{server_nonce}", first.nonce);
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&verifier.salt),
            verifier.iterations
        );
        let exchange = ServerExchange {
            stored_key: verifier.stored_key,
            server_key: verifier.server_key,
            channel_binding,
            nonce,
            auth_message_start: format!("{},{server_first}", first.bare),
        };
        Ok((exchange, server_first))
    }

    /// Checks the client-final-message; returns the server-final-message
    /// (`v=ServerSignature`) when the proof holds.
    pub fn finish(self, client_final: &[u8]) -> Result<String, ScramError> {
        let text = std::str::from_utf8(client_final)
            .map_err(|_| malformed("client-final-message is not UTF-8"))?;
        let (without_proof, proof) = text
            .rsplit_once(",p=")
            .ok_or_else(|| malformed("client-final-message has no proof (p=)"))?;
        let mut attrs = without_proof.split(',');
        let c = attrs
            .next()
            .and_then(|a| a.strip_prefix("c="))
            .ok_or_else(|| malformed("client-final-message does not start with c="))?;
        let r = attrs
            .next()
            .and_then(|a| a.strip_prefix("r="))
            .ok_or_else(|| malformed("client-final-message has no nonce (r=) after c="))?;
        if let Some(a) = attrs.find(|a| !is_attribute(a)) {
            return Err(malformed(format!(
                "client-final-message has a malformed attribute {:?}",
                a.chars().take(16).collect::<String>()
            )));
        }
        let c = B64
            .decode(c)
            .map_err(|_| malformed("channel binding (c=) is not base64"))?;
        if c != self.channel_binding {
            return Err(ScramError::ChannelBinding(
                "check failed: the client is bound to another channel (a proxy or a man in the middle between it and Gatehouse?)",
            ));
        }
        if r != self.nonce {
            return Err(malformed("the nonce does not match"));
        }
        let proof: [u8; 32] = B64
            .decode(proof)
            .ok()
            .and_then(|p| p.try_into().ok())
            .ok_or_else(|| malformed("the proof (p=) is not 32 bytes of base64"))?;
        let auth_message = format!("{},{without_proof}", self.auth_message_start);
        let signature = hmac(&self.stored_key, auth_message.as_bytes());
        let mut client_key = proof;
        for (k, s) in client_key.iter_mut().zip(signature) {
            *k ^= s;
        }
        let ok: bool = Sha256::digest(client_key)
            .as_slice()
            .ct_eq(&self.stored_key)
            .into();
        if !ok {
            return Err(ScramError::WrongProof);
        }
        Ok(format!(
            "v={}",
            B64.encode(hmac(&self.server_key, auth_message.as_bytes()))
        ))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gs2Flag {
    /// `n`: the client cannot bind.
    NotSupported,
    /// `y`: the client could bind but thinks the server cannot.
    ClientThinksUnsupported,
    /// `p=tls-server-end-point`
    Bound,
}

struct ClientFirst<'a> {
    flag: Gs2Flag,
    gs2_header: &'a str,
    bare: &'a str,
    nonce: &'a str,
}

impl<'a> ClientFirst<'a> {
    fn parse(msg: &'a [u8]) -> Result<ClientFirst<'a>, ScramError> {
        let text =
            std::str::from_utf8(msg).map_err(|_| malformed("client-first-message is not UTF-8"))?;
        let (flag, rest) = text
            .split_once(',')
            .ok_or_else(|| malformed("client-first-message has no GS2 header"))?;
        let flag = match flag {
            "n" => Gs2Flag::NotSupported,
            "y" => Gs2Flag::ClientThinksUnsupported,
            p if p.starts_with("p=") => {
                if &p[2..] != CHANNEL_BINDING_TYPE {
                    return Err(ScramError::Unsupported(
                        "unsupported SCRAM channel-binding type; Gatehouse offers tls-server-end-point only",
                    ));
                }
                Gs2Flag::Bound
            }
            _ => {
                return Err(malformed(
                    "the GS2 header must start with n, y or p=tls-server-end-point",
                ));
            }
        };
        let (authzid, bare) = rest
            .split_once(',')
            .ok_or_else(|| malformed("the GS2 header is not terminated"))?;
        if authzid.starts_with("a=") {
            return Err(ScramError::Unsupported(
                "the client asks for an authorization identity (a=), which Gatehouse does not support; the key id is the user name",
            ));
        }
        if !authzid.is_empty() {
            return Err(malformed("unexpected attribute in the GS2 header"));
        }
        let gs2_header = &text[..text.len() - bare.len()];
        if bare.starts_with("m=") {
            return Err(ScramError::Unsupported(
                "the client requires an unsupported SCRAM extension (m=)",
            ));
        }
        let mut attrs = bare.split(',');
        // The user name is the startup packet's; libpq sends it empty here.
        attrs
            .next()
            .filter(|a| a.starts_with("n="))
            .ok_or_else(|| malformed("client-first-message has no user name (n=)"))?;
        let nonce = attrs
            .next()
            .and_then(|a| a.strip_prefix("r="))
            .ok_or_else(|| malformed("client-first-message has no nonce (r=)"))?;
        if nonce.is_empty() || !nonce.bytes().all(|b| b.is_ascii_graphic() && b != b',') {
            return Err(malformed("the client nonce is empty or not printable"));
        }
        if attrs.any(|a| !is_attribute(a)) {
            return Err(malformed("client-first-message has a malformed extension"));
        }
        Ok(ClientFirst {
            flag,
            gs2_header,
            bare,
            nonce,
        })
    }
}

/// `x=value`, the shape of an extension attribute.
fn is_attribute(a: &str) -> bool {
    let b = a.as_bytes();
    b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b'='
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    m.update(data);
    m.finalize().into_bytes().into()
}

/// `Hi()` of RFC 5802: PBKDF2-HMAC-SHA-256 with one output block.
fn salted_password(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut first = salt.to_vec();
    first.extend_from_slice(&1u32.to_be_bytes());
    let mut u = hmac(password, &first);
    let mut out = u;
    for _ in 1..iterations {
        u = hmac(password, &u);
        for (o, x) in out.iter_mut().zip(u) {
            *o ^= x;
        }
    }
    out
}

/// The `tls-server-end-point` channel-binding data (RFC 5929 §4.1) for a
/// certificate: its DER hashed with the hash of its signature algorithm,
/// SHA-256 in place of MD5 and SHA-1. `None` when the algorithm names no
/// single hash (Ed25519, RSA-PSS, ...): then there is nothing to bind to and
/// -PLUS is not offered, as PostgreSQL does.
pub fn tls_server_end_point(cert_der: &[u8]) -> Option<Vec<u8>> {
    let hash = signature_hash(cert_der)?;
    Some(match hash {
        SigHash::Sha224 => Sha224::digest(cert_der).to_vec(),
        SigHash::Sha256 => Sha256::digest(cert_der).to_vec(),
        SigHash::Sha384 => Sha384::digest(cert_der).to_vec(),
        SigHash::Sha512 => Sha512::digest(cert_der).to_vec(),
    })
}

#[derive(Debug, PartialEq, Eq)]
enum SigHash {
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

/// The hash in a certificate's outer `signatureAlgorithm`:
/// `Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm
/// SEQUENCE { OID, ... }, signatureValue }`.
fn signature_hash(der: &[u8]) -> Option<SigHash> {
    let (cert, _) = der_tlv(der, 0x30)?;
    let (_, rest) = der_tlv(cert, 0x30)?;
    let (alg, _) = der_tlv(rest, 0x30)?;
    let (oid, _) = der_tlv(alg, 0x06)?;
    const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01];
    const ECDSA_SHA1: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01];
    const ECDSA_SHA2: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03];
    if oid == ECDSA_SHA1 {
        return Some(SigHash::Sha256);
    }
    let (prefix, last) = oid.split_at(oid.len().checked_sub(1)?);
    match (prefix, last[0]) {
        // md5WithRSAEncryption, sha1WithRSAEncryption
        (RSA, 4 | 5) => Some(SigHash::Sha256),
        (RSA, 11) | (ECDSA_SHA2, 2) => Some(SigHash::Sha256),
        (RSA, 12) | (ECDSA_SHA2, 3) => Some(SigHash::Sha384),
        (RSA, 13) | (ECDSA_SHA2, 4) => Some(SigHash::Sha512),
        (RSA, 14) | (ECDSA_SHA2, 1) => Some(SigHash::Sha224),
        _ => None,
    }
}

/// One DER element with the expected tag: (its contents, what follows).
fn der_tlv(buf: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&t, rest) = buf.split_first()?;
    if t != tag {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |l, &b| (l << 8) | b as usize);
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| rest.split_at(len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};

    const KEY: &str =
        "ghk_0123456789abcdef_00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    /// The example exchange of RFC 7677 §3.
    #[test]
    fn rfc_7677_example() {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let v = Verifier::with_salt("pencil", &salt, 4096);
        let (ex, server_first) = ServerExchange::start_with_nonce(
            SCRAM_SHA_256,
            b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
            &v,
            None,
            "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
        )
        .unwrap();
        assert_eq!(
            server_first,
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        );
        let server_final = ex
            .finish(b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
            .unwrap();
        assert_eq!(
            server_final,
            "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
    }

    #[test]
    fn verifier_matches_postgres_protocol_and_round_trips() {
        // postgres-protocol's own verifier (random salt): ours with the same
        // salt must be the same string.
        let theirs = postgres_protocol::password::scram_sha_256(KEY.as_bytes());
        let parsed = Verifier::parse(&theirs).unwrap();
        let ours = Verifier::with_salt(KEY, &parsed.salt, parsed.iterations);
        assert_eq!(ours.to_string(), theirs);
        let fresh = Verifier::generate(KEY);
        assert_eq!(fresh.iterations, 4096);
        assert_eq!(fresh.salt.len(), 16);
        assert_eq!(Verifier::parse(&fresh.to_string()).unwrap(), fresh);
        assert_ne!(Verifier::generate(KEY).salt, fresh.salt);
        for junk in [
            "",
            "md5abc",
            "SCRAM-SHA-256$x:AAAA$AAAA:AAAA",
            "SCRAM-SHA-256$4096:AAAA$AAAA:AAAA",
            "SCRAM-SHA-256$0:AAAA$",
        ] {
            assert!(Verifier::parse(junk).is_err(), "{junk:?}");
        }
        assert!(!format!("{fresh:?}").contains(&B64.encode(fresh.stored_key)));
    }

    /// Runs postgres-protocol's client against our server.
    fn exchange(
        client_password: &str,
        mechanism: &str,
        client_binding: ChannelBinding,
        server_binding: Option<&[u8]>,
    ) -> Result<(), String> {
        let v = Verifier::generate(KEY);
        let mut client = ScramSha256::new(client_password.as_bytes(), client_binding);
        let (ex, server_first) =
            ServerExchange::start(mechanism, client.message(), &v, server_binding)
                .map_err(|e| e.to_string())?;
        client
            .update(server_first.as_bytes())
            .map_err(|e| format!("client: {e}"))?;
        let server_final = ex.finish(client.message()).map_err(|e| e.to_string())?;
        client
            .finish(server_final.as_bytes())
            .map_err(|e| format!("client: {e}"))
    }

    #[test]
    fn postgres_protocol_client_logs_in() {
        let endpoint = Sha256::digest(b"certificate").to_vec();
        // No TLS: the client cannot bind.
        exchange(KEY, SCRAM_SHA_256, ChannelBinding::unsupported(), None).unwrap();
        // The client could bind but the server offered no -PLUS.
        exchange(KEY, SCRAM_SHA_256, ChannelBinding::unrequested(), None).unwrap();
        // -PLUS over TLS.
        exchange(
            KEY,
            SCRAM_SHA_256_PLUS,
            ChannelBinding::tls_server_end_point(endpoint.clone()),
            Some(&endpoint),
        )
        .unwrap();
        // A client that cannot bind may still use plain SCRAM over TLS.
        exchange(
            KEY,
            SCRAM_SHA_256,
            ChannelBinding::unsupported(),
            Some(&endpoint),
        )
        .unwrap();
    }

    #[test]
    fn wrong_key_fails_on_the_proof() {
        let wrong = KEY.replace("0011", "0012");
        assert_eq!(
            exchange(&wrong, SCRAM_SHA_256, ChannelBinding::unsupported(), None),
            Err(ScramError::WrongProof.to_string())
        );
        assert_eq!(ScramError::WrongProof.sqlstate(), "28P01");
    }

    #[test]
    fn channel_binding_is_checked() {
        let ours = Sha256::digest(b"our certificate").to_vec();
        let theirs = Sha256::digest(b"a relay's certificate").to_vec();
        let e = exchange(
            KEY,
            SCRAM_SHA_256_PLUS,
            ChannelBinding::tls_server_end_point(theirs),
            Some(&ours),
        )
        .unwrap_err();
        assert!(e.contains("check failed"), "{e}");
        // `y` while -PLUS was offered: a downgrade.
        let e = exchange(
            KEY,
            SCRAM_SHA_256,
            ChannelBinding::unrequested(),
            Some(&ours),
        )
        .unwrap_err();
        assert!(e.contains("downgrade"), "{e}");
        // -PLUS was not offered (no TLS).
        let e = exchange(
            KEY,
            SCRAM_SHA_256_PLUS,
            ChannelBinding::tls_server_end_point(ours.clone()),
            None,
        )
        .unwrap_err();
        assert!(e.contains("did not offer"), "{e}");
        // A mechanism that does not match the GS2 header.
        let e = exchange(
            KEY,
            SCRAM_SHA_256,
            ChannelBinding::tls_server_end_point(ours.clone()),
            Some(&ours),
        )
        .unwrap_err();
        assert!(e.contains("asks for channel binding"), "{e}");
        let e = exchange(
            KEY,
            SCRAM_SHA_256_PLUS,
            ChannelBinding::unsupported(),
            Some(&ours),
        )
        .unwrap_err();
        assert!(e.contains("does not ask for channel binding"), "{e}");
    }

    #[test]
    fn client_first_errors_are_clear() {
        let v = Verifier::generate(KEY);
        let start = |m: &[u8]| ServerExchange::start(SCRAM_SHA_256, m, &v, None).map(|_| ());
        let err = |m: &[u8]| start(m).unwrap_err();
        assert!(start(b"n,,n=,r=abc").is_ok());
        assert!(start(b"n,,n=someone,r=abc,x=ext").is_ok());
        let authzid = err(b"n,a=admin,n=,r=abc");
        assert_eq!(authzid.sqlstate(), "0A000");
        assert!(authzid.to_string().contains("authorization identity"));
        let cb = ServerExchange::start(
            SCRAM_SHA_256_PLUS,
            b"p=tls-unique,,n=,r=abc",
            &v,
            Some(b"x"),
        )
        .map(|_| ())
        .unwrap_err();
        assert_eq!(cb.sqlstate(), "0A000");
        assert!(cb.to_string().contains("channel-binding type"), "{cb}");
        assert_eq!(err(b"n,,m=ext,n=,r=abc").sqlstate(), "0A000");
        for junk in [
            &b""[..],
            b"n",
            b"q,,n=,r=abc",
            b"n,,r=abc",
            b"n,,n=,r=",
            b"n,,n=,s=abc",
            b"n,,n=,r=a b",
            b"n,x,n=,r=abc",
            b"n,,n=,r=abc,bogus",
            b"\xff\xfe,,",
        ] {
            let e = err(junk);
            assert_eq!(e.sqlstate(), "08P01", "{junk:?}: {e}");
        }
        assert_eq!(
            ServerExchange::start("PLAIN", b"n,,n=,r=abc", &v, None)
                .map(|_| ())
                .unwrap_err(),
            ScramError::Mechanism("PLAIN".into())
        );
    }

    #[test]
    fn client_final_errors_are_clear() {
        let v = Verifier::generate(KEY);
        let fresh = || {
            ServerExchange::start_with_nonce(SCRAM_SHA_256, b"n,,n=,r=abc", &v, None, "def")
                .unwrap()
                .0
        };
        let proof = B64.encode([0u8; 32]);
        let cases: [(String, &str); 7] = [
            (
                format!("c=biws,r=abcdef,p={proof}"),
                "does not match the key",
            ),
            (format!("c=eSws,r=abcdef,p={proof}"), "check failed"),
            (format!("c=biws,r=abcxyz,p={proof}"), "nonce does not match"),
            ("c=biws,r=abcdef,p=AAAA".into(), "not 32 bytes"),
            ("c=biws,r=abcdef".into(), "no proof"),
            (format!("r=abcdef,c=biws,p={proof}"), "start with c="),
            (
                format!("c=biws,r=abcdef,junk,p={proof}"),
                "malformed attribute",
            ),
        ];
        for (msg, expect) in cases {
            let e = fresh().finish(msg.as_bytes()).unwrap_err();
            assert!(e.to_string().contains(expect), "{msg}: {e}");
        }
        // Extensions before the proof are allowed.
        let e = fresh()
            .finish(format!("c=biws,r=abcdef,x=1,p={proof}").as_bytes())
            .unwrap_err();
        assert_eq!(e, ScramError::WrongProof);
    }

    /// A minimal certificate: SEQUENCE { SEQUENCE {}, SEQUENCE { OID }, BIT STRING }.
    fn cert_with(oid: &[u8]) -> Vec<u8> {
        let mut alg = vec![0x06, oid.len() as u8];
        alg.extend_from_slice(oid);
        let mut body = vec![0x30, 0x00, 0x30, alg.len() as u8];
        body.extend_from_slice(&alg);
        body.extend_from_slice(&[0x03, 0x01, 0x00]);
        let mut der = vec![0x30, 0x81, body.len() as u8];
        der.extend_from_slice(&body);
        der
    }

    #[test]
    fn end_point_hash_follows_the_signature_algorithm() {
        let rsa = |n| cert_with(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, n]);
        let ecdsa = |n| cert_with(&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, n]);
        let len = |der: Vec<u8>| tls_server_end_point(&der).map(|h| h.len());
        assert_eq!(len(rsa(11)), Some(32));
        assert_eq!(len(rsa(5)), Some(32), "SHA-1 becomes SHA-256");
        assert_eq!(len(rsa(4)), Some(32), "MD5 becomes SHA-256");
        assert_eq!(len(rsa(12)), Some(48));
        assert_eq!(len(rsa(13)), Some(64));
        assert_eq!(len(rsa(14)), Some(28));
        assert_eq!(len(ecdsa(2)), Some(32));
        assert_eq!(len(ecdsa(3)), Some(48));
        assert_eq!(len(ecdsa(4)), Some(64));
        assert_eq!(
            len(cert_with(&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01])),
            Some(32)
        );
        let der = rsa(11);
        assert_eq!(
            tls_server_end_point(&der).unwrap(),
            Sha256::digest(&der).to_vec()
        );
        // RSA-PSS and Ed25519 name no single hash; garbage is not a certificate.
        assert_eq!(len(rsa(10)), None);
        assert_eq!(len(cert_with(&[0x2b, 0x65, 0x70])), None);
        assert_eq!(len(cert_with(&[])), None);
        assert_eq!(tls_server_end_point(b"not a certificate"), None);
        assert_eq!(tls_server_end_point(&der[..der.len() - 2]), None);
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(first in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..96),
                               last in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..128)) {
            let v = Verifier::with_salt(KEY, b"salt", 1);
            let _ = ServerExchange::start(SCRAM_SHA_256, &first, &v, None);
            if let Ok((ex, _)) = ServerExchange::start(SCRAM_SHA_256, b"n,,n=,r=abc", &v, None) {
                let _ = ex.finish(&last);
            }
            let _ = tls_server_end_point(&first);
            let _ = Verifier::parse(&String::from_utf8_lossy(&last));
        }
    }
}
