#!/usr/bin/env bash
# Side-by-side pgbench: the same PostgreSQL reached three ways.
#
#   direct     pgbench -> 127.0.0.1:5432
#   pgbouncer  pgbench -> pgbouncer (session pooling, trust) -> 5432
#   gatehouse  pgbench -> gatehouse (postgres adapter, API key as password,
#              policies sql-guard + pii-mask, SQLite audit trail) -> 5432
#
# What it measures: the throughput (TPS) and mean latency a client sees for
# pgbench's select-only (-S) and TPC-B-like (default) scripts on each path,
# with the same clients, threads, duration and query protocol. Through
# Gatehouse every statement is parsed, decided by the "parse-and-decide"
# policy (sql-guard with deny rules), run past the "masking" policy (the same
# component with only mask settings: results are scanned for an email column
# and credit-card numbers) and recorded in the audit store; pgbouncer only
# forwards bytes. pgbouncer is the reference for "what any proxy hop costs".
#
# How to read it: runs are interleaved (direct, pgbouncer, gatehouse, in a
# rotating order, ROUNDS times) so background load hits every path alike;
# each row is the median over the rounds. "vs direct" is TPS / direct TPS.
# "proxy cpu us/txn" is the CPU time (user + system, all threads) the proxy
# process used per transaction: the proxy's own cost, which, unlike TPS,
# hardly moves with other load on the machine (select-only: one statement
# per transaction; TPC-B-like: seven). "user" and "system" split it: system
# is the kernel's side of the socket calls, which every proxy makes alike;
# user is the proxy's own work on top (pgbouncer's is close to nothing).
# The headline is select-only, where the per-statement proxy cost dominates:
# the aim is Gatehouse >= 0.80x direct and >= pgbouncer. The script prints
# AIM MET / AIM MISSED and exits 0 either way (it is a measurement, not a
# test); it exits 1 only when a pgbench run itself failed, and then prints
# the failing output and the end of the relevant log. On a small or busy
# machine the numbers are indicative only: pgbench, PostgreSQL and the proxy
# share the same cores.
#
# Usage: make bench-pg            (builds the release binary and policies)
#        DURATION=5 ROUNDS=1 make bench-pg
# Environment: CLIENTS (8), THREADS (2), DURATION seconds (20), ROUNDS (2),
#   MODE simple|extended|prepared (simple), SCALE (10), WARMUP seconds (3),
#   POLICY_TIMEOUT_MS (50, the product default), WORKER_THREADS (1: Gatehouse
#   forwards on one thread, as pgbouncer does; "auto" for one per CPU, the
#   product default), GATEHOUSE_BIN
#   (target/release/gatehouse), GATEHOUSE_LOG (the binary's default filter),
#   KEEP_WORK=1 keeps the temp dir (configs, logs, pgbench outputs).
# Needs: PostgreSQL on 127.0.0.1:5432 with trust auth for `postgres`, psql
#   and pgbench; pgbouncer is installed with apt-get if missing (its rows are
#   skipped if that fails).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

CLIENTS=${CLIENTS:-8}
THREADS=${THREADS:-2}
DURATION=${DURATION:-20}
ROUNDS=${ROUNDS:-2}
MODE=${MODE:-simple}
SCALE=${SCALE:-10}
WARMUP=${WARMUP:-3}
POLICY_TIMEOUT_MS=${POLICY_TIMEOUT_MS:-50}
WORKER_THREADS=${WORKER_THREADS:-1}
GATEHOUSE_BIN=${GATEHOUSE_BIN:-target/release/gatehouse}
WASM_DIR=$ROOT/target/wasm32-wasip2/wasm
PG_HOST=127.0.0.1
PG_PORT=5432
PG_SUPERUSER=postgres
DB=gatehouse_bench

case "$MODE" in simple | extended | prepared) ;; *)
    echo "MODE must be simple, extended or prepared (got $MODE)" >&2
    exit 2
    ;;
