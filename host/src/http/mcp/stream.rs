//! Server-sent event streams from an MCP server, event by event: JSON-RPC
//! answers are matched to their requests and reviewed ([`super::review`]),
//! related notifications are masked, comments and other events pass. Two
//! shapes: the stream answering one POST (streamable HTTP), and a long-lived
//! GET stream of the legacy transport, whose answers belong to the POSTs of
//! its session.

use std::sync::Arc;

use super::jsonrpc::{Message, id_key};
use super::legacy::{LegacySession, LegacySessions, session_from_endpoint};
use super::review::{Pending, Refusal, Review, Reviewer};
use crate::http::adapter::mask_json_strings;
use crate::http::sse::{self, Decoder, Event, Item};
use crate::mask::CompiledMasks;

/// Reviews kept for the audit record of one stream; later ones are counted.
const MAX_REVIEWS: usize = 64;

/// Whose answers a stream carries.
pub enum Answers {
    /// The answer to one POSTed request (none for a POST of notifications).
    One(Option<Pending>),
    /// A legacy GET stream: its session is known once the server announces it.
    Legacy {
        sessions: Arc<LegacySessions>,
        /// The caller who opened the stream.
        owner: String,
        session: Option<Arc<LegacySession>>,
    },
}

pub struct EventStream {
    decoder: Decoder,
    answers: Answers,
    reviewer: Reviewer,
    /// Events Gatehouse injects into a legacy stream (refusals of POSTs).
    injected: Option<tokio::sync::mpsc::Receiver<Vec<u8>>>,
    pub reviews: Vec<Review>,
    pub more_reviews: u64,
    pub masked: u64,
    /// The one answer of a POST stream arrived.
    answered: bool,
    limit: usize,
    /// The stream's own masks (its exchange's, with the held credential);
    /// on a legacy stream they apply to every message, on top of each
    /// request's.
    stream_masks: Arc<CompiledMasks>,
}

impl EventStream {
    /// `limit` bounds one event (its data is one JSON-RPC message).
    pub fn new(
        answers: Answers,
        reviewer: Reviewer,
        limit: usize,
        stream_masks: Arc<CompiledMasks>,
    ) -> EventStream {
        EventStream {
            decoder: Decoder::new(limit),
            answers,
            reviewer,
            injected: None,
            reviews: vec![],
            more_reviews: 0,
            masked: 0,
            answered: false,
            limit,
            stream_masks,
        }
    }

    /// The receiver of injected events, once the legacy session is known.
    pub fn take_injected(&mut self) -> Option<tokio::sync::mpsc::Receiver<Vec<u8>>> {
        self.injected.take()
    }

