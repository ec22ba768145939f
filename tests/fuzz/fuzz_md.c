/*
 * fuzz_md.c - the libFuzzer harness: bytes in, through every stage of
 * matdiff (see fuzz_one.h). Built with clang and ASan, UBSan and libFuzzer's
 * coverage by `make fuzz`, into build/fuzz/, away from the normal build.
 *
 * An input is a source text: at most FUZZ_MAX_LEN bytes, so that each run
 * is fast, and up to its first NUL byte, as md_compile takes a C string.
 *
 * The JIT step (md_compile, libtcc and the calls) costs about half of each
 * run. MD_FUZZ_JIT=0 in the environment, or -DFUZZ_NO_JIT, leaves it out and
 * fuzzes the front half and the emitter alone, about twice as fast (see
 * tests/fuzz/README.md). Code that libtcc compiled is not instrumented;
 * everything it calls is.
 *
 * MD_FUZZ_STRICT=1 turns off fuzz_one.h's workarounds and guard, as the
 * regression test does: `make fuzz-regress` replays tests/fuzz/regress/ so.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "fuzz_one.h"

#define FUZZ_MAX_LEN 4096

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int flags = FUZZ_JIT;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
#ifdef FUZZ_NO_JIT
  flags &= ~FUZZ_JIT;
#endif
  const char *jit = getenv("MD_FUZZ_JIT"), *strict = getenv("MD_FUZZ_STRICT");
  if (jit)
    flags = atoi(jit) ? flags | FUZZ_JIT : flags & ~FUZZ_JIT;
  if (strict && atoi(strict))
    flags |= FUZZ_STRICT;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > FUZZ_MAX_LEN)
    return -1;  // not added to the corpus
  char *src = malloc(size + 1);
  if (!src)
    return 0;
  memcpy(src, data, size);
  src[size] = '\0';
  fuzz_one(src, flags);
  free(src);
  return 0;
}
