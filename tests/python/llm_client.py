"""Drives a Gatehouse LLM connection with the official SDKs, as an agent
would, and prints one JSON line: what the SDK returned or raised.

usage: llm_client.py MODE BASE_URL KEY MODEL PROMPT
MODE: chat | chat-stream | chat-tools | chat-tools-stream | embeddings |
      responses | responses-stream | anthropic | anthropic-stream |
      anthropic-tools-stream

The `*-tools*` modes offer the tools of TOOLS; the streamed ones go through
the SDKs' stream helpers (`chat.completions.stream`, `responses.stream`,
`messages.stream`), which accumulate deltas into the final answer and fire
their own "done" events, so a stream whose events are out of order or
incomplete fails here as it would for an agent. Tool calls come back as
`calls` (from the final answer) and `done` (from the helpers' per-call done
events, as an agent that acts on them sees them).
"""

import json
import sys

mode, base_url, key, model, prompt = sys.argv[1:6]

TOOLS = ["get_weather", "deploy", "run_shell"]


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


def openai_chat_tools():
    return [{"type": "function", "function": {"name": t, "description": f"the {t} tool",
                                              "parameters": {"type": "object", "properties": {}}}}
            for t in TOOLS]


def anthropic_run(client):
    messages = [{"role": "user", "content": prompt}]
    if mode == "anthropic":
        msg = client.messages.create(model=model, max_tokens=64, messages=messages)
        return {"text": "".join(b.text for b in msg.content if b.type == "text"),
                "model": msg.model, "usage": {"input": msg.usage.input_tokens, "output": msg.usage.output_tokens}}
    tools = [{"name": t, "description": f"the {t} tool", "input_schema": {"type": "object"}} for t in TOOLS]
    extra = {"tools": tools} if mode == "anthropic-tools-stream" else {}
    deltas, done = [], []
    with client.messages.stream(model=model, max_tokens=64, messages=messages, **extra) as stream:
        for event in stream:
            if event.type == "text":
                deltas.append(event.text)
            elif event.type == "content_block_stop" and event.content_block.type == "tool_use":
                done.append({"name": event.content_block.name, "input": event.content_block.input})
        final = stream.get_final_message()
    return {"text": "".join(deltas), "deltas": deltas, "done": done,
            "final": "".join(b.text for b in final.content if b.type == "text"),
            "calls": [{"id": b.id, "name": b.name, "input": b.input} for b in final.content if b.type == "tool_use"],
            "stop_reason": final.stop_reason, "model": final.model,
            "usage": {"input": final.usage.input_tokens, "output": final.usage.output_tokens}}


def chat_run(client):
    messages = [{"role": "user", "content": prompt}]
    if mode in ("chat", "chat-tools"):
        extra = {"tools": openai_chat_tools()} if mode == "chat-tools" else {}
        r = client.chat.completions.create(model=model, messages=messages, **extra)
        m = r.choices[0].message
        return {"text": m.content, "model": r.model, "finish_reason": r.choices[0].finish_reason,
                "calls": [{"id": c.id, "name": c.function.name, "arguments": c.function.arguments}
                          for c in m.tool_calls or []],
                "usage": {"input": r.usage.prompt_tokens, "output": r.usage.completion_tokens}}
    if mode == "chat-stream":
        deltas = []
        stream = client.chat.completions.create(
            model=model, messages=messages, stream=True, stream_options={"include_usage": True})
        usage = None
        for chunk in stream:
            if chunk.usage:
                usage = {"input": chunk.usage.prompt_tokens, "output": chunk.usage.completion_tokens}
            for c in chunk.choices:
                if c.delta.content:
                    deltas.append(c.delta.content)
        return {"text": "".join(deltas), "deltas": deltas, "usage": usage}
    # chat-tools-stream: the stream helper, as an agent framework uses it.
    deltas, arg_deltas, done = [], [], []
    with client.chat.completions.stream(model=model, messages=messages, tools=openai_chat_tools(),
                                        stream_options={"include_usage": True}) as stream:
        for event in stream:
            if event.type == "content.delta":
                deltas.append(event.delta)
            elif event.type == "tool_calls.function.arguments.delta":
                arg_deltas.append(event.arguments_delta)
            elif event.type == "tool_calls.function.arguments.done":
                done.append({"name": event.name, "arguments": event.arguments})
        final = stream.get_final_completion()
    m = final.choices[0].message
    return {"text": "".join(deltas), "deltas": deltas, "arg_deltas": arg_deltas, "done": done,
            "calls": [{"id": c.id, "name": c.function.name, "arguments": c.function.arguments}
                      for c in m.tool_calls or []],
            "finish_reason": final.choices[0].finish_reason, "model": final.model,
            "usage": {"input": final.usage.prompt_tokens, "output": final.usage.completion_tokens}
            if final.usage else None}


def responses_run(client):
    tools = [{"type": "function", "name": t, "description": f"the {t} tool",
              "parameters": {"type": "object", "properties": {}}, "strict": False} for t in TOOLS]
    if mode == "responses":
        r = client.responses.create(model=model, input=prompt, tools=tools)
        return {"text": r.output_text, "model": r.model, "status": r.status,
                "calls": [{"call_id": i.call_id, "name": i.name, "arguments": i.arguments}
                          for i in r.output if i.type == "function_call"],
                "usage": {"input": r.usage.input_tokens, "output": r.usage.output_tokens}}
    deltas, arg_deltas, done, seq = [], [], [], []
    with client.responses.stream(model=model, input=prompt, tools=tools) as stream:
        for event in stream:
            seq.append(event.sequence_number)
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
            elif event.type == "response.function_call_arguments.delta":
                arg_deltas.append(event.delta)
            elif event.type == "response.output_item.done" and event.item.type == "function_call":
                done.append({"name": event.item.name, "arguments": event.item.arguments})
        final = stream.get_final_response()
    return {"text": "".join(deltas), "deltas": deltas, "arg_deltas": arg_deltas, "done": done,
            "final": final.output_text, "model": final.model, "status": final.status, "sequence": seq,
            "calls": [{"call_id": i.call_id, "name": i.name, "arguments": i.arguments}
                      for i in final.output if i.type == "function_call"],
            "usage": {"input": final.usage.input_tokens, "output": final.usage.output_tokens}}


result = {}
try:
    if mode.startswith("anthropic"):
        import anthropic

        result = anthropic_run(anthropic.Anthropic(base_url=base_url, api_key=key, max_retries=0, timeout=20))
    else:
        import openai

        client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=20)
        if mode.startswith("chat"):
            result = chat_run(client)
        elif mode.startswith("responses"):
            result = responses_run(client)
        elif mode == "embeddings":
            r = client.embeddings.create(model=model, input=[prompt])
            result = {"vectors": len(r.data), "model": r.model}
        else:
            raise SystemExit(f"unknown mode {mode}")
except Exception as e:  # the SDK's error is the result under test
    result = {"error": error(e)}

print(json.dumps(result, default=str))