    pub async fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        let mut items = Vec::new();
        self.decoder
            .push(chunk, &mut items)
            .map_err(|e| e.to_string())?;
        for item in items {
            self.item(item, out).await?;
        }
        Ok(())
    }

    /// The stream ended: a cut inside an event, or a POST stream that ended
    /// without its answer, is an error.
    pub fn finish(&mut self) -> Result<(), String> {
        self.decoder.finish().map_err(|e| e.to_string())?;
        match &self.answers {
            Answers::One(Some(_)) if !self.answered => {
                Err("the server's event stream ended before its answer".into())
            }
            _ => Ok(()),
        }
    }

    /// What the client gets when the stream fails: an error answer for each
    /// request still waiting on it.
    pub fn failure(&mut self, reason: &str) -> Vec<u8> {
        let waiting: Vec<Pending> = match &mut self.answers {
            Answers::One(p) if !self.answered => p.take().into_iter().collect(),
            Answers::One(_) => vec![],
            Answers::Legacy { session, .. } => {
                session.as_ref().map(|s| s.drain()).unwrap_or_default()
            }
        };
        let mut out = Vec::new();
        for p in waiting {
            let message = Refusal::bad_upstream(reason.to_string()).into_message(&p);
            write_message(&message, &mut out);
        }
        self.answered = true;
        out
    }

    async fn item(&mut self, item: Item, out: &mut Vec<u8>) -> Result<(), String> {
        let event = match item {
            Item::Event(e) => e,
            Item::Oversized(head) => {
                self.oversized(&head, out).await;
                return Ok(());
            }
            comment => {
                sse::encode(&comment, out);
                return Ok(());
            }
        };
        match event.kind() {
            // A block without data carries no message: a server's priming
            // event (an id for resuming) goes on as it is.
            "message" if event.data.trim().is_empty() => {
                sse::encode(&Item::Event(event), out);
                Ok(())
            }
            "message" => self.message(event, out).await,
            "endpoint" => {
                self.endpoint(&event);
                sse::encode(&Item::Event(event), out);
                Ok(())
            }
            _ => {
                sse::encode(&Item::Event(event), out);
                Ok(())
            }
        }
    }

    /// A legacy stream announces its session: register it for the POSTs.
    fn endpoint(&mut self, event: &Event) {
        if let Answers::Legacy {
            sessions,
            owner,
            session,
        } = &mut self.answers
            && session.is_none()
            && let Some(id) = session_from_endpoint(&event.data)
        {
            let (s, rx) = sessions.open(&id, owner);
            *session = Some(s);
            self.injected = Some(rx);
        }
    }

    /// An answer too big to check is refused: the request it answers gets
    /// an error instead (named by the id at the start of the event).
    async fn oversized(&mut self, head: &str, out: &mut Vec<u8>) {
        let pending = match &mut self.answers {
            Answers::One(p) if !self.answered => p.take(),
            Answers::One(_) => None,
            Answers::Legacy { session, .. } => sniff_id(head)
                .zip(session.as_ref())
                .and_then(|(id, s)| s.answered(&id_key(&id))),
        };
        let Some(pending) = pending else {
            tracing::warn!(
                limit = self.limit,
                "dropped an oversized event from the MCP server"
            );
            return;
        };
        self.answered = true;
        let reason = format!(
            "the server's answer is over the {}-byte limit (json_mask_limit_bytes) and cannot be checked; it was not passed on",
            self.limit
        );
        write_message(&Refusal::bad_upstream(reason).into_message(&pending), out);
    }

    async fn message(&mut self, event: Event, out: &mut Vec<u8>) -> Result<(), String> {
        let message = Message::parse(event.data.as_bytes())
            .map_err(|e| format!("the server sent an event that is not a JSON-RPC message: {e}"))?;
        let key = message.id().map(id_key);
        // An answer to a request Gatehouse sent itself into a legacy
        // session (a tools/list of its own) is its own, not the client's.
        let message = match (&message, &self.answers, key.as_deref()) {
            (
                Message::Response { .. } | Message::Error { .. },
                Answers::Legacy {
                    session: Some(s), ..
                },
                Some(k),
            ) => match s.own_answer(k, message) {
                Some(m) => m,
                None => return Ok(()),
            },
            _ => message,
        };
        let answer_to = match (&message, &mut self.answers) {
            (Message::Response { .. } | Message::Error { .. }, Answers::One(p)) => {
                if p.as_ref().map(|p| id_key(&p.id)) == key {
                    self.answered = true;
                    p.take()
                } else {
                    None
                }
            }
            (Message::Response { .. } | Message::Error { .. }, Answers::Legacy { session, .. }) => {
                session
                    .as_ref()
                    .zip(key.as_deref())
                    .and_then(|(s, k)| s.answered(k))
            }
            _ => None,
        };
        let message = match answer_to {
            Some(pending) => {
                let (message, review) = self.reviewer.answer(message, &pending).await;
                self.masked += review.masked;
                if self.reviews.len() < MAX_REVIEWS {
                    self.reviews.push(review);
                } else {
                    self.more_reviews += 1;
                }
                message
            }
            None => match &self.answers {
                Answers::One(Some(p)) => self.reviewer.related(message, &p.masks),
                _ => message,
            },
        };
        let mut value = message.to_value();
        if let Answers::Legacy { .. } = self.answers {
            self.masked += mask_json_strings(&mut value, &self.stream_masks);
        }
        let mut event = event;
        event.data = value.to_string();
        sse::encode(&Item::Event(event), out);
        Ok(())
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        if let Answers::Legacy {
            sessions,
            session: Some(s),
            ..
        } = &self.answers
        {
            sessions.close(&s.id);
        }
    }
}

/// One JSON-RPC message as an SSE `message` event.
pub fn write_message(message: &Message, out: &mut Vec<u8>) {
    sse::encode(
        &Item::Event(Event::message(message.to_value().to_string())),
        out,
    );
}

/// The id of a JSON-RPC message from its first bytes (`{"jsonrpc":"2.0","id":7,...`).
fn sniff_id(head: &str) -> Option<serde_json::Value> {
    let at = head.find("\"id\"")? + 4;
    let rest = head[at..].trim_start().strip_prefix(':')?.trim_start();
    let id = serde_json::Deserializer::from_str(rest)
        .into_iter::<serde_json::Value>()
        .next()?
        .ok()?;
    (id.is_number() || id.is_string()).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_are_found_at_the_start_of_a_cut_message() {
        assert_eq!(
            sniff_id(r#"{"jsonrpc":"2.0","id":7,"result":{"con"#),
            Some(json!(7))
        );
        assert_eq!(sniff_id(r#"{"id" : "a-1", "res"#), Some(json!("a-1")));
        assert_eq!(sniff_id(r#"{"jsonrpc":"2.0","result":"#), None);
        assert_eq!(sniff_id(r#"{"id":{"#), None);
    }
}
