#!/usr/bin/env bash
# One publish into an N-package arch-repo, two servers alternated on the same machine in the same run:
#   scripts/bench-publish-ab.sh A B [ROUNDS] [N]
# A and B are `path/to/vieter-server` or `path/to/vieter-server:sign` (signing_key = "generate").
# Each side gets its own data directory filled once with N packages (default 10,000; 4 curl clients);
# then, ROUNDS times (default 4), A then B is started on its directory and 20 new small packages are
# published one at a time. Prints each round's medians, the median of the round medians and B/A.
# NEW_PREFIX (default r) starts the new packages' names: r sorts after the bench packages (the end of
# the archives), a before them (the start), bench05000 among them (the middle).
# Example: scripts/bench-publish-ab.sh /tmp/old-vieter-server target/release/vieter-server
#          scripts/bench-publish-ab.sh target/release/vieter-server target/release/vieter-server:sign
set -euo pipefail
cd "$(dirname "$0")/.."
a=${1:?usage: scripts/bench-publish-ab.sh A[:sign] B[:sign] [ROUNDS] [N]}
b=${2:?usage: scripts/bench-publish-ab.sh A[:sign] B[:sign] [ROUNDS] [N]}
rounds=${3:-4}
N=${4:-10000}
for tool in curl bc; do command -v $tool >/dev/null || { echo "missing $tool" >&2; exit 1; }; done
cargo build --release -q -p vieter-benches --bins
target_dir=${CARGO_TARGET_DIR:-target}
dir=$(mktemp -d /var/tmp/vieter-ab.XXXXXX)
cleanup() { kill "${server_pid:-}" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT

start() { # start SIDE: starts the server of side a or b on its directory; sets url and server_pid
  local spec=$1 side=$2 bin=${1%:sign} signing=()
  [ "$spec" != "$bin" ] && signing=(VIETER_SIGNING_KEY=generate)
  env VIETER_ADDRESS=127.0.0.1:0 VIETER_DATA_DIR="$dir/data-$side" VIETER_API_KEY=k VIETER_LOG_LEVEL=warn \
    "${signing[@]}" "$bin" > "$dir/server-$side.out" 2>&1 &
  server_pid=$!
  for _ in $(seq 600); do grep -q listening "$dir/server-$side.out" && break; sleep 0.1; done
  url=$(sed -n 's/^vieter-server listening on //p' "$dir/server-$side.out")
  [ -n "$url" ] || { cat "$dir/server-$side.out" >&2; exit 1; }
}
stop() { kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "==> making $N packages, filling both data directories"
"$target_dir"/release/make-packages "$dir/pkgs" "$N" 5
for side in a b; do
  spec=$a; [ $side = b ] && spec=$b
  start "$spec" $side
  ls "$dir"/pkgs/*.pkg.tar.zst | xargs -P 4 -I{} curl -sf -o /dev/null -XPOST -T {} -H 'X-Api-Key: k' "$url/bench/publish"
  stop
done

declare -a med_a med_b
for round in $(seq "$rounds"); do
  for side in a b; do
    spec=$a; [ $side = b ] && spec=$b
    "$target_dir"/release/make-packages "$dir/new-$round-$side" 20 5 "${NEW_PREFIX:-r}${round}${side}x" >/dev/null
    start "$spec" $side
    lat=()
    for f in "$dir/new-$round-$side"/*.pkg.tar.zst; do
      lat+=("$(curl -sf -o /dev/null -w '%{time_total}' -XPOST -T "$f" -H 'X-Api-Key: k' "$url/bench/publish")")
    done
    stop
    m=$(printf '%s\n' "${lat[@]}" | median)
    ms=$(echo "$m * 1000" | bc -l)
    if [ $side = a ]; then med_a+=("$ms"); else med_b+=("$ms"); fi
    printf 'round %d %s (%s): median %.1f ms\n' "$round" "$side" "$spec" "$ms"
  done
done
ma=$(printf '%s\n' "${med_a[@]}" | median)
mb=$(printf '%s\n' "${med_b[@]}" | median)
printf 'publish one into %d: A %.1f ms, B %.1f ms (medians of %d rounds), B/A %.2f, B-A %+.1f ms\n' \
  "$N" "$ma" "$mb" "$rounds" "$(echo "$mb / $ma" | bc -l)" "$(echo "$mb - $ma" | bc -l)"
