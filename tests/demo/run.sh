#!/usr/bin/env bash
# `make demo`: gatehouse with SQLite and the shipped http-guard policy in
# front of a local upstream; an agent makes three requests (allowed, denied,
# masked); then the recorded session is printed from the audit store.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BIN="$ROOT/target/debug"
WORK="$(mktemp -d -t gatehouse-demo.XXXXXX)"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

wait_line() { # file pattern -> first matching line
  for _ in $(seq 1 600); do
    if grep -q "$2" "$1" 2>/dev/null; then grep -m1 "$2" "$1"; return 0; fi
    sleep 0.1
  done
  echo "timed out waiting for '$2' in $1" >&2; cat "$1" >&2; return 1
}

mkdir -p "$WORK/policies"
cp "$ROOT/target/wasm32-wasip2/wasm/http_guard.wasm" "$WORK/policies/http-guard.wasm"
cp "$ROOT/tests/demo/http-guard.json" "$WORK/policies/http-guard.json"
export DEMO_UPSTREAM_TOKEN="upstream-secret-token-7f3a9c"

"$BIN/demo-upstream" 127.0.0.1:0 > "$WORK/upstream.out" &
PIDS+=($!)
UPSTREAM="http://$(wait_line "$WORK/upstream.out" '^listening upstream' | awk '{print $3}')"
sed "s#@UPSTREAM@#$UPSTREAM#" "$ROOT/tests/demo/gatehouse.toml.in" > "$WORK/gatehouse.toml"

cd "$WORK"
"$BIN/gatehouse" serve --config gatehouse.toml > serve.out 2> gatehouse.log &
GH_PID=$!
PIDS+=($GH_PID)
wait_line serve.out '^ready' > /dev/null
GATEWAY="http://$(grep '^listening demo-api' serve.out | awk '{print $3}')"
KEY="$("$BIN/gatehouse" keys create --config gatehouse.toml --name demo-agent --owner alice@example.com --kind agent --groups dev 2>/dev/null)"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
say "gatehouse $GATEWAY -> upstream $UPSTREAM (the agent holds only a Gatehouse key)"

say "1. allowed: GET /echo (the upstream sees the held credential; the agent never does)"
curl -sS -H "Authorization: Bearer $KEY" "$GATEWAY/echo" | head -c 600; echo

say "2. denied: DELETE /admin/users/7"
curl -sS -X DELETE -H "Authorization: Bearer $KEY" -w '\nHTTP %{http_code}\n' "$GATEWAY/admin/users/7"

say "3. masked: GET /split-secret (an AWS key split across two chunks) and GET /json"
curl -sS -H "Authorization: Bearer $KEY" "$GATEWAY/split-secret"; echo
curl -sS -H "Authorization: Bearer $KEY" "$GATEWAY/json"; echo

kill -TERM "$GH_PID"; wait "$GH_PID" 2>/dev/null || true

say "the recorded sessions, from the audit store (one per client connection)"
"$BIN/gatehouse" audit sessions --config gatehouse.toml
for SESSION in $("$BIN/gatehouse" audit sessions --config gatehouse.toml | awk '{print $1}' | tac); do
  echo
  "$BIN/gatehouse" audit show --config gatehouse.toml "$SESSION"
done
say "hash chain"
"$BIN/gatehouse" audit verify --config gatehouse.toml
