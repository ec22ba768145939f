/*
 * test_random.c - random programs through every oracle (issue #4), in the
 * manner of Csmith: tests/gen.c writes a random, well-shaped, in-domain
 * .expr program for each 64-bit seed, and each one is held against
 *
 *   1. the JIT: md_compile, md_eval, and md_grad (md_vjp with a random seed
 *      G for a matrix output, and for a scalar one half the time);
 *   2. the tape, through md_check (without its finite differences) from the
 *      same seed: it evaluates the program numerically and never sees a
 *      derivative;
 *   3. central finite differences of md_eval in one random direction v
 *      over all the wrt inputs together: (F(x + tv) - F(x - tv))/2t against
 *      <grad, v>, with F the output or <G, output>;
 *
 * and, beside those: the value against gen.c's own interpreter (which
 * shares no code with matdiff, so it also catches parser and lowering
 * mistakes that the tape, built from the same DAG, would share); a second
 * md_grad into the same buffers, which must add (with one buffer NULL); the
 * printed derivatives (md_grad_formula), compiled again as programs and
 * evaluated; the emitted second order (md_jvp, md_hvp, and on every 10th
 * program md_hessian or md_jacobian) against the tape (md_check2); and on
 * every 50th program the AOT path: `matdiff compile`,
 * the system compiler with the documented flags, a generated driver, its
 * numbers against the JIT's (a warning is a failure of its own, so that it
 * does not hide the numbers).
 *
 * Sizes are bound to 1..5 and inputs drawn from [-1, 1], both from hashes
 * of the seed and the name, so a program and its shrunk forms see the
 * same numbers (and tests/regress/SEED.expr replays exactly). A program
 * with symbolic sizes then runs again, through the same md_function, at
 * other sizes.
 *
 * The programs run in worker processes (a crash or a hang loses one
 * program, reported with its seed, not the run), and the failures are
 * shrunk afterwards, each candidate in a child process of its own.
 *
 *   MD_RANDOM_N=2000      programs to run (make soak N=... sets it)
 *   MD_RANDOM_SEED=1      the first seed; program i has seed SEED + i
 *   MD_RANDOM_JOBS        worker processes (default: the online CPUs)
 *   MD_RANDOM_AOT=50      the AOT path on every Nth program (0: never)
 *   MD_RANDOM_HESSIAN=10  full Hessians (the blocks that are matrices) on every
 *                         Nth program (0: never)
 *   MD_RANDOM_SHRINK=6    failures to shrink and save, at most
 *   MD_RANDOM_SHRINK_SECONDS=60
 *                         time for all the shrinking together; what is left unshrunk is listed
 *   MD_RANDOM_SAVE=1      write the shrunk cases to tests/regress/ (0: print only)
 *   MD_RANDOM_SHOW=1      print every program before running it
 *   MD_RANDOM_SKIP=print,aot,ref,accum,second,hessian,emit2
 *                         leave those oracles out (while a known bug floods one)
 *
 * A failure prints the seed and the shrunk program, ready to save as an
 * .expr file, and saves it as tests/regress/SEED.expr; Test(random,
 * regressions) replays every file there on every run.
 */
#define _DEFAULT_SOURCE  /* MAP_ANONYMOUS, mkdtemp */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>
#include "gen.h"

/* The Makefile builds each test from its one .c file, so the generator is
   compiled in here. */
#include "gen.c"

#define MATDIFF MD_BUILD_DIR "/matdiff"
#define REGRESS_DIR MD_SRC_DIR "/tests/regress"

/* Tolerances, all for md_rel_err, max|a - b| / max(1, max|b|): relative
   where numbers are large, absolute where they are small (a quantity that is
   0 in exact arithmetic is rounding noise in every method).
   - Values and gradients, JIT against the tape, the interpreter and the
     printed formulas: the same mathematics in a different order of
     operations, so they agree to rounding: md_check's tape tolerance. The
     inputs are O(1) and gen.c keeps every intermediate bounded (SQUASH_AT),
     so rounding stays far below it even through cancellation; real
     mistakes are O(1).
   - AOT against the JIT: the same C through gcc and libtcc; only libm and
     instruction selection may differ.
   - Finite differences: central differences with Richardson extrapolation,
     d = (4 D(t/2) - D(t))/3, have truncation error O(t^4) and rounding
     error about eps*|F|/t. The comparison allows TOL_FD of the larger of
     |<g, v>| and sum |g_i v_i| (the scale before cancellation), plus
     64 eps |F|/t, and tries steps t = 1e-3, 1e-4, 1e-5 and 1e-6: a
     correct gradient agrees at one of them even with a kink nearby or
     strong curvature, while a wrong one, off by O(1), agrees at none.
     Where the differences agree with each other at no two neighbouring
     steps, F is not differentiable along v at the point (sign() of a value
     that is 0 but for rounding): they are counted, and the tape is their
     oracle. */
#define TOL_VALUE MD_CHECK_TOL_TAPE
#define TOL_AOT 1e-10
#define TOL_FD 1e-6
#define TIMEOUT 60        /* seconds for one program, AOT included */
#define MAXIN 24
#define PRINT_MAX 4000    /* characters of a printed derivative worth compiling again */
#define PRINT_MAX_SECOND 100000 /* ... of the printed second order, checked once per program */

/* What went wrong, one bit per oracle. */
enum {
  K_CRASH = 1 << 0,    /* a signal in the compiler or the calls */
  K_HANG = 1 << 1,     /* no answer in TIMEOUT seconds */
  K_COMPILE = 1 << 2,  /* md_compile rejected a well-formed program */
  K_CALL = 1 << 3,     /* md_eval, md_grad, md_vjp or the tape reported an error */
  K_REF = 1 << 4,      /* the JIT's value against the reference interpreter */
  K_VALUE = 1 << 5,    /* md_eval against the value md_grad/md_vjp returns */
  K_TAPEVAL = 1 << 6,  /* the JIT's value against the tape's */
  K_TAPE = 1 << 7,     /* the JIT's gradient against the tape's */
  K_FD = 1 << 8,       /* the JIT's gradient against finite differences */
  K_ACCUM = 1 << 9,    /* a second md_grad did not add (or a NULL buffer changed others) */
  K_PRINT = 1 << 10,   /* a printed derivative does not compile or disagrees */
  K_AOT = 1 << 11,     /* matdiff compile + cc + driver: an error, or numbers that differ */
  K_WARN = 1 << 12,    /* the emitted C builds, but not warning-free */
  K_SECOND = 1 << 13,  /* a printed JVP, HVP or Hessian against the tape's forward modes */
  K_EMIT2 = 1 << 14,   /* md_jvp, md_hvp, md_hessian or md_jacobian against the tape's */
  K_COUNT = 15
};

static const char *const kind_name[K_COUNT] = {
    "crash", "hang", "compile error", "call error", "value vs interpreter", "value: eval vs grad",
    "value vs tape", "gradient vs tape", "gradient vs finite differences", "accumulation",
    "printed derivative", "AOT", "AOT build warnings", "second order vs tape",
    "emitted second order vs tape"};

/* Which oracles to run beyond the three. */
enum { O_REF = 1, O_PRINT = 2, O_AOT = 4, O_ACCUM = 8, O_SECOND = 16, O_HESSIAN = 32, O_EMIT2 = 64 };

typedef struct Report {
  unsigned kinds;
  char msg[1024];      /* the first failure's detail, then the others' */
  int fd_steps;        /* finite-difference steps tried beyond the first */
  bool fd_nonsmooth;   /* differences that settled at no step: F is not differentiable there */
  int print_skipped;   /* printed derivatives too long to check */
  int second_order;    /* second-order checks made: 1 for the JVP and HVPs, 2 with a Hessian */
  bool second;         /* in the second trial, at other sizes */
} Report;

static void flag(Report *r, unsigned kind, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void flag(Report *r, unsigned kind, const char *fmt, ...) {
  if (r->kinds & kind)
    return;
  r->kinds |= kind;
  size_t n = strlen(r->msg);
  if (n + 8 >= sizeof r->msg)
    return;
  if (n)
    r->msg[n++] = '\n', r->msg[n] = 0;
  if (r->second)
    n += (size_t)snprintf(r->msg + n, sizeof r->msg - n, "at other sizes: ");
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->msg + n, sizeof r->msg - n, fmt, ap);
  va_end(ap);
}

