#!/usr/bin/env bash
# Runs vigil and the two baselines (aiohttp as in seed 001, Node.js `ws`) back to back on the same
# WebSocket scenarios with the same generator (ws_load), on loopback only, each run bounded in
# time, and prints a table. Every server it starts is stopped on exit, failure included.
#
#   benches/run_ws_bench.sh                      # the full scenarios
#   WS_BENCH_IDLE=2000 WS_BENCH_DURATION=5 benches/run_ws_bench.sh   # a quick run
#
# Environment:
#   WS_BENCH_DURATION  seconds of publishing in fan-out and latency runs (default 10)
#   WS_BENCH_CLIENTS   subscribers in fan-out and latency runs (default 1000)
#   WS_BENCH_IDLE      idle connections (default 10000; vigil's default cap is 10 000)
#   WS_BENCH_SERVERS   which servers, space-separated (default "vigil aiohttp node")
#   WS_BENCH_SCENARIOS which scenarios (default "fanout latency idle slow")
#   WS_BENCH_PORT      first port (default 18400; three consecutive ports are used)
#   WS_BENCH_OUT       where the JSON lines go (default: a file in a temporary directory, printed)
#   VIGIL_BASE_BIN     another `vigil` binary (main before a change, built the same way): with
#                      "base" in WS_BENCH_SERVERS it runs as a fourth server, and the table gains
#                      a vigil/base column (the same-run before/after comparison)
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
DURATION=${WS_BENCH_DURATION:-10}
CLIENTS=${WS_BENCH_CLIENTS:-1000}
IDLE=${WS_BENCH_IDLE:-10000}
SERVERS=${WS_BENCH_SERVERS:-vigil aiohttp node}
SCENARIOS=${WS_BENCH_SCENARIOS:-fanout latency idle slow}
PORT=${WS_BENCH_PORT:-18400}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release

WORK=$(mktemp -d -t vigil-ws-bench.XXXXXX)
OUT=${WS_BENCH_OUT:-$WORK/results.jsonl}
: >"$OUT"
# shellcheck source=benches/server_lib.sh
source benches/server_lib.sh
cleanup() {
    stop_server
    if [[ -z "${WS_BENCH_OUT:-}" ]]; then
        echo "results: $OUT (kept)" >&2
        find "$WORK" -mindepth 1 -maxdepth 1 ! -name results.jsonl -exec rm -rf {} +
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== build" >&2
cargo build --release -p vigil-cli --bin vigil >&2
cargo build --release -p vigil-benches --bin ws_load >&2

echo "== baseline dependencies" >&2
if [[ " $SERVERS " == *" aiohttp "* ]] && ! python3 -c 'import aiohttp' 2>/dev/null; then
    python3 -m pip install --quiet aiohttp >&2
fi
if [[ " $SERVERS " == *" node "* ]] && [[ ! -d benches/baselines/node_modules/ws ]]; then
    (cd benches/baselines && npm install --no-audit --no-fund >&2)
fi

wait_port() {
    local port=$1
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        kill -0 "$SERVER_PID" 2>/dev/null || { echo "server exited" >&2; return 1; }
        sleep 0.1
    done
    echo "server did not listen on $port" >&2
    return 1
}

# start_server NAME: starts it fresh (new data directory for vigil), sets SERVER_PID, PORT_OF,
# and GEN_ARGS (the generator's protocol flags).
start_server() {
    local name=$1
    case "$name" in
    vigil | base)
        PORT_OF=$PORT
        local dir binary="$BIN/vigil"
        if [[ "$name" == base ]]; then
            binary=${VIGIL_BASE_BIN:?set VIGIL_BASE_BIN to the baseline vigil binary}
        fi
        dir=$(mktemp -d -p "$WORK" vigil-data.XXXXXX)
        "$binary" serve --bind "127.0.0.1:$PORT_OF" --data-dir "$dir" --no-local-agent \
            >"$WORK/vigil.out" 2>"$WORK/vigil.err" &
        SERVER_PID=$!
        wait_port "$PORT_OF"
        local token=""
        for _ in $(seq 50); do
            token=$(grep -o 'vgl_[A-Za-z0-9_-]*' "$WORK/vigil.err" | head -n 1 || true)
            [[ -n "$token" ]] && break
            sleep 0.1
        done
        [[ -n "$token" ]] || { echo "no admin token from vigil" >&2; return 1; }
        export VIGIL_TOKEN=$token
        GEN_ARGS=(--protocol vigil)
        ;;
    aiohttp)
        PORT_OF=$((PORT + 1))
        python3 benches/baselines/aiohttp_server.py --port "$PORT_OF" >"$WORK/aiohttp.log" 2>&1 &
        SERVER_PID=$!
        wait_port "$PORT_OF"
        GEN_ARGS=(--protocol plain)
        ;;
    node)
        PORT_OF=$((PORT + 2))
        node benches/baselines/node_ws_server.js --port "$PORT_OF" >"$WORK/node.log" 2>&1 &
        SERVER_PID=$!
        wait_port "$PORT_OF"
        GEN_ARGS=(--protocol plain)
        ;;
    *)
        echo "unknown server $name" >&2
        return 1
        ;;
    esac
}

