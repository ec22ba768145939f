/*
 * test_ops.c - the op table (compiler/ops.h) and what is made from it.
 *
 *   ast::failure_reason   a NULL from ast_opk says whether the operands did
 *                         not fit or memory ran out
 */
#include <criterion/criterion.h>
#include <string.h>
#include "md.h"

/* ---- ast_opk's failures ----------------------------------------------------- */

Test(ast, failure_reason) {
  md_error err;
  Ctx c;
  const char *src = "A : matrix(n, m)\nB : matrix(n, m)\ny = sum(A .* B)\n";
  ctx_init(&c, src, (long)strlen(src), "t.expr", &err);
  cr_assert(md_front(&c), "%s", err.diag);
  Node *a = c.vars[0].node, *b = c.vars[1].node;
  cr_expect_null(ast_op(&c, OP_MUL, a, b));
  cr_expect_eq(c.astfail, AST_SHAPE);
  cr_expect_str_eq(c.astmsg, "cannot multiply (n×m) by (n×m): inner sizes m and n differ");
  cr_expect_null(ast_opk(&c, OP_LSE, a, NULL, 1));
  cr_expect_str_eq(c.astmsg, "logsumexp has no dimension 1");
  // A NULL operand keeps the reason it failed with.
  cr_expect_null(ast_op(&c, OP_ADD, NULL, b));
  cr_expect_eq(c.astfail, AST_SHAPE);
  ast_error(&c, (Loc){-1, -1}, "a test");
  cr_expect_str_eq(err.message, "internal error: a test built an ill-shaped node: logsumexp has "
                                "no dimension 1");
  ctx_free(&c);
}
