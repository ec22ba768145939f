/*
 * ops.h - the one table of operations. One line carries every property of
 * an op, as in QBE's ops.h and Lua's lopcodes.h; the compiler's tables
 * (optab.c), the parser's function names (lower.c), the LaTeX printer, the
 * tape's elementwise functions (runtime/tape.c), the JIT's symbols, the
 * C names a variable may not take and the NumPy export (emit_numpy.c) are
 * all made from it.
 *
 *   OP(name, spelling, arity, prec, class, tape, latex, flags, dom_a, dom_b, numpy)
 *     name      the enum is OP_<name>
 *     spelling  the printed form: the operator, or the function's name
 *     arity     the number of operands, 0 to 2
 *     prec      printing precedence (PREC_<prec>, md.h)
 *     class     the shape class (SC_<class>, md.h): which kind of shape rule
 *     tape      the runtime tape's operation (MDRT_<tape>, matdiff_rt.h);
 *               NONE for a leaf, which is a constant on the tape
 *     latex     its LaTeX: the function's name, the operator's symbol, or
 *               the mark of its layout; NULL for \operatorname{spelling}
 *     flags     OPF_* bits (md.h)
 *     dom_a/b   where the operands lie for the op to be smooth there
 *               (DOM_<dom>, md.h); tests draw their inputs from there
 *     numpy     its NumPy, as `matdiff compile --lang numpy` writes it: a
 *               template in which $a and $b are the operands, $k the
 *               axis arguments of an OPF_AXIS op (", axis=0, keepdims=True"
 *               or none), $s a fill's shape "(n, m)" and $r its rows; a
 *               name _f is a helper emit_numpy.c defines; NULL for a leaf
 *               the emitter names (a number, an input, a size, a seed)
 *
 *   LEAF(name, spelling, latex, flags, numpy)
 *     An op with no operands (class LEAF, flag OPF_LEAF): a value from
 *     outside the DAG's operations. The tape holds it as a constant.
 *
 *   MAP(name, spelling, cfn, latex, dom, dtape, d2tape, numpy)
 *     An elementwise function f(A): arity 1, printed as a call, of A's
 *     shape (class MAP), recorded on the tape by its spelling.
 *     cfn    its C function: LIBM(double, float) from libm, or RT(name) for
 *            the runtime kernel mdrt_<name> of runtime/kernels.def
 *     dtape  its derivative on the tape, a C expression in x (the operand)
 *            and y (the value). It is written apart from diff.c's rule on
 *            purpose: the tape is the oracle that rule is checked against.
 *     d2tape its second derivative on the tape, the same way: the tape's
 *            forward-over-reverse mode (Hessian-vector products) needs it.
 *
 * Includers define OP, and LEAF or MAP when they want those lines apart (a
 * LEAF or MAP left undefined becomes an OP line); ops.h undefines all three
 * at its end. A switch on an op can take its leaves' or elementwise
 * functions' case labels from here, so that -Wswitch still names a
 * missing case.
 *
 * Adding an operation takes:
 *   - one line here;
 *   - one shape rule in shape.c (none for an elementwise function: its
 *     class is its rule);
 *   - one reverse rule and one tangent rule (forward mode) in diff.c, side
 *     by side (an elementwise function has one derivative, which both use);
 *   - one runtime kernel if libm has no C function for it: a line in
 *     runtime/kernels.def and its loop in runtime/standalone.c.
 * While a shape, reverse or tangent rule is missing, -Wswitch fails the
 * build.
 * For an elementwise function that is all: tests/test_ops.c then takes the
 * new line through the JIT, compiled C, --float, --standalone, LaTeX, the
 * NumPy export and the tape. Any other op also needs its code in emit_c.c and, if the tape
 * has no operation for it, one in runtime/tape.c.
 *
 * Precedence, high to low: atoms and calls, postfix ', ^ and .^, unary -,
 * * / .* ./, + -.
 */
#ifndef LEAF
#define LEAF(name, spelling, latex, flags, numpy) \
  OP(name, spelling, 0, PREC_ATOM, LEAF, NONE, latex, OPF_LEAF | (flags), ANY, ANY, numpy)
#endif
#ifndef MAP
#define MAP(name, spelling, cfn, latex, dom, dtape, d2tape, numpy) \
  OP(name, spelling, 1, PREC_ATOM, MAP, NONE, latex, 0, dom, ANY, numpy)
#endif

