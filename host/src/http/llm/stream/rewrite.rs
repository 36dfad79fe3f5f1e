//! The rewriting half of [`super::LlmStream`], with no policy in it: each
//! upstream event of a streamed answer in, the events that may go out. One
//! *channel* per text of the answer (a choice's content, a tool call's
//! arguments, an Anthropic content block, a responses output part), each
//! with its own [`StreamMasker`] fed the concatenated deltas; each delta
//! event re-emitted with what its masker let go, the window held flushed in
//! an added delta when the channel closes; every other string masked in
//! place; the final event held back for the caller.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};

use super::super::request::{Operation, ToolCall};
use super::super::response::{Completion, usage};
use crate::http::adapter::mask_json_strings;
use crate::http::sse::{Decoder, Event as SseEvent, Item, encode_event};
use crate::mask::{CompiledMasks, StreamMasker};

/// Largest single event accepted from the upstream.
pub const MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;

/// A text stream within the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    /// OpenAI chat: a choice's content.
    Content { choice: u64 },
    /// OpenAI chat: a tool call's arguments.
    ToolArgs { choice: u64, call: u64 },
    /// Anthropic: a content block (text or tool input JSON).
    Block { index: u64 },
    /// Responses: an output text part.
    OutputText { output: u64, content: u64 },
    /// Responses: a function call's arguments.
    CallArgs { output: u64 },
}

impl Key {
    fn output(self) -> Option<u64> {
        match self {
            Key::OutputText { output, .. } | Key::CallArgs { output } => Some(output),
            _ => None,
        }
    }
    fn choice(self) -> Option<u64> {
        match self {
            Key::Content { choice } | Key::ToolArgs { choice, .. } => Some(choice),
            _ => None,
        }
    }
}

struct Channel {
    masker: Option<StreamMasker>,
    /// Masked bytes not yet a whole UTF-8 character.
    pending: Vec<u8>,
    /// The last delta event, the template of a flush event.
    template: Value,
    /// Where the text sits in an event (a JSON pointer).
    field: &'static str,
    /// The SSE `event:` name of its deltas.
    event_name: Option<String>,
    /// The masked text so far.
    text: String,
    /// For tool calls: id and name.
    tool: Option<(String, String)>,
    open: bool,
}

impl Channel {
    /// Feeds `text`; returns what may go out. A channel flushed earlier
    /// opens again (its masker starts afresh).
    fn push(&mut self, text: &str) -> String {
        self.open = true;
        let mut out = Vec::new();
        match self.masker.as_mut() {
            Some(m) => m.push(text.as_bytes(), &mut out),
            None => out.extend_from_slice(text.as_bytes()),
        }
        self.release(out, false)
    }

    fn flush(&mut self) -> String {
        let mut out = Vec::new();
        if let Some(m) = self.masker.as_mut() {
            m.finish(&mut out);
        }
        self.open = false;
        self.release(out, true)
    }

    fn release(&mut self, out: Vec<u8>, last: bool) -> String {
        self.pending.extend_from_slice(&out);
        let whole = if last {
            self.pending.len()
        } else {
            match std::str::from_utf8(&self.pending) {
                Ok(_) => self.pending.len(),
                Err(e) => e.valid_up_to(),
            }
        };
        let rest = self.pending.split_off(whole);
        let ready =
            String::from_utf8_lossy(&std::mem::replace(&mut self.pending, rest)).into_owned();
        self.text.push_str(&ready);
        ready
    }

    fn masked(&self) -> u64 {
        self.masker.as_ref().map_or(0, |m| m.masked)
    }
}

/// The event-by-event rewriting of one streamed answer: what goes out for
/// each upstream chunk, and what was generated.
pub struct Rewriter {
    op: Operation,
    decoder: Decoder,
    masks: Arc<CompiledMasks>,
    channels: BTreeMap<Key, Channel>,
    /// OpenAI chat: the fields every chunk repeats.
    envelope: Option<Value>,
    model: String,
    usage: Option<super::super::response::Usage>,
    /// The final events, held until the response hook allowed.
    terminal: Vec<SseEvent>,
    events: u64,
    /// Strings masked outside of channels.
    masked_fields: u64,
    first_token_ms: Option<u64>,
    /// Responses: the last `sequence_number` sent, and how far upstream
    /// numbers move up for the events Gatehouse added.
    last_seq: Option<u64>,
    seq_shift: u64,
    /// When the request arrived, for the time to the first token.
    started: Instant,
}

