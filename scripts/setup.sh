#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks to build and test ois:
# libclang (bindgen for wimlib-sys), a C toolchain and autotools deps for the bundled wimlib,
# the tools the interoperability tests compare against (wimtools, p7zip, gcab), and nginx with
# WebDAV (PUT/DELETE/MKCOL/MOVE built in, PROPFIND from the dav-ext module) that the distribution
# point tests serve content with, strace, whose fault injection the crash tests kill ois with, and
# hivex (hivexget in libhivex-bin, hivexregedit in libwin-hivex-perl), which writes the registry
# hives the SOFTWARE-hive tests read, and libhivex-dev, the library ois links to change hives.
# xorriso writes and reads the ISOs of installation media (`ois media`; p7zip-full extracts
# them), and dosfstools makes the small FAT UEFI boot image the media tests put on their ISO.
# The web console's browser tests (tests/console.rs) need Debian's chromium (and chromium-driver),
# Node.js with npm, and the npm packages of tests/console (playwright-core, which drives
# /usr/bin/chromium and downloads no browser of its own).
# The Windows build (x86_64-pc-windows-gnu) needs mingw-w64 and the Rust target; its smoke test
# (tests/windows_wine.rs) runs ois.exe under wine64 (with the `wine` launcher, only recommended by wine64).
set -euo pipefail
need=()
have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for pkg in build-essential pkg-config libclang-dev wimtools p7zip-full gcab nginx libnginx-mod-http-dav-ext strace libhivex-bin libwin-hivex-perl libhivex-dev openssl chromium chromium-driver xorriso dosfstools mingw-w64 wine64 wine; do
  have "$pkg" || need+=("$pkg")
done
# A machine may bring its own Node.js (with npm); Debian's only where there is none.
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "installing: ${need[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "cargo is missing: install Rust with rustup (https://rustup.rs)" >&2; exit 1; }
rustup target list --installed 2>/dev/null | grep -qx x86_64-pc-windows-gnu ||
  rustup target add x86_64-pc-windows-gnu
# The console tests' npm packages, exactly as locked; again only when the lock changed.
console_tests="$(dirname "$0")/../tests/console"
if ! cmp -s "$console_tests/package-lock.json" "$console_tests/node_modules/.ois-installed-lock"; then
  (cd "$console_tests" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error &&
    cp package-lock.json node_modules/.ois-installed-lock)
fi
