#!/usr/bin/env bash
# Cross-node /ws fan-out (DESIGN §10 "cross-node fan-out"): two vigil nodes on one redis-server and
# one PostgreSQL, subscribers on both, events published on the first; then, in the same run, one
# node alone (SQLite, in-process bus) with the same number of subscribers as the baseline. Starts
# its own redis-server, PostgreSQL (initdb in a temporary directory) and nodes on free 127.0.0.1
# ports, and stops them all on exit, failure included. Each phase is bounded in time.
#
#   benches/run_cluster_bench.sh
#   CLUSTER_BENCH_CLIENTS=250 CLUSTER_BENCH_DURATION=10 benches/run_cluster_bench.sh
#
# Environment:
#   CLUSTER_BENCH_CLIENTS   subscribers per cluster node (default 500; the baseline node gets twice that)
#   CLUSTER_BENCH_RATE      events per second (default 100)
#   CLUSTER_BENCH_DURATION  seconds of publishing (default 10)
#   CLUSTER_BENCH_THREADS   the load generator's runtime threads (default 1: one core, so on a
#                           small machine the generator's own queueing is part of the latency)
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
CLIENTS=${CLUSTER_BENCH_CLIENTS:-500}
RATE=${CLUSTER_BENCH_RATE:-100}
DURATION=${CLUSTER_BENCH_DURATION:-10}
THREADS=${CLUSTER_BENCH_THREADS:-1}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release

for tool in redis-server python3; do
    command -v "$tool" >/dev/null || { echo "$tool is needed" >&2; exit 1; }
done
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [[ -z "$PG_BIN" ]] && command -v initdb >/dev/null; then PG_BIN=$(dirname "$(command -v initdb)"); fi
[[ -x "$PG_BIN/initdb" ]] || { echo "PostgreSQL (initdb, pg_ctl) is needed" >&2; exit 1; }

WORK=$(mktemp -d -t vigil-cluster-bench.XXXXXX)
PIDS=()
as_postgres() {
    if [[ "$(id -u)" -eq 0 ]]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi
}
cleanup() {
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [[ -f "$WORK/pg/data/postmaster.pid" ]]; then
        as_postgres "'$PG_BIN/pg_ctl' -D '$WORK/pg/data' -m immediate stop" >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

echo "== build" >&2
cargo build --release -p vigil-cli --bin vigil >&2
cargo build --release -p vigil-benches --bin cluster_fanout >&2

echo "== redis-server and PostgreSQL on loopback" >&2
REDIS_PORT=$(free_port)
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
    --dir "$WORK" --logfile "$WORK/redis.log" &
PIDS+=($!)
PG_PORT=$(free_port)
mkdir -p "$WORK/pg"
if [[ "$(id -u)" -eq 0 ]]; then chown postgres "$WORK/pg"; chmod o+x "$WORK"; fi
as_postgres "'$PG_BIN/initdb' -D '$WORK/pg/data' -A trust -U vigil --no-sync >/dev/null"
as_postgres "'$PG_BIN/pg_ctl' -D '$WORK/pg/data' -l '$WORK/pg/log' -w -o \"-p $PG_PORT -k '$WORK/pg' -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off\" start >/dev/null"
DATABASE_URL="postgres://vigil@127.0.0.1:$PG_PORT/postgres"
REDIS_URL="redis://127.0.0.1:$REDIS_PORT/"

# start_node NAME [serve flags...]: starts `vigil serve` in the background, waits for /readyz;
# sets NODE_ADDR.
start_node() {
    local name=$1
    shift
    local port
    port=$(free_port)
    mkdir -p "$WORK/$name"
    (cd "$WORK/$name" && exec env RUST_LOG=warn "$BIN/vigil" serve --bind "127.0.0.1:$port" \
        --data-dir "$WORK/$name/data" --no-local-agent "$@") 2>"$WORK/$name.err" &
    PIDS+=($!)
    for _ in $(seq 300); do
        if python3 -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:$port/readyz', timeout=1).status == 200 else 1)" 2>/dev/null; then
            NODE_ADDR="127.0.0.1:$port"
            return 0
        fi
        sleep 0.1
    done
    echo "$name did not become ready:" >&2
    cat "$WORK/$name.err" >&2
    return 1
}
first_token() {
    grep -o 'vgl_[A-Za-z0-9_-]*' "$WORK/$1.err" | head -n 1
}

echo "== two cluster nodes" >&2
start_node node-a --database-url "$DATABASE_URL" --redis-url "$REDIS_URL"
NODE_A=$NODE_ADDR
start_node node-b --database-url "$DATABASE_URL" --redis-url "$REDIS_URL"
NODE_B=$NODE_ADDR
CLUSTER_TOKEN=$(first_token node-a)
[[ -n "$CLUSTER_TOKEN" ]] || { echo "no admin token from node A" >&2; exit 1; }

echo "== cross-node fan-out: $CLIENTS clients on each of 2 nodes, $RATE events/s on node A for $DURATION s" >&2
VIGIL_TOKEN=$CLUSTER_TOKEN "$BIN/cluster_fanout" --label cluster --nodes "$NODE_A,$NODE_B" \
    --clients "$CLIENTS" --rate "$RATE" --duration "$DURATION" --threads "$THREADS" | tee "$WORK/cluster.txt"

# The cluster is stopped before the baseline runs, so the two do not share the machine.
for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
PIDS=()

echo "== single node, in-process bus: $((CLIENTS * 2)) clients, $RATE events/s for $DURATION s" >&2
start_node single
SINGLE=$NODE_ADDR
SINGLE_TOKEN=$(first_token single)
VIGIL_TOKEN=$SINGLE_TOKEN "$BIN/cluster_fanout" --label single --nodes "$SINGLE" \
    --clients "$((CLIENTS * 2))" --rate "$RATE" --duration "$DURATION" --threads "$THREADS" | tee "$WORK/single.txt"
