#!/usr/bin/env bash
# Starts a release `vigil serve` on loopback with a fresh data directory and replays the
# findings of the security review against it, as an attacker without a token would: first
# http_hostile (long method names, then an unfinished request head; JSON lines), then
# hostile_load (anonymous /ws sockets held open while credentialed clients get in, then
# Engine.IO handshakes without a token). The server is stopped on exit, failure included.
# Build first:
#
#   cargo build --release -p vigil-cli -p vigil-benches --bin vigil --bin http_hostile --bin hostile_load
#   benches/run_hostile.sh
#
# Environment:
#   HOSTILE_PORT          port on 127.0.0.1 (default 18480)
#   HOSTILE_METHOD_BYTES  bytes of each method name (default 4096)
#   HOSTILE_REQUESTS      requests (default 2000)
#   HOSTILE_SOCKETS       anonymous /ws sockets held open (default 12000)
#   HOSTILE_HANDSHAKES    Engine.IO handshakes without a token (default 20000)
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
PORT=${HOSTILE_PORT:-18480}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release
for exe in vigil http_hostile hostile_load; do
    [[ -x "$BIN/$exe" ]] || { echo "missing $BIN/$exe: build it first (see the header)" >&2; exit 2; }
done

WORK=$(mktemp -d -t vigil-http-hostile.XXXXXX)
# shellcheck source=benches/server_lib.sh
source benches/server_lib.sh
cleanup() {
    stop_server
    rm -rf "$WORK"
}
trap cleanup EXIT

# Starts a fresh server (new data directory) and sets SERVER_PID and TOKEN.
start_fresh_server() {
    rm -rf "$WORK/data"
    "$BIN/vigil" serve --data-dir "$WORK/data" --bind "127.0.0.1:$PORT" --no-local-agent \
        2>"$WORK/serve.log" &
    SERVER_PID=$!
    for _ in $(seq 100); do
        grep -q "listening" "$WORK/serve.log" 2>/dev/null && break
        sleep 0.1
    done
    TOKEN=$(grep -oE 'vgl_[A-Za-z0-9_-]+' "$WORK/serve.log" | head -n1)
    [[ -n "$TOKEN" ]] || { echo "no admin token in the server's output" >&2; cat "$WORK/serve.log" >&2; exit 1; }
    sleep 1 # let the server settle before the first RSS reading
}

start_fresh_server
VIGIL_TOKEN=$TOKEN "$BIN/http_hostile" --url "127.0.0.1:$PORT" --server-pid "$SERVER_PID" \
    --requests "${HOSTILE_REQUESTS:-2000}" --method-bytes "${HOSTILE_METHOD_BYTES:-4096}"

# A fresh server for the socket floods, so each step's RSS starts from the same place.
stop_server
start_fresh_server
"$BIN/hostile_load" --server "127.0.0.1:$PORT" --pid "$SERVER_PID" --token "$TOKEN" \
    --sockets "${HOSTILE_SOCKETS:-12000}" --handshakes "${HOSTILE_HANDSHAKES:-20000}"
