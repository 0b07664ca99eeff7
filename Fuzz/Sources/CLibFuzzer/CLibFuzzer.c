// Only the declaration in include/CLibFuzzer.h is needed; libFuzzer itself comes from the toolchain.
#include "CLibFuzzer.h"