esac
[[ $WORKER_THREADS == auto || $WORKER_THREADS =~ ^[1-9][0-9]*$ ]] || {
    echo "WORKER_THREADS must be a positive integer or auto (got $WORKER_THREADS)" >&2
    exit 2
}
for n in CLIENTS THREADS DURATION ROUNDS SCALE WARMUP POLICY_TIMEOUT_MS; do
    [[ ${!n} =~ ^[0-9]+$ && ${!n} -gt 0 || ($n == WARMUP && ${!n} == 0) ]] || {
        echo "$n must be a positive integer (got ${!n})" >&2
        exit 2
    }
done
[[ -x $GATEHOUSE_BIN ]] || {
    echo "no $GATEHOUSE_BIN: run 'make bench-pg' (or cargo build --release -p gatehouse)" >&2
    exit 2
}
[[ -f $WASM_DIR/sql_guard.wasm ]] || {
    echo "no $WASM_DIR/sql_guard.wasm: run 'make plugins'" >&2
    exit 2
}
for tool in psql pgbench; do
    command -v "$tool" >/dev/null || {
        echo "$tool is not installed" >&2
        exit 2
    }
done

# Only what we pass explicitly; no TLS on any path, so the comparison is fair.
unset PGHOST PGPORT PGUSER PGDATABASE PGPASSWORD PGSERVICE PGOPTIONS || true
export PGSSLMODE=disable PGCONNECT_TIMEOUT=10

WORK=$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-pgbench.XXXXXX")
chmod 755 "$WORK"
GH_PID=""
PGBENCH_PID=""
BOUNCER_PID=""
BOUNCER_WRAPPER_PID=""
DB_CREATED=0
FAILED=0

log() { printf '\n== %s\n' "$*" >&2; }

upstream_psql() {
    psql -X -q -A -t -v ON_ERROR_STOP=1 -h "$PG_HOST" -p "$PG_PORT" -U "$PG_SUPERUSER" "$@"
}

