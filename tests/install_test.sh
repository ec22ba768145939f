#!/usr/bin/env bash
# install_test.sh - `make install` into a temporary DESTDIR, then programs
# built against the installed files the way a user builds them: through
# pkg-config (with the prefix moved to where the files really are) and
# through the installed `matdiff config`; the installed Python package,
# imported from a clean environment outside the tree, and `pip install` of
# python/ into a venv, offline. Then `make uninstall`, which must leave no
# file behind. Prints "N passed, M failed"; exits 1 on a failure.
#
#   tests/install_test.sh        (from anywhere; $MAKE names the make to run)
#
# The expected numbers, by hand:
#   JIT, y = x'*A*x with A = [1 2; 3 4], x = [1; 2]:
#     A*x = [5; 11], so y = 1*5 + 2*11 = 27;
#     dy/dx = (A + A')*x = [2 5; 5 8]*[1; 2] = [12; 21];  dy/dA = x*x' = [1 2; 2 4].
#   AOT, y = ||A*x - b||^2 with A = [1 0; 0 1; 1 1], x = [1; 2], b = [0; 0; 1]:
#     r = A*x - b = [1; 2; 2], so y = 1 + 4 + 4 = 9;
#     dy/dx = 2*A'*r = 2*[3; 4] = [6; 8];  dy/db = -2*r = [-2; -4; -4].
#   Python, the JIT example's function and numbers, through matdiff.compile.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
make=${MAKE:-make}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=/usr/local
dest=$tmp/dest
P=$dest$prefix                # where the installed files really are
export OPENBLAS_NUM_THREADS=1
# The .pc files say prefix=/usr/local; a DESTDIR install lives below $dest,
# so every pkg-config below moves the prefix there (--define-variable).
export PKG_CONFIG_PATH=$P/lib/pkgconfig

pass=0 fail=0
# check WHAT CMD...: runs CMD, quiet unless it fails.
check() {
  local what=$1
  shift
  if "$@" >"$tmp/log" 2>&1; then
    pass=$((pass + 1))
    echo "  ok    $what"
  else
    fail=$((fail + 1))
    echo "  FAIL  $what"
    sed 's/^/        /' "$tmp/log"
  fi
}
# same WHAT EXPECTED CMD...: CMD's output must be EXPECTED.
same() {
  local what=$1 want=$2
  shift 2
  check "$what" bash -c 'got=$("$@" 2>&1); [ "$got" = "$0" ] || { echo "got:  $got"; echo "want: $0"; exit 1; }' \
    "$want" "$@"
}

echo "== make install DESTDIR=$dest PREFIX=$prefix"
check "make install" "$make" --no-print-directory -C "$root" install DESTDIR="$dest" PREFIX="$prefix"

# The Python package: where Debian's python3 looks for the prefix's packages.
pydir=$(cd "$P" 2>/dev/null && find . -path '*/matdiff/_install.py' | sed 's|^\./||; s|/matdiff/_install.py$||')
check "the Python package is in a directory /usr/bin/python3 searches ($prefix/$pydir)" \
  /usr/bin/python3 -c 'import site, sys; sys.exit(sys.argv[1] not in site.getsitepackages())' \
  "$prefix/$pydir"
expected="$(for f in __init__.py _errors.py _function.py _install.py _lib.py torch.py; do
  echo "$pydir/matdiff/$f"; done)
bin/matdiff
include/matdiff.h
include/matdiff_rt.h
lib/libmatdiff.a
lib/libmatdiff.so
lib/libmatdiff.so.0
lib/libmatdiff.so.0.1.0
lib/libmatdiff_rt.a
lib/libmatdiff_rt.so
lib/libmatdiff_rt.so.0
lib/libmatdiff_rt.so.0.1.0
lib/pkgconfig/matdiff-rt.pc
lib/pkgconfig/matdiff.pc
share/man/man1/matdiff.1"
expected=$(echo "$expected" | LC_ALL=C sort)
same "the installed files, and only those" "$expected" \
  bash -c "cd '$P' && find . ! -type d | sed 's|^\./||' | LC_ALL=C sort"

for l in libmatdiff libmatdiff_rt; do
  same "$l.so: soname $l.so.0" "$l.so.0" \
    bash -c "readelf -d '$P/lib/$l.so' | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p'"
  same "$l.so -> $l.so.0 -> $l.so.0.1.0" "$l.so.0 $l.so.0.1.0" \
    bash -c "echo \$(readlink '$P/lib/$l.so') \$(readlink '$P/lib/$l.so.0')"
done
check "libmatdiff.so exports md_* only (libtcc is inside, hidden)" \
  bash -c "nm -D --defined-only '$P/lib/libmatdiff.so' | awk '\$2 == \"T\" && \$3 !~ /^md_/ {print; bad=1} END {exit bad}'"
check "libmatdiff.so needs libmatdiff_rt.so.0, not libtcc" \
  bash -c "readelf -d '$P/lib/libmatdiff.so' | grep -q 'NEEDED.*libmatdiff_rt.so.0' && ! readelf -d '$P/lib/libmatdiff.so' | grep -q tcc"
if command -v groff >/dev/null; then
  check "the man page renders without warnings" \
    bash -c "groff -man -Tutf8 -ww -z '$P/share/man/man1/matdiff.1' 2>&1 | (! grep .)"
fi

echo "== the installed matdiff config"
same "config --cflags" "-I$P/include" "$P/bin/matdiff" config --cflags
check "config --libs and --jit-libs name $P/lib" \
  bash -c "'$P/bin/matdiff' config --libs | grep -q -- '^-L$P/lib -lmatdiff_rt ' &&
           '$P/bin/matdiff' config --jit-libs | grep -q -- '^-L$P/lib -lmatdiff -lmatdiff_rt '"

echo "== a JIT program: cc app.c \$(pkg-config --cflags --libs matdiff)"
cat >"$tmp/jit.c" <<'EOF'
#include <stdio.h>
#include "matdiff.h"

int main(void) {
  md_error err;
  md_function *f = md_compile("A : matrix(2, 2)\nx : vector(2)\ny = x'*A*x\n", "q.expr", &err);
  if (!f)
    return fprintf(stderr, "%s\n", err.diag), 1;
  double A[] = {1, 2, 3, 4}, x[] = {1, 2}, dA[4] = {0}, dx[2] = {0}, y = 0;
  const double *in[] = {A, x};
  double *grads[] = {dA, dx};
  if (md_grad(f, NULL, in, &y, grads, &err) != 0)
    return fprintf(stderr, "%s\n", err.message), 1;
  printf("y = %g, dy/dx = %g %g, dy/dA = %g %g %g %g\n", y, dx[0], dx[1], dA[0], dA[1], dA[2],
         dA[3]);
  md_free(f);
  return 0;
}
EOF
jit_want="y = 27, dy/dx = 12 21, dy/dA = 1 2 2 4"
check "build, shared" bash -c "cc -std=c99 -Wall -Werror -o '$tmp/jit_shared' '$tmp/jit.c' \
  \$(pkg-config --define-variable=prefix='$P' --cflags --libs matdiff)"
check "it loads libmatdiff.so.0" bash -c "readelf -d '$tmp/jit_shared' | grep -q 'NEEDED.*libmatdiff.so.0'"
same "run, shared: $jit_want" "$jit_want" env LD_LIBRARY_PATH="$P/lib" "$tmp/jit_shared"
# libtcc.a calls dlopen, which the linker warns about in a static program;
# matdiff never loads a library through libtcc. Any other message fails.
check "build, static (-static, pkg-config --static)" bash -c "cc -static -std=c99 -Wall -Werror \
  -o '$tmp/jit_static' '$tmp/jit.c' \$(pkg-config --define-variable=prefix='$P' --cflags --libs --static matdiff) \
  2>'$tmp/ld.log' && ! grep -v -e 'tcc_add_file_internal' -e \"Using 'dlopen' in statically linked\" '$tmp/ld.log'"
check "it is static" bash -c "! readelf -d '$tmp/jit_static' 2>/dev/null | grep -q NEEDED"
same "run, static: $jit_want" "$jit_want" "$tmp/jit_static"

