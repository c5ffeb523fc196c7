#!/usr/bin/env bash
# Building a repository database of N packages: Debian's repo-add next to libvieter's repo-add example on
# the same files. Usage: scripts/bench-db.sh [N]   (default 2000; repo-add needs minutes for 10,000)
# The "from stored entries" figure for 10,000 packages is the criterion bench database_10000_entries.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-2000}
cargo build --release -q -p vieter-benches --bins
cargo build --release -q -p libvieter --example repo-add
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
target/release/make-packages "$dir/pkgs" "$N" 5
mkdir -p "$dir/ref" "$dir/ours"
s=$(date +%s.%N); (cd "$dir/pkgs" && repo-add -q "$dir/ref/r.db.tar.gz" ./*.pkg.tar.zst 2>/dev/null); e=$(date +%s.%N)
ref=$(echo "$e - $s" | bc -l)
s=$(date +%s.%N); target/release/examples/repo-add "$dir/ours/r.db.tar.gz" "$dir"/pkgs/*.pkg.tar.zst 2>/dev/null; e=$(date +%s.%N)
ours=$(echo "$e - $s" | bc -l)
# Adding one package to the N-entry database.
target/release/make-packages "$dir/one" 1 5 extra
s=$(date +%s.%N); repo-add -q "$dir/ref/r.db.tar.gz" "$dir"/one/*.pkg.tar.zst 2>/dev/null; e=$(date +%s.%N)
ref1=$(echo "$e - $s" | bc -l)
s=$(date +%s.%N); target/release/examples/repo-add "$dir/ours/r.db.tar.gz" "$dir"/one/*.pkg.tar.zst 2>/dev/null; e=$(date +%s.%N)
ours1=$(echo "$e - $s" | bc -l)
printf 'N=%d packages\n' "$N"
printf 'build the db of N:    repo-add %.2f s   libvieter %.3f s   ratio %.0fx\n' "$ref" "$ours" "$(echo "$ref / $ours" | bc -l)"
printf 'add one to N (cli):   repo-add %.2f s   libvieter %.3f s   ratio %.0fx\n' "$ref1" "$ours1" "$(echo "$ref1 / $ours1" | bc -l)"
