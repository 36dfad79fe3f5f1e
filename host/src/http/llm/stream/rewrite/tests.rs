//! The rewriter against the providers' event sequences, cut anywhere: the
//! text that goes out is the masked text, whatever the deltas and chunks;
//! every event stays valid JSON; responses keep increasing sequence
//! numbers; a chat tool call is whole before the next one starts.

use super::*;
use crate::mask::{MaskCompiler, MaskMethod, MaskRule, MaskTarget};
use proptest::prelude::*;

const SECRET: &str = "sk-proj-Zx81Qw93Lm47Np02Rt56Vb19Kc38Hd74Gf65JsAb1";
const MASKED: &str = "[MASKED:openai-api-key]";

fn masks() -> Arc<CompiledMasks> {
    MaskCompiler::new(b"test key".to_vec())
        .compile(
            &[MaskRule {
                target: MaskTarget::Detector("openai-api-key".into()),
                method: MaskMethod::Redact,
            }],
            &[],
        )
        .unwrap()
}

fn pieces(text: &str, size: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

fn event(out: &mut Vec<u8>, name: Option<&str>, data: Value) {
    encode_event(
        &SseEvent::named(name.map(str::to_string), data.to_string()),
        out,
    );
}

/// What a provider streams for `text` in deltas of `size` characters,
/// followed by one tool call with `args` (as the providers send them).
fn upstream(op: Operation, text: &str, args: &str, size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    match op {
        Operation::Chat => {
            let chunk = |delta: Value, finish: Value| {
                json!({"id": "c", "object": "chat.completion.chunk", "model": "m",
                       "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
            };
            event(
                &mut out,
                None,
                chunk(json!({"role": "assistant", "content": ""}), Value::Null),
            );
            for p in pieces(text, size) {
                event(&mut out, None, chunk(json!({"content": p}), Value::Null));
            }
            for (i, name) in ["first", "second"].iter().enumerate() {
                let call = json!([{"index": i, "id": format!("call_{i}"), "type": "function",
                                   "function": {"name": name, "arguments": ""}}]);
                event(
                    &mut out,
                    None,
                    chunk(json!({"tool_calls": call}), Value::Null),
                );
                for p in pieces(args, size) {
                    let call = json!([{"index": i, "function": {"arguments": p}}]);
                    event(
                        &mut out,
                        None,
                        chunk(json!({"tool_calls": call}), Value::Null),
                    );
                }
            }
            event(&mut out, None, chunk(json!({}), json!("tool_calls")));
            out.extend_from_slice(b"data: [DONE]\n\n");
        }
        Operation::Responses => {
            let mut seq = 0;
            let mut ev = |out: &mut Vec<u8>, kind: &str, mut doc: Value| {
                doc["type"] = json!(kind);
                doc["sequence_number"] = json!(seq);
                seq += 1;
                event(out, Some(kind), doc);
            };
            ev(
                &mut out,
                "response.created",
                json!({"response": {"id": "r", "output": []}}),
            );
            ev(
                &mut out,
                "response.output_item.added",
                json!({"output_index": 0, "item": {"id": "m", "type": "message", "content": []}}),
            );
            for p in pieces(text, size) {
                ev(
                    &mut out,
                    "response.output_text.delta",
                    json!({"item_id": "m", "output_index": 0, "content_index": 0, "delta": p, "logprobs": []}),
                );
            }
            ev(
                &mut out,
                "response.output_text.done",
                json!({"item_id": "m", "output_index": 0, "content_index": 0, "text": text, "logprobs": []}),
            );
            ev(
                &mut out,
                "response.output_item.done",
                json!({"output_index": 0, "item": {"id": "m"}}),
            );
            ev(
                &mut out,
                "response.output_item.added",
                json!({"output_index": 1, "item": {"id": "f", "type": "function_call", "call_id": "c1", "name": "first", "arguments": ""}}),
            );
            for p in pieces(args, size) {
                ev(
                    &mut out,
                    "response.function_call_arguments.delta",
                    json!({"item_id": "f", "output_index": 1, "delta": p}),
                );
            }
            ev(
                &mut out,
                "response.function_call_arguments.done",
                json!({"item_id": "f", "output_index": 1, "arguments": args}),
            );
            ev(
                &mut out,
                "response.output_item.done",
                json!({"output_index": 1, "item": {"id": "f"}}),
            );
            ev(
                &mut out,
                "response.completed",
                json!({"response": {"id": "r", "model": "m", "usage": {"input_tokens": 1, "output_tokens": 2}}}),
            );
        }
        Operation::Messages => {
            let mut ev = |kind: &str, doc: Value| event(&mut out, Some(kind), doc);
            ev(
                "message_start",
                json!({"type": "message_start", "message": {"model": "m", "usage": {"input_tokens": 1}}}),
            );
            ev(
                "content_block_start",
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            );
            for p in pieces(text, size) {
                ev(
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}}),
                );
            }
            ev(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 0}),
            );
            ev(
                "content_block_start",
                json!({"type": "content_block_start", "index": 1,
                "content_block": {"type": "tool_use", "id": "t", "name": "first", "input": {}}}),
            );
            for p in pieces(args, size) {
                ev(
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": p}}),
                );
            }
            ev(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 1}),
            );
            ev(
                "message_delta",
                json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 2}}),
            );
            ev("message_stop", json!({"type": "message_stop"}));
        }
        Operation::Embeddings => {}
    }
    out
}