echo "== an AOT program: matdiff compile, then cc \$(pkg-config --cflags --libs matdiff-rt)"
cat >"$tmp/ls.expr" <<'EOF'
A : matrix(m, k)
x : vector(k)
b : vector(m)
wrt x, b
y = ||A*x - b||^2
EOF
cat >"$tmp/aot.c" <<'EOF'
#include <stdio.h>

/* From matdiff compile ls.expr --name ls: sizes, inputs, then gradients. */
double ls_grad(long m, long k, const double *A, const double *x, const double *b, double *dx,
               double *db);

int main(void) {
  double A[] = {1, 0, 0, 1, 1, 1}, x[] = {1, 2}, b[] = {0, 0, 1}, dx[2] = {0}, db[3] = {0};
  double y = ls_grad(3, 2, A, x, b, dx, db);
  printf("y = %g, dy/dx = %g %g, dy/db = %g %g %g\n", y, dx[0], dx[1], db[0], db[1], db[2]);
  return 0;
}
EOF
aot_want="y = 9, dy/dx = 6 8, dy/db = -2 -4 -4"
check "the installed matdiff compiles ls.expr" "$P/bin/matdiff" compile "$tmp/ls.expr" -o "$tmp/ls.c" --name ls
check "build, shared" bash -c "cc -std=c99 -Wall -Werror -o '$tmp/aot_pc' '$tmp/aot.c' '$tmp/ls.c' \
  \$(pkg-config --define-variable=prefix='$P' --cflags --libs matdiff-rt)"
same "run: $aot_want" "$aot_want" env LD_LIBRARY_PATH="$P/lib" "$tmp/aot_pc"
check "build with the installed matdiff config --cflags/--libs" bash -c "cc -std=c99 -Wall -Werror \
  \$('$P/bin/matdiff' config --cflags) -o '$tmp/aot_config' '$tmp/aot.c' '$tmp/ls.c' \
  \$('$P/bin/matdiff' config --libs)"
same "run: $aot_want" "$aot_want" env LD_LIBRARY_PATH="$P/lib" "$tmp/aot_config"

echo "== the installed Python package, from a clean environment outside the tree"
cat >"$tmp/use.py" <<'EOF'
import sys
import matdiff
print(matdiff.__libsource__, matdiff.__libpath__)
f = matdiff.compile("A : matrix(2, 2)\nx : vector(2)\ny = x'*A*x\n")
y, g = f.grad(A=[[1, 2], [3, 4]], x=[1, 2])
print("y = %g, dy/dx = %g %g, dy/dA = %g %g %g %g" % ((y,) + tuple(g["x"]) + tuple(g["A"].ravel())))
EOF
# env -i: no PYTHONPATH but the one given, no LD_LIBRARY_PATH; run in $tmp.
clean=(env -i -C "$tmp" PATH=/usr/bin:/bin PYTHONDONTWRITEBYTECODE=1)
same "import matdiff: the installed libmatdiff.so; $jit_want" "install $P/lib/libmatdiff.so.0
$jit_want" "${clean[@]}" PYTHONPATH="$P/$pydir" /usr/bin/python3 "$tmp/use.py"
if /usr/bin/python3 -c "import torch" 2>/dev/null; then
  check "import matdiff.torch" "${clean[@]}" PYTHONPATH="$P/$pydir" /usr/bin/python3 -c "import matdiff.torch"
fi

echo "== pip install of python/ into a venv, offline; the library from MATDIFF_LIB"
cp -r "$root/python" "$tmp/pysrc"
check "python3 -m venv --system-site-packages" /usr/bin/python3 -m venv --system-site-packages "$tmp/venv"
check "pip install --no-index python/" "${clean[@]}" "$tmp/venv/bin/pip" install --no-index "$tmp/pysrc"
same "import matdiff: MATDIFF_LIB; $jit_want" "MATDIFF_LIB $P/lib/libmatdiff.so
$jit_want" "${clean[@]}" MATDIFF_LIB="$P/lib/libmatdiff.so" "$tmp/venv/bin/python" "$tmp/use.py"

echo "== make uninstall DESTDIR=$dest PREFIX=$prefix"
check "make uninstall" "$make" --no-print-directory -C "$root" uninstall DESTDIR="$dest" PREFIX="$prefix"
same "no file is left" "" find "$dest" ! -type d

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