stop_pid() { # pid: TERM, wait up to 5 s, then KILL.
    local pid=$1 i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    [[ -n $PGBENCH_PID ]] && stop_pid "$PGBENCH_PID"
    [[ -n $GH_PID ]] && stop_pid "$GH_PID"
    if [[ -f $WORK/pgbouncer/pgbouncer.pid ]]; then
        stop_pid "$(cat "$WORK/pgbouncer/pgbouncer.pid")"
    fi
    [[ -n $BOUNCER_PID ]] && stop_pid "$BOUNCER_PID"
    [[ -n $BOUNCER_WRAPPER_PID ]] && stop_pid "$BOUNCER_WRAPPER_PID"
    wait 2>/dev/null
    if ((DB_CREATED)); then
        upstream_psql -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 ||
            echo "warning: could not drop database $DB" >&2
    fi
    if [[ ${KEEP_WORK:-0} == 1 ]] || ((rc != 0 && rc != 130 && rc != 143)); then
        echo "work dir kept: $WORK" >&2
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT
trap 'exit 143' TERM

free_port() {
    local p
    for ((p = 20000 + RANDOM % 20000; ; p++)); do
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return
        fi
    done
}

wait_for_port() { # port seconds
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# --- 1. the upstream database ---------------------------------------------
log "upstream: $PG_SUPERUSER@$PG_HOST:$PG_PORT, database $DB (pgbench -i -s $SCALE)"
upstream_psql -d postgres -c "SELECT 1" >/dev/null || {
    echo "cannot reach PostgreSQL on $PG_HOST:$PG_PORT as $PG_SUPERUSER (trust auth expected)" >&2
    exit 2
}
MAX_CONN=$(upstream_psql -d postgres -c "SHOW max_connections")
((3 * CLIENTS + 10 <= MAX_CONN)) ||
    echo "warning: max_connections = $MAX_CONN; $CLIENTS clients per path may not fit" >&2
upstream_psql -d postgres -c "SET client_min_messages = warning" \
    -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null
DB_CREATED=1
upstream_psql -d postgres -c "CREATE DATABASE $DB" >/dev/null
pgbench -h "$PG_HOST" -p "$PG_PORT" -U "$PG_SUPERUSER" -i -s "$SCALE" -q "$DB" >"$WORK/init.log" 2>&1 || {
    echo "pgbench -i failed:" >&2
    cat "$WORK/init.log" >&2
    exit 1
}
grep -E '^done in' "$WORK/init.log" >&2 || true
upstream_psql -d "$DB" -c "SELECT count(*) FROM pgbench_accounts" >/dev/null
# Personal data for the masking policy; pgbench never reads it.
upstream_psql -d "$DB" >/dev/null <<'SQL'
CREATE TABLE customers (id int PRIMARY KEY, email text, card text);
INSERT INTO customers
SELECT i, 'customer' || i || '@example.com',
       CASE WHEN i % 2 = 0 THEN '4111 1111 1111 1111' ELSE '5500 0000 0000 0004' END
FROM generate_series(1, 1000) AS i;
SQL

# --- 2. pgbouncer ------------------------------------------------------------
BOUNCER_PORT=""
BOUNCER_SKIP=""
if ! command -v pgbouncer >/dev/null; then
    log "installing pgbouncer (apt-get)"
    if [[ $(id -u) -ne 0 ]]; then
        BOUNCER_SKIP="pgbouncer is not installed and this user cannot apt-get install it"
    elif ! { DEBIAN_FRONTEND=noninteractive apt-get install -y -q pgbouncer >"$WORK/apt.log" 2>&1 ||
        { apt-get update -q >>"$WORK/apt.log" 2>&1 &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q pgbouncer >>"$WORK/apt.log" 2>&1; }; }; then
        BOUNCER_SKIP="apt-get install pgbouncer failed: $({ grep -E '^E:' "$WORK/apt.log" || tail -n 2 "$WORK/apt.log"; } | tail -n 2 | tr '\n' ' ')"
    elif ! command -v pgbouncer >/dev/null; then
        BOUNCER_SKIP="apt-get installed pgbouncer but it is not on PATH"
    fi
fi
if [[ -z $BOUNCER_SKIP ]]; then
    BOUNCER_PORT=$(free_port)
    mkdir -p "$WORK/pgbouncer"
    cat >"$WORK/pgbouncer/pgbouncer.ini" <<EOF
[databases]
$DB = host=$PG_HOST port=$PG_PORT dbname=$DB user=$PG_SUPERUSER

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BOUNCER_PORT
unix_socket_dir =
auth_type = trust
auth_file = $WORK/pgbouncer/userlist.txt
pool_mode = session
max_client_conn = $((CLIENTS * 2 + 20))
default_pool_size = $((CLIENTS + 4))
max_db_connections = 0
ignore_startup_parameters = extra_float_digits
logfile = $WORK/pgbouncer/pgbouncer.log
pidfile = $WORK/pgbouncer/pgbouncer.pid
log_connections = 0
log_disconnections = 0
EOF
    printf '"%s" ""\n"bench" ""\n' "$PG_SUPERUSER" >"$WORK/pgbouncer/userlist.txt"
    log "pgbouncer $(pgbouncer --version 2>/dev/null | head -n 1) on 127.0.0.1:$BOUNCER_PORT (session pooling)"
    if [[ $(id -u) -eq 0 ]]; then
        # pgbouncer refuses to run as root.
        chown -R "$PG_SUPERUSER" "$WORK/pgbouncer"
        runuser -u "$PG_SUPERUSER" -- pgbouncer "$WORK/pgbouncer/pgbouncer.ini" \
            >"$WORK/pgbouncer/stdout.log" 2>&1 &
        BOUNCER_WRAPPER_PID=$!
    else
        pgbouncer "$WORK/pgbouncer/pgbouncer.ini" >"$WORK/pgbouncer/stdout.log" 2>&1 &
        BOUNCER_PID=$!
    fi
    if ! wait_for_port "$BOUNCER_PORT" 15 ||
        ! psql -X -q -A -t -h 127.0.0.1 -p "$BOUNCER_PORT" -U "$PG_SUPERUSER" -d "$DB" -c "SELECT 1" >/dev/null 2>"$WORK/pgbouncer/check.err"; then
        BOUNCER_SKIP="pgbouncer did not start: $({ cat "$WORK/pgbouncer/check.err" "$WORK/pgbouncer/stdout.log" 2>/dev/null || true; } | tail -n 5 | tr '\n' ' ')"
    fi
fi
if [[ -n $BOUNCER_SKIP ]]; then
    echo "skipping the pgbouncer rows: $BOUNCER_SKIP" >&2
fi

# --- 3. gatehouse -------------------------------------------------------------
GH_DIR=$WORK/gatehouse
mkdir -p "$GH_DIR/policies"
# The layout install_policy uses (tests/src/gatehouse.rs): NAME.json is in
# place before NAME.wasm, both written under a temporary name and renamed.
install_policy() { # name settings-json
    printf '%s\n' "$2" >"$GH_DIR/policies/.$1.json.tmp"
    mv "$GH_DIR/policies/.$1.json.tmp" "$GH_DIR/policies/$1.json"
    cp "$WASM_DIR/sql_guard.wasm" "$GH_DIR/policies/.$1.wasm.tmp"
    mv "$GH_DIR/policies/.$1.wasm.tmp" "$GH_DIR/policies/$1.wasm"
}
install_policy sql-guard '{"rules": [
  {"action": "deny", "kinds": ["drop", "truncate"], "unless_groups": ["dba"], "reason": "schema changes need a DBA"},
  {"action": "deny", "kinds": ["update", "delete"], "without_where": true, "reason": "UPDATE and DELETE need a WHERE clause"}
]}'
install_policy pii-mask '{"mask": [
  {"column": "email", "method": "partial", "prefix": 2, "suffix": 4},
  {"detector": "credit-card"}
]}'
mkdir -p "$ROOT/target/gatehouse-bench-cache"
# One connection thread by default: on two cores shared with PostgreSQL and
# pgbench, a second one mostly wakes the first (more context switches, more
# CPU per statement, fewer TPS), and pgbouncer runs on one thread too.
RUNTIME_TOML=""
[[ $WORKER_THREADS == auto ]] || RUNTIME_TOML=$'[runtime]\nworker_threads = '"$WORKER_THREADS"
cat >"$GH_DIR/gatehouse.toml" <<EOF
$RUNTIME_TOML

