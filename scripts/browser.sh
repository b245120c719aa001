#!/usr/bin/env bash
# Installs the browser the console's tests drive (tests/console/): Debian's `chromium`, idempotently.
# Playwright launches it by path (LLMP_TEST_CHROMIUM, default: `command -v chromium`); its own browser
# download comes from a CDN, which our machines cannot reach.
set -euo pipefail

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v chromium >/dev/null 2>&1; then
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
echo "chromium: $(command -v chromium)"
