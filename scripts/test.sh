#!/usr/bin/env bash
# The whole test suite: installs what the tests need, builds the package corpus, runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each phase says how long it took (CI has a time budget: see README); cargo writes where the compile
# time went to target/cargo-timings/.
phase_start=$SECONDS
phase() {
  echo "=== phase done in $((SECONDS - phase_start)) s (total $SECONDS s): $1" >&2
  phase_start=$SECONDS
}

scripts/setup-test-env.sh
phase "setting up the test environment"
scripts/build-corpus.sh target/corpus
phase "building the package corpus"
scripts/make-builder-image.sh localhost/vieter-builder:test
phase "making the builder image"
export VIETER_TEST_IMAGE=localhost/vieter-builder:test
export VIETER_CORPUS="$PWD/target/corpus"
# A one-off build gains nothing from incremental caches, which would double the target directory on disk.
if [ "${CI:-}" = "true" ]; then
  export CARGO_INCREMENTAL=0
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --timings -- -D warnings
phase "formatting and clippy"
# libvieter without default features is the formats only: it builds, and pulls no chrono, toml or tokio.
cargo clippy -p libvieter --no-default-features --lib -- -D warnings
# Each feature on its own builds too (an embedder picks one; a `use` needed by another feature only
# breaks that build).
for feature in builds config fs openpgp repository; do
  cargo clippy -p libvieter --no-default-features --features "$feature" --all-targets -- -D warnings
done
if cargo tree -p libvieter --no-default-features -e normal | grep -E '(chrono|chrono-tz|toml|tokio) v'; then
  echo "libvieter --no-default-features depends on one of the crates above" >&2
  exit 1
fi
phase "libvieter without default features"
# The fuzz targets (run with nightly by cargo-fuzz, see BENCHMARKS.md) still build against libvieter.
cargo clippy --manifest-path fuzz/Cargo.toml --all-targets -- -D warnings
phase "the fuzz targets"
cargo test --workspace --all-targets --timings
phase "the tests"
cargo test --workspace --doc
phase "the doc tests"
# The documentation builds without a warning (a link to a private or a removed item is one).
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps
phase "the documentation"
