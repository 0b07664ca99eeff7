#ifndef CLIBFUZZER_H
#define CLIBFUZZER_H
#include <stddef.h>
#include <stdint.h>

/// libFuzzer's driver (compiler-rt, linked by `-sanitize=fuzzer`): parses the libFuzzer flags in
/// argv and fuzzes `callback`. The fuzz targets call it from their own `main`, because SwiftPM
/// renames an executable's entry point to `<module>_main` and points `main` at it, which keeps
/// libFuzzer's own `main` out of the link.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif
