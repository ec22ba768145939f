/*
 * tcc_so.c - lets Debian's libtcc.a live inside libmatdiff.so.
 *
 * Debian ships libtcc only as a static archive, built as position-independent
 * *executable* code: it reaches its own globals and three of glibc's
 * (stdout, stderr, environ) PC-relative, as if they were defined in the same
 * program. Its own globals are, once the version script hides them in the
 * shared library. glibc's are not: a shared library cannot reach another
 * library's data PC-relative. So the Makefile copies the archive with those
 * three names changed to the hidden variables below (objcopy --redefine-sym),
 * and a constructor points them at glibc's when the library is loaded.
 *
 * libtcc reads them only to print messages when no error callback is set
 * (jit.c always sets one) and in tcc_run, which matdiff never calls. This
 * file is linked into libmatdiff.so only; the static libraries and the CLI
 * use libtcc.a as it is.
 */
#include <stdio.h>

extern char **environ;

#define HIDDEN __attribute__((visibility("hidden")))

HIDDEN FILE *mdtcc_stdout;
HIDDEN FILE *mdtcc_stderr;
HIDDEN char **mdtcc_environ;

__attribute__((constructor)) static void tcc_so_init(void) {
  mdtcc_stdout = stdout;
  mdtcc_stderr = stderr;
  mdtcc_environ = environ;
}