impl Rewriter {
    /// Rewrites a stream of `op` with `masks` (each channel's text through
    /// its own streaming masker, every other string in place).
    pub fn new(op: Operation, masks: Arc<CompiledMasks>, started: Instant) -> Self {
        Self {
            op,
            decoder: Decoder::new(MAX_EVENT_BYTES),
            masks,
            channels: BTreeMap::new(),
            envelope: None,
            model: String::new(),
            usage: None,
            terminal: Vec::new(),
            events: 0,
            masked_fields: 0,
            first_token_ms: None,
            last_seq: None,
            seq_shift: 0,
            started,
        }
    }

    /// One upstream event in, zero or more events out.
    fn event(&mut self, ev: SseEvent, out: &mut Vec<u8>) -> Result<(), String> {
        self.events += 1;
        if !self.terminal.is_empty() {
            return Err("the upstream sent events after its stream's final event".into());
        }
        if self.op == Operation::Chat && ev.data.trim() == "[DONE]" {
            self.flush_where(|_| true, out);
            self.terminal.push(ev);
            return Ok(());
        }
        let mut doc: Value = serde_json::from_str(&ev.data).map_err(|e| {
            format!(
                "the upstream sent an event whose data is not JSON ({e}); the stream was stopped"
            )
        })?;
        if !doc.is_object() {
            return Err("the upstream sent an event whose data is not a JSON object".into());
        }
        match self.op {
            Operation::Chat => self.chat_event(&mut doc, &ev, out),
            Operation::Messages => self.anthropic_event(&mut doc, &ev, out),
            Operation::Responses => self.responses_event(&mut doc, &ev, out),
            // Embeddings do not stream; mask whatever arrives.
            Operation::Embeddings => {
                self.masked_fields += mask_json_strings(&mut doc, &self.masks);
                emit(&ev, &doc, out);
            }
        }
        Ok(())
    }

