#!/usr/bin/env bash
# Runs all of framepipe's tests: set-up (idempotent), then the unit and integration tests.
# Integration tests run the real binary and judge its output with ffprobe; the scene-cut
# agreement test compares with PySceneDetect from the venv that set-up made.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. scripts/env.sh
# The binary loads libframepipe_torch.so at run time: build it (and the binary) first, since
# `cargo test` alone only builds what the test targets link.
cargo build --release --workspace
cargo test --release --workspace -- --test-threads=2
