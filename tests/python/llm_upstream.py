"""A local OpenAI-compatible and Anthropic-compatible upstream for the LLM
tests: chat completions, responses (the Responses API) and Anthropic
messages, each as JSON and as server-sent events, and embeddings, in the
shapes and event sequences the providers send (and the official SDKs check:
the responses stream helper refuses events out of order).

It requires the held credential (`Authorization: Bearer TOKEN` or
`x-api-key: TOKEN`), records every request body (`GET /_requests`), and
answers by the last user message:

- `say: TEXT`  answers TEXT (streamed 5 characters per delta);
- `leak`       answers a long text with the secret given as the second
               argument near its end (so it arrives split across deltas);
- lines `call: NAME {JSON}` (after an optional `say: TEXT` line): the model
               calls these tools, one after the other (parallel tool calls),
               with these arguments streamed 5 characters per delta; `$LEAK`
               in the arguments is replaced by the secret;
- `truncate`   streams two deltas, then ends mid-event without the final one;
- `badjson`    streams an event whose data is not JSON;
- anything else answers `echo: ` + the message.

Prints `port N` on stdout once listening.
"""

import json
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOKEN = sys.argv[1]
LEAK = sys.argv[2]
RECORDED = []
LOCK = threading.Lock()


def last_user_text(messages):
    for m in reversed(messages):
        if m.get("role", "user") != "user":
            continue
        c = m.get("content")
        if isinstance(c, str):
            return c
        if isinstance(c, list):
            return "\n".join(p.get("text", "") for p in c if isinstance(p, dict))
    return ""


def responses_prompt(doc):
    """The last user text of a Responses API `input` (a string or items)."""
    given = doc.get("input")
    if isinstance(given, str):
        return given
    if isinstance(given, list):
        return last_user_text([i for i in given if isinstance(i, dict) and i.get("type", "message") == "message"])
    return ""


def answer_for(prompt):
    if prompt == "leak":
        return "filler text " * 60 + "the key is " + LEAK + " and that is all"
    if prompt.startswith("say: "):
        return prompt[len("say: "):].split("\n")[0]
    return "echo: " + prompt


def tool_calls_for(prompt):
    """The `(name, arguments JSON)` of each `call:` line of the prompt."""
    calls = []
    for line in prompt.split("\n"):
        if line.startswith("call: "):
            name, _, args = line[len("call: "):].partition(" ")
            calls.append((name, (args or "{}").replace("$LEAK", LEAK)))
    return calls


def new_id(prefix):
    return prefix + uuid.uuid4().hex[:24]