[audit]
database = "sqlite://audit.db"

[policies]
dir = "policies"
cache_dir = "$ROOT/target/gatehouse-bench-cache"
[policies.defaults]
timeout_ms = $POLICY_TIMEOUT_MS

[admin]
listen = "127.0.0.1:0"

[[connections]]
name = "bench"
protocol = "postgres"
listen = "127.0.0.1:0"
upstream = "postgres://$PG_HOST:$PG_PORT"
policies = ["sql-guard", "pii-mask"]

[connections.postgres]
user = "$PG_SUPERUSER"
allow_cleartext_password = true
EOF
GH_BIN_ABS=$(cd "$(dirname "$GATEHOUSE_BIN")" && pwd)/$(basename "$GATEHOUSE_BIN")
(
    cd "$GH_DIR"
    exec "$GH_BIN_ABS" serve --config gatehouse.toml >stdout.log 2>gatehouse.log </dev/null
) &
GH_PID=$!
GH_PORT=""
for ((i = 0; i < 1200; i++)); do
    if ! kill -0 "$GH_PID" 2>/dev/null; then
        echo "gatehouse exited during start-up; its log:" >&2
        tail -n 40 "$GH_DIR/gatehouse.log" >&2
        exit 1
    fi
    if grep -qx ready "$GH_DIR/stdout.log"; then
        GH_PORT=$(sed -n 's/^listening bench 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$GH_DIR/stdout.log")
        break
    fi
    sleep 0.1
done
[[ -n $GH_PORT ]] || {
    echo "gatehouse did not print 'listening bench ADDR' and 'ready' within 120 s; stdout:" >&2
    cat "$GH_DIR/stdout.log" >&2
    echo "log:" >&2
    tail -n 40 "$GH_DIR/gatehouse.log" >&2
    exit 1
}
GH_KEY=$(cd "$GH_DIR" && "$GH_BIN_ABS" keys create --config gatehouse.toml \
    --name bench --owner bench --groups dev 2>>"$GH_DIR/keys.log")
[[ $GH_KEY == ghk_* ]] || {
    echo "gatehouse keys create printed no key:" >&2
    cat "$GH_DIR/keys.log" >&2
    exit 1
}
log "gatehouse $("$GH_BIN_ABS" --version 2>/dev/null || echo) on 127.0.0.1:$GH_PORT (policies sql-guard, pii-mask; audit $GH_DIR/audit.db; worker threads: $WORKER_THREADS)"

# A quick check that both policies are live on this path.
gh_psql() {
    PGPASSWORD=$GH_KEY psql -X -q -A -t -h 127.0.0.1 -p "$GH_PORT" -U bench -d "$DB" "$@"
}
masked=$(gh_psql -c "SELECT email, card FROM customers WHERE id = 2" 2>&1) || {
    echo "a query through gatehouse failed: $masked" >&2
    tail -n 20 "$GH_DIR/gatehouse.log" >&2
    exit 1
}
denied=$(gh_psql -c "TRUNCATE customers" 2>&1 || true)
echo "check: SELECT email, card -> $masked" >&2
echo "check: TRUNCATE customers -> ${denied//$'\n'/ }" >&2
[[ $masked != *customer2@example.com* && $masked != *"4111 1111"* ]] ||
    echo "warning: the masking policy did not mask the check query" >&2
[[ $denied == *"denied by policy"* ]] ||
    echo "warning: the parse-and-decide policy did not deny TRUNCATE" >&2

# --- 4. the runs ---------------------------------------------------------------
TARGETS=(direct)
[[ -z $BOUNCER_SKIP ]] && TARGETS+=(pgbouncer)
TARGETS+=(gatehouse)
WORKLOADS=(select-only tpcb-like)
declare -A TPS LAT # key: workload/target, value: space-separated per-round values

target_conn() { # target -> "host port user password"
    case $1 in
    direct) echo "$PG_HOST $PG_PORT $PG_SUPERUSER -" ;;
    pgbouncer) echo "127.0.0.1 $BOUNCER_PORT $PG_SUPERUSER -" ;;
    gatehouse) echo "127.0.0.1 $GH_PORT bench $GH_KEY" ;;
    esac
}

