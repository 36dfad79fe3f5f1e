#!/usr/bin/env sh
# Builds deny-delete.wasm from app.py with componentize-py.
#
# Output goes to target/policy-examples/python-http/ at the repository root
# (ignored by git), or to $OUT_DIR when set:
#   deny-delete.wasm   the policy component
#   bindings/          the generated Python bindings, for editors/type checkers
#
# Needs: Python 3.11+ and `pip install componentize-py==0.25.1`.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${OUT_DIR:-$root/target/policy-examples/python-http}
world=gatehouse:policy/http-policy@0.1.0

command -v componentize-py >/dev/null 2>&1 || {
    echo "componentize-py not found: pip install componentize-py==0.25.1" >&2
    exit 1
}

mkdir -p "$out"
cd "$here"

# Bindings are only for reading/IDE support; `componentize` generates its own.
rm -rf "$out/bindings"
componentize-py -d ../../wit -w "$world" bindings "$out/bindings"

componentize-py -d ../../wit -w "$world" componentize app -p . -o "$out/deny-delete.wasm"

# componentize-py byte-compiles app.py while pre-initialising; keep the source
# folder clean.
rm -rf "$here/__pycache__"

echo "built $out/deny-delete.wasm ($(wc -c < "$out/deny-delete.wasm") bytes)"
