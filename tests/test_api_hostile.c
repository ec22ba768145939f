/*
 * test_api_hostile.c - every numeric entry point of matdiff.h at hostile
 * sizes: 0, -1, 1<<40, LONG_MAX, products that overflow a long, and
 * products whose byte counts overflow a size_t, for a scalar, a vector and
 * a matrix output. Each call must refuse with a message; none may wrap a
 * product into a small malloc, overflow a buffer or multiply past LONG_MAX.
 * `make test SAN=1` runs it under ASan and UBSan, where any of those aborts.
 *
 * The caller's buffers here are small. A call that accepted a size would
 * read them past their end, which ASan reports: so every size below is one
 * the library must refuse, by its checks or because a buffer of its own
 * (the workspace, md_grad's seed of ones, md_check's copies, the tape's
 * leaves) cannot be allocated. For 1<<40 that is the second, so the test
 * bounds the address space (or, under ASan, lets malloc return NULL) to
 * make it fail on any machine, whatever its overcommit policy.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include "matdiff.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
// A sanitizer's allocator aborts on a request past its maximum unless
// told to return NULL, as malloc does; past 64 GiB it does so at once.
#define ALLOC_OPTIONS "allocator_may_return_null=1:max_allocation_size_mb=65536"
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return ALLOC_OPTIONS; }
const char *__tsan_default_options(void);
const char *__tsan_default_options(void) { return ALLOC_OPTIONS; }
#endif

// Sanitized, each refused terabyte allocation prints a warning: stderr goes
// to /dev/null during the calls (QUIET 1), unless MD_TEST_STDERR is set,
// which shows a sanitizer's report if one of them crashes.
static int quiet(int on, int saved) {
#ifdef SANITIZED
  if (getenv("MD_TEST_STDERR"))
    return -1;
  fflush(stderr);
  if (on) {
    int fd = open("/dev/null", O_WRONLY);
    saved = dup(2);
    if (fd >= 0)
      dup2(fd, 2), close(fd);
  } else if (saved >= 0) {
    dup2(saved, 2);
    close(saved);
  }
  return saved;
#else
  (void)on;
  return saved;
#endif
}

// The address space this process has, plus room for the test's own work:
// a terabyte-sized malloc then fails even where the kernel overcommits.
static void bound_memory(void) {
#ifndef SANITIZED  // the sanitizers reserve terabytes of shadow memory
  FILE *f = fopen("/proc/self/statm", "r");
  long pages = 0;
  if (f && fscanf(f, "%ld", &pages) == 1) {
    rlim_t lim = (rlim_t)pages * 4096 + (4UL << 30);
    struct rlimit r = {lim, lim};
    setrlimit(RLIMIT_AS, &r);
  }
  if (f)
    fclose(f);
#endif
}

// One output shape, with two sizes m and n. Each function keeps the m×n
// product A*B in its workspace, so that a size of 1<<40 needs a workspace
// of terabytes.
static const struct Shape {
  const char *name, *src;
} shapes[] = {
    {"scalar", "A : matrix(m, 3)\nB : matrix(3, n)\ny = ||exp(A*B)||_F^2\n"},
    {"vector", "A : matrix(m, 3)\nB : matrix(3, n)\nz : scalar\ny = sum(exp(A*B), 2)*z\n"},
    {"matrix", "A : matrix(m, 3)\nB : matrix(3, n)\ny = exp(A*B) + A*B\n"},
};

// Sizes {m, n} that must be refused, and why.
static const struct Sizes {
  long m, n;
  const char *why;
} hostile[] = {
    {0, 2, "zero"},
    {2, 0, "zero"},
    {-1, 2, "negative"},
    {2, -1, "negative"},
    {LONG_MIN, 2, "negative"},
    {1L << 40, 2, "a terabyte workspace"},
    {2, 1L << 40, "a terabyte workspace"},
    {1L << 40, 1L << 40, "m*n overflows a long"},
    {LONG_MAX, 2, "m*3 overflows a long"},
    {LONG_MAX / 3 + 1, 1, "m*3 overflows a long"},
    {1L << 30, 1L << 31, "8*m*n overflows a size_t"},
    {1L << 31, 1L << 30, "8*m*n overflows a size_t"},
    {(1L << 61) / 3, 1, "8*m*3 overflows a size_t"},
};

// Small buffers for every input, seed and gradient: never read by a call
// that refuses.
static double in_buf[3][64], seed_buf[64], grad_buf[3][64], out_buf[64];

static void expect_refused(int rc, const md_error *err, const char *call, const struct Shape *s,
                           const struct Sizes *z) {
  cr_expect_eq(rc, -1, "%s on the %s output at m=%ld, n=%ld (%s) returned %d", call, s->name,
               z->m, z->n, z->why, rc);
  cr_expect(err->message[0], "%s on the %s output at m=%ld, n=%ld: no message", call, s->name,
            z->m, z->n);
}

static void all_calls(md_function *f, const struct Shape *s, const struct Sizes *z) {
  const long dims[2] = {z->m, z->n};
  const double *in[3] = {in_buf[0], in_buf[1], in_buf[2]};
  double *g[3] = {grad_buf[0], grad_buf[1], grad_buf[2]};
  md_error err;
  expect_refused(md_eval(f, dims, in, out_buf, &err), &err, "md_eval", s, z);
  expect_refused(md_grad(f, dims, in, out_buf, g, &err), &err, "md_grad", s, z);
  expect_refused(md_grad(f, dims, in, NULL, g, &err), &err, "md_grad (no out)", s, z);
  expect_refused(md_vjp(f, dims, in, seed_buf, out_buf, g, &err), &err, "md_vjp", s, z);
  expect_refused(md_tape_vjp(f, dims, in, seed_buf, out_buf, g, &err), &err, "md_tape_vjp", s, z);
  expect_refused(md_tape_vjp(f, dims, in, NULL, NULL, g, &err), &err, "md_tape_vjp (no seed)", s,
                 z);
  char op[64];
  expect_refused(md_first_nonfinite(f, dims, in, 1, op, sizeof op, NULL, &err), &err,
                 "md_first_nonfinite", s, z);
  md_check_result res;
  expect_refused(md_check(f, dims, NULL, &res, &err), &err, "md_check", s, z);
  md_check_opts given = {.inputs = in, .seed = seed_buf, .skip_fd = 1};
  expect_refused(md_check(f, dims, &given, &res, &err), &err, "md_check (inputs given)", s, z);
  // The counts are doubles: any answer is fine but a crash or UB; below 1
  // a size is refused.
  for (int grad = 0; grad < 2; grad++) {
    double flops = md_flops(f, dims, grad);
    if (z->m < 1 || z->n < 1)
      cr_expect_eq(flops, -1, "md_flops at m=%ld, n=%ld: %g", z->m, z->n, flops);
  }
  // Sizes are reported as they are, never multiplied.
  cr_expect_eq(md_input_rows(f, 0, dims), z->m);
  cr_expect_eq(md_output_rows(f, dims), s == &shapes[0] ? 1 : z->m);
  // Nothing was written into the caller's gradients.
  for (int i = 0; i < 3; i++)
    for (int k = 0; k < 64; k++)
      cr_assert_eq(grad_buf[i][k], 0, "gradient %d was written at m=%ld, n=%ld", i, z->m, z->n);
}

Test(api_hostile, every_call_at_every_hostile_size, .timeout = 60) {
  bound_memory();
  for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
    md_error err;
    md_function *f = md_compile(shapes[s].src, shapes[s].name, &err);
    cr_assert_not_null(f, "%s", err.diag);
    int saved = quiet(1, -1);
    for (size_t z = 0; z < sizeof hostile / sizeof *hostile; z++)
      all_calls(f, &shapes[s], &hostile[z]);
    quiet(0, saved);
    md_free(f);
  }
}

// The reproducer: md_grad's seed of ones for an m×n output was
// malloc(8*m*n), which wraps to malloc(0) at m = 2^30, n = 2^31, and was
// then filled with 2^61 ones.
Test(api_hostile, grad_seed_of_ones_does_not_wrap) {
  md_error err;
  md_function *f = md_compile("A : matrix(m, n)\ny = 2*A\n", "ones.expr", &err);
  cr_assert_not_null(f, "%s", err.diag);
  const long dims[] = {1L << 30, 1L << 31};
  const double *in[] = {in_buf[0]};
  double *g[] = {grad_buf[0]};
  cr_expect_eq(md_grad(f, dims, in, out_buf, g, &err), -1);
  cr_expect(strstr(err.message, "too large") != NULL, "%s", err.message);
  md_free(f);
}

// md_vjp on a scalar output multiplied each input's rows by its columns in
// a long before checking them (UBSan aborts on that; unsanitized, the
// product wrapped and calloc was asked for a negative count).
Test(api_hostile, vjp_scalar_checks_before_multiplying) {
  md_error err;
  md_function *f = md_compile("A : matrix(m, n)\ny = sum(A)\n", "vjp.expr", &err);
  cr_assert_not_null(f, "%s", err.diag);
  const long dims[] = {LONG_MAX / 2, 3};
  const double *in[] = {in_buf[0]};
  double *g[] = {grad_buf[0]};
  double seed = 2;
  cr_expect_eq(md_vjp(f, dims, in, &seed, NULL, g, &err), -1);
  cr_expect(strstr(err.message, "too large") != NULL, "%s", err.message);
  md_free(f);
}
