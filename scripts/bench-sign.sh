#!/usr/bin/env bash
# Signing throughput of the server's signer (rpgp, Ed25519, SHA-256, streamed as a publish streams
# its upload) next to `gpg --detach-sign` (GnuPG, Ed25519, SHA-256) on the same large random file, in
# the same run. Prints every run and the best of each; ours is checked with `gpg --verify`.
# Usage: scripts/bench-sign.sh [MiB] (1024 by default). PROFILE=dev uses the dev build.
set -euo pipefail
cd "$(dirname "$0")/.."
mib=${1:-1024}
profile=${PROFILE:-release}
cargo build -q --profile "$profile" -p libvieter --example sign_file
bin="${CARGO_TARGET_DIR:-target}/$([ "$profile" = dev ] && echo debug || echo "$profile")/examples/sign_file"
dir=$(mktemp -d /tmp/benchsignXXXX)
trap 'gpgconf --homedir "$dir/gpg" --kill gpg-agent 2>/dev/null; rm -rf "$dir"' EXIT
mkdir -m 700 "$dir/gpg"
g() { gpg --homedir "$dir/gpg" --batch --yes --pinentry-mode loopback "$@"; }
g --passphrase '' --quick-gen-key 'Bench <bench@example.org>' ed25519 sign never 2>/dev/null
head -c $((mib << 20)) /dev/urandom > "$dir/big"
cat "$dir/big" > /dev/null # warm the page cache
now() { date +%s.%N; }
best_gpg=999 best_ours=999
for run in 1 2 3 4 5; do
  s=$(now); g --digest-algo SHA256 --detach-sign --output "$dir/gpg.sig" "$dir/big"; e=$(now)
  t_gpg=$(echo "$e - $s" | bc -l)
  t_ours=$("$bin" "$dir/big" "$dir/ours.sig" "$dir/ours.asc")
  echo "run $run: gpg --detach-sign $(printf '%.3f' "$t_gpg") s, ours $(printf '%.3f' "$t_ours") s"
  best_gpg=$(echo "$t_gpg" | awk -v b="$best_gpg" '{ print ($1 < b) ? $1 : b }')
  best_ours=$(echo "$t_ours" | awk -v b="$best_ours" '{ print ($1 < b) ? $1 : b }')
done
g --import "$dir/ours.asc" 2>/dev/null
g --verify "$dir/ours.sig" "$dir/big" 2>/dev/null || { echo "our signature does not verify" >&2; exit 1; }
mibs() { echo "$mib / $1" | bc -l | xargs printf '%.0f'; }
echo "file: $mib MiB random; $(nproc) cores; sha_ni: $(grep -qw sha_ni /proc/cpuinfo && echo yes || echo no); profile: $profile"
echo "gpg --detach-sign (best of 5)  $(mibs "$best_gpg") MiB/s"
echo "vieter signer (best of 5)      $(mibs "$best_ours") MiB/s   ratio to gpg: $(echo "$best_gpg / $best_ours" | bc -l | xargs printf '%.2f')"
