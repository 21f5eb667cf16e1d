#!/usr/bin/env bash
# Every test: formatting, lints, unit and integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo fmt --check
cargo clippy --all-targets -- -D warnings
# The Windows build, which tests/windows_wine.rs runs under Wine (a debug build: the test only
# needs it to run).
cargo build --target x86_64-pc-windows-gnu --bin ois
# Every tool is installed now: a test that finds one missing fails instead of skipping.
OIS_TEST_REQUIRE_TOOLS=1 cargo test --all-targets