/// Runs the rewriter over `bytes` cut at `cuts`; the events that went out
/// (the held final ones last) and the completion.
fn rewrite(op: Operation, bytes: &[u8], cuts: &[usize]) -> (Vec<SseEvent>, Completion) {
    let mut rw = Rewriter::new(op, masks(), Instant::now());
    let mut out = Vec::new();
    let mut at = 0;
    let mut cuts = cuts.to_vec();
    cuts.sort();
    for c in cuts {
        let c = c.min(bytes.len()).max(at);
        rw.push(&bytes[at..c], &mut out).unwrap();
        at = c;
    }
    rw.push(&bytes[at..], &mut out).unwrap();
    rw.end().unwrap();
    for ev in rw.take_terminal() {
        encode_event(&ev, &mut out);
    }
    let mut d = Decoder::new(1 << 20);
    let mut items = Vec::new();
    d.push(&out, &mut items).unwrap();
    d.finish().unwrap();
    let events = items
        .into_iter()
        .filter_map(|i| match i {
            Item::Event(e) => Some(e),
            _ => None,
        })
        .collect();
    (events, rw.completion("fallback"))
}

fn data(e: &SseEvent) -> Value {
    if e.data == "[DONE]" {
        return json!("[DONE]");
    }
    serde_json::from_str(&e.data).unwrap_or_else(|err| panic!("{err}: {}", e.data))
}

