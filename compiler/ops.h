/*
 * ops.h - the one list of operations. Each line gives the enum name, the
 * spelling used when printing, the arity and the printing precedence.
 * Adding an operation means one line here, its shape rule in shape.c, its
 * derivative rule in diff.c and its code in emit_c.c and tape.c.
 *
 * Precedence, high to low: atoms and calls, postfix ', ^ and .^, unary -,
 * * / .* ./, + -.
 */
/*  name    spelling     arity prec */
OP(NUM,     "num",       0, PREC_ATOM)  /* num = the value */
OP(VAR,     "var",       0, PREC_ATOM)  /* k = index of the declared variable */
OP(ZEROS,   "zeros",     0, PREC_ATOM)  /* a matrix of zeros, of the node's shape */
OP(ONES,    "ones",      0, PREC_ATOM)  /* a matrix of ones, of the node's shape */
OP(ADD,     "+",         2, PREC_ADD)
OP(SUB,     "-",         2, PREC_ADD)
OP(MUL,     "*",         2, PREC_MUL)   /* matrix product; scaling when a side is 1x1 */
OP(DIV,     "/",         2, PREC_MUL)   /* b is a scalar */
OP(EMUL,    ".*",        2, PREC_MUL)
OP(EDIV,    "./",        2, PREC_MUL)
OP(POW,     "^",         2, PREC_POW)   /* scalar base and exponent */
OP(EPOW,    ".^",        2, PREC_POW)   /* elementwise; b is a scalar or of a's shape */
OP(TRANS,   "'",         1, PREC_POST)
OP(SUM,     "sum",       1, PREC_ATOM)  /* sum of all elements */
OP(NORM,    "norm",      1, PREC_ATOM)  /* ||a||: Frobenius, or Euclidean for a vector */
OP(NORMSQ,  "normsq",    1, PREC_POW)   /* ||a||^2, kept whole so its derivative is 2*a */
OP(EXP,     "exp",       1, PREC_ATOM)
OP(LOG,     "log",       1, PREC_ATOM)