/* ---- one program: the data ------------------------------------------------ */

// N numbers in [-1, 1] from the seed and a tag: the same for the same name.
static double *data(uint64_t seed, const char *kind, const char *name, long n) {
  char tag[64];
  snprintf(tag, sizeof tag, "%s:%s", kind, name);
  Rng s = {gen_hash(seed, tag)};
  double *v = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
  if (!v)
    abort();
  for (long i = 0; i < n; i++)
    v[i] = uniform(&s, -1, 1);
  return v;
}

static long size_of_dim(uint64_t seed, const char *name) {
  char tag[64];
  snprintf(tag, sizeof tag, "dim:%s", name);
  return 1 + (long)(gen_hash(seed, tag) % GEN_MAX_SIZE);
}

typedef struct Prob {
  md_function *f;
  uint64_t seed;
  int n, nd;
  long dims[GEN_MAX_DIMS + 8];
  long len[MAXIN];
  double *in[MAXIN];
  double *g[MAXIN];  /* the JIT's gradient (seed-weighted), NULL if not wrt */
  long outlen;
  bool matrix;       /* the output is not symbolically 1x1: md_vjp with G */
  bool vjp;          /* md_vjp even so, with the scalar seed s */
  double s;          /* the scalar seed (1 for md_grad) */
  double *G;         /* the seed of a matrix output */
  double *val;       /* md_eval's value */
} Prob;

static void prob_free(Prob *p) {
  for (int i = 0; i < p->n; i++) {
    free(p->in[i]);
    free(p->g[i]);
  }
  free(p->G);
  free(p->val);
}

// <w, out> at the inputs in P->in: the scalar the gradients differentiate.
static bool weighted_value(Prob *p, double *F, double *Fabs) {
  md_error err;
  double *out = malloc(sizeof(double) * (size_t)p->outlen);
  if (!out)
    abort();
  int rc = md_eval(p->f, p->dims, (const double *const *)p->in, out, &err);
  *F = 0;
  if (Fabs)
    *Fabs = 0;
  for (long k = 0; rc == 0 && k < p->outlen; k++) {
    double w = p->matrix ? p->G[k] : p->s;
    *F += w * out[k];
    if (Fabs)
      *Fabs += fabs(w * out[k]);
  }
  free(out);
  return rc == 0;
}

// Every wrt input to BASE + T*V (T = 0 puts them back exactly).
static void move_to(Prob *p, double **base, double **v, double t) {
  for (int i = 0; i < p->n; i++)
    for (long k = 0; v[i] && k < p->len[i]; k++)
      p->in[i][k] = base[i][k] + t * v[i][k];
}

/* ---- the oracles --------------------------------------------------------- */

static void check_tape(Prob *p, Report *r) {
  md_check_opts o = {.inputs = (const double *const *)p->in,
                     .seed = p->matrix ? p->G : p->vjp ? &p->s : NULL,
                     .skip_fd = 1};
  md_check_result c;
  md_error err;
  if (md_check(p->f, p->dims, &o, &c, &err) != 0) {
    flag(r, K_CALL, "md_check: %s", err.message);
    return;
  }
  if (!(c.value <= TOL_VALUE))
    flag(r, K_TAPEVAL, "value: JIT %.17g (first element), off the tape by %.2g", p->val[0], c.value);
  for (int i = 0; i < p->n; i++)
    if (p->g[i] && !(c.tape[i] <= TOL_VALUE))
      flag(r, K_TAPE, "d%s/d%s: JIT and tape differ by %.2g", md_output_name(p->f),
           md_input_name(p->f, i), c.tape[i]);
  md_check_result_free(&c);
}

static void check_ref(Prob *p, const GProg *prog, Report *r) {
  long pdims[GEN_MAX_DIMS] = {0};
  const double *pin[GEN_MAX_INPUTS] = {0};
  for (int d = 0; d < prog->ndims; d++) {
    pdims[d] = 1;
    for (int k = 0; k < p->nd; k++)
      if (!strcmp(md_dim_name(p->f, k), prog->dimname[d]))
        pdims[d] = p->dims[k];
  }
  for (int i = 0; i < prog->ninputs; i++)
    for (int k = 0; k < p->n; k++)
      if (!strcmp(md_input_name(p->f, k), prog->in[i].name))
        pin[i] = p->in[k];
  for (int i = 0; i < prog->ninputs; i++)
    if (!pin[i]) {
      flag(r, K_REF, "input %s is not an input of the compiled function", prog->in[i].name);
      return;
    }
  double *ref;
  long rr, rc;
  if (gen_eval(prog, pdims, pin, &ref, &rr, &rc) != 0) {
    flag(r, K_REF, "the interpreter found a singular matrix");
  } else if (rr * rc != p->outlen) {
    flag(r, K_REF, "the interpreter's output is %ldx%ld, the JIT's has %ld elements", rr, rc, p->outlen);
  } else {
    double e = md_rel_err(p->val, ref, p->outlen);
    if (!(e <= TOL_VALUE))
      flag(r, K_REF, "value: JIT %.17g, interpreter %.17g (first element; off by %.2g)", p->val[0], ref[0], e);
  }
  free(ref);
}

static void check_fd(Prob *p, Report *r) {
  double *v[MAXIN] = {0}, *base[MAXIN] = {0}, D = 0, S = 0, F0, Fabs;
  for (int i = 0; i < p->n; i++)
    if (p->g[i]) {
      v[i] = data(p->seed, "dir", md_input_name(p->f, i), p->len[i]);
      base[i] = malloc(sizeof(double) * (size_t)p->len[i]);
      if (!base[i])
        abort();
      memcpy(base[i], p->in[i], sizeof(double) * (size_t)p->len[i]);
      for (long k = 0; k < p->len[i]; k++) {
        D += p->g[i][k] * v[i][k];
        S += fabs(p->g[i][k] * v[i][k]);
      }
    }
  if (!weighted_value(p, &F0, &Fabs)) {
    flag(r, K_CALL, "md_eval failed at the unperturbed point");
    goto done;
  }
  static const double steps[] = {1e-3, 1e-4, 1e-5, 1e-6};
  double best = INFINITY, best_d = NAN, best_t = 0, ds[4], allows[4];
  bool have[4] = {0};
  for (int k = 0; k < 4; k++) {
    double t = steps[k], fp, fm, fp2, fm2;
    bool ok = true;
    move_to(p, base, v, t), ok &= weighted_value(p, &fp, NULL);
    move_to(p, base, v, -t), ok &= weighted_value(p, &fm, NULL);
    move_to(p, base, v, t / 2), ok &= weighted_value(p, &fp2, NULL);
    move_to(p, base, v, -t / 2), ok &= weighted_value(p, &fm2, NULL);
    move_to(p, base, v, 0);
    if (!ok)
      continue;
    double d1 = (fp - fm) / (2 * t), d2 = (fp2 - fm2) / t, d = (4 * d2 - d1) / 3;
    double err = fabs(d - D), allow = TOL_FD * fmax(1, fmax(fabs(D), S)) + 64 * DBL_EPSILON * fmax(1, Fabs) / t;
    ds[k] = d, allows[k] = allow, have[k] = true;
    if (err / allow < best)
      best = err / allow, best_d = d, best_t = t;
    if (err <= allow)
      break;
    r->fd_steps++;
  }
  // A wrong gradient of a function differentiable here disagrees with
  // differences that agree among themselves. Differences that agree at no
  // two neighbouring steps say that F is not differentiable along v here: a
  // jump such as sign() of a value that is 0 but for rounding (sign(abs(W +
  // 0.7) - W - 0.7)) moves them by J/t. Then they are no oracle, and the
  // tape's is the one that holds.
  bool settled = false;
  for (int k = 0; k + 1 < 4; k++)
    settled |= have[k] && have[k + 1] && fabs(ds[k] - ds[k + 1]) <= allows[k];
  if (!(best <= 1) && !settled)
    r->fd_nonsmooth = true;
  else if (!(best <= 1))
    flag(r, K_FD, "<grad, v> = %.17g from the JIT, %.17g from finite differences (step %g; %.3g times "
         "the tolerance at best)", D, best_d, best_t, best);
done:
  for (int i = 0; i < p->n; i++) {
    free(v[i]);
    free(base[i]);
  }
}

