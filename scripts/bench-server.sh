#!/usr/bin/env bash
# Server figures for BENCHMARKS.md, each next to its reference measured in the same run:
#  1. publish latency of one small package into an arch-repo of N packages (default 10,000), next to
#     Debian's repo-add adding the same package to a db of the same N packages;
#  2. download throughput with wrk (db and a 1 MiB package), next to nginx serving the same files;
#  3. the server's peak RSS with 64 concurrent downloads and a 1 GiB upload in flight.
# Usage: scripts/bench-server.sh [N]     Needs: wrk nginx repo-add curl (scripts/setup-test-env.sh + apt).
#        PART=downloads scripts/bench-server.sh [N]   runs only 2. and 3.
#        PART=publish scripts/bench-server.sh [N]     runs only 1., without the repo-add reference
#        SERVER=path/to/vieter-server                 measures that binary (e.g. an older build)
#        SIGN=1                                       with signing_key = "generate" (signed packages and dbs)
#        BULK=cli                                     the bulk publish by `vieter publish -j 4` (one process)
#                                                     instead of 4 parallel `curl` processes, one per package
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}
tools="wrk nginx repo-add curl"; [ "${PART:-all}" = publish ] && tools="curl bc"
for tool in $tools; do command -v $tool >/dev/null || { echo "missing $tool" >&2; exit 1; }; done
cargo build --release -q -p vieter-server -p vieter-benches --bins
# Built on its own: in one invocation Cargo would unify features and rebuild the server differently.
if [ "${BULK:-curl}" = cli ]; then cargo build --release -q -p vieter-cli; fi
dir=$(mktemp -d /var/tmp/vieter-bench.XXXXXX)
cleanup() { kill "${server_pid:-}" "${nginx_pid:-}" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT

echo "==> making $N packages"
target/release/make-packages "$dir/pkgs" "$N" 5
target/release/make-packages "$dir/extra" 21 5 extra

signing=()
if [ -n "${SIGN:-}" ]; then signing=(VIETER_SIGNING_KEY=generate); echo "==> signing on"; fi
env VIETER_ADDRESS=127.0.0.1:0 VIETER_DATA_DIR="$dir/data" VIETER_API_KEY=k VIETER_LOG_LEVEL=warn "${signing[@]}" \
  "${SERVER:-target/release/vieter-server}" > "$dir/server.out" 2>&1 &
server_pid=$!
for _ in $(seq 50); do grep -q listening "$dir/server.out" && break; sleep 0.1; done
url=$(sed -n 's/^vieter-server listening on //p' "$dir/server.out")

echo "==> publishing $N packages to the server"
s=$(date +%s.%N)
if [ "${BULK:-curl}" = cli ]; then
  # One process, 4 uploads at a time (`vieter publish -j 4`), instead of one curl process per package.
  target/release/vieter --server "$url" --api-key k -q publish -j 4 bench "$dir"/pkgs/*.pkg.tar.zst
  clients="vieter publish -j 4"
else
  ls "$dir"/pkgs/*.pkg.tar.zst | xargs -P 4 -I{} curl -sf -o /dev/null -XPOST -T {} -H 'X-Api-Key: k' "$url/bench/publish"
  clients="4 curl clients"
fi
e=$(date +%s.%N)
printf 'bulk publish of %d packages (%s): %.1f s\n' "$N" "$clients" "$(echo "$e - $s" | bc -l)"

if [ "${PART:-all}" != downloads ]; then
echo "==> publish latency into a $N-package arch-repo (20 publishes, one at a time)"
lat=()
for f in $(ls "$dir"/extra/*.pkg.tar.zst | sed -n 1,20p); do
  lat+=("$(curl -sf -o /dev/null -w '%{time_total}' -XPOST -T "$f" -H 'X-Api-Key: k' "$url/bench/publish")")
done
median=$(printf '%s\n' "${lat[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
if [ "${PART:-all}" = publish ]; then
  printf 'publish one into %d: vieter median %.1f ms (20 runs: %s)\n' "$N" "$(echo "$median * 1000" | bc -l)" "${lat[*]}"
  exit 0
fi

echo "==> repo-add: building the reference db of $N packages (minutes)"
mkdir -p "$dir/ref"
(cd "$dir/pkgs" && repo-add -q "$dir/ref/bench.db.tar.gz" ./*.pkg.tar.zst 2>/dev/null)
last=$(ls "$dir"/extra/*.pkg.tar.zst | tail -1)
s=$(date +%s.%N); repo-add -q "$dir/ref/bench.db.tar.gz" "$last" 2>/dev/null; e=$(date +%s.%N)
ref=$(echo "$e - $s" | bc -l)
printf 'publish one into %d: vieter median %.1f ms   repo-add %.2f s   ratio %.0fx\n' "$N" \
  "$(echo "$median * 1000" | bc -l)" "$ref" "$(echo "$ref / $median" | bc -l)"
fi

echo "==> downloads: wrk against vieter and nginx on the same files"
target/release/make-packages --big "$dir/onemib.pkg.tar.zst" 1 >/dev/null
mv "$dir/onemib.pkg.tar.zst" "$dir/onemib-upload"
curl -sf -o /dev/null -XPOST -T "$dir/onemib-upload" -H 'X-Api-Key: k' "$url/bench/publish"
pkg_name="big-1-1-x86_64.pkg.tar.zst"
mkdir -p "$dir/www/bench/x86_64"
ln -s "$dir/data/repos/bench/x86_64/bench.db.tar.gz" "$dir/www/bench/x86_64/bench.db"
sha=$(sha256sum "$dir/onemib-upload" | cut -d' ' -f1)
ln -s "$dir/data/pool/$sha" "$dir/www/bench/x86_64/$pkg_name"
chmod 755 "$dir"
cat > "$dir/nginx.conf" <<CONF
$( [ "$(id -u)" -eq 0 ] && echo "user root;" )
worker_processes 1;
daemon off;
error_log $dir/nginx.err;
pid $dir/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  server { listen 127.0.0.1:18089; root $dir/www; }
}
CONF
# The servers share core 0, wrk gets core 1 (with 2+ cores), so the client does not steal the servers' CPU;
# runs alternate between the two servers and the medians are compared.
pin_server=() pin_client=()
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  pin_server=(taskset -c 0) pin_client=(taskset -c 1)
  taskset -a -p -c 0 "$server_pid" >/dev/null
  echo "pinned: both servers on core 0, wrk on core 1"
else
  echo "NOT pinned ($(nproc) cores): wrk shares the servers' cores; ratios swing widely (0.6x..1.1x seen)"
fi
# Another process on the servers' core costs the multi-threaded server more than single-threaded nginx:
# the CPU time used on the machine over 2 s while both servers are idle (the load average would still
# count the bulk publish above).
cpu() { awk '/^cpu / {print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat; }
read -r b1 t1 < <(cpu); sleep 2; read -r b2 t2 < <(cpu)
busy=$(echo "100 * ($b2 - $b1) / ($t2 - $t1)" | bc -l | xargs printf '%.0f')
echo "CPU busy before the runs (servers idle): $busy %"
if [ "$busy" -gt 10 ]; then
  echo "WARNING: the machine is not idle ($busy % busy): these figures are not comparable" >&2
fi
"${pin_server[@]}" nginx -c "$dir/nginx.conf" &
nginx_pid=$!
sleep 0.5
RUNS=${RUNS:-5}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for what in "bench.db" "$pkg_name"; do
  curl -sf -o /dev/null "http://127.0.0.1:18089/bench/x86_64/$what" || { echo "nginx does not serve $what" >&2; exit 1; }
  vs=() ns=()
  for _ in $(seq "$RUNS"); do
    vs+=("$("${pin_client[@]}" wrk -t1 -c64 -d5s "$url/bench/x86_64/$what" | awk '/Requests\/sec/ {print $2}')")
    ns+=("$("${pin_client[@]}" wrk -t1 -c64 -d5s "http://127.0.0.1:18089/bench/x86_64/$what" | awk '/Requests\/sec/ {print $2}')")
  done
  v=$(printf '%s\n' "${vs[@]}" | median) n=$(printf '%s\n' "${ns[@]}" | median)
  printf 'GET %-28s vieter %10.0f req/s   nginx %10.0f req/s   ratio %.2f  (medians of %d alternating runs; vieter %s; nginx %s)\n' \
    "$what" "$v" "$n" "$(echo "$v / $n" | bc -l)" "$RUNS" "${vs[*]}" "${ns[*]}"
done
kill "$nginx_pid"; nginx_pid=

echo "==> peak RSS with 64 concurrent downloads and a 1 GiB upload in flight"
target/release/make-packages --big "$dir/gib-upload" 1024
wrk -t2 -c64 -d20s "$url/bench/x86_64/$pkg_name" > /dev/null &
wrk_pid=$!
curl -sf -o /dev/null -XPOST -T "$dir/gib-upload" -H "X-Api-Key: k" "$url/uploads/publish" || echo "(upload failed)"
wait "$wrk_pid" || true
printf 'server peak RSS: %s\n' "$(grep VmHWM /proc/$server_pid/status | awk '{print $2 " " $3}')"