/*    name     spelling  latex           flags     numpy */
LEAF(NUM,     "num",     NULL,           0,        NULL)                 /* num = the value */
LEAF(VAR,     "var",     NULL,           0,        NULL)                 /* k = index of the declared variable */
LEAF(DIM,     "dim",     NULL,           0,        NULL)                 /* k = index of a symbolic size, as a scalar */
LEAF(SEED,    "G",       "G",            0,        NULL)                 /* the adjoint seed of a non-scalar output */
LEAF(DIR,     "d",       "\\mathrm{d}",  0,        NULL)                 /* k = index of a variable: its direction, dx (forward mode) */
LEAF(ZEROS,   "zeros",   "0",            OPF_FILL, "np.zeros($s)")       /* a matrix of zeros, of the node's shape */
LEAF(ONES,    "ones",    "\\mathbf{1}",  OPF_FILL, "np.ones($s)")        /* a matrix of ones, of the node's shape */
LEAF(EYE,     "eye",     "I",            OPF_FILL, "np.eye($r)")         /* the identity, of the node's square shape */

/* The operators, then the functions that are not elementwise. SUM, LSE and
   SOFTMAX take a dimension in Node.k: 0 for all elements, 1 down the
   columns, 2 along the rows. */
/* name     spelling     ar prec       class    tape        latex                  flags        doms      numpy */
OP(ADD,     "+",         2, PREC_ADD,  ZIP,     ADD,        "+",                   0,           ANY, ANY, "$a + $b")
OP(SUB,     "-",         2, PREC_ADD,  ZIP,     SUB,        "-",                   0,           ANY, ANY, "$a - $b")
OP(MUL,     "*",         2, PREC_MUL,  PRODUCT, MATMUL,     " ",                   0,           ANY, ANY, "$a @ $b")
OP(DIV,     "/",         2, PREC_MUL,  SCALAR,  EDIV,       "\\frac",              0,           ANY, AWAY, "$a / $b")
OP(EMUL,    ".*",        2, PREC_MUL,  ZIP,     EMUL,       "\\odot",              0,           ANY, ANY, "$a * $b")
OP(EDIV,    "./",        2, PREC_MUL,  ZIP,     EDIV,       "\\oslash",            0,           ANY, AWAY, "$a / $b")
OP(POW,     "^",         2, PREC_POW,  SCALAR,  EPOW,       "^{",                  0,           POS, ANY, "$a ** $b")
OP(EPOW,    ".^",        2, PREC_POW,  ZIP,     EPOW,       "^{\\circ",            0,           POS, ANY, "$a ** $b")
OP(TRANS,   "'",         1, PREC_POST, INDEX,   TRANSPOSE,  "^\\top",              0,           ANY, ANY, "$a.T")
OP(SUM,     "sum",       1, PREC_ATOM, REDUCE,  SUM,        NULL,                  OPF_AXIS,    ANY, ANY, "np.sum($a$k)")
OP(NORM,    "norm",      1, PREC_ATOM, REDUCE,  NORM2,      "\\left\\|",           0,           ANY, ANY, "np.linalg.norm($a)")
OP(NORMSQ,  "normsq",    1, PREC_POW,  REDUCE,  SUMSQ,      "^2",                  0,           ANY, ANY, "np.sum(np.square($a))")
OP(LSE,     "logsumexp", 1, PREC_ATOM, REDUCE,  LOGSUMEXP,  NULL,                  OPF_AXIS,    ANY, ANY, "_logsumexp($a$k)")
OP(SOFTMAX, "softmax",   1, PREC_ATOM, REDUCE,  SOFTMAX,    NULL,                  OPF_AXIS,    ANY, ANY, "_softmax($a$k)")
OP(UNIT,    "unit",      1, PREC_MUL,  REDUCE,  UNIT,       "\\frac",             0,           ANY, ANY, "_unit($a)")
OP(TR,      "tr",        1, PREC_ATOM, LINALG,  TRACE,      "\\operatorname{tr}",  0,           ANY, ANY, "np.trace($a)")
OP(DET,     "det",       1, PREC_ATOM, LINALG,  DET,        "\\det",               OPF_INVERTS, ANY, ANY, "np.linalg.det($a)")
OP(LOGDET,  "logdet",    1, PREC_ATOM, LINALG,  LOGDET,     "\\log\\det",          OPF_INVERTS, ANY, ANY, "np.linalg.slogdet($a)[1]")
OP(INV,     "inv",       1, PREC_ATOM, LINALG,  INV,        "^{-1}",               OPF_INVERTS, ANY, ANY, "np.linalg.inv($a)")
OP(DIAGM,   "diag",      1, PREC_ATOM, INDEX,   DIAG,       "\\operatorname{diag}", 0,          ANY, ANY, "np.diagflat($a)")
OP(DIAGV,   "diag",      1, PREC_ATOM, INDEX,   DIAG,       "\\operatorname{diag}", 0,          ANY, ANY, "np.diag($a).reshape(-1, 1)")
/* ADD..EPOW broadcast (shape.c). MUL is the matrix product, or scaling when a
   side is 1x1; juxtaposed in LaTeX. DIV's divisor is a scalar; POW's base
   and exponent are scalars. NORM is the Frobenius norm, Euclidean for a
   vector; NORMSQ is ||a||^2 kept whole, so that its derivative is 2*a.
   UNIT is the unit direction a/||a||, written and printed so, but 0 where
   a is 0: the gradient of ||a||, with the subgradient 0 at 0.
   LOGDET is log|det a|. DIAGM makes a vector a diagonal matrix, DIAGV takes
   a square matrix's diagonal. */

