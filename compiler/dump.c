/*
 * dump.c - the compiler's state between stages, as text, for
 * `matdiff diff --dump` (md_stages in api.c names which printer follows
 * which stage). A wrong simplification can then be told from a wrong
 * derivative rule by looking at the adjoint DAG before and after.
 *
 * The parse tree prints as s-expressions, one statement a line:
 *
 *   (decl X matrix n k)   (wrt X W)   (= y (^ (norm_F (+ (* X W) b)) 2))
 *
 * A DAG prints as one node a line, in id order (operands first), with its
 * operation, operands and shape, then the names given to nodes:
 *
 *   %3 = * %0 %1 : (n×m)
 *   y = %7
 *
 * A plan (plan.c) prints as each body's needed nodes, one a line, with the
 * form the emitter gives it, its uses, the roots that need it, the buffer
 * whose memory it reuses, and the terms written into it:
 *
 *   %5 = + %4 %2 : (n×m)  -- buffer, 2 uses for dW,db  reuses %3  terms +%4 +gemm %2
 */
#include <stdlib.h>
#include "emit.h"

/* ---- the parse tree ------------------------------------------------------ */

static void dump_expr(Buf *b, const Expr *e) {
  char num[32];
  switch (e->kind) {
  case EX_NUM: buf_puts(b, print_num(num, sizeof num, e->num)); return;
  case EX_NAME: buf_puts(b, e->name); return;
  case EX_CALL:
    buf_printf(b, "(%s", e->name);
    for (int i = 0; i < e->nargs; i++) {
      buf_puts(b, " ");
      dump_expr(b, e->args[i]);
    }
    buf_puts(b, ")");
    return;
  case EX_NORM:
    if (e->sub)
      buf_printf(b, "(norm_%c ", e->sub);
    else
      buf_puts(b, "(norm ");
    break;
  case EX_NEG: buf_puts(b, "(neg "); break;
  case EX_TRANS: buf_puts(b, "(' "); break;
  case EX_BINARY: buf_printf(b, "(%s ", op_spelling[e->op]); break;
  }
  dump_expr(b, e->a);
  if (e->kind == EX_BINARY) {
    buf_puts(b, " ");
    dump_expr(b, e->b);
  }
  buf_puts(b, ")");
}

void dump_parse(Ctx *c, Buf *b) {
  for (const Stmt *s = c->stmts; s; s = s->next) {
    switch (s->kind) {
    case ST_DECL:
      buf_printf(b, "(decl %s %s", s->name, s->type);
      for (int i = 0; i < s->ndims; i++)
        if (s->dims[i].name)
          buf_printf(b, " %s", s->dims[i].name);
        else
          buf_printf(b, " %ld", s->dims[i].n);
      break;
    case ST_WRT:
      buf_puts(b, "(wrt");
      for (int i = 0; i < s->nnames; i++)
        buf_printf(b, " %s", s->names[i]);
      break;
    case ST_ASSIGN:
      buf_printf(b, "(= %s ", s->name);
      dump_expr(b, s->expr);
      break;
    }
    buf_puts(b, ")\n");
  }
}

/* ---- DAGs ---------------------------------------------------------------- */

static void dump_node(Ctx *c, Buf *b, const Node *n) {
  char num[32];
  buf_printf(b, "%%%d = %s", n->id, op_spelling[n->op]);
  switch (n->op) {
  case OP_NUM: buf_printf(b, " %s", print_num(num, sizeof num, n->num)); break;
  case OP_VAR: buf_printf(b, " %s", c->vars[n->k].name); break;
  case OP_DIM: buf_printf(b, " %s", c->dims[n->k]); break;
  case OP_DIR: buf_printf(b, " %s", c->vars[n->k].name); break;
  default:
    if (n->a)
      buf_printf(b, " %%%d", n->a->id);
    if (n->b)
      buf_printf(b, " %%%d", n->b->id);
    if ((op_flags[n->op] & OPF_AXIS) && n->k)
      buf_printf(b, " k=%ld", n->k);
  }
  buf_printf(b, " : %s", shape_str(c, n->shape));
}