// The gradient call again into the same buffers: it must add. One buffer
// is NULL when there are two or more: that skips it and nothing else.
static void check_accum(Prob *p, Report *r) {
  double *g2[MAXIN] = {0};
  int nw = 0, skip = -1;
  for (int i = 0; i < p->n; i++)
    nw += p->g[i] != NULL;
  if (nw >= 2)
    for (int i = 0, k = 0; i < p->n; i++)
      if (p->g[i] && k++ == (int)(p->seed % (uint64_t)nw))
        skip = i;
  for (int i = 0; i < p->n; i++)
    if (p->g[i] && i != skip) {
      g2[i] = malloc(sizeof(double) * (size_t)p->len[i]);
      if (!g2[i])
        abort();
      memcpy(g2[i], p->g[i], sizeof(double) * (size_t)p->len[i]);
    }
  md_error err;
  const double *const *in = (const double *const *)p->in;
  int rc = p->matrix ? md_vjp(p->f, p->dims, in, p->G, NULL, g2, &err)
           : p->vjp  ? md_vjp(p->f, p->dims, in, &p->s, NULL, g2, &err)
                     : md_grad(p->f, p->dims, in, NULL, g2, &err);
  if (rc != 0)
    flag(r, K_ACCUM, "the second gradient call failed: %s", err.message);
  for (int i = 0; rc == 0 && i < p->n; i++) {
    if (!g2[i])
      continue;
    double *twice = malloc(sizeof(double) * (size_t)p->len[i]);
    if (!twice)
      abort();
    for (long k = 0; k < p->len[i]; k++)
      twice[k] = 2 * p->g[i][k];
    double e = md_rel_err(g2[i], twice, p->len[i]);
    if (!(e <= TOL_VALUE))
      flag(r, K_ACCUM, "d%s/d%s: a second call into the same buffer%s did not add (off by %.2g)",
           md_output_name(p->f), md_input_name(p->f, i), skip >= 0 ? " (another one NULL)" : "", e);
    free(twice);
  }
  for (int i = 0; i < p->n; i++)
    free(g2[i]);
}

