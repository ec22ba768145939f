#!/usr/bin/env bash
# outputs_test.sh - the outputs meant for other tools, accepted by them:
#   - `compile --standalone` and `--float` C builds warning-free with
#     -Wall -Wextra -Werror -pedantic and gives the JIT's numbers (1e-12 in
#     double, 1e-4 relative in float);
#   - `graph --grad` is dot that Graphviz renders;
#   - `diff --latex --standalone` is a document pdflatex compiles, where
#     pdflatex is installed.
# Usage: tests/outputs_test.sh BUILD_DIR. Prints "N passed, M failed".
set -u
B=${1:-build}
M=$B/matdiff
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
ok() { echo "  ok    $1"; pass=$((pass + 1)); }
bad() { echo "  FAIL  $1"; fail=$((fail + 1)); }

# The MLP at small sizes, inputs from a formula both sides share.
n=5 d=4 h=3 k=2
cat > "$T/gen.py" <<'PY'
import sys, math
n, d, h, k = 5, 4, 3, 2
def fill(name, r, c, f):
    with open(sys.argv[1] + "/" + name + ".txt", "w") as out:
        for i in range(r):
            out.write(" ".join(repr(f(i * c + j)) for j in range(c)) + "\n")
fill("X", n, d, lambda e: math.sin(e + 1))
fill("W1", d, h, lambda e: math.cos(2 * e + 1) / 2)
fill("b1", h, 1, lambda e: 0.1 * e)
fill("W2", h, k, lambda e: math.sin(3 * e + 2) / 2)
fill("b2", k, 1, lambda e: -0.2 * e)
fill("Y", n, k, lambda e: 1.0 if e % k == (e // k) % k else 0.0)
PY
python3 "$T/gen.py" "$T"
"$M" eval examples/mlp.expr X="$T/X.txt" W1="$T/W1.txt" b1="$T/b1.txt" W2="$T/W2.txt" \
  b2="$T/b2.txt" Y="$T/Y.txt" --grad --out "$T/jit" > /dev/null || bad "matdiff eval"

cat > "$T/driver.c" <<'C'
#include <math.h>
#include <stdio.h>
#ifdef FLT
typedef float T;
#else
typedef double T;
#endif
T f_grad(long n, long d, long h, long k, const T *X, const T *W1, const T *b1, const T *W2,
         const T *b2, const T *Y, T *dW1, T *db1, T *dW2, T *db2);
enum { n = 5, d = 4, h = 3, k = 2 };
int main(void) {
  static T X[n * d], W1[d * h], b1[h], W2[h * k], b2[k], Y[n * k], dW1[d * h], db1[h], dW2[h * k], db2[k];
  for (int e = 0; e < n * d; e++) X[e] = (T)sin(e + 1.0);
  for (int e = 0; e < d * h; e++) W1[e] = (T)(cos(2.0 * e + 1) / 2);
  for (int e = 0; e < h; e++) b1[e] = (T)(0.1 * e);
  for (int e = 0; e < h * k; e++) W2[e] = (T)(sin(3.0 * e + 2) / 2);
  for (int e = 0; e < k; e++) b2[e] = (T)(-0.2 * e);
  for (int e = 0; e < n * k; e++) Y[e] = e % k == (e / k) % k;
  T y = f_grad(n, d, h, k, X, W1, b1, W2, b2, Y, dW1, db1, dW2, db2);
  printf("%.17g\n", (double)y);
  for (int e = 0; e < d * h; e++) printf("%.17g\n", (double)dW1[e]);
  for (int e = 0; e < h * k; e++) printf("%.17g\n", (double)dW2[e]);
  return 0;
}
C
want() { cat "$T/jit/loss.txt" "$T/jit/dloss_dW1.txt" "$T/jit/dloss_dW2.txt" | tr ' ' '\n' | grep .; }
close() {  # close FILE TOL: every number within TOL relative of the JIT's
  paste <(want) "$1" | awk -v tol="$2" '
    { a = $1; b = $2; d = a - b; if (d < 0) d = -d; s = a < 0 ? -a : a; if (s < 1) s = 1
      if (d / s > tol) { bad = 1; print "    " NR ": " a " vs " b } }
    END { exit bad }'
}
for mode in "--standalone" "--float" "--standalone --float" ""; do
  name="compile ${mode:-(runtime-linked)}"
  flags=""; libs="-lm"; def=""
  [[ $mode != *standalone* ]] && flags=$("$M" config --cflags) && libs=$("$M" config --libs)
  [[ $mode == *float* ]] && def="-DFLT"
  if "$M" compile examples/mlp.expr --name f $mode -o "$T/f.c" &&
     cc -std=c99 -Wall -Wextra -Werror -pedantic $def $flags "$T/f.c" "$T/driver.c" $libs -o "$T/prog" 2> "$T/cc.log"; then
    "$T/prog" > "$T/out.txt"
    tol=1e-12; [[ $mode == *float* ]] && tol=1e-4
    if close "$T/out.txt" $tol; then ok "$name: warning-free, the JIT's numbers to $tol"; else bad "$name: numbers"; fi
  else
    bad "$name: does not build warning-free"; head -5 "$T/cc.log"
  fi
done
# --standalone needs nothing but libm and libc.
if "$M" compile examples/mlp.expr --name f --standalone -o "$T/s.c" && ! grep -q '#include "' "$T/s.c"; then
  ok "compile --standalone includes no header of matdiff's"
else
  bad "compile --standalone includes matdiff's headers"
fi

if command -v dot > /dev/null; then
  for f in examples/seed.expr examples/mlp.expr; do
    if "$M" graph "$f" --grad | dot -Tsvg -o "$T/g.svg" 2> "$T/dot.log" && [ ! -s "$T/dot.log" ] &&
       grep -q "<svg" "$T/g.svg"; then ok "dot -Tsvg renders graph --grad of $f"; else bad "dot on $f"; fi
  done
else
  echo "  skip  Graphviz's dot is not installed"
fi

"$M" diff examples/seed.expr --latex > "$T/seed.tex"
if grep -qF '\frac{\partial y}{\partial X} = 2 \left( X W + b \right) W^\top' "$T/seed.tex"; then
  ok "diff --latex prints the seed as a person would"
else
  bad "diff --latex of the seed"; cat "$T/seed.tex"
fi
if command -v pdflatex > /dev/null; then
  for f in examples/seed.expr examples/gaussian_nll.expr examples/mlp.expr; do
    "$M" diff "$f" --latex --standalone > "$T/doc.tex"
    if (cd "$T" && pdflatex -interaction=nonstopmode -halt-on-error doc.tex > latex.log 2>&1); then
      ok "pdflatex compiles diff --latex --standalone of $f"
    else
      bad "pdflatex on $f"; tail -5 "$T/latex.log"
    fi
  done
else
  echo "  skip  pdflatex is not installed"
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
