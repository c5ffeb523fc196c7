#!/usr/bin/env bash
# Old vs new server, alternating: `scripts/bench-server-ab.sh OLD_BINARY [ROUNDS]` runs, ROUNDS times
# (default 3), the publish figures (PART=publish, 10,000 packages) of OLD_BINARY then of this tree's
# release build; then the download figures (PART=downloads, 2,000 packages, RUNS=5) of each once.
# Build the old binary from a worktree of the old commit with its own CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
old=${1:?usage: scripts/bench-server-ab.sh OLD_BINARY [ROUNDS]}
rounds=${2:-3}
cargo build --release -q -p vieter-server -p vieter-benches --bins
new=target/release/vieter-server
for round in $(seq "$rounds"); do
  for which in old new; do
    bin=$old; [ $which = new ] && bin=$new
    echo "--- round $round, $which"
    PART=publish SERVER=$bin scripts/bench-server.sh 10000 | grep -E '^(bulk|publish one)'
  done
done
for which in old new; do
  bin=$old; [ $which = new ] && bin=$new
  echo "--- downloads, $which"
  PART=downloads RUNS=5 SERVER=$bin scripts/bench-server.sh 2000 | grep -E '^(GET|server peak)'
done