# The vacuum and truncate pgbench does before each run (-n skips them; a
# policy would rightly refuse TRUNCATE through gatehouse), done the same way
# for every path, straight on the upstream.
reset_tables() {
    upstream_psql -d "$DB" -c "VACUUM pgbench_branches" -c "VACUUM pgbench_tellers" \
        -c "TRUNCATE pgbench_history" >/dev/null
}

# CPU time (user + system, in clock ticks) a proxy process has used; "-"
# for direct, which has no proxy. Divided by the transactions of a run it is
# the proxy's own cost per transaction, which depends far less on what else
# the machine is doing than TPS does.
proxy_pid() { # target -> pid or ""
    case $1 in
    pgbouncer) cat "$WORK/pgbouncer/pgbouncer.pid" 2>/dev/null || true ;;
    gatehouse) echo "$GH_PID" ;;
    esac
}
cpu_ticks() { # pid -> "user system" ticks (all threads), or "" when unknown
    [[ -n $1 && -r /proc/$1/stat ]] || return 0
    awk '{ print $14, $15 }' "/proc/$1/stat"
}
TICKS=$(getconf CLK_TCK)
# key: workload/target, value: space-separated µs per transaction, in all
# and split into user and system time (see the header).
declare -A CPU CPU_USER CPU_SYS

