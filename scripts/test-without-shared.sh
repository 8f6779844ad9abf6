#!/usr/bin/env bash
# Runs the test binaries that use the shared folder (../shared: real media and models, only on
# project machines) with it hidden, as in a user's clone: FRAMEPIPE_SHARED=none, honoured by
# tests/common/shared.rs, the one way tests reach it (tests/shared_helper.rs fails otherwise).
# Run after scripts/test.sh (it builds everything).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
uses='shared_(media|model|dir|path)\('
root_tests=$(grep -lE "$uses" tests/*.rs | xargs -n1 basename | sed 's/\.rs$//' | sort -u)
torch_tests=$(grep -lE "$uses" crates/framepipe-torch/tests/*.rs | xargs -n1 basename | sed 's/\.rs$//' | sort -u)
args=()
for t in $root_tests; do args+=(--test "$t"); done
echo "without the shared folder: ${root_tests//$'\n'/ } | framepipe-torch: ${torch_tests//$'\n'/ }"
FRAMEPIPE_SHARED=none cargo test --release -p framepipe "${args[@]}" -- --test-threads=2
args=()
for t in $torch_tests; do args+=(--test "$t"); done
FRAMEPIPE_SHARED=none cargo test --release -p framepipe-torch "${args[@]}" -- --test-threads=2
