/* SPDX-License-Identifier: MIT */
#pragma once

/* A fuzz target: fuzz-NAME.c defines LLVMFuzzerTestOneInput() and a few seed inputs. Built with
 * -fsanitize=fuzzer -DNB_LIBFUZZER it is a libFuzzer binary; otherwise fuzz-main.c runs it over
 * pseudo-random and mutated inputs as a TAP test. A target aborts when it finds a problem. */

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* NULL-terminated: inputs to mutate, and fragments worth splicing in. */
extern const char *const fuzz_seeds[];
extern const char *const fuzz_dictionary[];

/* Aborts with a message when cond is false; in every build, unlike assert(). */
#define fuzz_check(cond)                                      \
        do {                                                  \
                if (!(cond))                                  \
                        fuzz_fail(__FILE__, __LINE__, #cond); \
        } while (0)

_Noreturn void fuzz_fail(const char *file, int line, const char *what);