    fn chat_event(&mut self, doc: &mut Value, ev: &SseEvent, out: &mut Vec<u8>) {
        if self.envelope.is_none() {
            let mut env = serde_json::Map::new();
            for k in ["id", "object", "created", "model", "system_fingerprint"] {
                if let Some(v) = doc.get(k) {
                    env.insert(k.into(), v.clone());
                }
            }
            self.envelope = Some(Value::Object(env));
        }
        if let Some(m) = doc.get("model").and_then(Value::as_str) {
            self.model = m.to_string();
        }
        if let Some(u) = doc.get("usage").and_then(usage) {
            self.usage = Some(u);
        }
        let mut taken: Vec<(Key, String, String)> = Vec::new();
        let mut finished = Vec::new();
        for choice in doc
            .get_mut("choices")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            let i = choice.get("index").and_then(Value::as_u64).unwrap_or(0);
            if choice.get("finish_reason").is_some_and(|f| !f.is_null()) {
                finished.push(i);
            }
            let Some(delta) = choice.get_mut("delta") else {
                continue;
            };
            if let Some(Value::String(t)) = delta.get_mut("content") {
                taken.push((Key::Content { choice: i }, std::mem::take(t), String::new()));
            }
            for call in delta
                .get_mut("tool_calls")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                let k = call.get("index").and_then(Value::as_u64).unwrap_or(0);
                let id = call
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let name = call
                    .pointer("/function/name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                if let Some(Value::String(t)) = call.pointer_mut("/function/arguments") {
                    taken.push((
                        Key::ToolArgs { choice: i, call: k },
                        std::mem::take(t),
                        format!("{id}\u{0}{name}"),
                    ));
                } else if !id.is_empty() || !name.is_empty() {
                    taken.push((
                        Key::ToolArgs { choice: i, call: k },
                        String::new(),
                        format!("{id}\u{0}{name}"),
                    ));
                }
            }
        }
        // A choice that moves on to another text (its content to a tool
        // call, one tool call to the next) is done with the one before:
        // OpenAI streams them one after the other, and clients close each
        // when the next begins (the SDK's `tool_calls.function.arguments.done`
        // fires then), so what the maskers held of it goes out first.
        let current: Vec<Key> = taken.iter().map(|(k, _, _)| *k).collect();
        self.flush_where(
            |k| {
                !current.contains(&k)
                    && current
                        .iter()
                        .any(|c| c.choice().is_some() && c.choice() == k.choice())
            },
            out,
        );
        // The rest of the event (roles, refusals, ids) is masked in place.
        self.masked_fields += mask_json_strings(doc, &self.masks);
        let mut released = Vec::new();
        for (key, text, tool) in taken {
            let field = match key {
                Key::Content { .. } => "/content",
                _ => "/function/arguments",
            };
            let ch = self.channel(key, field, ev, Value::Null);
            if !tool.is_empty()
                && let Some((id, name)) = tool.split_once('\u{0}')
            {
                let t = ch.tool.get_or_insert_with(Default::default);
                if !id.is_empty() {
                    t.0 = id.into();
                }
                if !name.is_empty() {
                    t.1 = name.into();
                }
            }
            released.push((key, ch.push(&text)));
        }
        for (key, text) in released {
            self.first_token(&text);
            let (choice, call) = match key {
                Key::Content { choice } => (choice, None),
                Key::ToolArgs { choice, call } => (choice, Some(call)),
                _ => continue,
            };
            let Some(c) = doc
                .get_mut("choices")
                .and_then(Value::as_array_mut)
                .and_then(|cs| {
                    cs.iter_mut()
                        .find(|c| c.get("index").and_then(Value::as_u64).unwrap_or(0) == choice)
                })
            else {
                continue;
            };
            match call {
                None => {
                    if let Some(d) = c.pointer_mut("/delta/content") {
                        *d = Value::String(text);
                    }
                }
                Some(k) => {
                    for tc in c
                        .pointer_mut("/delta/tool_calls")
                        .and_then(Value::as_array_mut)
                        .into_iter()
                        .flatten()
                    {
                        if tc.get("index").and_then(Value::as_u64).unwrap_or(0) == k
                            && let Some(a) = tc.pointer_mut("/function/arguments")
                        {
                            *a = Value::String(text.clone());
                        }
                    }
                }
            }
        }
        for i in finished {
            self.flush_where(|k| k.choice() == Some(i), out);
        }
        emit(ev, doc, out);
    }

    fn anthropic_event(&mut self, doc: &mut Value, ev: &SseEvent, out: &mut Vec<u8>) {
        let kind = doc
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        match kind.as_str() {
            "message_start" => {
                if let Some(m) = doc.pointer("/message/model").and_then(Value::as_str) {
                    self.model = m.to_string();
                }
                if let Some(u) = doc.pointer("/message/usage").and_then(usage) {
                    self.usage = Some(u);
                }
            }
            "message_delta" => {
                if let Some(u) = doc.get("usage").and_then(usage) {
                    let prev = self.usage.clone().unwrap_or_default();
                    self.usage = Some(super::super::response::Usage {
                        input_tokens: if u.input_tokens > 0 {
                            u.input_tokens
                        } else {
                            prev.input_tokens
                        },
                        output_tokens: u.output_tokens,
                    });
                }
            }
            "content_block_start" => {
                let index = doc.get("index").and_then(Value::as_u64).unwrap_or(0);
                if doc.pointer("/content_block/type").and_then(Value::as_str) == Some("tool_use") {
                    let id = text_at(doc, "/content_block/id");
                    let name = text_at(doc, "/content_block/name");
                    let ch =
                        self.channel(Key::Block { index }, "/delta/partial_json", ev, Value::Null);
                    ch.tool = Some((id, name));
                }
            }
            "content_block_delta" => {
                let index = doc.get("index").and_then(Value::as_u64).unwrap_or(0);
                let field = match doc.pointer("/delta/type").and_then(Value::as_str) {
                    Some("text_delta") => Some("/delta/text"),
                    Some("input_json_delta") => Some("/delta/partial_json"),
                    _ => None,
                };
                if let Some(field) = field
                    && let Some(Value::String(t)) = doc.pointer_mut(field)
                {
                    let text = std::mem::take(t);
                    self.masked_fields += mask_json_strings(doc, &self.masks);
                    let template = doc.clone();
                    let ch = self.channel(Key::Block { index }, field, ev, template);
                    let released = ch.push(&text);
                    self.first_token(&released);
                    if let Some(slot) = doc.pointer_mut(field) {
                        *slot = Value::String(released);
                    }
                    emit(ev, doc, out);
                    return;
                }
            }
            "content_block_stop" => {
                let index = doc.get("index").and_then(Value::as_u64).unwrap_or(0);
                self.flush_where(|k| k == Key::Block { index }, out);
            }
            "message_stop" => {
                self.flush_where(|_| true, out);
                self.masked_fields += mask_json_strings(doc, &self.masks);
                self.terminal.push(reframed(ev, doc));
                return;
            }
            _ => {}
        }
        self.masked_fields += mask_json_strings(doc, &self.masks);
        emit(ev, doc, out);
    }

    fn responses_event(&mut self, doc: &mut Value, ev: &SseEvent, out: &mut Vec<u8>) {
        let kind = doc
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let n = |d: &Value, k: &str| d.get(k).and_then(Value::as_u64).unwrap_or(0);
        let (output, content) = (n(doc, "output_index"), n(doc, "content_index"));
        let key = match kind.as_str() {
            "response.output_text.delta" => Some(Key::OutputText { output, content }),
            "response.function_call_arguments.delta" => Some(Key::CallArgs { output }),
            _ => None,
        };
        if let Some(key) = key
            && let Some(Value::String(t)) = doc.get_mut("delta")
        {
            let text = std::mem::take(t);
            self.masked_fields += mask_json_strings(doc, &self.masks);
            let template = doc.clone();
            let ch = self.channel(key, "/delta", ev, template);
            let released = ch.push(&text);
            self.first_token(&released);
            doc["delta"] = Value::String(released);
            self.renumber(doc);
            emit(ev, doc, out);
            return;
        }
        match kind.as_str() {
            "response.output_item.added"
                if doc.pointer("/item/type").and_then(Value::as_str) == Some("function_call") =>
            {
                let id = text_at(doc, "/item/call_id");
                let name = text_at(doc, "/item/name");
                let ch = self.channel(Key::CallArgs { output }, "/delta", ev, Value::Null);
                ch.tool = Some((id, name));
            }
            "response.output_text.done" => {
                self.flush_where(|k| k == Key::OutputText { output, content }, out)
            }
            "response.function_call_arguments.done" => {
                self.flush_where(|k| k == Key::CallArgs { output }, out)
            }
            "response.output_item.done" => self.flush_where(|k| k.output() == Some(output), out),
            "response.completed" | "response.incomplete" | "response.failed" => {
                self.flush_where(|_| true, out);
                if let Some(r) = doc.get("response") {
                    if let Some(m) = r.get("model").and_then(Value::as_str) {
                        self.model = m.to_string();
                    }
                    if let Some(u) = r.get("usage").and_then(usage) {
                        self.usage = Some(u);
                    }
                }
                self.masked_fields += mask_json_strings(doc, &self.masks);
                self.renumber(doc);
                self.terminal.push(reframed(ev, doc));
                return;
            }
            _ => {}
        }
        // Whole texts (`.done` events, snapshots) are masked in one go,
        // which gives what the deltas gave.
        self.masked_fields += mask_json_strings(doc, &self.masks);
        self.renumber(doc);
        emit(ev, doc, out);
    }

    /// Responses events are numbered (`sequence_number`) and clients may
    /// resume or de-duplicate by it, so the events Gatehouse adds (flushes)
    /// take the next number and later upstream events move up by as many:
    /// the numbers stay unique and increasing.
    fn renumber(&mut self, doc: &mut Value) {
        let Some(n) = doc.get("sequence_number").and_then(Value::as_u64) else {
            return;
        };
        if let Some(last) = self.last_seq
            && n + self.seq_shift <= last
        {
            self.seq_shift = last + 1 - n;
        }
        let out = n + self.seq_shift;
        doc["sequence_number"] = json!(out);
        self.last_seq = Some(out);
    }

    /// The number of an event Gatehouse adds to a responses stream.
    pub fn next_added_seq(&mut self) -> u64 {
        let n = self.last_seq.map_or(0, |l| l + 1);
        self.last_seq = Some(n);
        n
    }

    fn channel(
        &mut self,
        key: Key,
        field: &'static str,
        ev: &SseEvent,
        template: Value,
    ) -> &mut Channel {
        let masks = &self.masks;
        let ch = self.channels.entry(key).or_insert_with(|| Channel {
            masker: masks
                .text
                .clone()
                .map(|t| StreamMasker::new(t, masks.hash_key.clone())),
            pending: Vec::new(),
            template: Value::Null,
            field,
            event_name: ev.event.clone(),
            text: String::new(),
            tool: None,
            open: true,
        });
        if !template.is_null() {
            ch.template = template;
            ch.field = field;
            ch.event_name = ev.event.clone();
        }
        ch
    }

    /// Ends every channel, emitting what the maskers held (a stream cut
    /// short: what they held is masked text, and goes out before the error).
    pub fn flush_all(&mut self, out: &mut Vec<u8>) {
        self.flush_where(|_| true, out);
    }

    /// Ends the channels `which` selects, emitting what their maskers held.
    fn flush_where(&mut self, which: impl Fn(Key) -> bool, out: &mut Vec<u8>) {
        let keys: Vec<Key> = self
            .channels
            .iter()
            .filter(|(k, c)| c.open && which(**k))
            .map(|(k, _)| *k)
            .collect();
        for key in keys {
            let Some(ch) = self.channels.get_mut(&key) else {
                continue;
            };
            let text = ch.flush();
            if text.is_empty() {
                continue;
            }
            let doc = match key {
                Key::Content { choice } => self.chat_chunk(choice, json!({"content": text})),
                Key::ToolArgs { choice, call } => self.chat_chunk(
                    choice,
                    json!({"tool_calls": [{"index": call, "function": {"arguments": text}}]}),
                ),
                _ => {
                    let mut doc = ch.template.clone();
                    if doc.is_null() {
                        continue;
                    }
                    if let Some(slot) = doc.pointer_mut(ch.field) {
                        *slot = Value::String(text);
                    }
                    // The template's log probabilities were its own delta's.
                    if let Some(l) = doc.get_mut("logprobs") {
                        *l = json!([]);
                    }
                    if doc.get("sequence_number").is_some() {
                        doc["sequence_number"] = json!(self.next_added_seq());
                    }
                    doc
                }
            };
            let name = self.channels.get(&key).and_then(|c| c.event_name.clone());
            encode_event(&SseEvent::named(name, doc.to_string()), out);
        }
    }

    fn chat_chunk(&self, choice: u64, delta: Value) -> Value {
        let mut doc = self.envelope.clone().unwrap_or_else(|| json!({}));
        doc["choices"] = json!([{"index": choice, "delta": delta, "finish_reason": null}]);
        doc
    }

    fn first_token(&mut self, text: &str) {
        if self.first_token_ms.is_none() && !text.is_empty() {
            self.first_token_ms = Some(self.started.elapsed().as_millis() as u64);
        }
    }

    /// What was generated so far (masked); `model` when the stream named
    /// none.
    pub fn completion(&self, model: &str) -> Completion {
        let mut texts = Vec::new();
        let mut calls = Vec::new();
        for ch in self.channels.values() {
            match &ch.tool {
                Some((id, name)) => calls.push(ToolCall {
                    id: id.clone(),
                    name: name.clone(),
                    arguments: ch.text.clone(),
                }),
                None => texts.push(ch.text.clone()),
            }
        }
        Completion {
            model: if self.model.is_empty() {
                model.to_string()
            } else {
                self.model.clone()
            },
            text: texts.join("\n"),
            tool_calls: calls,
            usage: self.usage.clone(),
        }
    }
}

