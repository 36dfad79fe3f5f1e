"""A local OpenAI-compatible and Anthropic-compatible upstream for the LLM
tests: chat completions (JSON and server-sent events), embeddings and
Anthropic messages (JSON and events), in the shapes the official SDKs accept.

It requires the held credential (`Authorization: Bearer TOKEN` or
`x-api-key: TOKEN`), records every request body (`GET /_requests`), and
answers by the last user message:

- `say: TEXT`  answers TEXT (streamed 5 characters per delta);
- `leak`       answers a long text with the secret given as the second
               argument near its end (so it arrives split across deltas);
- `truncate`   streams two deltas, then ends mid-event without the final one;
- `badjson`    streams an event whose data is not JSON;
- anything else answers `echo: ` + the message.

Prints `port N` on stdout once listening.
"""

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOKEN = sys.argv[1]
LEAK = sys.argv[2]
RECORDED = []
LOCK = threading.Lock()


def last_user_text(messages):
    for m in reversed(messages):
        if m.get("role") != "user":
            continue
        c = m.get("content")
        if isinstance(c, str):
            return c
        if isinstance(c, list):
            return "\n".join(p.get("text", "") for p in c if isinstance(p, dict))
    return ""


def answer_for(prompt):
    if prompt == "leak":
        return "filler text " * 60 + "the key is " + LEAK + " and that is all"
    if prompt.startswith("say: "):
        return prompt[len("say: "):]
    return "echo: " + prompt


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
        self.send_json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

    def chat(self, doc):
        prompt = last_user_text(doc.get("messages", []))
        text = answer_for(prompt)
        model = doc.get("model", "gpt-test")
        usage = {"prompt_tokens": len(prompt.split()), "completion_tokens": len(pieces(text)),
                 "total_tokens": len(prompt.split()) + len(pieces(text))}
        base = {"id": "chatcmpl-test", "created": 1700000000, "model": model}
        if not doc.get("stream"):
            return self.send_json(200, dict(base, object="chat.completion", choices=[{
                "index": 0, "finish_reason": "stop", "logprobs": None,
                "message": {"role": "assistant", "content": text, "refusal": None}}], usage=usage))
        self.start_events()
        chunk = dict(base, object="chat.completion.chunk")
        self.event(dict(chunk, choices=[{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]))
        parts = pieces(text)
        if prompt == "truncate":
            for p in parts[:2]:
                self.event(dict(chunk, choices=[{"index": 0, "delta": {"content": p}, "finish_reason": None}]))
            self.chunk('data: {"id": "chatcmpl-test", "choi')
            return self.end_events()
        if prompt == "badjson":
            self.chunk("data: {not json}\n\n")
            return self.end_events()
        for p in parts:
            self.event(dict(chunk, choices=[{"index": 0, "delta": {"content": p}, "finish_reason": None}]))
        self.event(dict(chunk, choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}]))
        if (doc.get("stream_options") or {}).get("include_usage"):
            self.event(dict(chunk, choices=[], usage=usage))
        self.chunk("data: [DONE]\n\n")
        self.end_events()

    def messages(self, doc):
        prompt = last_user_text(doc.get("messages", []))
        text = answer_for(prompt)
        model = doc.get("model", "claude-test")
        usage = {"input_tokens": len(prompt.split()), "output_tokens": len(pieces(text))}
        message = {"id": "msg_test", "type": "message", "role": "assistant", "model": model,
                   "stop_reason": None, "stop_sequence": None}
        if not doc.get("stream"):
            return self.send_json(200, dict(message, content=[{"type": "text", "text": text}],
                                            stop_reason="end_turn", usage=usage))
        self.start_events()
        self.event({"type": "message_start", "message": dict(message, content=[], usage={"input_tokens": usage["input_tokens"], "output_tokens": 1})}, "message_start")
        self.event({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}, "content_block_start")
        self.event({"type": "ping"}, "ping")
        for p in pieces(text):
            self.event({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}}, "content_block_delta")
        self.event({"type": "content_block_stop", "index": 0}, "content_block_stop")
        self.event({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None}, "usage": {"output_tokens": usage["output_tokens"]}}, "message_delta")
        self.event({"type": "message_stop"}, "message_stop")
        self.end_events()


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(f"port {server.server_address[1]}", flush=True)
server.serve_forever()
