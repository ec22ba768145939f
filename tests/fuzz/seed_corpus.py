#!/usr/bin/env python3
"""seed_corpus.py - write the fuzzer's seed corpus, tests/fuzz/corpus/:
every example (ex_*.expr), the source of every case in tests/cases/*.txt
(case_FILE_NAME.expr, decoded as tests/cases.h decodes them), and the
hand-written edge cases below (edge_*.expr). Run it again when the cases
change; it rewrites only ex_*, case_* and edge_* files.

    python3 tests/fuzz/seed_corpus.py
"""
import glob
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "fuzz", "corpus")


def decode(text):
    """The escapes of tests/cases.h: \\xHH, \\ at the end of a line, \\\\."""
    out, i = bytearray(), 0
    raw = text.encode()
    while i < len(raw):
        c = raw[i:i + 1]
        if c != b"\\" or i + 1 >= len(raw):
            out += c
        elif raw[i + 1:i + 2] == b"\n":
            i += 1
        elif raw[i + 1:i + 2] == b"\\":
            out += b"\\"
            i += 1
        elif raw[i + 1:i + 2] == b"x" and i + 3 < len(raw):
            out.append(int(raw[i + 2:i + 4], 16))
            i += 3
        else:
            out += c
        i += 1
    return bytes(out)


def cases(path):
    """(name, source) for each %% case of a data file."""
    name, lines = None, []
    for line in open(path, encoding="utf-8").read().split("\n"):
        if line.startswith("%%"):
            if name is not None:
                yield name, lines
            name, lines = (line[2:].split() or ["unnamed"])[0], []
        elif name is not None:
            lines.append(line)
    if name is not None:
        yield name, lines


def source(lines):
    for i, line in enumerate(lines):
        if line.startswith("--- "):
            lines = lines[:i]
            break
    return decode("\n".join(lines).rstrip("\n") + "\n")


