#!/usr/bin/env bash
# Refreshes the console's vendored front-end assets from npm (`make console-assets`). The versions are
# pinned here; what it writes is committed, so serving the console needs neither npm nor the internet.
# Each package's licence file is kept beside it.
set -euo pipefail

PICO_VERSION=2.1.1  # @picocss/pico: classless CSS, MIT

DEST="$(cd "$(dirname "$0")/.." && pwd)/llm_platform/console/static/vendor"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

fetch() {  # fetch PACKAGE VERSION: unpacks the registry's tarball into $WORK/package
    rm -rf "$WORK/package"
    (cd "$WORK" && npm pack --silent "$1@$2" >/dev/null && tar -xzf ./*.tgz && rm ./*.tgz)
}

fetch @picocss/pico "$PICO_VERSION"
mkdir -p "$DEST/pico"
cp "$WORK/package/css/pico.min.css" "$WORK/package/LICENSE.md" "$DEST/pico/"
echo "$PICO_VERSION" >"$DEST/pico/VERSION"

echo "console assets: pico $PICO_VERSION in $DEST"
