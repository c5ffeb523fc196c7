#!/bin/sh
# Issue 10's hostile inputs against one or more server binaries, one after the other (never two attacks at
# once): `scripts/bench-hostile.sh [SERVER...] [-- HOSTILE_ARGS...]`. Without a SERVER the release build of
# this tree is built and used. Each run's table goes to stdout and to target/hostile-N.txt.
# Figures in BENCHMARKS.md ("Hostile input (issue 10)").
set -eu
cd "$(dirname "$0")/.."
servers=""
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
    servers="$servers $1"
    shift
done
[ "${1:-}" = "--" ] && shift
if [ -z "$servers" ]; then
    cargo build --release -p vieter-server
    servers="target/release/vieter-server"
fi
cargo build --release -p vieter-benches --bin hostile
n=0
for server in $servers; do
    n=$((n + 1))
    echo "== $(date -u +%FT%TZ) $server (git $(git rev-parse --short HEAD))"
    target/release/hostile --server "$server" "$@" | tee "target/hostile-$n.txt"
done
