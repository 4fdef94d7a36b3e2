#!/usr/bin/env bash
# Measures `POST /v1/geolocate` throughput and latency on an imported cell dump: writes a
# synthetic OpenCellID-format dump, imports it with `vigil geodb import`, starts `vigil serve` on
# loopback and runs geolocate_load against it, bounded in time. The server is stopped on exit,
# failure included.
#
#   benches/run_geo_bench.sh
#   GEO_BENCH_ROWS=200000 GEO_BENCH_DURATION=5 benches/run_geo_bench.sh   # a quick run
#
# Environment:
#   GEO_BENCH_ROWS         rows of the generated dump (default 1000000)
#   GEO_BENCH_DURATION     seconds of measured load (default 10)
#   GEO_BENCH_CONNECTIONS  keep-alive connections, one request in flight each (default 32)
#   GEO_BENCH_PORT         the server's port (default 18450)
#   GEO_BENCH_OUT          where the JSON line goes (default: printed only)
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
ROWS=${GEO_BENCH_ROWS:-1000000}
DURATION=${GEO_BENCH_DURATION:-10}
CONNECTIONS=${GEO_BENCH_CONNECTIONS:-32}
PORT=${GEO_BENCH_PORT:-18450}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release

WORK=$(mktemp -d -t vigil-geo-bench.XXXXXX)
# shellcheck source=benches/server_lib.sh
source benches/server_lib.sh
cleanup() {
    stop_server
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== build" >&2
cargo build --release -p vigil-cli --bin vigil >&2
cargo build --release -p vigil-benches --bin geolocate_load >&2

echo "== dump ($ROWS rows) and import" >&2
"$BIN/geolocate_load" --write-dump "$WORK/cells.csv" --rows "$ROWS"
"$BIN/vigil" geodb import "$WORK/cells.csv" --data-dir "$WORK/data" >&2

echo "== serve" >&2
"$BIN/vigil" serve --bind "127.0.0.1:$PORT" --data-dir "$WORK/data" --no-local-agent \
    >"$WORK/vigil.out" 2>"$WORK/vigil.err" &
SERVER_PID=$!
token=""
for _ in $(seq 100); do
    token=$(grep -o 'vgl_[A-Za-z0-9_-]*' "$WORK/vigil.err" | head -n 1 || true)
    if [[ -n "$token" ]] && (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
        break
    fi
    kill -0 "$SERVER_PID" 2>/dev/null || { echo "server exited" >&2; cat "$WORK/vigil.err" >&2; exit 1; }
    sleep 0.1
done
[[ -n "$token" ]] || { echo "no admin token from vigil" >&2; exit 1; }

echo "== load (load average $(cut -d' ' -f1-3 /proc/loadavg))" >&2
VIGIL_TOKEN=$token "$BIN/geolocate_load" --url "127.0.0.1:$PORT" --cells "$WORK/cells.csv" \
    --connections "$CONNECTIONS" --duration "$DURATION" --server-pid "$SERVER_PID" \
    --timeout $((DURATION + 60)) --label "vigil/geolocate" | tee "$WORK/run.out"
if [[ -n "${GEO_BENCH_OUT:-}" ]]; then
    grep '^{' "$WORK/run.out" >>"$GEO_BENCH_OUT"
fi
