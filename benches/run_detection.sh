#!/usr/bin/env bash
# Service and version detection time per open port: `vigil scan --banners` against `nmap -sV`
# on the same real daemons (sshd, nginx, vsftpd, redis-server, PostgreSQL from Debian's
# packages, started on free 127.0.0.1 ports by .ci/daemons.sh), in the same run, alternating
# the two tools so that both see the same machine. Build first:
#
#   cargo build --release -p vigil-cli --bin vigil
#   benches/run_detection.sh
#
# Environment:
#   DETECTION_RUNS   runs of each tool (default 5)
#   DETECTION_PROBES a probe file for vigil's second column (default nmap's, where Debian installs it)
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
RUNS=${DETECTION_RUNS:-5}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
VIGIL=$TARGET/release/vigil
PROBES=${DETECTION_PROBES:-/usr/share/nmap/nmap-service-probes}
[[ -x "$VIGIL" ]] || { echo "missing $VIGIL: build it first (see the header)" >&2; exit 2; }
command -v nmap >/dev/null || { echo "nmap is not installed" >&2; exit 2; }

WORK=$(mktemp -d -t vigil-detection.XXXXXX)
trap 'bash .ci/daemons.sh stop "$WORK"; rm -rf "$WORK"' EXIT
spec=$(bash .ci/daemons.sh start "$WORK")
spec=${spec#VIGIL_REAL_DAEMONS=}
ports=$(echo "$spec" | tr ',' '\n' | sed 's/.*://' | paste -sd, -)
n=$(echo "$ports" | tr ',' '\n' | wc -l)
echo "daemons: $spec"

elapsed() { # command... -> seconds on stdout
    local start end
    start=$(date +%s.%N)
    "$@" >/dev/null 2>&1
    end=$(date +%s.%N)
    awk -v a="$start" -v b="$end" 'BEGIN { print b - a }'
}

div() { awk -v a="$1" -v b="$2" 'BEGIN { print a / b }'; }

median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

: >"$WORK/vigil" ; : >"$WORK/vigil-nmap-file" ; : >"$WORK/nmap"
for _ in $(seq 1 "$RUNS"); do
    elapsed "$VIGIL" scan 127.0.0.1 -p "$ports" --banners --json --fail-on never >>"$WORK/vigil"
    if [[ -r "$PROBES" ]]; then
        elapsed "$VIGIL" scan 127.0.0.1 -p "$ports" --banners --json --fail-on never \
            --service-probes "$PROBES" >>"$WORK/vigil-nmap-file"
    fi
    elapsed nmap -sV -Pn -n -p "$ports" 127.0.0.1 >>"$WORK/nmap"
done

v=$(median <"$WORK/vigil")
vn=$( [[ -s "$WORK/vigil-nmap-file" ]] && median <"$WORK/vigil-nmap-file" || echo nan)
m=$(median <"$WORK/nmap")
printf '\n%-44s %10s %14s %10s\n' "tool ($n open ports, median of $RUNS runs)" "wall s" "s per port" "vs nmap"
printf '%-44s %10.2f %14.3f %9.2fx\n' "vigil scan --banners (built-in probes)" "$v" "$(div "$v" "$n")" "$(div "$v" "$m")"
if [[ "$vn" != nan ]]; then
    printf '%-44s %10.2f %14.3f %9.2fx\n' "vigil scan --banners --service-probes nmap's" "$vn" "$(div "$vn" "$n")" "$(div "$vn" "$m")"
fi
printf '%-44s %10.2f %14.3f %9.2fx\n' "nmap -sV" "$m" "$(div "$m" "$n")" 1
