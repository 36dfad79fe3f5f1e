#!/usr/bin/env bash
# Measures the three SQL examples with `gatehouse policy bench` and prints
# the Markdown table kept in policy-examples/README.md, with the machine
# state it was measured in.
#
#   cargo build --release -p gatehouse
#   GATEHOUSE_BIN=target/release/gatehouse policy-examples/bench.sh   # the table in the README
#   policy-examples/bench.sh                      # debug host, 3 s per language
#
# GATEHOUSE_BIN is the host measured (a path from the repository root, or
# absolute; default target/debug/gatehouse). DURATION is seconds per
# language (default 3). CASE picks the fixture case decided over and over
# (default: the refused DROP, a postgres.on-query deny). LANGS limits the
# languages (default "rust python js"). SKIP_BUILD=1 skips building the
# components (`make` of target/policy-examples/LANG-sql.wasm).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bin=${GATEHOUSE_BIN:-target/debug/gatehouse}
duration=${DURATION:-3}
langs=${LANGS:-rust python js}
case_name=${CASE:-drop is refused}
fixture=policy-examples/fixtures/sql/postgres.yaml
# Interpreters under a debug host need more than the 50 ms default.
timeout_ms=${TIMEOUT_MS:-2000}

case "$bin" in
    *release*) build="cargo build --release -p gatehouse" ;;
    *) build="cargo build -p gatehouse" ;;
esac
[ -x "$bin" ] || { echo "$bin is missing: $build (or point GATEHOUSE_BIN at a built gatehouse)" >&2; exit 1; }
for lang in $langs; do
    case "$lang" in rust|python|js) ;; *) echo "LANGS: unknown language $lang (rust, python, js)" >&2; exit 1 ;; esac
    [ -n "${SKIP_BUILD:-}" ] || make --no-print-directory "target/policy-examples/$lang-sql.wasm" >&2
done

results=$(mktemp)
trap 'rm -f "$results"' EXIT
for lang in $langs; do
    echo "measuring $lang-sql ..." >&2
    "$bin" policy bench "target/policy-examples/$lang-sql.wasm" --fixture "$fixture" \
        --case "$case_name" --duration "$duration" --timeout-ms "$timeout_ms" --format json \
        | python3 -c "import json,sys; d=json.load(sys.stdin); d['lang']='$lang'; print(json.dumps(d))" >> "$results"
done

case "$bin" in *release*) profile=release ;; *) profile=debug ;; esac
echo "measured $(date -u '+%H:%M UTC, %d %b %Y')"
echo "host: $bin ($profile build); $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end;"
echo "case: \"$case_name\" ($fixture), $duration s per language, one thread, a fresh instance per decision."
echo
python3 - "$results" <<'PY'
import json, sys
names = {"rust": "Rust (SDK, cargo)", "python": "Python (componentize-py 0.25.1)", "js": "JavaScript (ComponentizeJS 0.23.0)"}
print("| language | .wasm size | cold compile | cached load | instantiate | p50 decision | p99 decision | decisions/s |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for line in open(sys.argv[1]):
    d = json.loads(line)
    def ms(v):
        return f"{v / 1000:.2f} s" if v >= 1000 else f"{v:.1f} ms"
    def us(v):
        return f"{v / 1000:.2f} ms" if v >= 1000 else f"{v:.0f} µs"
    size = f"{d['bytes'] / 2**20:.1f} MiB" if d['bytes'] >= 2**20 else f"{d['bytes'] / 1024:.0f} KiB"
    print(f"| {names[d['lang']]} | {size} | {ms(d['compile_ms'])} | {ms(d['cached_load_ms'])} "
          f"| {us(d['instantiate_us'])} | {us(d['p50_us'])} | {us(d['p99_us'])} | {d['decisions_per_sec']:,.0f} |")
PY
