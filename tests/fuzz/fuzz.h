/* SPDX-License-Identifier: MIT */
#pragma once

/* A fuzz target: fuzz-NAME.c defines LLVMFuzzerTestOneInput(). Built with -fsanitize=fuzzer
 * -DNB_LIBFUZZER (make fuzz) it is a libFuzzer binary; otherwise fuzz-main.c runs it as a TAP test
 * over its corpus, tests/fuzz/corpus/fuzz-NAME/, and pseudo-random inputs mutated from the corpus
 * with tests/fuzz/fuzz-NAME.dict. A target aborts when it finds a problem. */

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Aborts with a message when cond is false; in every build, unlike assert(). */
#define fuzz_check(cond)                                      \
        do {                                                  \
                if (!(cond))                                  \
                        fuzz_fail(__FILE__, __LINE__, #cond); \
        } while (0)

_Noreturn void fuzz_fail(const char *file, int line, const char *what);