// Does SRC name anything G, or anything with "__" in it? Those are the
// names check_print adds. Comments do not count.
static bool names_taken(const char *src) {
  for (const char *q = src; *q;) {
    if (*q == '#') {
      q += strcspn(q, "\n");
    } else if ((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || *q == '_') {
      size_t n = strspn(q, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_");
      bool g = n == 1 && *q == 'G', under = false;
      for (size_t k = 0; k + 1 < n; k++)
        under |= q[k] == '_' && q[k + 1] == '_';
      if (g || under)
        return true;
      q += n;
    } else {
      q++;
    }
  }
  return false;
}

// Each printed derivative must parse again after the program's own
// statements (it may name the program's intermediates) and evaluate to the
// gradient; G, for a matrix output, is declared after them.
static void check_print(Prob *p, const char *src, Report *r) {
  // The names this check adds must be free (gen.c never uses them; a
  // hand-written regression file might).
  if (names_taken(src))
    return;
  char *body = strip_wrt(src);
  for (int i = 0; i < p->n; i++) {
    if (!p->g[i])
      continue;
    const char *formula = md_grad_formula(p->f, i);
    // Printed derivatives grow with the program (shared subexpressions are
    // printed again each time); past this size compiling them costs more
    // than it finds.
    if (formula && strlen(formula) > PRINT_MAX) {
      r->print_skipped++;
      continue;
    }
    Out o = {0};
    put(&o, "%s\n", body);
    if (p->matrix) {
      put(&o, "G : ");
      put_type(&o, p->f, -1);
      put(&o, "\n");
    }
    // Only the value is wanted: one unused wrt input spares differentiating it.
    put(&o, "unused__ : scalar\nwrt unused__\nderivative__ = %s\n", formula ? formula : "(null)");
    md_error err;
    md_function *h = md_compile(o.s, "derivative.expr", &err);
    if (!h) {
      flag(r, K_PRINT, "d%s/d%s = %s does not compile: %s", md_output_name(p->f), md_input_name(p->f, i),
           formula ? formula : "(null)", err.message);
      free(o.s);
      continue;
    }
    long dims[GEN_MAX_DIMS + 8] = {0};
    for (int d = 0; d < md_num_dims(h); d++)
      for (int k = 0; k < p->nd; k++)
        if (!strcmp(md_dim_name(h, d), md_dim_name(p->f, k)))
          dims[d] = p->dims[k];
    const double *in[MAXIN + 1];
    static const double zero = 0;
    for (int v = 0; v < md_num_inputs(h); v++) {
      in[v] = !strcmp(md_input_name(h, v), "G") ? p->G : &zero;
      for (int k = 0; k < p->n; k++)
        if (!strcmp(md_input_name(h, v), md_input_name(p->f, k)))
          in[v] = p->in[k];
    }
    long len = md_output_rows(h, dims) * md_output_cols(h, dims);
    if (len != p->len[i]) {
      flag(r, K_PRINT, "d%s/d%s = %s has %ld elements, %s has %ld", md_output_name(p->f), md_input_name(p->f, i),
           formula, len, md_input_name(p->f, i), p->len[i]);
    } else {
      double *got = malloc(sizeof(double) * (size_t)len);
      if (!got)
        abort();
      if (md_eval(h, dims, in, got, &err) != 0) {
        flag(r, K_PRINT, "d%s/d%s = %s fails to evaluate: %s", md_output_name(p->f), md_input_name(p->f, i),
             formula, err.message);
      } else {
        for (long k = 0; k < len; k++)
          got[k] *= p->matrix ? 1 : p->s;
        double e = md_rel_err(got, p->g[i], len);
        if (!(e <= TOL_VALUE))
          flag(r, K_PRINT, "d%s/d%s = %s evaluates to %.17g where the JIT has %.17g (off by %.2g)",
               md_output_name(p->f), md_input_name(p->f, i), formula, got[0], p->g[i][0], e);
      }
      free(got);
    }
    md_free(h);
    free(o.s);
  }
  free(body);
}

/* ---- second order ---------------------------------------------------------- */

// A formula P's function prints, compiled again as the output of a program
// of its own (formula_program, with the weights W__k declared): NULL, with
// the failure flagged, if it does not compile.
static md_function *compile_again(Prob *p, const char *src, const char *formula, const char *decls,
                                  Report *r) {
  char *prog = formula_program(p->f, src, formula);
  Out o = {0};
  put(&o, "%s%s", decls, prog);
  md_error err;
  md_function *h = md_compile(o.s, "second.expr", &err);
  if (!h)
    flag(r, K_SECOND, "a printed second-order formula does not compile: %s\n%.300s", err.message,
         formula);
  free(o.s);
  free(prog);
  return h;
}

// The JVP and every HVP, printed, checked together through one program:
// sum(W__0 .* (jvp)) + sum over the wrt inputs i of sum(W__i .* (hvp_i)),
// with random weights, against the same sum of the tape's forward mode and
// forward-over-reverse, at random directions. The HVPs of a matrix output
// are those of <G, output>. Within 1e-9 of the sum of the terms' sizes.
static void check_second(Prob *p, const char *src, Report *r) {
  md_error err;
  if (names_taken(src))
    return;
  const char *jvp = md_jvp_formula(p->f, &err);
  if (!jvp) {
    flag(r, K_SECOND, "no JVP: %s", err.message);
    return;
  }
  Out sum = {0}, decls = {0};
  put(&sum, "sum(W__0 .* (%s))", jvp);
  put(&decls, "W__0 : ");
  put_type(&decls, p->f, -1);
  put(&decls, "\n");
  bool long_formula = strlen(jvp) > PRINT_MAX_SECOND;
  for (int i = 0; i < p->n && !long_formula; i++) {
    if (!p->g[i])
      continue;
    const char *hvp = md_hvp_formula(p->f, i, &err);
    if (!hvp) {
      flag(r, K_SECOND, "no HVP for %s: %s", md_input_name(p->f, i), err.message);
      goto done;
    }
    long_formula |= strlen(hvp) > PRINT_MAX_SECOND;
    put(&sum, " + sum(W__%d .* (%s))", i + 1, hvp);
    put(&decls, "W__%d : ", i + 1);
    put_type(&decls, p->f, i);
    put(&decls, "\n");
  }
  if (long_formula) {
    r->print_skipped++;
    goto done;
  }
  double *w[MAXIN + 1] = {0}, *v[MAXIN] = {0}, *hv[MAXIN] = {0}, *tan = NULL;
  w[0] = data(p->seed, "W", "", p->outlen);
  for (int i = 0; i < p->n; i++) {
    v[i] = data(p->seed, "second dir", md_input_name(p->f, i), p->len[i]);
    if (p->g[i]) {
      w[i + 1] = data(p->seed, "W", md_input_name(p->f, i), p->len[i]);
      hv[i] = calloc((size_t)p->len[i], sizeof(double));
    }
  }
  tan = calloc((size_t)p->outlen, sizeof(double));
  md_function *h = compile_again(p, src, sum.s, decls.s, r);
  const double *const *in = (const double *const *)p->in, *const *dirs = (const double *const *)v;
  const double *seed = p->matrix ? p->G : NULL;
  if (!h)
    goto free_all;
  if (md_tape_jvp(p->f, p->dims, in, dirs, NULL, tan, &err) != 0 ||
      md_tape_hvp(p->f, p->dims, in, dirs, seed, NULL, NULL, hv, &err) != 0) {
    flag(r, K_CALL, "the tape's second order: %s", err.message);
    goto free_all;
  }
  // The tape's sum, and the size of its terms.
  double want = 0, scale = 0;
  for (long k = 0; k < p->outlen; k++)
    want += w[0][k] * tan[k], scale += fabs(w[0][k] * tan[k]);
  for (int i = 0; i < p->n; i++)
    for (long k = 0; hv[i] && k < p->len[i]; k++) {
      want += w[i + 1][k] * hv[i][k], scale += fabs(w[i + 1][k] * hv[i][k]);
    }
  const double *hin[2 * MAXIN + 8];
  long hdims[GEN_MAX_DIMS + 8] = {0};
  if (md_num_inputs(h) > 2 * MAXIN + 8) {
    flag(r, K_CALL, "too many inputs for the second-order check");
    goto free_all;
  }
  formula_inputs(h, p->f, p->dims, in, dirs, p->G, hdims, hin);
  for (int k = 0; k < md_num_inputs(h); k++)
    if (!strncmp(md_input_name(h, k), "W__", 3))
      hin[k] = w[atoi(md_input_name(h, k) + 3)];
  double got;
  if (md_eval(h, hdims, hin, &got, &err) != 0)
    flag(r, K_SECOND, "the printed second order fails to evaluate: %s", err.message);
  else if (!(fabs(got - want) <= TOL_VALUE * fmax(1, scale)))
    flag(r, K_SECOND, "the printed JVP and HVPs, weighted, give %.17g; the tape's %.17g (off by %.2g "
         "of %.2g)", got, want, fabs(got - want), scale);
  r->second_order = 1;
free_all:
  md_free(h);
  free(tan);
  for (int i = 0; i <= p->n; i++)
    free(w[i]);
  for (int i = 0; i < p->n; i++) {
    free(v[i]);
    free(hv[i]);
  }
done:
  free(sum.s);
  free(decls.s);
}

// Every Hessian block that is a matrix formula, compiled again, against the
// tape's forward-over-reverse along each unit direction: column by column.
static void check_hessian(Prob *p, const char *src, Report *r) {
  md_error err;
  if (p->matrix || names_taken(src))
    return;
  const double *const *in = (const double *const *)p->in;
  for (int i = 0; i < p->n; i++)
    for (int j = 0; p->g[i] && j < p->n; j++) {
      const char *m = p->g[j] ? md_hessian_formula(p->f, i, j, &err) : NULL;
      if (!m || strlen(m) > PRINT_MAX_SECOND)
        continue;
      md_function *h = compile_again(p, src, m, "", r);
      if (!h)
        return;
      long rows = p->len[i], cols = p->len[j];
      double *got = malloc(sizeof(double) * (size_t)(rows * cols));
      double *want = malloc(sizeof(double) * (size_t)(rows * cols)), *col = malloc(sizeof(double) * (size_t)rows);
      double *v[MAXIN] = {0}, *hv[MAXIN] = {0};
      for (int k = 0; k < p->n; k++)
        v[k] = calloc((size_t)p->len[k], sizeof(double));
      hv[i] = col;
      const double *hin[2 * MAXIN + 8];
      long hdims[GEN_MAX_DIMS + 8] = {0};
      formula_inputs(h, p->f, p->dims, in, (const double *const *)v, p->G, hdims, hin);
      bool ok = md_num_inputs(h) <= 2 * MAXIN + 8 && md_eval(h, hdims, hin, got, &err) == 0;
      for (long k = 0; ok && k < cols; k++) {
        v[j][k] = 1;
        memset(col, 0, sizeof(double) * (size_t)rows);
        ok = md_tape_hvp(p->f, p->dims, in, (const double *const *)v, NULL, NULL, NULL, hv, &err) == 0;
        for (long e = 0; e < rows; e++)
          want[e * cols + k] = col[e];
        v[j][k] = 0;
      }
      double e = ok ? md_rel_err(got, want, rows * cols) : 0;
      if (!ok)
        flag(r, K_SECOND, "d2/d%sd%s = %.200s fails to evaluate: %s", md_input_name(p->f, i),
             md_input_name(p->f, j), m, err.message);
      else if (!(e <= TOL_VALUE))
        flag(r, K_SECOND, "d2/d%sd%s = %.300s is off the tape's Hessian by %.2g", md_input_name(p->f, i),
             md_input_name(p->f, j), m, e);
      r->second_order = 2;
      for (int k = 0; k < p->n; k++)
        free(v[k]);
      free(got);
      free(want);
      free(col);
      md_free(h);
    }
}

// The emitted second order (md_jvp, md_hvp and, with FULL, md_hessian or
// md_jacobian) against the tape, along the directions check_second uses,
// through md_check2. Its differences of the gradient are left out: near a
// kink one fixed step is not enough, and check_fd covers the gradient.
static void check_emit2(Prob *p, bool full, Report *r) {
  md_error err;
  double *v[MAXIN] = {0};
  for (int i = 0; i < p->n; i++)
    v[i] = data(p->seed, "second dir", md_input_name(p->f, i), p->len[i]);
  md_check2_result c;
  if (md_check2(p->f, p->dims, (const double *const *)p->in, (const double *const *)v, full, &c,
                &err) != 0)
    flag(r, K_EMIT2, "md_check2: %s", err.message);
  else if (!(c.jvp <= TOL_VALUE))
    flag(r, K_EMIT2, "md_jvp is off the tape's by %.2g", c.jvp);
  for (int i = 0; c.hvp_tape && i < p->n; i++) {
    const char *x = md_input_name(p->f, i);
    if (!(c.hvp_tape[i] <= TOL_VALUE))
      flag(r, K_EMIT2, "md_hvp of %s is off the tape's by %.2g", x, c.hvp_tape[i]);
    if (!(c.hessian[i] <= TOL_VALUE) || !(c.jacobian[i] <= TOL_VALUE))
      flag(r, K_EMIT2, "md_%s's entries of %s are off the tape's by %.2g",
           p->matrix ? "jacobian" : "hessian", x, p->matrix ? c.jacobian[i] : c.hessian[i]);
  }
  md_check2_result_free(&c);
  for (int i = 0; i < p->n; i++)
    free(v[i]);
}

/* ---- the AOT path ---------------------------------------------------------- */

// The arguments of f (sizes, inputs) or of f_grad/f_vjp (and the seed and
// gradient buffers); MORE when the caller adds one after these.
static void list_args(Out *o, Prob *p, bool types, bool grads, bool more) {
  bool first = true;
  for (int d = 0; d < p->nd; d++, first = false)
    if (types)
      put(o, "%slong d%d", first ? "" : ", ", d);
    else
      put(o, "%s%ldL", first ? "" : ", ", p->dims[d]);
  for (int i = 0; i < p->n; i++, first = false)
    put(o, types ? "%sconst double *a%d" : "%sin%d", first ? "" : ", ", i);
  if (grads) {
    if (p->matrix)
      put(o, types ? "%sconst double *seed" : "%sseedv", first ? "" : ", "), first = false;
    for (int i = 0; i < p->n; i++)
      if (p->g[i])
        put(o, types ? "%sdouble *g%d" : "%sgr%d", first ? "" : ", ", i), first = false;
  }
  if (first && types && !more)
    put(o, "void");
  if (!first && more)
    put(o, ", ");
}

static char *driver(Prob *p) {
  Out o = {0};
  put(&o, "#include <stdio.h>\n\n");
  put(&o, p->matrix ? "int f(" : "double f(");
  list_args(&o, p, true, false, p->matrix);
  if (p->matrix)
    put(&o, "double *out");
  put(&o, ");\n%s", p->matrix ? "int f_vjp(" : "double f_grad(");
  list_args(&o, p, true, true, false);
  put(&o, ");\n\n");
  for (int i = 0; i < p->n; i++) {
    put(&o, "static const double in%d[] = {", i);
    for (long k = 0; k < p->len[i]; k++)
      put(&o, "%s%.17g", k ? ", " : "", p->in[i][k]);
    put(&o, "};\n");
    if (p->g[i])
      put(&o, "static double gr%d[%ld];\n", i, p->len[i]);
  }
  if (p->matrix) {
    put(&o, "static const double seedv[] = {");
    for (long k = 0; k < p->outlen; k++)
      put(&o, "%s%.17g", k ? ", " : "", p->G[k]);
    put(&o, "};\nstatic double out[%ld];\n", p->outlen);
  }
  put(&o, "\nstatic void show(const char *tag, const double *v, long n) {\n"
          "  printf(\"%%s\", tag);\n  for (long i = 0; i < n; i++)\n    printf(\" %%.17g\", v[i]);\n"
          "  printf(\"\\n\");\n}\n\nint main(void) {\n");
  if (p->matrix) {
    put(&o, "  if (f(");
    list_args(&o, p, false, false, true);
    put(&o, "out) != 0)\n    return 2;\n  show(\"value\", out, %ldL);\n  if (f_vjp(", p->outlen);
    list_args(&o, p, false, true, false);
    put(&o, ") != 0)\n    return 3;\n");
  } else {
    put(&o, "  double y = f(");
    list_args(&o, p, false, false, false);
    put(&o, ");\n  show(\"value\", &y, 1);\n  y = f_grad(");
    list_args(&o, p, false, true, false);
    put(&o, ");\n  show(\"grad_value\", &y, 1);\n");
  }
  for (int i = 0; i < p->n; i++)
    if (p->g[i])
      put(&o, "  show(\"grad%d\", gr%d, %ldL);\n", i, i, p->len[i]);
  put(&o, "  return 0;\n}\n");
  return o.s;
}

// `matdiff config --cflags` and `--libs`, asked once.
static const char *config(int which) {
  static char flags[2][1024];
  if (!flags[which][0]) {
    FILE *f = popen(which ? MATDIFF " config --libs" : MATDIFF " config --cflags", "r");
    if (f) {
      if (!fgets(flags[which], sizeof flags[which], f))
        flags[which][0] = 0;
      pclose(f);
    }
    flags[which][strcspn(flags[which], "\n")] = 0;
  }
  return flags[which];
}

static void check_aot(Prob *p, const char *src, Report *r) {
  char dir[] = "/tmp/test_random.XXXXXX", path[4][300], cmd[4096];
  if (!mkdtemp(dir)) {
    flag(r, K_AOT, "mkdtemp: %s", strerror(errno));
    return;
  }
  static const char *const names[] = {"f.expr", "f.c", "driver.c", "prog"};
  for (int k = 0; k < 4; k++)
    snprintf(path[k], sizeof path[k], "%s/%s", dir, names[k]);
  char *drv = driver(p), *log = NULL, *out = NULL;
  spit(path[0], src);
  spit(path[2], drv);
  snprintf(cmd, sizeof cmd, "%s compile %s -o %s --name f >%s/log 2>&1", MATDIFF, path[0], path[1], dir);
  if (run(cmd) != 0) {
    snprintf(cmd, sizeof cmd, "%s/log", dir);
    log = slurp(cmd);
    flag(r, K_AOT, "matdiff compile failed: %s", log ? log : "");
    goto done;
  }
  // The documented flags but -Werror: a warning is a failure of its own
  // (K_WARN), and the numbers are still compared.
  snprintf(cmd, sizeof cmd, "cc -std=c99 -Wall -Wextra -pedantic %s %s %s %s -o %s >%s/log 2>&1", config(0),
           path[1], path[2], config(1), path[3], dir);
  int rc = run(cmd);
  snprintf(cmd, sizeof cmd, "%s/log", dir);
  log = slurp(cmd);
  if (rc != 0) {
    flag(r, K_AOT, "the emitted C does not build: %.300s", log ? log : "");
    goto done;
  }
  if (log && *log) {
    // Only the first diagnostic, without the temporary directory's name.
    char *first = strstr(log, "warning: ");
    first = first ? first : strstr(log, "error: ") ? strstr(log, "error: ") : log;
    flag(r, K_WARN, "the emitted C does not build warning-free with -Wall -Wextra -pedantic: %.*s",
         (int)strcspn(first, "\n"), first);
  }
  snprintf(cmd, sizeof cmd, "%s >%s/out 2>&1", path[3], dir);
  rc = run(cmd);
  snprintf(cmd, sizeof cmd, "%s/out", dir);
  out = slurp(cmd);
  if (rc != 0) {
    flag(r, K_AOT, "the driver exited with %d: %.200s", rc, out ? out : "");
    goto done;
  }
  double *v = malloc(sizeof(double) * (size_t)(p->outlen + 1));
  if (!v)
    abort();
  if (!numbers(out, "value", v, p->outlen))
    flag(r, K_AOT, "no value in the driver's output");
  else if (!(md_rel_err(v, p->val, p->outlen) <= TOL_AOT))
    flag(r, K_AOT, "value: AOT %.17g, JIT %.17g", v[0], p->val[0]);
  free(v);
  for (int i = 0; i < p->n; i++) {
    if (!p->g[i])
      continue;
    char tag[32];
    snprintf(tag, sizeof tag, "grad%d", i);
    double *gv = malloc(sizeof(double) * (size_t)p->len[i]);
    if (!gv)
      abort();
    if (!numbers(out, tag, gv, p->len[i])) {
      flag(r, K_AOT, "no %s in the driver's output", tag);
    } else {
      for (long k = 0; k < p->len[i]; k++)
        gv[k] *= p->matrix ? 1 : p->s;
      double e = md_rel_err(gv, p->g[i], p->len[i]);
      if (!(e <= TOL_AOT))
        flag(r, K_AOT, "d%s/d%s: AOT and JIT differ by %.2g", md_output_name(p->f), md_input_name(p->f, i), e);
    }
    free(gv);
  }
done:
  free(drv);
  free(log);
  free(out);
  if (!getenv("MD_TEST_KEEP")) {
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    run(cmd);
  }
}

/* ---- one program: all of it ------------------------------------------------ */

// One trial of the compiled P->f at the sizes and data of SEED.
static void trial(Prob *p, uint64_t seed, const GProg *prog, unsigned what, const char *src, Report *r) {
  md_error err;
  p->seed = seed;
  for (int d = 0; d < p->nd; d++)
    p->dims[d] = size_of_dim(seed, md_dim_name(p->f, d));
  for (int i = 0; i < p->n; i++) {
    p->len[i] = md_input_rows(p->f, i, p->dims) * md_input_cols(p->f, i, p->dims);
    p->in[i] = data(seed, "in", md_input_name(p->f, i), p->len[i]);
    if (md_input_is_wrt(p->f, i) && !(p->g[i] = calloc((size_t)p->len[i], sizeof(double))))
      abort();
  }
  p->outlen = md_output_rows(p->f, p->dims) * md_output_cols(p->f, p->dims);
  p->matrix = md_output_rows(p->f, NULL) != 1 || md_output_cols(p->f, NULL) != 1;
  p->vjp = gen_hash(seed, "vjp") & 1;
  p->s = p->matrix || !p->vjp ? 1 : 0.5 + 1.5 * (double)(gen_hash(seed, "s") % 1000) / 1000;
  p->G = p->matrix ? data(seed, "G", "", p->outlen) : NULL;
  p->val = calloc((size_t)p->outlen, sizeof(double));
  double *gout = calloc((size_t)p->outlen, sizeof(double));
  if (!p->val || !gout)
    abort();
  const double *const *in = (const double *const *)p->in;
  if (md_eval(p->f, p->dims, in, p->val, &err) != 0) {
    flag(r, K_CALL, "md_eval: %s", err.message);
    goto done;
  }
  int rc = p->matrix ? md_vjp(p->f, p->dims, in, p->G, gout, p->g, &err)
           : p->vjp  ? md_vjp(p->f, p->dims, in, &p->s, gout, p->g, &err)
                     : md_grad(p->f, p->dims, in, gout, p->g, &err);
  if (rc != 0) {
    flag(r, K_CALL, "%s: %s", p->matrix || p->vjp ? "md_vjp" : "md_grad", err.message);
    goto done;
  }
  double e = md_rel_err(gout, p->val, p->outlen);
  if (!(e <= TOL_VALUE))
    flag(r, K_VALUE, "md_eval gives %.17g, %s %.17g (first element; off by %.2g)", p->val[0],
         p->matrix || p->vjp ? "md_vjp" : "md_grad", gout[0], e);
  check_tape(p, r);
  if (prog && (what & O_REF))
    check_ref(p, prog, r);
  check_fd(p, r);
  if (what & O_ACCUM)
    check_accum(p, r);
  if (what & O_PRINT)
    check_print(p, src, r);
  if (what & O_SECOND)
    check_second(p, src, r);
  if (what & O_HESSIAN)
    check_hessian(p, src, r);
  if (what & O_EMIT2)
    check_emit2(p, what & O_HESSIAN, r);
  if (what & O_AOT)
    check_aot(p, src, r);
done:
  free(gout);
  prob_free(p);
  memset(p->in, 0, sizeof p->in);
  memset(p->g, 0, sizeof p->g);
  p->G = p->val = NULL;
}

// Run SRC at the data of SEED through the oracles; PROG (if not NULL) is its
// tree, for the interpreter. A program with symbolic sizes runs again at
// other sizes, through the same md_function (its workspace is made again),
// against the tape, the interpreter and finite differences. Returns the
// failure kinds.
static unsigned check_source(const char *src, uint64_t seed, const GProg *prog, unsigned what, Report *r) {
  memset(r, 0, sizeof *r);
  md_error err;
  Prob p = {.seed = seed};
  p.f = md_compile(src, "random.expr", &err);
  if (!p.f) {
    flag(r, K_COMPILE, "md_compile: %s", err.diag);
    return r->kinds;
  }
  p.n = md_num_inputs(p.f);
  p.nd = md_num_dims(p.f);
  if (p.n > MAXIN || p.nd > GEN_MAX_DIMS + 8) {
    flag(r, K_CALL, "too many inputs for this test");
    md_free(p.f);
    return r->kinds;
  }
  trial(&p, seed, prog, what, src, r);
  if (p.nd > 0) {
    r->second = true;
    trial(&p, gen_hash(seed, "other sizes"), prog, what & O_REF, src, r);
  }
  md_free(p.f);
  return r->kinds;
}

/* ---- configuration and the shared record of a run ---------------------------- */

static long env_long(const char *name, long def) {
  const char *s = getenv(name);
  return s && *s ? strtol(s, NULL, 0) : def;
}

static uint64_t env_u64(const char *name, uint64_t def) {
  const char *s = getenv(name);
  return s && *s ? strtoull(s, NULL, 0) : def;
}

#define MAXW 64
#define MAXFAIL 4096

typedef struct Fail {
  uint64_t seed;
  unsigned kinds;
  char msg[512];
} Fail;

typedef struct Worker {
  volatile long current;   /* the index being run, -1 when done */
  volatile long done;
  volatile long matrix, aot, nodes, fd_steps, fd_nonsmooth, print_skipped, second, hessians;
} Worker;

typedef struct Shared {
  Worker w[MAXW];
  volatile long nfail;
  Fail fail[MAXFAIL];
} Shared;

typedef struct Config {
  long n, jobs, aot_every, hessian_every, shrink, shrink_seconds;
  unsigned skip;       /* O_* left out */
  uint64_t seed;
  bool save, show;
} Config;

static void record(Shared *sh, uint64_t seed, unsigned kinds, const char *msg) {
  long k = __atomic_fetch_add(&sh->nfail, 1, __ATOMIC_SEQ_CST);
  if (k >= MAXFAIL)
    return;
  sh->fail[k].seed = seed;
  sh->fail[k].kinds = kinds;
  size_t n = strlen(msg) < sizeof sh->fail[k].msg ? strlen(msg) : sizeof sh->fail[k].msg - 1;
  memcpy(sh->fail[k].msg, msg, n);
  sh->fail[k].msg[n] = 0;
}

static unsigned oracles(const Config *cf, long index) {
  unsigned what = O_REF | O_PRINT | O_ACCUM | O_SECOND | O_EMIT2;
  if (cf->aot_every > 0 && index % cf->aot_every == cf->aot_every - 1)
    what |= O_AOT;
  if (cf->hessian_every > 0 && index % cf->hessian_every == cf->hessian_every - 1)
    what |= O_HESSIAN;
  return what & ~cf->skip;
}

// A worker process: programs FROM, FROM + jobs, ... It never returns.
static void worker(Shared *sh, const Config *cf, int w, long from) {
  for (long i = from; i < cf->n; i += cf->jobs) {
    sh->w[w].current = i;
    alarm(TIMEOUT);
    GProg p;
    uint64_t seed = cf->seed + (uint64_t)i;
    gen_program(&p, seed);
    char *src = gen_source(&p);
    if (cf->show)
      fprintf(stderr, "---- seed %llu\n%s", (unsigned long long)seed, src);
    Report r;
    unsigned what = oracles(cf, i);
    if (check_source(src, seed, &p, what, &r))
      record(sh, seed, r.kinds, r.msg);
    sh->w[w].matrix += !is_scalar(N(&p, p.let[p.nlets - 1].root)->r, N(&p, p.let[p.nlets - 1].root)->c);
    sh->w[w].aot += (what & O_AOT) != 0;
    sh->w[w].nodes += gen_size(&p);
    sh->w[w].fd_steps += r.fd_steps > 0;
    sh->w[w].fd_nonsmooth += r.fd_nonsmooth;
    sh->w[w].print_skipped += r.print_skipped;
    sh->w[w].second += r.second_order > 0;
    sh->w[w].hessians += r.second_order > 1;
    sh->w[w].done++;
    free(src);
    gen_free(&p);
  }
  alarm(0);
  sh->w[w].current = -1;
  fflush(stderr);
  _exit(0);
}

static pid_t spawn(Shared *sh, const Config *cf, int w, long from) {
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid == 0)
    worker(sh, cf, w, from);
  return pid;
}

static int by_seed(const void *a, const void *b) {
  uint64_t x = ((const Fail *)a)->seed, y = ((const Fail *)b)->seed;
  return x < y ? -1 : x > y;
}

static double now(void) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  return (double)tv.tv_sec + (double)tv.tv_usec * 1e-6;
}

