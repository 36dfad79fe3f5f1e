//! The legacy HTTP+SSE transport's sessions. The client opens `GET /sse`;
//! the server's first event (`endpoint`) names where to POST messages
//! (`/messages/?session_id=...`); answers come back on the GET stream. So a
//! POST is decided when it arrives, and its answer is matched by id on the
//! stream. A session is bound to the caller who opened the stream: a POST
//! into it from anyone else is refused. A refusal is sent to the client on
//! the stream (through the session's side channel), like any answer.
//! Gatehouse's own requests into a session (a `tools/list` it asks for
//! itself) have their answers taken off the stream and handed to it; the
//! client never sees them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{mpsc, oneshot};

use super::jsonrpc::Message;
use super::review::Pending;

/// Answers still expected per session are bounded: a client that sends
/// requests faster than the server answers is refused past this.
pub const MAX_PENDING: usize = 1024;

#[derive(Default)]
pub struct LegacySessions {
    sessions: Mutex<HashMap<String, Arc<LegacySession>>>,
}

pub struct LegacySession {
    pub id: String,
    /// The caller who opened the stream (`Principal::key`).
    pub owner: String,
    pending: Mutex<HashMap<String, Pending>>,
    /// Answers to Gatehouse's own requests, by id key.
    own: Mutex<HashMap<String, oneshot::Sender<Message>>>,
    /// Events Gatehouse writes into the stream itself (refusals).
    inject: mpsc::Sender<Vec<u8>>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SessionError {
    #[error("no open MCP session {0} on this connection (open the event stream first)")]
    Unknown(String),
    #[error("MCP session {0} belongs to another caller")]
    NotOwner(String),
    #[error("MCP session {0} has {MAX_PENDING} requests waiting for answers already")]
    Busy(String),
    #[error("the event stream of MCP session {0} is gone")]
    Closed(String),
}

impl LegacySessions {
    /// Registers the session a stream announced; returns it and the receiver
    /// of the events Gatehouse injects.
    pub fn open(&self, id: &str, owner: &str) -> (Arc<LegacySession>, mpsc::Receiver<Vec<u8>>) {
        let (tx, rx) = mpsc::channel(64);
        let session = Arc::new(LegacySession {
            id: id.to_string(),
            owner: owner.to_string(),
            pending: Mutex::new(HashMap::new()),
            own: Mutex::new(HashMap::new()),
            inject: tx,
        });
        self.lock().insert(id.to_string(), session.clone());
        (session, rx)
    }

    pub fn close(&self, id: &str) {
        self.lock().remove(id);
    }

    /// The session `id`, if `caller` owns it.
    pub fn get(&self, id: &str, caller: &str) -> Result<Arc<LegacySession>, SessionError> {
        let session = self
            .lock()
            .get(id)
            .cloned()
            .ok_or_else(|| SessionError::Unknown(id.to_string()))?;
        if session.owner != caller {
            return Err(SessionError::NotOwner(id.to_string()));
        }
        Ok(session)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<LegacySession>>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl LegacySession {
    /// Expects an answer for `pending` on the stream.
    pub fn expect(&self, key: String, pending: Pending) -> Result<(), SessionError> {
        let mut map = self.lock();
        if map.len() >= MAX_PENDING {
            return Err(SessionError::Busy(self.id.clone()));
        }
        map.insert(key, pending);
        Ok(())
    }

    /// The request an answer with this id key belongs to.
    pub fn answered(&self, key: &str) -> Option<Pending> {
        self.lock().remove(key)
    }

    /// Expects the answer to a request Gatehouse sends itself; it is taken
    /// off the stream (see [`LegacySession::own_answer`]).
    pub fn expect_own(&self, key: String) -> Result<oneshot::Receiver<Message>, SessionError> {
        let mut own = self.own.lock().unwrap_or_else(PoisonError::into_inner);
        if own.len() >= MAX_PENDING {
            return Err(SessionError::Busy(self.id.clone()));
        }
        let (tx, rx) = oneshot::channel();
        own.insert(key, tx);
        Ok(rx)
    }

    /// No longer waits for the answer to Gatehouse's own request `key`.
    pub fn forget_own(&self, key: &str) {
        self.own
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }

    /// Hands `message` to Gatehouse's request it answers; gives it back when
    /// it answers no such request.
    pub fn own_answer(&self, key: &str, message: Message) -> Option<Message> {
        let waiter = self
            .own
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
        match waiter {
            Some(tx) => {
                // The waiter may have given up (timed out): dropped then.
                let _ = tx.send(message);
                None
            }
            None => Some(message),
        }
    }

    /// Writes an already encoded event into the stream.
    pub fn inject(&self, event: Vec<u8>) -> Result<(), SessionError> {
        self.inject
            .try_send(event)
            .map_err(|_| SessionError::Closed(self.id.clone()))
    }

    /// Every request still waiting, when the stream ends.
    pub fn drain(&self) -> Vec<Pending> {
        self.lock().drain().map(|(_, p)| p).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The session id in a legacy endpoint URL (`/messages/?session_id=ID`).
pub fn session_from_query(query: Option<&str>) -> Option<String> {
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "session_id")
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty())
}

/// The session id an `endpoint` event announces.
pub fn session_from_endpoint(data: &str) -> Option<String> {
    let uri: http::Uri = data.trim().parse().ok()?;
    session_from_query(uri.query())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_found_in_endpoints_and_queries() {
        assert_eq!(
            session_from_endpoint("/messages/?session_id=abc123").as_deref(),
            Some("abc123")
        );
        assert_eq!(
            session_from_query(Some("x=1&session_id=z")).as_deref(),
            Some("z")
        );
        assert_eq!(session_from_query(Some("session_id=")), None);
        assert_eq!(session_from_endpoint("not a uri at all \u{0}"), None);
    }

    #[test]
    fn gatehouse_own_answers_are_taken_off_the_stream() {
        let s = LegacySessions::default();
        let (session, _rx) = s.open("abc", "alice");
        let mut waiting = session.expect_own("\"g-1\"".into()).unwrap();
        let answer = Message::from_value(
            serde_json::json!({"jsonrpc": "2.0", "id": "g-1", "result": {"tools": []}}),
        )
        .unwrap();
        assert_eq!(session.own_answer("\"g-1\"", answer.clone()), None);
        assert_eq!(waiting.try_recv().ok(), Some(answer.clone()));
        // Anything else goes on to the client.
        assert_eq!(
            session.own_answer("7", answer.clone()),
            Some(answer.clone())
        );
        let _gone = session.expect_own("\"g-2\"".into()).unwrap();
        session.forget_own("\"g-2\"");
        assert!(session.own_answer("\"g-2\"", answer).is_some());
    }

    #[test]
    fn a_session_belongs_to_whoever_opened_it() {
        let s = LegacySessions::default();
        let (_session, _rx) = s.open("abc", "alice");
        assert!(s.get("abc", "alice").is_ok());
        assert_eq!(
            s.get("abc", "mallory").err(),
            Some(SessionError::NotOwner("abc".into()))
        );
        s.close("abc");
        assert_eq!(
            s.get("abc", "alice").err(),
            Some(SessionError::Unknown("abc".into()))
        );
    }
}
