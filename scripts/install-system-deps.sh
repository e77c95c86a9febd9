#!/usr/bin/env bash
# The machine's part of pytest-klaudbiusz: what the sample apps and the tests run with.
#   PostgreSQL (a database per app), Chromium (the UI check), bubblewrap (the sandbox),
#   Node.js with npm, and bun (the generated apps' package manager and runtime).
# As root on Debian/Ubuntu it installs what is missing; elsewhere it says what to install.
set -euo pipefail

missing=()
command -v node >/dev/null && command -v npm >/dev/null || missing+=(nodejs npm)
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || command -v pg_ctl >/dev/null || missing+=(postgresql)
command -v chromium >/dev/null || command -v chromium-browser >/dev/null || missing+=(chromium)
command -v bwrap >/dev/null || missing+=(bubblewrap)

if ((${#missing[@]})); then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
    else
        echo "install these first (Debian: sudo apt-get install ${missing[*]}; macOS: brew install" \
             "node postgresql chromium; bubblewrap is Linux-only: without it apps run unsandboxed)" >&2
        exit 1
    fi
fi
if ! command -v bun >/dev/null; then
    if [[ $(id -u) == 0 ]]; then npm install -g --silent bun; else
        echo "install bun first: npm install -g bun (or https://bun.sh)" >&2; exit 1
    fi
fi