/* ---- shrinking ----------------------------------------------------------- */

typedef struct Target {
  unsigned kind, what;
  double deadline;     /* now() after which no candidate is run any more */
  char needle[64];     /* if not empty: the report must also contain this (a -W flag) */
} Target;

// Run the oracles on SRC in a child, so that a crash or a hang is an
// answer and not the end of the test; its report comes back through a pipe.
// False if the child died (*SIG then holds the signal, or SIGALRM for a hang).
static bool run_child(const char *src, uint64_t seed, const GProg *q, unsigned what, Report *r, int *sig) {
  int fds[2];
  memset(r, 0, sizeof *r);
  *sig = 0;
  if (pipe(fds) != 0)
    abort();
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    alarm(TIMEOUT);
    Report mine;
    check_source(src, seed, q, what, &mine);
    _exit(write(fds[1], &mine, sizeof mine) == (ssize_t)sizeof mine ? 0 : 1);
  }
  close(fds[1]);
  bool ok = read(fds[0], r, sizeof *r) == (ssize_t)sizeof *r;
  close(fds[0]);
  int st = 0;
  waitpid(pid, &st, 0);
  if (!ok)
    *sig = WIFSIGNALED(st) ? WTERMSIG(st) : -1;
  return ok;
}

// Does Q still fail the way the target says?
static bool still_fails(const GProg *q, void *arg) {
  const Target *t = arg;
  if (now() > t->deadline)
    return false;
  char *src = gen_source(q);
  Report r;
  int sig;
  bool ok = run_child(src, q->seed, q, t->what, &r, &sig);
  free(src);
  if (t->kind == K_HANG)
    return !ok && sig == SIGALRM;
  if (t->kind == K_CRASH)
    return !ok && sig != SIGALRM;
  return ok && (r.kinds & t->kind) && (!t->needle[0] || strstr(r.msg, t->needle));
}

