/*
 * test_fuzz_regress.c - every input the fuzzer found a bug with, replayed.
 * Each file in tests/fuzz/regress/ (one test per file, in name order) goes
 * through tests/fuzz/fuzz_one.h exactly as the libFuzzer harness runs it:
 * the front half, the printers and the emitter, md_compile, and md_eval,
 * md_grad, md_vjp and the tape at small sizes, with none of the harness's
 * workarounds for open bugs (FUZZ_STRICT). A test passes when that
 * finishes: no crash, no abort from a broken promise of the API, within the
 * timeout and the memory below.
 *
 * Memory-safety and undefined-behaviour bugs show for certain only in a
 * sanitized build: `make test SAN=1` builds this test with ASan and UBSan,
 * and `make fuzz-regress` runs the same files through the fuzzer's build.
 * Each file opens with a comment on the bug it found.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include "fuzz/fuzz_one.h"

#define REGRESS_DIR MD_SRC_DIR "/tests/fuzz/regress"
#define MAX_FILES 256

// An input that would take more than this is a bug too (a blow-up that
// would otherwise take the machine's memory), and under a limit it fails
// quickly: the allocation fails and fuzz_one reports it.
#define MEMORY_LIMIT (1L << 30)

#if defined(__SANITIZE_ADDRESS__)
#define ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ASAN 1
#endif
#endif

typedef struct Name {
  char s[200];
} Name;

static int by_name(const void *a, const void *b) { return strcmp(a, b); }

// The .expr files of REGRESS_DIR, sorted; -1 if it cannot be read.
static int list_inputs(Name *names) {
  DIR *d = opendir(REGRESS_DIR);
  if (!d)
    return -1;
  int n = 0;
  for (struct dirent *e; n < MAX_FILES && (e = readdir(d));) {
    size_t len = strlen(e->d_name);
    if (len > 5 && len < sizeof names->s && !strcmp(e->d_name + len - 5, ".expr"))
      memcpy(names[n++].s, e->d_name, len + 1);
  }
  closedir(d);
  qsort(names, (size_t)n, sizeof *names, by_name);
  return n;
}

// The file's bytes as a C string: its first 4096 bytes (the fuzzer's
// -max_len) up to the first NUL, as the harness passes them to md_compile.
static char *input(const char *path) {
  char *s = slurp(path);
  if (s && strlen(s) > 4096)
    s[4096] = '\0';
  return s;
}

// The test processes do not share the runner's memory, so the parameter is
// only an index: each process lists the directory again.
ParameterizedTestParameters(fuzz, regress) {
  static int index[MAX_FILES];
  static Name names[MAX_FILES];
  int n = list_inputs(names);
  if (n < 1)  // the test below reports an unreadable or empty directory
    n = 1;
  for (int i = 0; i < n; i++)
    index[i] = i;
  return cr_make_param_array(int, index, (size_t)n);
}

ParameterizedTest(int *k, fuzz, regress, .timeout = 20) {
  static Name names[MAX_FILES];
  int n = list_inputs(names);
  cr_assert_gt(n, 0, "no .expr file in %s", REGRESS_DIR);
  cr_assert_lt(*k, n, "%s has no file %d", REGRESS_DIR, *k);
  char path[512];
  snprintf(path, sizeof path, "%s/%s", REGRESS_DIR, names[*k].s);
  char *src = input(path);
  cr_assert_not_null(src, "cannot read %s", path);
#ifndef ASAN  // ASan reserves far more address space than this
  struct rlimit lim = {MEMORY_LIMIT, MEMORY_LIMIT};
  setrlimit(RLIMIT_AS, &lim);
#endif
  fprintf(stderr, "fuzz regress: %s\n", names[*k].s);
  fuzz_one(src, FUZZ_JIT | FUZZ_STRICT);
  free(src);
}
