#!/usr/bin/env bash
# Placeholder until the corpus builder lands: creates the directory.
set -euo pipefail
mkdir -p "$1"