run_pgbench() { # workload target round
    local workload=$1 target=$2 round=$3 host port user pass out rc tps lat
    read -r host port user pass <<<"$(target_conn "$target")"
    local args=(-h "$host" -p "$port" -U "$user" -n -c "$CLIENTS" -j "$THREADS" -T "$DURATION" -M "$MODE")
    [[ $workload == select-only ]] && args+=(-S)
    out=$WORK/pgbench-$workload-$target-$round.txt
    reset_tables
    local pid ticks0 ticks1 txns cpu_us="" user_us="" sys_us=""
    pid=$(proxy_pid "$target")
    ticks0=$(cpu_ticks "$pid")
    rc=0
    # In the background and waited for, so Ctrl-C reaches the trap at once
    # (bash defers traps while a foreground child runs, and skips them when
    # that child survives the SIGINT); the trap then stops pgbench.
    (
        [[ $pass == - ]] || export PGPASSWORD=$pass
        exec pgbench "${args[@]}" "$DB"
    ) >"$out" 2>&1 &
    PGBENCH_PID=$!
    wait "$PGBENCH_PID" || rc=$?
    PGBENCH_PID=""
    ticks1=$(cpu_ticks "$pid")
    txns=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out")
    if [[ -n $ticks0 && -n $ticks1 && -n $txns && $txns -gt 0 ]]; then
        read -r cpu_us user_us sys_us < <(awk -v a="$ticks0" -v b="$ticks1" -v hz="$TICKS" -v n="$txns" 'BEGIN {
            split(a, t0, " "); split(b, t1, " "); f = 1e6 / hz / n
            u = (t1[1] - t0[1]) * f; s = (t1[2] - t0[2]) * f
            printf "%.1f %.1f %.1f\n", u + s, u, s }')
    fi
    tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)$/\1/p' "$out")
    lat=$(sed -n 's/^latency average = \([0-9.]*\) ms$/\1/p' "$out")
    local failed
    failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$out")
    if ((rc != 0)) || [[ -z $tps || -z $lat ]] || [[ -n $failed && $failed != 0 ]] ||
        grep -q 'aborted\|Run was aborted' "$out"; then
        FAILED=1
        printf '  %-12s %-10s round %d: FAILED (exit %d)\n' "$workload" "$target" "$round" "$rc" >&2
        echo "----- pgbench output ($out)" >&2
        grep -v '^progress:' "$out" | tail -n 30 >&2
        case $target in
        gatehouse)
            echo "----- gatehouse log, last 40 lines ($GH_DIR/gatehouse.log)" >&2
            tail -n 40 "$GH_DIR/gatehouse.log" >&2
            ;;
        pgbouncer)
            echo "----- pgbouncer log, last 20 lines" >&2
            tail -n 20 "$WORK/pgbouncer/pgbouncer.log" >&2
            ;;
        esac
        echo "-----" >&2
        [[ -n $tps && -n $lat ]] || return 0
    else
        printf '  %-12s %-10s round %d: %10.1f tps  %8.3f ms  proxy cpu %s us/txn (user %s, system %s)\n' \
            "$workload" "$target" "$round" "$tps" "$lat" "${cpu_us:--}" "${user_us:--}" "${sys_us:--}" >&2
    fi
    TPS[$workload/$target]+="$tps "
    if [[ -n $cpu_us ]]; then
        CPU[$workload/$target]+="$cpu_us "
        CPU_USER[$workload/$target]+="$user_us "
        CPU_SYS[$workload/$target]+="$sys_us "
    fi
    LAT[$workload/$target]+="$lat "
}

median() { # values...
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) exit
        if (NR % 2) printf "%.3f", v[(NR + 1) / 2]; else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

log "pgbench: -c $CLIENTS -j $THREADS -T $DURATION -M $MODE, $ROUNDS round(s), interleaved; $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
if ((WARMUP > 0)); then
    pgbench -h "$PG_HOST" -p "$PG_PORT" -U "$PG_SUPERUSER" -n -S -c "$CLIENTS" -j "$THREADS" \
        -T "$WARMUP" "$DB" >/dev/null 2>&1 || true