// The kind a failure is shrunk for: the first in the order of K_*.
static unsigned primary(unsigned kinds) {
  for (int k = 0; k < K_COUNT; k++)
    if (kinds & (1u << k))
      return 1u << k;
  return 0;
}

static void kinds_str(unsigned kinds, char *buf, size_t n) {
  buf[0] = 0;
  for (int k = 0; k < K_COUNT; k++)
    if (kinds & (1u << k))
      snprintf(buf + strlen(buf), n - strlen(buf), "%s%s", buf[0] ? ", " : "", kind_name[k]);
}

// Comment every line of TEXT with "# ".
static void put_comment(Out *o, const char *text) {
  for (const char *s = text; *s;) {
    const char *e = strchr(s, '\n');
    size_t len = e ? (size_t)(e - s) : strlen(s);
    put(o, "#   %.*s\n", (int)len, s);
    s += len + (e ? 1 : 0);
  }
}

// The text of a regression file, the source stripped of comments and blank
// lines, for recognising one that is already saved.
static char *essence(const char *src) {
  Out o = {0};
  put(&o, "%s", "");
  for (const char *s = src; *s;) {
    const char *e = strchr(s, '\n');
    size_t len = e ? (size_t)(e - s) : strlen(s);
    if (len && s[0] != '#')
      put(&o, "%.*s\n", (int)len, s);
    s += len + (e ? 1 : 0);
  }
  return o.s;
}

