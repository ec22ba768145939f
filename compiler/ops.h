/*
 * ops.h - the one list of operations. Each line gives the enum name, the
 * spelling used when printing (a function's name for calls), the arity,
 * the printing precedence and, for elementwise functions, the C function
 * the emitted code calls. Adding an operation means one line here, its
 * shape rule in shape.c, its derivative rule in diff.c, its code in
 * emit_c.c and its tape operation in tape.c.
 *
 * Precedence, high to low: atoms and calls, postfix ', ^ and .^, unary -,
 * * / .* ./, + -.
 */
/*  name     spelling      arity prec        C function */
OP(NUM,      "num",        0, PREC_ATOM,  NULL)  /* num = the value */
OP(VAR,      "var",        0, PREC_ATOM,  NULL)  /* k = index of the declared variable */
OP(DIM,      "dim",        0, PREC_ATOM,  NULL)  /* k = index of a symbolic size, as a scalar */
OP(SEED,     "G",          0, PREC_ATOM,  NULL)  /* the adjoint seed of a non-scalar output */
OP(ZEROS,    "zeros",      0, PREC_ATOM,  NULL)  /* a matrix of zeros, of the node's shape */
OP(ONES,     "ones",       0, PREC_ATOM,  NULL)  /* a matrix of ones, of the node's shape */
OP(EYE,      "eye",        0, PREC_ATOM,  NULL)  /* the identity, of the node's square shape */
OP(ADD,      "+",          2, PREC_ADD,   NULL)  /* broadcasting: see shape.c */
OP(SUB,      "-",          2, PREC_ADD,   NULL)
OP(MUL,      "*",          2, PREC_MUL,   NULL)  /* matrix product; scaling when a side is 1x1 */
OP(DIV,      "/",          2, PREC_MUL,   NULL)  /* b is a scalar */
OP(EMUL,     ".*",         2, PREC_MUL,   NULL)
OP(EDIV,     "./",         2, PREC_MUL,   NULL)
OP(POW,      "^",          2, PREC_POW,   NULL)  /* scalar base and exponent */
OP(EPOW,     ".^",         2, PREC_POW,   NULL)  /* elementwise */
OP(TRANS,    "'",          1, PREC_POST,  NULL)
OP(SUM,      "sum",        1, PREC_ATOM,  NULL)  /* k = 0: all; 1: column sums (1 x m); 2: row sums (n x 1) */
OP(NORM,     "norm",       1, PREC_ATOM,  NULL)  /* ||a||: Frobenius, or Euclidean for a vector */
OP(NORMSQ,   "normsq",     1, PREC_POW,   NULL)  /* ||a||^2, kept whole so its derivative is 2*a */
OP(LSE,      "logsumexp",  1, PREC_ATOM,  NULL)  /* k = 0: over all (scalar); 2: per row (n x 1) */
OP(SOFTMAX,  "softmax",    1, PREC_ATOM,  NULL)  /* k = 2: per row */
OP(TR,       "tr",         1, PREC_ATOM,  NULL)
OP(DET,      "det",        1, PREC_ATOM,  NULL)
OP(LOGDET,   "logdet",     1, PREC_ATOM,  NULL)  /* log |det a| */
OP(INV,      "inv",        1, PREC_ATOM,  NULL)
OP(DIAGM,    "diag",       1, PREC_ATOM,  NULL)  /* vector -> diagonal matrix */
OP(DIAGV,    "diag",       1, PREC_ATOM,  NULL)  /* square matrix -> its diagonal, a vector */
OP(EXP,      "exp",        1, PREC_ATOM,  "exp")
OP(LOG,      "log",        1, PREC_ATOM,  "log")
OP(SQRT,     "sqrt",       1, PREC_ATOM,  "sqrt")
OP(SIN,      "sin",        1, PREC_ATOM,  "sin")
OP(COS,      "cos",        1, PREC_ATOM,  "cos")
OP(TAN,      "tan",        1, PREC_ATOM,  "tan")
OP(TANH,     "tanh",       1, PREC_ATOM,  "tanh")
OP(SIGMOID,  "sigmoid",    1, PREC_ATOM,  "mdrt_sigmoid")
OP(RELU,     "relu",       1, PREC_ATOM,  "mdrt_relu")   /* subgradient 0 at 0 */
OP(SOFTPLUS, "softplus",   1, PREC_ATOM,  "mdrt_softplus")
OP(ABS,      "abs",        1, PREC_ATOM,  "fabs")        /* subgradient 0 at 0 */
OP(SIGN,     "sign",       1, PREC_ATOM,  "mdrt_sign")   /* derivative 0 */
OP(ASIN,     "arcsin",     1, PREC_ATOM,  "asin")
OP(ACOS,     "arccos",     1, PREC_ATOM,  "acos")
OP(ATAN,     "arctan",     1, PREC_ATOM,  "atan")