# Edge cases: deep nesting, long lines, odd bytes, limits of the language.
EDGE = {
    "deep_parens": b"x : scalar\ny = " + b"(" * 300 + b"x" + b")" * 300 + b"\n",
    "deep_parens_over": b"x : scalar\ny = " + b"(" * 2000 + b"x" + b")" * 2000 + b"\n",
    "deep_neg": b"x : scalar\ny = " + b"-" * 1500 + b"x\n",
    "deep_trans": b"A : matrix(n, m)\ny = sum(A" + b"'" * 1500 + b")\n",
    "deep_calls": b"x : scalar\ny = " + b"exp(" * 200 + b"x" + b")" * 200 + b"\n",
    "deep_norms": b"x : vector(3)\ny = " + b"||" * 30 + b"x" + b"||" * 30 + b"\n",
    "deep_pow": b"x : scalar\ny = x" + b"^x" * 400 + b"\n",
    "long_sum": b"x : scalar\ny = x" + b" + x" * 900 + b"\n",
    "long_product": b"A : matrix(n, n)\ny = tr(A" + b"*A" * 600 + b")\n",
    "long_chain": b"x : scalar\n" + b"".join(b"t%d = t%d*x + 1\n" % (i, i - 1) if i else b"t0 = x\n"
                                             for i in range(150)),
    "many_vars": b"".join(b"v%d : scalar\n" % i for i in range(200)) +
                 b"y = " + b" + ".join(b"v%d" % i for i in range(200)) + b"\n",
    "long_name": b"x" * 3000 + b" : scalar\ny = " + b"x" * 1000 + b"\n",
    "long_comment": b"# " + b"c" * 4000 + b"\n",
    "nul_byte": b"x : scalar\ny = x\x00 + garbage\n",
    "high_bytes": b"x : scalar\ny = x \xff\xfe \xc3\xa9\n",
    "utf8_name": b"\xce\xb1 : scalar\ny = \xce\xb1^2\n",
    "control_bytes": b"x : scalar\x01\ny = x\x7f\n",
    "crlf": b"x : scalar\r\nwrt x\r\ny = x^2\r\n",
    "no_newline": b"x : scalar\ny = x*x",
    "only_newlines": b"\n" * 100,
    "only_semicolons": b";" * 100,
    "empty": b"",
    "continuation": b"A : matrix(n, ...\n  m)\ny = sum(A) + ...  # more\n  1\n",
    "continuation_eof": b"x : scalar\ny = x + ...",
    "big_numbers": b"x : scalar\ny = 1e308*x + 1e-308 + 0.000000000000000000001*x\n",
    "overflow_number": b"x : scalar\ny = 1e999*x\n",
    "big_sizes": b"A : matrix(1000000000, 1000000000)\ny = sum(A)\n",
    "big_size_float": b"A : matrix(1e300, 2)\ny = sum(A)\n",
    "size_fraction": b"A : matrix(2.5, 2)\ny = sum(A)\n",
    "size_zero": b"A : matrix(0, 2)\ny = sum(A)\n",
    "three_dims": b"A : matrix(2, 3, 4)\ny = sum(A)\n",
    "matrix_power_max": b"A : matrix(n, n)\ny = tr(A^1000000)\n",
    "matrix_power_zero": b"A : matrix(n, n)\ny = sum(A^0)\n",
    "eye_huge": b"x : scalar\ny = x*sum(eye(1000000000))\n",
    "ones_sizes": b"n : scalar\ny = sum(ones(n, 3))\n",
    "size_as_scalar": b"v : vector(n)\ny = sum(v)/n + n^2\n",
    "all_functions": b"A : matrix(n, n)\nv : vector(n)\n"
                     b"y = sum(exp(A) + log(A.*A + 1) + sqrt(A.*A + 1) + sin(A) + cos(A) + tan(A)"
                     b" + tanh(A) + sigmoid(A) + relu(A) + softplus(A) + abs(A) + sign(A)"
                     b" + arcsin(A/2) + arccos(A/2) + arctan(A)) + tr(A) + det(A) + logdet(A)"
                     b" + sum(inv(A)) + sum(diag(v)) + sum(diag(A)) + dot(v, v)"
                     b" + logsumexp(A) + sum(logsumexp(A, 2)) + sum(logsumexp(A, 1))"
                     b" + sum(softmax(A, 2)) + sum(softmax(A, 1)) + sum(softmax(A))"
                     b" + mean(A) + sum(mean(A, 1)) + sum(mean(A, 2)) + ||A||_1 + norm1(v)"
                     b" + norm2(v) + ||v||_2 + ||A||_F^2 + sum(eye(n)*ones(n)) + sum(zeros(n, n))\n",
    "matrix_output": b"X : matrix(n, k)\nW : matrix(k, m)\nS = softmax(X*W, 2)\n",
    "wrt_twice": b"x : scalar\nz : scalar\nwrt x\nwrt x, z\ny = x*z\n",
    "wrt_unknown": b"x : scalar\nwrt q\ny = x\n",
    "redeclare": b"x : scalar\nx : scalar\ny = x\n",
    "assign_input": b"x : scalar\nx = 2\n",
    "no_output": b"x : scalar\n",
    "constant_output": b"x : scalar\nwrt x\ny = 3\n",
    "broadcast_all": b"A : matrix(n, m)\nr : matrix(1, m)\nc : vector(n)\ns : scalar\n"
                     b"y = sum((A + r) .* (A - c) ./ (A.*A + s.*s + 1) .^ r)\n",
    "div_zero": b"x : scalar\ny = x/0 + 0/0*x\n",
    "nested_dims": b"A : matrix(n, m)\nB : matrix(m, n)\ny = tr(inv(A*B)^3)\n",
    # Names of C's (fuzz_one.h: the first line is the file's directory).
    "c_names": b"# */ \\ ??/ /* a directory\nINFINITY : scalar\nunix : vector(EXIT_SUCCESS)\n"
               b"asm : scalar\ntypeof : scalar\nI : matrix(EXIT_SUCCESS, RAND_MAX)\n"
               b"y = sum(unix)*INFINITY + asm*typeof + sum(I)\n",
    # Past the 4 KiB cap: fuzz_one.h expands "#repeat N".
    "repeat_decls": b"#repeat 3000\nx{i} : scalar\ny = x0*x2999\n",
    "repeat_terms": b"x : scalar\ny = ...\n#repeat 900\n  x*{i} + ...\n  0\n",
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for old in glob.glob(os.path.join(OUT, "*.expr")):
        if re.match(r"(ex|case|edge)_", os.path.basename(old)):
            os.remove(old)
    n = 0
    for path in sorted(glob.glob(os.path.join(ROOT, "examples", "*.expr"))):
        with open(path, "rb") as f, open(os.path.join(OUT, "ex_" + os.path.basename(path)), "wb") as g:
            g.write(f.read())
        n += 1
    for path in sorted(glob.glob(os.path.join(ROOT, "tests", "cases", "*.txt"))):
        stem = os.path.splitext(os.path.basename(path))[0]
        for name, lines in cases(path):
            safe = re.sub(r"[^A-Za-z0-9_]", "_", name)
            with open(os.path.join(OUT, "case_%s_%s.expr" % (stem, safe)), "wb") as g:
                g.write(source(lines))
            n += 1
    for name, text in EDGE.items():
        with open(os.path.join(OUT, "edge_%s.expr" % name), "wb") as g:
            g.write(text)
        n += 1
    print("%d seeds in %s" % (n, OUT))


if __name__ == "__main__":
    main()