/// The string at `pointer`, or empty.
fn text_at(doc: &Value, pointer: &str) -> String {
    doc.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

fn reframed(ev: &SseEvent, doc: &Value) -> SseEvent {
    SseEvent {
        data: doc.to_string(),
        has_data: true,
        ..ev.clone()
    }
}

impl Rewriter {
    /// Feeds upstream bytes; appends what may go out to `out`. An error
    /// stops the stream (the caller sends the provider's error event).
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        let mut items = Vec::new();
        self.decoder
            .push(chunk, &mut items)
            .map_err(|e| format!("the upstream's event stream is broken: {e}"))?;
        for item in items {
            match item {
                // Keep-alives and blocks without data (an `id:` alone) carry
                // no text: they pass, unless the final event is held.
                Item::Comment(_) if self.terminal.is_empty() => {
                    crate::http::sse::encode(&item, out)
                }
                Item::Event(ev) if ev.data.trim().is_empty() => {
                    if self.terminal.is_empty() {
                        encode_event(&ev, out);
                    }
                }
                Item::Comment(_) => {}
                Item::Event(ev) => self.event(ev, out)?,
                Item::Oversized(head) => {
                    let head: String = head.chars().take(64).collect();
                    return Err(format!(
                        "the upstream sent an event over {MAX_EVENT_BYTES} bytes (starting {head:?}); the stream was stopped"
                    ));
                }
            }
        }
        Ok(())
    }
}

fn emit(ev: &SseEvent, doc: &Value, out: &mut Vec<u8>) {
    encode_event(&reframed(ev, doc), out);
}

impl Rewriter {
    /// The upstream's stream ended: an error when it was cut inside an
    /// event or before its final event.
    pub fn end(&self) -> Result<(), String> {
        match self.decoder.finish() {
            Err(e) => Err(format!("the upstream's event stream is broken: {e}")),
            Ok(()) if self.terminal.is_empty() => {
                Err("the upstream's event stream ended before its final event".into())
            }
            Ok(()) => Ok(()),
        }
    }

    /// The stream's final events, held until the response hook allowed.
    pub fn take_terminal(&mut self) -> Vec<SseEvent> {
        std::mem::take(&mut self.terminal)
    }

    pub fn masked(&self) -> u64 {
        self.channels.values().map(Channel::masked).sum::<u64>() + self.masked_fields
    }

    /// Upstream events read so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    pub fn first_token_ms(&self) -> Option<u64> {
        self.first_token_ms
    }
}

#[cfg(test)]
mod tests;