fi
for ((round = 1; round <= ROUNDS; round++)); do
    # Rotate the order each round so no path always runs first or last.
    n=${#TARGETS[@]}
    order=()
    for ((k = 0; k < n; k++)); do order+=("${TARGETS[$(((k + round - 1) % n))]}"); done
    for workload in "${WORKLOADS[@]}"; do
        for target in "${order[@]}"; do
            run_pgbench "$workload" "$target" "$round"
        done
    done
done

# --- 5. the table --------------------------------------------------------------
declare -A MED_TPS MED_LAT MED_CPU MED_USER MED_SYS
for workload in "${WORKLOADS[@]}"; do
    for target in "${TARGETS[@]}"; do
        key=$workload/$target
        # shellcheck disable=SC2086 # word splitting of the per-round values is intended
        [[ -n ${TPS[$key]:-} ]] && MED_TPS[$key]=$(median ${TPS[$key]}) && MED_LAT[$key]=$(median ${LAT[$key]})
        if [[ -n ${CPU[$key]:-} ]]; then
            # shellcheck disable=SC2086
            MED_CPU[$key]=$(median ${CPU[$key]}) MED_USER[$key]=$(median ${CPU_USER[$key]}) MED_SYS[$key]=$(median ${CPU_SYS[$key]})
        fi
    done
done

ratio() { # a b -> a/b or "-"
    [[ -n ${1:-} && -n ${2:-} ]] || { echo "-"; return; }
    awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "-" }'
}

echo
printf 'pgbench -c %s -j %s -T %ss -M %s, scale %s, median of %s round(s)\n' \
    "$CLIENTS" "$THREADS" "$DURATION" "$MODE" "$SCALE" "$ROUNDS"
printf '%-12s  %-10s  %10s  %14s  %9s  %16s  %8s  %8s\n' workload target TPS "avg lat (ms)" "vs direct" "proxy cpu us/txn" "user" "system"
printf '%-12s  %-10s  %10s  %14s  %9s  %16s  %8s  %8s\n' ------------ ---------- ---------- -------------- --------- ---------------- -------- --------
for workload in "${WORKLOADS[@]}"; do
    for target in direct pgbouncer gatehouse; do
        key=$workload/$target
        if [[ $target == pgbouncer && -n $BOUNCER_SKIP ]]; then
            printf '%-12s  %-10s  %10s  %14s  %9s\n' "$workload" "$target" skipped - -
        elif [[ -z ${MED_TPS[$key]:-} ]]; then
            printf '%-12s  %-10s  %10s  %14s  %9s\n' "$workload" "$target" FAILED - -
        else
            printf '%-12s  %-10s  %10.1f  %14.3f  %8sx  %16s  %8s  %8s\n' "$workload" "$target" "${MED_TPS[$key]}" \
                "${MED_LAT[$key]}" "$(ratio "${MED_TPS[$key]}" "${MED_TPS[$workload/direct]:-}")" "${MED_CPU[$key]:--}" \
                "${MED_USER[$key]:--}" "${MED_SYS[$key]:--}"
        fi
    done
done

gd=$(ratio "${MED_TPS[select-only/gatehouse]:-}" "${MED_TPS[select-only/direct]:-}")
gb=$(ratio "${MED_TPS[select-only/gatehouse]:-}" "${MED_TPS[select-only/pgbouncer]:-}")
echo
echo "select-only Gatehouse / direct:    ${gd}x"
echo "select-only Gatehouse / pgbouncer: ${gb}x"
if [[ $gd == - ]]; then
    echo "AIM MISSED (no select-only Gatehouse or direct result)"
elif [[ $gb == - ]]; then
    if awk -v r="$gd" 'BEGIN { exit !(r >= 0.80) }'; then
        echo "AIM MISSED (undetermined: Gatehouse >= 0.80x direct, but pgbouncer was not measured)"
    else
        echo "AIM MISSED (Gatehouse < 0.80x direct; pgbouncer was not measured)"
    fi
elif awk -v g="${MED_TPS[select-only/gatehouse]}" -v d="${MED_TPS[select-only/direct]}" \
    -v b="${MED_TPS[select-only/pgbouncer]}" 'BEGIN { exit !(g >= 0.80 * d && g >= b) }'; then
    echo "AIM MET (select-only Gatehouse >= 0.80x direct and >= pgbouncer)"
else
    echo "AIM MISSED (aim: select-only Gatehouse >= 0.80x direct and >= pgbouncer)"
fi
if ((FAILED)); then
    echo "some pgbench runs failed (details above); work dir: $WORK" >&2
    KEEP_WORK=1
    exit 1
fi
exit 0