/// The text deltas and the tool-argument deltas that went out, in order.
fn deltas(op: Operation, events: &[SseEvent]) -> (String, Vec<(u64, String)>) {
    let mut text = String::new();
    let mut args = Vec::new();
    for e in events {
        let d = data(e);
        match op {
            Operation::Chat => {
                for c in d["choices"].as_array().into_iter().flatten() {
                    text.push_str(c["delta"]["content"].as_str().unwrap_or_default());
                    for t in c["delta"]["tool_calls"].as_array().into_iter().flatten() {
                        let a = t["function"]["arguments"].as_str().unwrap_or_default();
                        args.push((t["index"].as_u64().unwrap(), a.to_string()));
                    }
                }
            }
            Operation::Responses => match d["type"].as_str() {
                Some("response.output_text.delta") => text.push_str(d["delta"].as_str().unwrap()),
                Some("response.function_call_arguments.delta") => {
                    args.push((0, d["delta"].as_str().unwrap().to_string()))
                }
                _ => {}
            },
            Operation::Messages => match d["delta"]["type"].as_str() {
                Some("text_delta") => text.push_str(d["delta"]["text"].as_str().unwrap()),
                Some("input_json_delta") => args.push((
                    d["index"].as_u64().unwrap(),
                    d["delta"]["partial_json"].as_str().unwrap().to_string(),
                )),
                _ => {}
            },
            Operation::Embeddings => {}
        }
    }
    (text, args)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the delta size and the chunking, what goes out is the
    /// masked text and arguments, in valid JSON events; the completion the
    /// hook sees is the same; no piece of the secret gets through.
    #[test]
    fn any_deltas_and_chunks_give_the_masked_answer(
        op in prop_oneof![Just(Operation::Chat), Just(Operation::Responses), Just(Operation::Messages)],
        before in "[a-z ]{0,40}",
        size in 1usize..9,
        cuts in prop::collection::vec(0usize..6000, 0..8),
    ) {
        let text = format!("{before}the key is {SECRET}, keep it");
        let args = format!("{{\"key\": \"{SECRET}\", \"n\": 1}}");
        let bytes = upstream(op, &text, &args, size);
        let (events, completion) = rewrite(op, &bytes, &cuts);
        let masked_text = text.replace(SECRET, MASKED);
        let masked_args = args.replace(SECRET, MASKED);
        let (out_text, out_args) = deltas(op, &events);
        prop_assert_eq!(&out_text, &masked_text);
        let first: String = out_args.iter().filter(|(i, _)| *i == out_args[0].0).map(|(_, a)| a.as_str()).collect();
        prop_assert_eq!(&first, &masked_args);
        prop_assert_eq!(&completion.text, &masked_text);
        prop_assert_eq!(&completion.tool_calls[0].arguments, &masked_args);
        prop_assert_eq!(completion.tool_calls[0].name.as_str(), "first");
        for e in &events {
            prop_assert!(!e.data.contains("Zx81Qw93"), "{}", e.data);
        }
        if op == Operation::Responses {
            let seq: Vec<u64> = events.iter().map(|e| data(e)["sequence_number"].as_u64().unwrap()).collect();
            prop_assert!(seq.windows(2).all(|w| w[0] < w[1]), "{seq:?}");
            // The named event matches the data's type.
            for e in &events {
                let doc = data(e);
                prop_assert_eq!(e.event.as_deref(), doc["type"].as_str());
            }
        }
    }
}

#[test]
fn a_chat_tool_call_is_whole_before_the_next_begins() {
    let args = r#"{"city": "Paris"}"#;
    let bytes = upstream(Operation::Chat, "", args, 3);
    let (events, completion) = rewrite(Operation::Chat, &bytes, &[]);
    let (_, out) = deltas(Operation::Chat, &events);
    // Every piece of call 0 comes before the first piece of call 1, and
    // before it, call 0 is whole (the masker's window was flushed).
    let first_of_1 = out.iter().position(|(i, _)| *i == 1).unwrap();
    assert!(out[first_of_1..].iter().all(|(i, _)| *i == 1), "{out:?}");
    let call0: String = out[..first_of_1].iter().map(|(_, a)| a.as_str()).collect();
    assert_eq!(call0, args);
    let names: Vec<&str> = completion
        .tool_calls
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, ["first", "second"]);
    assert_eq!(completion.tool_calls[1].arguments, args);
    assert_eq!(completion.model, "m");
}

#[test]
fn keep_alives_pass_and_broken_streams_say_why() {
    let mut rw = Rewriter::new(Operation::Chat, masks(), Instant::now());
    let mut out = Vec::new();
    rw.push(b": ping\n\nid: 3\n\n", &mut out).unwrap();
    assert_eq!(out, b": ping\nid: 3\n\n");
    rw.push(b"data: {\"choices\":[]}\n\n", &mut out).unwrap();
    assert!(
        rw.end()
            .unwrap_err()
            .contains("ended before its final event")
    );
    rw.push(b"data: [DONE]\n\n", &mut out).unwrap();
    assert_eq!(rw.end(), Ok(()));
    // After the final event nothing may follow.
    let err = rw.push(b"data: {}\n\n", &mut out).unwrap_err();
    assert!(err.contains("after its stream's final event"), "{err}");

    let mut rw = Rewriter::new(Operation::Chat, masks(), Instant::now());
    let err = rw.push(b"data: {not json}\n\n", &mut out).unwrap_err();
    assert!(err.contains("not JSON"), "{err}");
    let mut rw = Rewriter::new(Operation::Messages, masks(), Instant::now());
    rw.push(b"event: message_start\ndata: {\"type\":", &mut out)
        .unwrap();
    assert!(rw.end().unwrap_err().contains("middle of an event"));
}
