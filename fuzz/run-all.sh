#!/usr/bin/env bash
# Runs every cargo-fuzz target of the repository for a bounded time each and prints, per target,
# the executions, seconds and crashes.
#
#   fuzz/run-all.sh [SECONDS_PER_TARGET]        (default 60)
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). The targets live
# beside the parsers they cover, in <crate>/fuzz/ (outside the workspace). Grown corpora go to
# <crate>/fuzz/corpus/<target>/ and crash inputs to <crate>/fuzz/artifacts/<target>/ (both
# git-ignored); the committed seeds are in <crate>/fuzz/seeds/<target>/.
#
# Environment:
#   FUZZ_SANITIZER  cargo-fuzz sanitizer (default: none; the crates forbid unsafe code, and the
#                   point is panics, overflows and hangs; `address` is about 2x slower)
#   FUZZ_TARGETS    space-separated subset, as crate/target (e.g. "sec-scan/target")
#   FUZZ_ARGS       extra libFuzzer arguments (e.g. "-max_len=65536")
#
# Exit status: 0 when no target crashed, 1 when one did, 2 when a tool is missing.
set -uo pipefail

seconds="${1:-60}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
    echo "usage: $0 [SECONDS_PER_TARGET]" >&2
    exit 2
fi
root="$(cd "$(dirname "$0")/.." && pwd)"
sanitizer="${FUZZ_SANITIZER:-none}"

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "the nightly toolchain is missing: rustup toolchain install nightly" >&2
    exit 2
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is missing: cargo install cargo-fuzz" >&2
    exit 2
fi

all_targets=(
    geo-locate/mac geo-locate/cell_id geo-locate/ocid_import geo-locate/wigle_import
    geo-locate/geolocate_body geo-locate/geosubmit_body
    sec-scan/port_spec sec-scan/target sec-scan/signature_toml sec-scan/service_probes
    sec-scan/nvd_import sec-scan/osv_import sec-scan/kev_import sec-scan/epss_import
    server/ws_client_message server/socketio_scan_result
)
read -r -a targets <<< "${FUZZ_TARGETS:-${all_targets[*]}}"

results=()
crashed=0
built=""
for entry in "${targets[@]}"; do
    crate="${entry%%/*}"
    target="${entry#*/}"
    fuzz_dir="$root/$crate/fuzz"
    if [ ! -f "$fuzz_dir/fuzz_targets/$target.rs" ]; then
        echo "no fuzz target $entry" >&2
        exit 2
    fi
    if [[ " $built " != *" $crate "* ]]; then
        echo "== building $crate fuzz targets (sanitizer: $sanitizer)" >&2
        if ! cargo +nightly fuzz build --fuzz-dir "$fuzz_dir" -s "$sanitizer" >&2; then
            echo "building $crate/fuzz failed" >&2
            exit 2
        fi
        built="$built $crate"
    fi
    corpus="$fuzz_dir/corpus/$target"
    artifacts="$fuzz_dir/artifacts/$target"
    mkdir -p "$corpus" "$artifacts"
    before=$(find "$artifacts" -type f | wc -l)
    log="$(mktemp)"
    echo "== $entry for ${seconds}s" >&2
    start=$(date +%s)
    # shellcheck disable=SC2086 # FUZZ_ARGS is a list of arguments
    cargo +nightly fuzz run --fuzz-dir "$fuzz_dir" -s "$sanitizer" "$target" \
        "$corpus" "$fuzz_dir/seeds/$target" -- \
        -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
        -artifact_prefix="$artifacts/" ${FUZZ_ARGS:-} >"$log" 2>&1
    status=$?
    elapsed=$(( $(date +%s) - start ))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    if [ -z "$execs" ]; then
        # A crash ends the run before the final stats: take the last progress line.
        execs=$(grep -Eo '^#[0-9]+' "$log" | tail -n 1 | tr -d '#')
    fi
    after=$(find "$artifacts" -type f | wc -l)
    crashes=$(( after - before ))
    if [ "$status" -ne 0 ] && [ "$crashes" -eq 0 ]; then
        crashes=1
    fi
    if [ "$crashes" -gt 0 ]; then
        crashed=1
        echo "-- $entry crashed (exit $status); last lines of its log:" >&2
        tail -n 30 "$log" >&2
        echo "-- inputs in $artifacts" >&2
    fi
    rm -f "$log"
    results+=("$(printf '%-30s %14s %8s %8s' "$entry" "${execs:-?}" "$elapsed" "$crashes")")
done

printf '\n%-30s %14s %8s %8s\n' "target" "executions" "seconds" "crashes"
printf '%s\n' "${results[@]}"
exit "$crashed"
