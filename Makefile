# Entry points: `make demo` and `make test` on a fresh machine.
CARGO ?= cargo
WASM_TARGET := wasm32-wasip2
GUESTS := http-guard sql-guard secrets pii llm-guard mcp-guard k8s-guard allow-all deny-marker infinite-loop memory-bomb trap huge-output sandbox-probe fixture-probe
GUEST_FLAGS := $(foreach g,$(GUESTS),-p $(g))

.PHONY: all toolchain plugins examples oidc-harness console-harness kubectl py-deps build test demo bench bench-pg fmt lint clean

all: build plugins

toolchain:
	@rustup target list --installed 2>/dev/null | grep -qx $(WASM_TARGET) || rustup target add $(WASM_TARGET)

plugins: toolchain
	$(CARGO) build --profile wasm --target $(WASM_TARGET) $(GUEST_FLAGS)

# The same SQL policy in Rust, Python and JavaScript, and an HTTP policy in
# Python (policy-examples/), each built from wit/ into target/policy-examples/.
# tests/tests/policy_examples.rs builds them itself when they are missing, so
# `make test` does not wait on componentize-py and ComponentizeJS (about a
# minute together).
EXAMPLES_OUT := target/policy-examples

examples: $(EXAMPLES_OUT)/rust-sql.wasm $(EXAMPLES_OUT)/python-sql.wasm $(EXAMPLES_OUT)/js-sql.wasm $(EXAMPLES_OUT)/python-http.wasm

$(EXAMPLES_OUT)/rust-sql.wasm: toolchain policy-examples/rust-sql/src/lib.rs $(wildcard wit/*.wit sdk/src/*.rs sdk/src/*/*.rs)
	$(CARGO) build --profile wasm --target $(WASM_TARGET) -p rust-sql
	mkdir -p $(EXAMPLES_OUT) && cp target/$(WASM_TARGET)/wasm/rust_sql.wasm $@

$(EXAMPLES_OUT)/python-sql.wasm: target/py/.componentize-py-0.25.1 policy-examples/python-sql/app.py $(wildcard wit/*.wit)
	$(MAKE) -C policy-examples/python-sql build COMPONENTIZE_PY=$(CURDIR)/target/py/bin/componentize-py

$(EXAMPLES_OUT)/python-http.wasm: target/py/.componentize-py-0.25.1 policy-examples/python-http/app.py $(wildcard wit/*.wit)
	$(MAKE) -C policy-examples/python-http build COMPONENTIZE_PY=$(CURDIR)/target/py/bin/componentize-py

$(EXAMPLES_OUT)/js-sql.wasm: policy-examples/js-sql/node_modules/.package-lock.json policy-examples/js-sql/policy.js $(wildcard wit/*.wit)
	$(MAKE) -C policy-examples/js-sql build

policy-examples/js-sql/node_modules/.package-lock.json: policy-examples/js-sql/package.json policy-examples/js-sql/package-lock.json
	cd policy-examples/js-sql && npm ci --no-audit --no-fund --loglevel=error

# psycopg for the PostgreSQL tests, componentize-py for the Python policy
# skeleton's test, and the LLM and MCP SDKs (PyPI), in a venv under target/.
py-deps: target/py/.psycopg-3.3.9 target/py/.componentize-py-0.25.1 target/py/.llm-sdks-openai-3.57.0-anthropic-2.14.0 target/py/.mcp-1.30.0

target/py/.psycopg-3.3.9:
	python3 -m venv target/py
	target/py/bin/pip install --quiet --disable-pip-version-check "psycopg[binary]==3.3.9"
	touch $@

target/py/.componentize-py-0.25.1: target/py/.psycopg-3.3.9
	target/py/bin/pip install --quiet --disable-pip-version-check "componentize-py==0.25.1"
	touch $@

# The official OpenAI and Anthropic SDKs for the LLM tests (PyPI).
target/py/.llm-sdks-openai-3.57.0-anthropic-2.14.0: target/py/.psycopg-3.3.9
	target/py/bin/pip install --quiet --disable-pip-version-check "openai==3.57.0" "anthropic==2.14.0"
	touch $@

# The official MCP SDK (server and client) for the MCP tests (PyPI). The 1.x
# line: the protocol revisions with sessions (Mcp-Session-Id) and the legacy
# HTTP+SSE transport, which the gateway must handle.
target/py/.mcp-1.30.0: target/py/.psycopg-3.3.9
	target/py/bin/pip install --quiet --disable-pip-version-check "mcp==1.30.0"
	touch $@

# The real OpenID provider the identity tests run against (npm registry).
oidc-harness: tests/oidc/node_modules/.package-lock.json

tests/oidc/node_modules/.package-lock.json: tests/oidc/package.json tests/oidc/package-lock.json
	cd tests/oidc && npm ci --no-audit --no-fund --loglevel=error

# The console's browser test: Debian's Chromium and playwright-core (which
# drives it; no browser download).
console-harness: /usr/bin/chromium tests/console/node_modules/.package-lock.json

/usr/bin/chromium:
	apt-get install -y -q chromium >/dev/null || (apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null)

tests/console/node_modules/.package-lock.json: tests/console/package.json tests/console/package-lock.json
	cd tests/console && npm ci --no-audit --no-fund --loglevel=error

# kubectl for the Kubernetes tests: Debian's kubernetes-client when none is
# on the PATH. Its 1.20 speaks only SPDY for exec and port-forward, which
# Gatehouse relays too; the WebSocket exec and port-forward tests need
# kubectl 1.31 or later.
kubectl:
	@command -v kubectl >/dev/null || apt-get install -y -q kubernetes-client >/dev/null || (apt-get update -q >/dev/null && apt-get install -y -q kubernetes-client >/dev/null)

build:
	$(CARGO) build -p gatehouse -p gatehouse-tests --bins

test: toolchain plugins oidc-harness console-harness kubectl py-deps build
	$(CARGO) test --workspace --exclude gatehouse-tests
	$(CARGO) test -p gatehouse-tests -- --test-threads 2

demo: toolchain plugins build
	bash tests/demo/run.sh

bench: toolchain plugins
	$(CARGO) build --release -p gatehouse
	GATEHOUSE_BIN=target/release/gatehouse $(CARGO) bench -p gatehouse-tests --bench gateway

# pgbench side by side: direct, pgbouncer, gatehouse (needs PostgreSQL on 127.0.0.1:5432).
# Tunable: CLIENTS DURATION ROUNDS MODE WORKER_THREADS ..., e.g. `DURATION=5 ROUNDS=1 make bench-pg`.
bench-pg: toolchain plugins
	$(CARGO) build --release -p gatehouse
	GATEHOUSE_BIN=target/release/gatehouse bash tests/bench/pgbench.sh

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

clean:
	$(CARGO) clean
