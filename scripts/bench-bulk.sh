#!/usr/bin/env bash
# Bulk ingest: N packages (default 10,000) published by `vieter publish -j J` (default 4) into an empty
# server, with the CPU time the server and the client used and the server's peak RSS (what
# `BULK=cli PART=publish scripts/bench-server.sh` times, without the rest).
# Usage: scripts/bench-bulk.sh [N]      SERVER=path/to/vieter-server  J=jobs  PERF=1 (perf record -g)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}
cargo build --release -q -p vieter-server -p vieter-benches --bins
# Built on its own: in one invocation Cargo would unify features and rebuild the server differently.
cargo build --release -q -p vieter-cli
dir=$(mktemp -d /var/tmp/vieter-bulk.XXXXXX)
cleanup() { kill "${server_pid:-}" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
target/release/make-packages "$dir/pkgs" "$N" 5 >/dev/null
env VIETER_ADDRESS=127.0.0.1:0 VIETER_DATA_DIR="$dir/data" VIETER_API_KEY=k VIETER_LOG_LEVEL=warn \
  "${SERVER:-target/release/vieter-server}" > "$dir/server.out" 2>&1 &
server_pid=$!
for _ in $(seq 50); do grep -q listening "$dir/server.out" && break; sleep 0.1; done
url=$(sed -n 's/^vieter-server listening on //p' "$dir/server.out")
if [ -n "${PERF:-}" ]; then perf record -F 299 -g -p "$server_pid" -o "${PERF_OUT:-perf.data}" 2>/dev/null & perf_pid=$!; fi
s=$(date +%s.%N)
/usr/bin/time -f "client CPU: %U s user, %S s system" \
  target/release/vieter --server "$url" --api-key k -q publish -j "${J:-4}" bench "$dir"/pkgs/*.pkg.tar.zst
e=$(date +%s.%N)
printf 'bulk publish of %d packages (vieter publish -j %d): %.1f s\n' "$N" "${J:-4}" "$(echo "$e - $s" | bc -l)"
ticks=$(getconf CLK_TCK)
awk -v t="$ticks" '{printf "server CPU: %.1f s user, %.1f s system\n", $14/t, $15/t}' "/proc/$server_pid/stat"
grep VmHWM "/proc/$server_pid/status" | awk '{printf "server peak RSS: %.1f MiB\n", $2/1024}'
if [ -n "${PERF:-}" ]; then kill -INT "$perf_pid"; wait "$perf_pid" || true; fi
