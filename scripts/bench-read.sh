#!/usr/bin/env bash
# Reading a 200 MiB incompressible zstd package with libvieter, next to openssl's SHA-256 and MD5 of the
# same file in the same run; peak RSS from /usr/bin/time. Prints the ratios recorded in BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p vieter-benches --bins
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
pkg="$dir/big.pkg.tar.zst"
target/release/make-packages --big "$pkg" 200
size=$(stat -c %s "$pkg")
cat "$pkg" > /dev/null # warm the page cache

best() { # best wall time in seconds of 5 runs of a command
  local best=999
  for _ in 1 2 3 4 5; do
    local s e
    s=$(date +%s.%N); "$@" > /dev/null; e=$(date +%s.%N)
    best=$(echo "$e - $s" | bc -l | awk -v b="$best" '{ print ($1 < b) ? $1 : b }')
  done
  echo "$best"
}
sha=$(best openssl dgst -sha256 "$pkg")
md5=$(best openssl dgst -md5 "$pkg")
ours=$(best target/release/read-package "$pkg")
ours_md5=$(best target/release/read-package --md5 "$pkg")
rss=$( { /usr/bin/time -f %M target/release/read-package "$pkg" > /dev/null; } 2>&1 )
rss_md5=$( { /usr/bin/time -f %M target/release/read-package --md5 "$pkg" > /dev/null; } 2>&1 )
gib() { echo "$size / $1 / 1073741824" | bc -l | xargs printf '%.2f'; }
echo "file: $((size / 1048576)) MiB zstd, incompressible; $(nproc) cores; sha_ni: $(grep -qw sha_ni /proc/cpuinfo && echo yes || echo no)"
echo "openssl dgst -sha256      $(gib "$sha") GiB/s"
echo "openssl dgst -md5         $(gib "$md5") GiB/s"
echo "libvieter (sha256)        $(gib "$ours") GiB/s   ratio to openssl sha256: $(echo "$sha / $ours" | bc -l | xargs printf '%.2f')   peak RSS ${rss} KiB"
echo "libvieter (sha256 + md5)  $(gib "$ours_md5") GiB/s   ratio to openssl md5:    $(echo "$md5 / $ours_md5" | bc -l | xargs printf '%.2f')   peak RSS ${rss_md5} KiB"
