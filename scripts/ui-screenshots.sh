#!/bin/sh
# Regenerates docs/first-start.png, docs/chat.png, docs/members.png and docs/transports.png from
# the web client's browser test (Tests/Browser/ui_test.py), run against a built dcgka.
#   scripts/ui-screenshots.sh [PATH-TO-DCGKA]     (default: .build-o2/debug/dcgka)
set -eu
cd "$(dirname "$0")/.."
DCGKA=${1:-${DCGKA:-.build-o2/debug/dcgka}}
if [ ! -x "$DCGKA" ]; then
    echo "no dcgka binary at $DCGKA; build it first (swift build --scratch-path .build-o2 -Xcc -O2) or pass its path" >&2
    exit 1
fi
DCGKA_UI_SITE="$(pwd)/Sources/WebUI/Resources/site"
export DCGKA_UI_SITE
exec python3 Tests/Browser/ui_test.py --dcgka "$DCGKA" --screenshots docs/
