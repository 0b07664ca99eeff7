#!/usr/bin/env bash
# Writes the seed corpus of every fuzz target into Fuzz/Corpus/<target>/ (committed; FUZZING.md).
#
# Each target's binary writes its own seeds when DCGKA_FUZZ_WRITE_CORPUS names a folder: valid
# encodings from a deterministic honest group run (Fuzz/Sources/FuzzSupport/Fixtures.swift), so the
# corpus is the same on every machine. It replaces what is in the folder.
#   scripts/make_fuzz_corpus.sh [TARGET…]   (default: every target)
set -euo pipefail
cd "$(dirname "$0")/.."
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || mapfile -t targets < <(scripts/fuzz.sh --list)
for t in "${targets[@]}"; do
    bin=$(scripts/fuzz.sh --build "$t" | tail -1)
    rm -rf "Fuzz/Corpus/$t"
    mkdir -p Fuzz/Corpus
    SWIFT_DETERMINISTIC_HASHING=1 SWIFT_BACKTRACE=enable=no DCGKA_FUZZ_WRITE_CORPUS="Fuzz/Corpus/$t" "$bin"
    files=$(ls "Fuzz/Corpus/$t" | wc -l)
    kib=$(( $(cat "Fuzz/Corpus/$t"/* | wc -c) / 1024 ))
    echo "make_fuzz_corpus.sh: $t: $files files, ${kib} KiB"
    if [[ $files -gt 50 || $kib -gt 200 ]]; then
        echo "make_fuzz_corpus.sh: $t's corpus is over the budget (50 files, 200 KiB)" >&2
        exit 1
    fi
done
