#!/usr/bin/env bash
# Load benchmark of the hashmap service on loopback.
#
# Builds nhm-server (release), bulk-loads a seeded synthetic gallery of binary templates
# (dim 256, one per subject) straight into the embedded store, starts the server, and drives
# it with wrk (64 connections, bounded duration, 127.0.0.1 only) for verify (1:1) and
# identify (1:N, k=5), printing requests/s and p50/p99 latency.
#
#   bash bench/load.sh                       # galleries of 10 000 and 1 000 000
#   N_LIST="10000" DURATION=5s bash bench/load.sh
#   BIN=/tmp/nhm-server-old N_LIST=10000 bash bench/load.sh   # another build, same machine
#
# Needs wrk (apt-get install -y wrk). Targets (DESIGN.md §6 brief): >= 30 000 verify/s, and 1:N
# over 1M templates at p99 <= 20 ms, on 2 cores. wrk runs on the same 2 cores as the server,
# so the figures are a lower bound of the server alone.
# The threshold in the generated config is for throughput only (it decides nothing measured
# here); a real deployment uses the one `nhm eval` chose on a development split.
set -euo pipefail

N_LIST=${N_LIST:-"10000 1000000"}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
SEED=${SEED:-1}

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
command -v wrk >/dev/null || { echo "wrk not found: apt-get install -y wrk" >&2; exit 1; }
# BIN=/path/to/nhm-server compares another build (e.g. an older revision) in the same run.
if [ -z "${BIN:-}" ]; then
    cargo build --release -p nhm-cli --bin nhm-server >&2
    BIN=$ROOT/target/release/nhm-server
fi

WORK=$(mktemp -d)
SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# Runs wrk and prints one summary line: name, requests/s, p50, p99, errors.
run_wrk() {
    local name=$1 conns=$2 script=$3 url=$4
    local out threads=$THREADS
    [ "$conns" -lt "$threads" ] && threads=$conns
    out=$(wrk -t"$threads" -c"$conns" -d"$DURATION" --latency -s "$script" "$url")
    local rps p50 p99 non2xx
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1=="50%" {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {print $2}' <<<"$out")
    non2xx=$(awk '/Non-2xx/ {print $5}' <<<"$out")
    printf '%-28s conns=%-3s req/s=%-10s p50=%-9s p99=%-9s non-2xx=%s\n' "$name" "$conns" "$rps" "$p50" "$p99" "${non2xx:-0}"
}

lua() { # lua FILE TOKEN BODY
    cat >"$1" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $2"
wrk.body = '$3'
LUA
}

for N in $N_LIST; do
    dir=$WORK/n$N
    mkdir -p "$dir"
    token=$("$BIN" token new --role admin --tokens "$dir/tokens.toml" --name bench 2>/dev/null)
    cat >"$dir/config.toml" <<CFG
tokens = "tokens.toml"
[threshold]
score = 0.75
target_fmr = 0.001
measured_fmr = 0.0
impostor_comparisons = 0
CFG
    start=$(date +%s.%N)
    "$BIN" seed-gallery --data "$dir/data" --config "$dir/config.toml" --n "$N" --seed "$SEED" 2>/dev/null
    seeded=$(date +%s.%N)
    "$BIN" --bind 127.0.0.1:0 --data "$dir/data" --config "$dir/config.toml" >"$dir/server.out" 2>"$dir/server.err" &
    SERVER_PID=$!
    for _ in $(seq 1 600); do grep -q "listening on" "$dir/server.out" 2>/dev/null && break; sleep 0.1; done
    url=$(sed -n 's/^listening on //p' "$dir/server.out")
    [ -n "$url" ] || { cat "$dir/server.err" >&2; exit 1; }
    ready=$(date +%s.%N)
    rss=$(awk '/VmRSS/ {print $2 " " $3}' "/proc/$SERVER_PID/status")
    printf '\n== gallery of %s subjects: bulk load %.1f s, server start %.1f s, RSS %s\n' \
        "$N" "$(echo "$seeded - $start" | bc)" "$(echo "$ready - $seeded" | bc)" "$rss"

    idx=$((N / 2))
    subject=$(printf 's%07d' "$idx")
    probe=$("$BIN" synth-template --seed "$SEED" --index "$idx")
    lua "$dir/verify.lua" "$token" "{\"template\":\"$probe\"}"
    lua "$dir/identify.lua" "$token" "{\"template\":\"$probe\",\"k\":5}"
    # Sanity: the probe matches its subject and is identified.
    curl -fsS -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
        -d "{\"template\":\"$probe\",\"k\":5}" "$url/v1/identify" | grep -q "\"$subject\"" \
        || { echo "identify sanity check failed" >&2; exit 1; }

    run_wrk "verify (1:1)" "$CONNS" "$dir/verify.lua" "$url/v1/subjects/$subject/verify"
    run_wrk "identify (1:N, k=5)" "$CONNS" "$dir/identify.lua" "$url/v1/identify"
    run_wrk "identify (1:N, k=5)" 1 "$dir/identify.lua" "$url/v1/identify"

    kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
    rm -rf "$dir"
done