def pieces(text, n=5):
    return [text[i:i + n] for i in range(0, len(text), n)] or [""]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send_json(self, status, doc):
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def start_events(self):
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()

    def chunk(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()
        time.sleep(0.005)

    def end_events(self):
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def event(self, doc, name=None):
        head = f"event: {name}\n" if name else ""
        self.chunk(head + "data: " + json.dumps(doc) + "\n\n")

    def authorized(self):
        auth = self.headers.get("authorization", "")
        return auth == "Bearer " + TOKEN or self.headers.get("x-api-key") == TOKEN

    def do_GET(self):
        if self.path == "/_requests":
            with LOCK:
                return self.send_json(200, RECORDED)
        if not self.authorized():
            return self.send_json(401, {"error": {"message": "no credential", "type": "auth"}})
        if self.path.endswith("/models"):
            return self.send_json(200, {"object": "list", "data": [{"id": "gpt-test", "object": "model", "created": 0, "owned_by": "test"}]})
        self.send_json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length)
        if not self.authorized():
            return self.send_json(401, {"error": {"message": "no credential", "type": "auth"}})
        try:
            doc = json.loads(raw)
        except ValueError:
            return self.send_json(400, {"error": {"message": "upstream got a body that is not JSON", "type": "invalid_request_error"}})
        with LOCK:
            RECORDED.append({"path": self.path, "body": doc})
        if self.path.endswith("/chat/completions"):
            return self.chat(doc)
        if self.path.endswith("/embeddings"):
            inputs = doc.get("input")
            inputs = inputs if isinstance(inputs, list) else [inputs]
            return self.send_json(200, {
                "object": "list", "model": doc.get("model"),
                "data": [{"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]} for i, _ in enumerate(inputs)],
                "usage": {"prompt_tokens": len(inputs), "total_tokens": len(inputs)},
            })
        if self.path.endswith("/messages"):
            return self.messages(doc)
        if self.path.endswith("/responses"):
            return self.responses_api(doc)
        self.send_json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

    def chat(self, doc):
        prompt = last_user_text(doc.get("messages", []))
        calls = tool_calls_for(prompt)
        text = answer_for(prompt) if not calls or prompt.startswith("say: ") else ""
        model = doc.get("model", "gpt-test")
        out_pieces = len(pieces(text)) if text else 0
        out_pieces += sum(len(pieces(args)) for _, args in calls)
        usage = {"prompt_tokens": len(prompt.split()), "completion_tokens": out_pieces,
                 "total_tokens": len(prompt.split()) + out_pieces}
        base = {"id": "chatcmpl-test", "created": 1700000000, "model": model,
                "system_fingerprint": "fp_test"}
        ids = [new_id("call_") for _ in calls]
        finish = "tool_calls" if calls else "stop"
        if not doc.get("stream"):
            message = {"role": "assistant", "content": text or None, "refusal": None}
            if calls:
                message["tool_calls"] = [{"id": i, "type": "function", "function": {"name": n, "arguments": a}}
                                         for i, (n, a) in zip(ids, calls)]
            return self.send_json(200, dict(base, object="chat.completion", choices=[{
                "index": 0, "finish_reason": finish, "logprobs": None, "message": message}], usage=usage))
        self.start_events()
        chunk = dict(base, object="chat.completion.chunk")

        def delta(d, finish_reason=None):
            self.event(dict(chunk, choices=[{"index": 0, "delta": d, "logprobs": None, "finish_reason": finish_reason}]))

        delta({"role": "assistant", "content": "" if text or not calls else None, "refusal": None})
        parts = pieces(text) if text else []
        if prompt == "truncate":
            for p in parts[:2]:
                delta({"content": p})
            self.chunk('data: {"id": "chatcmpl-test", "choi')
            return self.end_events()
        if prompt == "badjson":
            self.chunk("data: {not json}\n\n")
            return self.end_events()
        for p in parts:
            delta({"content": p})
        # Tool calls one after the other, as OpenAI streams parallel calls:
        # the first delta of each names it, the rest carry its arguments.
        for index, (call_id, (name, args)) in enumerate(zip(ids, calls)):
            delta({"tool_calls": [{"index": index, "id": call_id, "type": "function",
                                   "function": {"name": name, "arguments": ""}}]})
            for p in pieces(args):
                delta({"tool_calls": [{"index": index, "function": {"arguments": p}}]})
        delta({}, finish)
        if (doc.get("stream_options") or {}).get("include_usage"):
            self.event(dict(chunk, choices=[], usage=usage))
        self.chunk("data: [DONE]\n\n")
        self.end_events()

    def messages(self, doc):
        prompt = last_user_text(doc.get("messages", []))
        calls = tool_calls_for(prompt)
        text = answer_for(prompt) if not calls or prompt.startswith("say: ") else ""
        model = doc.get("model", "claude-test")
        out_pieces = (len(pieces(text)) if text else 0) + sum(len(pieces(a)) for _, a in calls)
        usage = {"input_tokens": len(prompt.split()), "output_tokens": out_pieces}
        ids = [new_id("toolu_") for _ in calls]
        stop = "tool_use" if calls else "end_turn"
        message = {"id": "msg_test", "type": "message", "role": "assistant", "model": model,
                   "stop_reason": None, "stop_sequence": None}
        if not doc.get("stream"):
            content = [{"type": "text", "text": text}] if text else []
            content += [{"type": "tool_use", "id": i, "name": n, "input": json.loads(a)}
                        for i, (n, a) in zip(ids, calls)]
            return self.send_json(200, dict(message, content=content, stop_reason=stop, usage=usage))
        self.start_events()
        self.event({"type": "message_start", "message": dict(message, content=[], usage={"input_tokens": usage["input_tokens"], "output_tokens": 1})}, "message_start")
        index = 0
        if text:
            self.event({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}, "content_block_start")
            self.event({"type": "ping"}, "ping")
            for p in pieces(text):
                self.event({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}}, "content_block_delta")
            self.event({"type": "content_block_stop", "index": 0}, "content_block_stop")
            index = 1
        for call_id, (name, args) in zip(ids, calls):
            self.event({"type": "content_block_start", "index": index,
                        "content_block": {"type": "tool_use", "id": call_id, "name": name, "input": {}}}, "content_block_start")
            self.event({"type": "content_block_delta", "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": ""}}, "content_block_delta")
            for p in pieces(args):
                self.event({"type": "content_block_delta", "index": index,
                            "delta": {"type": "input_json_delta", "partial_json": p}}, "content_block_delta")
            self.event({"type": "content_block_stop", "index": index}, "content_block_stop")
            index += 1
        self.event({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None}, "usage": {"output_tokens": usage["output_tokens"]}}, "message_delta")
        self.event({"type": "message_stop"}, "message_stop")
        self.end_events()

    def responses_api(self, doc):
        """The Responses API: a message output item (if there is text) and a
        function_call item per tool call; streamed as the typed, numbered
        events OpenAI sends."""
        prompt = responses_prompt(doc)
        calls = tool_calls_for(prompt)
        text = answer_for(prompt) if not calls or prompt.startswith("say: ") else ""
        model = doc.get("model", "gpt-test")
        out_pieces = (len(pieces(text)) if text else 0) + sum(len(pieces(a)) for _, a in calls)
        in_tokens = len(prompt.split())
        usage = {"input_tokens": in_tokens, "input_tokens_details": {"cached_tokens": 0},
                 "output_tokens": out_pieces, "output_tokens_details": {"reasoning_tokens": 0},
                 "total_tokens": in_tokens + out_pieces}
        response = {
            "id": new_id("resp_"), "object": "response", "created_at": 1700000000,
            "status": "in_progress", "error": None, "incomplete_details": None,
            "instructions": doc.get("instructions"), "max_output_tokens": None, "model": model,
            "output": [], "parallel_tool_calls": True, "previous_response_id": None,
            "reasoning": {"effort": None, "summary": None}, "store": True, "temperature": 1.0,
            "text": {"format": {"type": "text"}}, "tool_choice": "auto",
            "tools": doc.get("tools", []), "top_p": 1.0, "truncation": "disabled",
            "usage": None, "user": None, "metadata": {},
        }
        message_id = new_id("msg_")
        part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
        message = {"id": message_id, "type": "message", "status": "completed", "role": "assistant",
                   "content": [part]}
        items = [message] if text else []
        items += [{"id": new_id("fc_"), "type": "function_call", "status": "completed",
                   "call_id": new_id("call_"), "name": n, "arguments": a} for n, a in calls]
        done = dict(response, status="completed", output=items, usage=usage)
        if not doc.get("stream"):
            return self.send_json(200, done)
        self.start_events()
        seq = iter(range(1_000_000))

        def event(kind, **fields):
            self.event(dict(fields, type=kind, sequence_number=next(seq)), kind)

        event("response.created", response=response)
        event("response.in_progress", response=response)
        for index, item in enumerate(items):
            if item["type"] == "message":
                event("response.output_item.added", output_index=index,
                      item=dict(item, status="in_progress", content=[]))
                event("response.content_part.added", item_id=message_id, output_index=index,
                      content_index=0, part=dict(part, text=""))
                for p in pieces(text):
                    event("response.output_text.delta", item_id=message_id, output_index=index,
                          content_index=0, delta=p, logprobs=[])
                event("response.output_text.done", item_id=message_id, output_index=index,
                      content_index=0, text=text, logprobs=[])
                event("response.content_part.done", item_id=message_id, output_index=index,
                      content_index=0, part=part)
            else:
                event("response.output_item.added", output_index=index,
                      item=dict(item, status="in_progress", arguments=""))
                for p in pieces(item["arguments"]):
                    event("response.function_call_arguments.delta", item_id=item["id"],
                          output_index=index, delta=p)
                event("response.function_call_arguments.done", item_id=item["id"], output_index=index,
                      name=item["name"], arguments=item["arguments"])
            event("response.output_item.done", output_index=index, item=item)
        event("response.completed", response=done)
        self.end_events()

server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(f"port {server.server_address[1]}", flush=True)
server.serve_forever()
