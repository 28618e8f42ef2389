#!/usr/bin/env bash
# `make demo`: for now, parse every sample Dockerfile and print its instructions.
set -euo pipefail
cd "$(dirname "$0")/.."
STRATA=${STRATA:-.venv/bin/strata}
for df in sample_images/*/Dockerfile; do
  echo "== $df"
  "$STRATA" parse "$df"
done