static bool already_saved(const char *src) {
  DIR *d = opendir(REGRESS_DIR);
  if (!d)
    return false;
  char *mine = essence(src);
  bool found = false;
  for (struct dirent *de; !found && (de = readdir(d));) {
    size_t n = strlen(de->d_name);
    if (n < 6 || strcmp(de->d_name + n - 5, ".expr"))
      continue;
    char path[600];
    snprintf(path, sizeof path, "%s/%s", REGRESS_DIR, de->d_name);
    char *text = slurp(path);
    char *theirs = text ? essence(text) : NULL;
    found = theirs && !strcmp(theirs, mine);
    free(text);
    free(theirs);
  }
  closedir(d);
  free(mine);
  return found;
}

// Shrink failure F, print it, and save it to tests/regress/SEED.expr.
static void shrink_and_save(const Config *cf, const Fail *f, double deadline) {
  GProg p;
  gen_program(&p, f->seed);
  int before = gen_size(&p);
  Target t = {.kind = primary(f->kinds), .what = O_REF | O_ACCUM, .deadline = deadline};
  if (t.kind == K_PRINT)
    t.what |= O_PRINT;
  if (t.kind == K_SECOND)
    t.what |= O_SECOND | O_HESSIAN;
  if (t.kind & (K_AOT | K_WARN | K_CRASH | K_HANG))
    t.what |= O_PRINT | O_AOT;
  // A warning keeps its -W flag while shrinking, so it does not drift to another.
  const char *w = t.kind == K_WARN ? strstr(f->msg, "[-W") : NULL;
  if (w)
    snprintf(t.needle, sizeof t.needle, "%.*s", (int)strcspn(w, "]") + 1, w);
  Target again = t;
  again.deadline = INFINITY;
  if (!still_fails(&p, &again)) {  // a flake, or a worker killed from outside
    fprintf(stderr, "\n%s\n---- seed %llu: this failure does not happen again; not saved\n", f->msg,
            (unsigned long long)p.seed);
    gen_free(&p);
    return;
  }
  int tries = gen_shrink(&p, still_fails, &t, 3000);
  char *src = gen_source(&p);
  // The shrunk program's own report, for the file's header.
  Report r;
  int sig;
  if (!run_child(src, p.seed, &p, t.what, &r, &sig))
    snprintf(r.msg, sizeof r.msg, "%s", sig == SIGALRM ? "no answer within the time limit" : "it crashes");
  char kinds[256];
  kinds_str(r.kinds ? r.kinds : t.kind, kinds, sizeof kinds);
  Out o = {0};
  put(&o, "# Found by tests/test_random.c from seed %llu and shrunk (%d to %d, %d tries).\n"
          "# Replayed by Test(random, regressions) at the data of that seed. It failed with:\n"
          "#   %s\n", (unsigned long long)p.seed, before, gen_size(&p), tries, kinds);
  put_comment(&o, r.msg[0] ? r.msg : f->msg);
  put(&o, "%s", src);
  char path[600];
  snprintf(path, sizeof path, "%s/%llu.expr", REGRESS_DIR, (unsigned long long)p.seed);
  bool dup = already_saved(src);
  bool saved = cf->save && !dup && spit(path, o.s);
  fprintf(stderr, "\n%s\n---- %s\n%s----\n", f->msg,
          saved ? path : dup ? "(the same program is already in tests/regress)" : "(not saved)", o.s);
  free(o.s);
  free(src);
  gen_free(&p);
}

/* ---- the tests ------------------------------------------------------------- */