scenario_args() {
    case "$1" in
    # At most 48 connections wait for their `auth` at once: vigil admits 64 unauthenticated
    # sockets per source address and makes room by closing the oldest (the generator's 200 at
    # once lost a quarter to half of its clients, so runs compared different client counts).
    fanout) echo "--mode fanout --clients $CLIENTS --rate 100 --duration $DURATION --timeout $((DURATION + 60)) --connect-concurrency 48" ;;
    latency) echo "--mode fanout --clients $CLIENTS --rate 50 --duration $DURATION --timeout $((DURATION + 60)) --connect-concurrency 48" ;;
    idle) echo "--mode idle --clients $IDLE --timeout 120" ;;
    # 20 s: long enough for a 1 MiB queue plus kernel buffers to fill at 800 KB/s, and a grace.
    slow) echo "--mode slow --clients 100 --slow 5 --payload 8192 --rate 100 --duration 20 --timeout 90" ;;
    esac
}

for scenario in $SCENARIOS; do
    for server in $SERVERS; do
        echo "== $scenario: $server (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
        start_server "$server"
        # shellcheck disable=SC2046 # word splitting of the scenario's flags is intended
        if ! "$BIN/ws_load" --url "127.0.0.1:$PORT_OF" "${GEN_ARGS[@]}" --server-pid "$SERVER_PID" \
            --label "$server/$scenario" $(scenario_args "$scenario") >"$WORK/run.out"; then
            echo "ws_load failed for $server/$scenario" >&2
        fi
        grep -v '^{' "$WORK/run.out" >&2 || true
        grep '^{' "$WORK/run.out" >>"$OUT" || true
        stop_server
        sleep 1
    done
done

python3 - "$OUT" <<'EOF'
import json, sys

rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
by = {}
for r in rows:
    server, scenario = r["label"].split("/")
    by[(scenario, server)] = r

def f(v, d=1):
    return "-" if v is None else f"{v:.{d}f}"

metrics = {
    "fanout": [("delivered %", "delivered_pct", 2), ("delivered/s", "delivered_per_s", 0),
               ("server µs/delivery", "server_us_per_delivery", 2), ("p99 ms", "p99_ms", 1),
               ("server CPU %", "server_cpu_pct", 0), ("generator CPU %", "generator_cpu_pct", 0)],
    "latency": [("p50 ms", "p50_ms", 2), ("p99 ms", "p99_ms", 2), ("p99.9 ms", "p999_ms", 2),
                ("max ms", "max_ms", 1), ("delivered %", "delivered_pct", 2),
                ("server µs/delivery", "server_us_per_delivery", 2),
                ("generator CPU %", "generator_cpu_pct", 0)],
    "idle": [("connected", "connected", 0), ("KiB/conn", "server_rss_per_conn_kib", 2)],
    "slow": [("others delivered %", "delivered_pct", 2), ("others p99 ms", "p99_ms", 1),
             ("server RSS max MiB", "server_rss_max", 1),
             ("generator CPU %", "generator_cpu_pct", 0)],
}
servers = [s for s in ["vigil", "base", "aiohttp", "node"] if any(k[1] == s for k in by)]
print()
print(f"{'scenario':<9} {'metric':<20} " + " ".join(f"{s:>10}" for s in servers)
      + "  vigil/aiohttp  vigil/node  vigil/base")
for scenario, ms in metrics.items():
    for name, key, d in ms:
        vals = []
        for s in servers:
            v = by.get((scenario, s), {}).get(key)
            if key == "server_rss_max" and v is not None:
                v = v / 1048576
            vals.append(v)
        if all(v is None for v in vals):
            continue
        ratio = []
        v0 = vals[0] if servers and servers[0] == "vigil" else None
        for s in ("aiohttp", "node", "base"):
            v = vals[servers.index(s)] if s in servers else None
            ratio.append(f(v0 / v, 2) if v0 is not None and v else "-")
        print(f"{scenario:<9} {name:<20} " + " ".join(f"{f(v, d):>10}" for v in vals)
              + f"  {ratio[0]:>13}  {ratio[1]:>10}  {ratio[2]:>10}")
    if scenario == "slow":
        for s in servers:
            r = by.get((scenario, s))
            if not r:
                continue
            closed = [c for c in r.get("slow_server_closed_after_s", []) if c is not None]
            print(f"{'slow':<9} {s}: server closed {len(closed)}/{r['slow']} slow clients"
                  + (f" (last {max(closed):.1f} s after publishing began)" if closed else "")
                  + f", client saw 4008 ×{r['slow_closed_4008']}, cut without close frame"
                  f" ×{r['slow_ended_without_close']}, still open ×{r['slow_never_closed']}")
loads = sorted({r["load_before"] for r in rows})
print(f"\nload average before each run: {', '.join(loads)}")
EOF
