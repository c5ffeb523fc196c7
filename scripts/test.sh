#!/usr/bin/env bash
# The whole test suite: installs what the tests need, builds the package corpus, runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup-test-env.sh
scripts/build-corpus.sh target/corpus
scripts/make-builder-image.sh localhost/vieter-builder:test
export VIETER_TEST_IMAGE=localhost/vieter-builder:test
export VIETER_CORPUS="$PWD/target/corpus"

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace --all-targets
cargo test --workspace --doc