// Every node the N ROOTS depend on, in id order.
static void dump_nodes(Ctx *c, Buf *b, Node *const *roots, int n) {
  char *seen = calloc((size_t)c->nnodes + 1, 1);
  if (!seen) {
    b->oom = true;
    return;
  }
  for (int i = 0; i < n; i++)
    if (roots[i])
      ast_mark(c, roots[i], seen);
  for (int i = 0; i < c->nnodes; i++)
    if (seen[i]) {
      dump_node(c, b, c->nodes[i]);
      buf_puts(b, "\n");
    }
  free(seen);
}

// After lowering: the value's DAG, with every named intermediate (used or not).
void dump_dag(Ctx *c, Buf *b) {
  Node **roots = malloc(sizeof *roots * (size_t)(c->nlets + 1));
  if (!roots) {
    b->oom = true;
    return;
  }
  for (int i = 0; i < c->nlets; i++)
    roots[i] = c->lets[i].node;
  dump_nodes(c, b, roots, c->nlets);
  for (int i = 0; i < c->nlets; i++)
    buf_printf(b, "%s = %%%d\n", c->lets[i].name, c->lets[i].node->id);
  free(roots);
}

// After reverse mode or the simplifier: the gradients' DAG, with the
// value's nodes they use.
void dump_grads(Ctx *c, Buf *b) {
  dump_nodes(c, b, c->grads, c->nvars);
  for (int i = 0; i < c->nvars; i++)
    if (c->grads[i])
      buf_printf(b, "d%s/d%s = %%%d\n", c->outname, c->vars[i].name, c->grads[i]->id);
}

/* ---- plans --------------------------------------------------------------- */

static const char *const form_name[] = {
    [F_UNNEEDED] = "unneeded", [F_NEEDED] = "needed", [F_LEAF] = "leaf",
    [F_VIEW] = "view",         [F_FUSED] = "fused",   [F_TERM] = "term",
    [F_GEMM] = "gemm",         [F_ROOT] = "root",     [F_SCALAR] = "scalar",
    [F_BUFFER] = "buffer",
};

// The gradients MASK names, or all roots (the output's work is needed by all).
static void dump_mask(Ctx *c, Buf *b, const Plan *p, RootMask mask) {
  if (mask == ALL_ROOTS) {
    buf_puts(b, " for all");
    return;
  }
  const char *sep = " for ";
  for (int r = 1; r < p->nroots; r++)
    if (mask & 1ull << p->rootvar[r]) {
      buf_printf(b, "%sd%s", sep, c->vars[p->rootvar[r]].name);
      sep = ",";
    }
}

static void dump_body(Ctx *c, Buf *b, const Plan *p) {
  buf_printf(b, "%s:\n", p->grads ? "gradients" : "value");
  for (int i = 0; i < p->n; i++) {
    Form f = p->form[i];
    if (f == F_UNNEEDED)
      continue;
    dump_node(c, b, c->nodes[i]);
    buf_printf(b, "  -- %s, %d use%s", form_name[f], p->uses[i], p->uses[i] == 1 ? "" : "s");
    if (p->grads)
      dump_mask(c, b, p, p->mask[i]);
    if (p->alias[i])
      buf_printf(b, "  reuses %%%d", p->alias[i]->id);
    if (p->terms[i]) {
      buf_puts(b, "  terms");
      for (int t = 0; t < p->terms[i]->n; t++)
        buf_printf(b, " %c%s%%%d", p->terms[i]->sign[t] < 0 ? '-' : '+',
                   p->terms[i]->gemm[t] ? "gemm " : "", p->terms[i]->node[t]->id);
    }
    buf_puts(b, "\n");
  }
  for (int r = 0; r < p->nroots; r++)
    if (r == 0)
      buf_printf(b, "%s = %%%d\n", c->outname, p->roots[r]->id);
    else
      buf_printf(b, "d%s/d%s = %%%d\n", c->outname, c->vars[p->rootvar[r]].name, p->roots[r]->id);
}

// After planning: how the emitter will compute each body, node by node.
void dump_plan(Ctx *c, Buf *b) {
  for (int grads = 0; grads < 2; grads++) {
    const Plan *p = plan_body(c, grads);
    if (p)
      dump_body(c, b, p);
  }
}