/* The elementwise functions. relu, abs and sign take the subgradient 0 at
   their kink, 0 (tests keep their inputs AWAY from it); erf's derivative is
   2/sqrt(pi) e^(-x^2). */
/*  name      spelling    C function         latex       dom   on the tape: f'(x)    f''(x)   numpy */
MAP(EXP,      "exp",      LIBM(exp, expf),   "\\exp",    ANY,  y,                    y, "np.exp($a)")
MAP(LOG,      "log",      LIBM(log, logf),   "\\log",    POS,  1 / x,                -1 / (x * x), "np.log($a)")
MAP(SQRT,     "sqrt",     LIBM(sqrt, sqrtf), "\\sqrt",   POS,  0.5 / y,              -0.25 / (y * y * y), "np.sqrt($a)")
MAP(SIN,      "sin",      LIBM(sin, sinf),   "\\sin",    ANY,  cos(x),               -y, "np.sin($a)")
MAP(COS,      "cos",      LIBM(cos, cosf),   "\\cos",    ANY,  -sin(x),              -y, "np.cos($a)")
MAP(TAN,      "tan",      LIBM(tan, tanf),   "\\tan",    ANY,  1 + y * y,            2 * y * (1 + y * y), "np.tan($a)")
MAP(TANH,     "tanh",     LIBM(tanh, tanhf), "\\tanh",   ANY,  1 - y * y,            -2 * y * (1 - y * y), "np.tanh($a)")
MAP(SIGMOID,  "sigmoid",  RT(sigmoid),       "\\sigma",  ANY,  y * (1 - y),          y * (1 - y) * (1 - 2 * y), "_sigmoid($a)")
MAP(RELU,     "relu",     RT(relu),          NULL,       AWAY, x > 0,                0, "np.maximum($a, 0.0)")
MAP(SOFTPLUS, "softplus", RT(softplus),      NULL,       ANY,  mdrt_sigmoid(x),      mdrt_sigmoid(x) * (1 - mdrt_sigmoid(x)), "np.logaddexp($a, 0.0)")
MAP(ABS,      "abs",      LIBM(fabs, fabsf), "\\left|",  AWAY, mdrt_sign(x),         0, "np.abs($a)")
MAP(SIGN,     "sign",     RT(sign),          NULL,       AWAY, 0,                    0, "np.sign($a)")
MAP(ASIN,     "arcsin",   LIBM(asin, asinf), "\\arcsin", UNIT, 1 / sqrt(1 - x * x),  x / ((1 - x * x) * sqrt(1 - x * x)), "np.arcsin($a)")
MAP(ACOS,     "arccos",   LIBM(acos, acosf), "\\arccos", UNIT, -1 / sqrt(1 - x * x), -x / ((1 - x * x) * sqrt(1 - x * x)), "np.arccos($a)")
MAP(ATAN,     "arctan",   LIBM(atan, atanf), "\\arctan", ANY,  1 / (1 + x * x),      -2 * x / ((1 + x * x) * (1 + x * x)), "np.arctan($a)")
MAP(ERF,      "erf",      LIBM(erf, erff),   NULL,       ANY,  1.1283791670955126 * exp(-x * x), -2.2567583341910252 * x * exp(-x * x), "_erf($a)")

#undef OP
#undef LEAF
#undef MAP
