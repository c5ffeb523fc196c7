#!/usr/bin/env bash
# The web interface's speed goals (BENCHMARKS.md, "Web interface"):
#   scripts/bench-ui.sh [N] [FOLLOWERS]
# makes N synthetic packages (default 10,000), starts a fresh release server, publishes them, and runs
# `ui-live`: time to first byte and size of repository pages, then FOLLOWERS (default 200) followers of
# one running job's live log while an agent appends a line every 50 ms for 20 s (latency p50/p99/max,
# lines missed, the server's peak RSS). Only 127.0.0.1 is used.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}
FOLLOWERS=${2:-200}
cargo build --release -q -p vieter-server -p vieter-benches --bins
target_dir=${CARGO_TARGET_DIR:-target}
dir=$(mktemp -d /var/tmp/vieter-bench-ui.XXXXXX)
trap 'rm -rf "$dir"' EXIT
echo "==> making $N packages"
"$target_dir"/release/make-packages "$dir/pkgs" "$N" 5 >/dev/null
"$target_dir"/release/ui-live --server "$target_dir"/release/vieter-server --packages "$dir/pkgs" \
  --followers "$FOLLOWERS" --seconds 20 --interval-ms 50 --samples 30
