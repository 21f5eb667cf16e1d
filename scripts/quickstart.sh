#!/usr/bin/env bash
# Builds ois and runs the quickstart on the default site (./ois-site).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo build --release
exec ./target/release/ois quickstart
