#!/usr/bin/env bash
# libFuzzer targets of swift-dcgka (issue 8; FUZZING.md says what each covers).
#
#   scripts/fuzz.sh --list                  the target names, one a line
#   scripts/fuzz.sh TARGET SECONDS [FLAG…]  build the target (release, -sanitize=fuzzer,address) and
#                                           fuzz it for SECONDS on a copy of Fuzz/Corpus/TARGET;
#                                           extra libFuzzer flags are passed on
#   scripts/fuzz.sh --build TARGET          only build it; prints the binary's path
#
# Builds only that product of the separate package in Fuzz/, with its own scratch path
# (Fuzz/.build-fuzz), so no other executable is instrumented. The working corpus is
# Fuzz/.build-fuzz/corpus/TARGET (seeded from the committed corpus, kept between runs);
# crashes, leaks and timeouts are written to Fuzz/.build-fuzz/artifacts/TARGET/ and make the
# script exit non-zero; the full log is Fuzz/.build-fuzz/logs/TARGET.log.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGETS=(envelope control welcome twoparty application groupstate bundle group sync link)
SCRATCH=Fuzz/.build-fuzz

usage() {
    echo "usage: scripts/fuzz.sh --list | TARGET SECONDS [libFuzzer flags…] | --build TARGET" >&2
    exit 2
}

known() {
    local t
    for t in "${TARGETS[@]}"; do [[ "$t" == "$1" ]] && return 0; done
    echo "fuzz.sh: unknown target '$1' (scripts/fuzz.sh --list)" >&2
    exit 2
}

build() {
    export PATH="/opt/swift/usr/bin:$PATH"
    # -sanitize=fuzzer instruments the Swift code for coverage and links libFuzzer (from the
    # toolchain's clang runtime); address adds ASan and LeakSanitizer. -Xcc -O2: BoringSSL, as in
    # the main package's builds.
    nice -n 19 swift build --package-path Fuzz -c release --scratch-path "$SCRATCH" --product "fuzz-$1" \
        -Xswiftc -sanitize=fuzzer,address -Xcc -O2 >&2 || return 1
    echo "$SCRATCH/release/fuzz-$1"
}

[[ $# -ge 1 ]] || usage
case "$1" in
    --list)
        printf '%s\n' "${TARGETS[@]}"
        exit 0 ;;
    --build)
        [[ $# -eq 2 ]] || usage
        known "$2"
        build "$2" || exit 1
        exit 0 ;;
esac
[[ $# -ge 2 && "$2" =~ ^[0-9]+$ ]] || usage
TARGET=$1
DURATION=$2
shift 2
known "$TARGET"

# `|| exit`: errexit does not reach into a command substitution, and a failed build must not
# fuzz the binary an earlier build left behind.
BIN=$(build "$TARGET") || { echo "fuzz.sh: building $TARGET failed" >&2; exit 1; }
CORPUS="$SCRATCH/corpus/$TARGET"
ARTIFACTS="$SCRATCH/artifacts/$TARGET"
LOG="$SCRATCH/logs/$TARGET.log"
mkdir -p "$CORPUS" "$ARTIFACTS" "$(dirname "$LOG")"
# A copy of the committed seeds; what earlier local runs found stays in the working corpus.
if [[ -d "Fuzz/Corpus/$TARGET" ]]; then cp -n "Fuzz/Corpus/$TARGET"/* "$CORPUS"/ 2>/dev/null || true; fi

# Per-target defaults (flags given on the command line come later and win): the stateful target's
# seeds are short, and libFuzzer would otherwise cap its inputs near the longest seed for a long time.
defaults=()
case "$TARGET" in
    group) defaults=(-max_len=2048 -len_control=0) ;;
esac

export SWIFT_DETERMINISTIC_HASHING=1 SWIFT_BACKTRACE=enable=no
echo "fuzz.sh: $TARGET for ${DURATION}s ($(ls "$CORPUS" | wc -l) inputs in $CORPUS)" >&2
status=0
# Which sources the binary was built from, for the record (FUZZING.md's tables).
version=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD -- Sources Fuzz 2>/dev/null || version="$version+uncommitted"
echo "fuzz.sh: $TARGET, sources $version, binary built $(date -u -r "$BIN" +%FT%TZ)" >"$LOG"
nice -n 19 "$BIN" -max_total_time="$DURATION" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$ARTIFACTS/" "${defaults[@]}" "$@" "$CORPUS" >>"$LOG" 2>&1 || status=$?

# The summary FUZZING.md's tables take: the last status line and libFuzzer's final stats.
last=$(grep -E '^#[0-9]+' "$LOG" | tail -1 || true)
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$LOG" | tail -1)
echo "fuzz.sh: $TARGET exit $status; last: ${last:-none}; executed units: ${runs:-?}; corpus files: $(ls "$CORPUS" | wc -l)" >&2
if [[ $status -ne 0 ]]; then
    echo "fuzz.sh: $TARGET FAILED (exit $status); the report:" >&2
    grep -E -A40 'ERROR: libFuzzer|ERROR: AddressSanitizer|ERROR: LeakSanitizer|FUZZ FINDING|Fatal error|SUMMARY' "$LOG" | head -80 >&2 || tail -60 "$LOG" >&2
    ls -l "$ARTIFACTS" >&2
    echo "fuzz.sh: minimise with: SWIFT_DETERMINISTIC_HASHING=1 $BIN -minimize_crash=1 -runs=10000 -artifact_prefix=$ARTIFACTS/min- $ARTIFACTS/<crash file>" >&2
fi
exit $status