Test(random, expressions, .timeout = 0) {
  Config cf = {
      .n = env_long("MD_RANDOM_N", 2000),
      .seed = env_u64("MD_RANDOM_SEED", 1),
      .jobs = env_long("MD_RANDOM_JOBS", sysconf(_SC_NPROCESSORS_ONLN)),
      .aot_every = env_long("MD_RANDOM_AOT", 50),
      .hessian_every = env_long("MD_RANDOM_HESSIAN", 10),
      .shrink = env_long("MD_RANDOM_SHRINK", 6),
      .shrink_seconds = env_long("MD_RANDOM_SHRINK_SECONDS", 60),
      .save = env_long("MD_RANDOM_SAVE", 1) != 0,
      .show = env_long("MD_RANDOM_SHOW", 0) != 0,
  };
  cf.jobs = cf.jobs < 1 ? 1 : cf.jobs > MAXW ? MAXW : cf.jobs;
  const char *skip = getenv("MD_RANDOM_SKIP");
  static const char *const oracle_names[] = {"ref", "print", "aot", "accum", "second", "hessian",
                                             "emit2"};
  for (int k = 0; skip && k < 7; k++)
    if (strstr(skip, oracle_names[k]))
      cf.skip |= 1u << k;
  Shared *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  cr_assert(sh != MAP_FAILED, "mmap: %s", strerror(errno));
  memset(sh, 0, sizeof *sh);
  double t0 = now();
  pid_t pids[MAXW];
  for (int w = 0; w < cf.jobs; w++) {
    sh->w[w].current = w;
    pids[w] = spawn(sh, &cf, w, w);
    cr_assert(pids[w] > 0, "fork: %s", strerror(errno));
  }
  // A worker that dies takes its current program with it: that program
  // crashed (or hung, if the alarm killed it); the rest of its share goes
  // on in a new worker.
  for (int live = (int)cf.jobs; live > 0;) {
    int st;
    pid_t pid = wait(&st);
    if (pid < 0)
      break;
    int w = 0;
    while (w < cf.jobs && pids[w] != pid)
      w++;
    if (w == cf.jobs)
      continue;
    long cur = sh->w[w].current;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0 && cur < 0) {
      live--;
      continue;
    }
    bool hang = WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM;
    char msg[200];
    snprintf(msg, sizeof msg, "seed %llu: %s", (unsigned long long)(cf.seed + (uint64_t)cur),
             hang ? "no answer within the time limit" : WIFSIGNALED(st) ? strsignal(WTERMSIG(st)) : "the worker exited");
    record(sh, cf.seed + (uint64_t)cur, hang ? K_HANG : K_CRASH, msg);
    sh->w[w].done++;
    if (cur + cf.jobs < cf.n) {
      sh->w[w].current = cur + cf.jobs;
      pids[w] = spawn(sh, &cf, w, cur + cf.jobs);
    } else {
      live--;
    }
  }
  double secs = now() - t0;
  struct rusage ru;
  getrusage(RUSAGE_CHILDREN, &ru);
  double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 + (double)ru.ru_stime.tv_sec +
               (double)ru.ru_stime.tv_usec * 1e-6;
  long done = 0, matrix = 0, aot = 0, nodes = 0, fds = 0, nonsmooth = 0, pskip = 0, second = 0, hessians = 0;
  for (int w = 0; w < cf.jobs; w++) {
    done += sh->w[w].done;
    matrix += sh->w[w].matrix;
    aot += sh->w[w].aot;
    nodes += sh->w[w].nodes;
    fds += sh->w[w].fd_steps;
    nonsmooth += sh->w[w].fd_nonsmooth;
    pskip += sh->w[w].print_skipped;
    second += sh->w[w].second;
    hessians += sh->w[w].hessians;
  }
  long nfail = sh->nfail < MAXFAIL ? sh->nfail : MAXFAIL;
  long per_kind[K_COUNT] = {0};
  for (long k = 0; k < nfail; k++)
    for (int b = 0; b < K_COUNT; b++)
      per_kind[b] += (sh->fail[k].kinds >> b) & 1;
  fprintf(stderr,
          "random: %ld programs (seeds %llu..%llu) in %.1f s: %.1f programs/s on %ld workers "
          "(%.1f CPU s, %.1f programs per CPU second)\n"
          "random: %ld with a matrix output, %ld through the AOT path, %.1f nodes on average, "
          "%ld needed a second finite-difference step, %ld printed derivatives too long to check\n"
          "random: %ld where finite differences settled at no step (not differentiable along v "
          "there: the tape is their oracle)\n"
          "random: %ld with their JVP and HVPs held against the tape, %ld with Hessians too\n"
          "random: exclusions: GEN_HOSTILE_NAMES=%d\n"
          "random: %ld failed\n",
          done, (unsigned long long)cf.seed, (unsigned long long)(cf.seed + (uint64_t)cf.n - 1), secs,
          (double)done / secs, cf.jobs, cpu, (double)done / fmax(cpu, 1e-9), matrix, aot, done ? (double)nodes / (double)done : 0.0, fds, pskip,
          nonsmooth,
          second, hessians,
          GEN_HOSTILE_NAMES, nfail);
  for (int b = 0; b < K_COUNT; b++)
    if (per_kind[b])
      fprintf(stderr, "random:   %5ld %s\n", per_kind[b], kind_name[b]);
  // Shrink a few: one per kind first, then the earliest seeds; in seed
  // order, so that a run at the same seeds picks the same ones (and finds
  // them saved already).
  qsort(sh->fail, (size_t)nfail, sizeof *sh->fail, by_seed);
  bool *chosen = calloc((size_t)nfail + 1, sizeof *chosen);
  long nshrunk = 0;
  for (int pass = 0; pass < 2 && nshrunk < cf.shrink; pass++)
    for (long k = 0; k < nfail && nshrunk < cf.shrink; k++) {
      bool novel = true;
      for (long j = 0; j < nfail && pass == 0; j++)
        if (chosen[j] && primary(sh->fail[j].kinds) == primary(sh->fail[k].kinds))
          novel = false;
      if (chosen[k] || !novel)
        continue;
      chosen[k] = true;
      nshrunk++;
    }
  long listed = 0;
  double deadline = now() + (double)cf.shrink_seconds;
  for (long k = 0; k < nfail; k++) {
    char kinds[256], path[600];
    kinds_str(sh->fail[k].kinds, kinds, sizeof kinds);
    snprintf(path, sizeof path, "%s/%llu.expr", REGRESS_DIR, (unsigned long long)sh->fail[k].seed);
    const char *known = access(path, F_OK) == 0 ? " (already in tests/regress)" : "";
    if (chosen[k] && !*known && now() < deadline) {
      shrink_and_save(&cf, &sh->fail[k], deadline);
      continue;
    }
    if (listed++ < 40)
      fprintf(stderr, "random: seed %llu also failed%s: %s\n  %s\n", (unsigned long long)sh->fail[k].seed, known,
              kinds, sh->fail[k].msg);
    else if (listed < 1000)
      fprintf(stderr, "random: seed %llu also failed%s: %s\n", (unsigned long long)sh->fail[k].seed, known, kinds);
  }
  if (listed >= 1000)
    fprintf(stderr, "random: and %ld more\n", listed - 999);
  free(chosen);
  munmap(sh, sizeof *sh);
  cr_expect_eq(nfail, 0, "%ld of %ld random programs failed (seeds and shrunk programs above)", nfail, done);
}

// Every tests/regress/*.expr, through the same oracles, at the data of the
// seed in its name and at two more.
Test(random, regressions, .timeout = 0) {
  DIR *d = opendir(REGRESS_DIR);
  cr_assert_not_null(d, "cannot open %s: %s", REGRESS_DIR, strerror(errno));
  int files = 0, failed = 0;
  for (struct dirent *de; (de = readdir(d));) {
    size_t n = strlen(de->d_name);
    if (n < 6 || strcmp(de->d_name + n - 5, ".expr"))
      continue;
    char path[600];
    snprintf(path, sizeof path, "%s/%s", REGRESS_DIR, de->d_name);
    char *src = slurp(path);
    cr_assert_not_null(src, "cannot read %s", path);
    char *end;
    uint64_t seed = strtoull(de->d_name, &end, 10);
    if (end == de->d_name || *end != '.')
      seed = gen_hash(0, de->d_name);
    files++;
    for (int trial = 0; trial < 3; trial++) {
      char tag[32];
      snprintf(tag, sizeof tag, "trial %d", trial);
      uint64_t s = trial ? gen_hash(seed, tag) : seed;
      Report r;
      int sig;
      if (!run_child(src, s, NULL, O_PRINT | O_ACCUM | O_SECOND | (trial == 0 ? O_AOT | O_HESSIAN : 0),
                     &r, &sig)) {
        r.kinds = sig == SIGALRM ? K_HANG : K_CRASH;
        snprintf(r.msg, sizeof r.msg, "%s", sig == SIGALRM ? "no answer within the time limit"
                                            : sig > 0 ? strsignal(sig) : "the check died");
      }
      if (r.kinds) {
        char kinds[256];
        kinds_str(r.kinds, kinds, sizeof kinds);
        fprintf(stderr, "regress: %s at the data of seed %llu: %s\n%s\n", path, (unsigned long long)s, kinds, r.msg);
        failed++;
        break;
      }
    }
    free(src);
  }
  closedir(d);
  fprintf(stderr, "regress: %d files replayed, %d failed\n", files, failed);
  cr_expect_eq(failed, 0, "%d of the %d programs in tests/regress fail", failed, files);
}
