"""Drives a Gatehouse LLM connection with the official SDKs, as an agent
would, and prints one JSON line: what the SDK returned or raised.

usage: llm_client.py MODE BASE_URL KEY MODEL PROMPT
MODE: chat | chat-stream | embeddings | anthropic | anthropic-stream
"""

import json
import sys

mode, base_url, key, model, prompt = sys.argv[1:6]


def error(e):
    out = {"class": type(e).__name__, "message": str(e)}
    for attr in ("status_code", "code", "type"):
        v = getattr(e, attr, None)
        if v is not None:
            out[attr] = v
    body = getattr(e, "body", None)
    if body is not None:
        out["body"] = body
    return out


result = {}
try:
    if mode.startswith("anthropic"):
        import anthropic

        client = anthropic.Anthropic(base_url=base_url, api_key=key, max_retries=0, timeout=20)
        if mode == "anthropic":
            msg = client.messages.create(model=model, max_tokens=64,
                                         messages=[{"role": "user", "content": prompt}])
            result = {"text": "".join(b.text for b in msg.content if b.type == "text"),
                      "model": msg.model, "usage": {"input": msg.usage.input_tokens, "output": msg.usage.output_tokens}}
        else:
            deltas = []
            with client.messages.stream(model=model, max_tokens=64,
                                        messages=[{"role": "user", "content": prompt}]) as stream:
                for text in stream.text_stream:
                    deltas.append(text)
                final = stream.get_final_message()
            result = {"text": "".join(deltas), "deltas": deltas,
                      "final": "".join(b.text for b in final.content if b.type == "text"),
                      "usage": {"input": final.usage.input_tokens, "output": final.usage.output_tokens}}
    else:
        import openai

        client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=20)
        if mode == "chat":
            r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": prompt}])
            result = {"text": r.choices[0].message.content, "model": r.model,
                      "usage": {"input": r.usage.prompt_tokens, "output": r.usage.completion_tokens}}
        elif mode == "chat-stream":
            deltas = []
            stream = client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": prompt}], stream=True,
                stream_options={"include_usage": True})
            usage = None
            for chunk in stream:
                if chunk.usage:
                    usage = {"input": chunk.usage.prompt_tokens, "output": chunk.usage.completion_tokens}
                for c in chunk.choices:
                    if c.delta.content:
                        deltas.append(c.delta.content)
            result = {"text": "".join(deltas), "deltas": deltas, "usage": usage}
        elif mode == "embeddings":
            r = client.embeddings.create(model=model, input=[prompt])
            result = {"vectors": len(r.data), "model": r.model}
        else:
            raise SystemExit(f"unknown mode {mode}")
except Exception as e:  # the SDK's error is the result under test
    result = {"error": error(e)}

print(json.dumps(result, default=str))
