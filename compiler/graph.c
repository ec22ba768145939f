/*
 * graph.c - the expression DAG as Graphviz dot, for looking at what
 * matdiff built: each node once (hash-consing makes sharing visible),
 * labelled with its operation and shape, data flowing upwards from the
 * inputs. With the gradients, their adjoint DAGs are drawn on the same
 * nodes, so one sees how much of the value they reuse.
 */
#include <stdlib.h>
#include <string.h>
#include "md.h"

// A dot string literal of the node's operation.
static void label(Ctx *c, Buf *b, const Node *n) {
  char num[32];
  switch (n->op) {
  case OP_NUM: buf_puts(b, print_num(num, sizeof num, n->num)); break;
  case OP_VAR: buf_puts(b, c->vars[n->k].name); break;
  case OP_DIM: buf_puts(b, c->dims[n->k]); break;
  case OP_DIR: buf_printf(b, "d%s", c->vars[n->k].name); break;
  case OP_NORM: buf_puts(b, "||·||"); break;
  case OP_NORMSQ: buf_puts(b, "||·||²"); break;
  case OP_UNIT: buf_puts(b, "·/||·||"); break;
  case OP_TRANS: buf_puts(b, "transpose '"); break;
  default:
    buf_puts(b, op_spelling[n->op]);
    if ((op_flags[n->op] & OPF_AXIS) && n->k)
      buf_printf(b, " (dim %ld)", n->k);
    break;
  }
}

void graph_dot(Ctx *c, Buf *b, bool grads) {
  int n = c->nnodes;
  char *seen = calloc((size_t)n + 1, 1), *primal = calloc((size_t)n + 1, 1);
  if (!seen || !primal) {
    b->oom = true;
    goto done;
  }
  ast_mark(c, c->out, primal);
  memcpy(seen, primal, (size_t)n);
  for (int i = 0; grads && i < c->nvars; i++)
    if (c->vars[i].wrt && c->grads[i])
      ast_mark(c, c->grads[i], seen);

  buf_puts(b, "digraph matdiff {\n  rankdir=BT;\n"
              "  node [shape=box, style=\"rounded,filled\", fillcolor=white, fontname=Helvetica];\n"
              "  edge [color=gray40];\n");
  for (int i = 0; i < n; i++) {
    const Node *p = c->nodes[i];
    if (!seen[i])
      continue;
    buf_printf(b, "  n%d [label=\"", i);
    label(c, b, p);
    if (p->op != OP_NUM)
      buf_printf(b, "\\n%s", shape_str(c, p->shape));
    const char *fill = p->op == OP_VAR ? "lightblue" : !primal[i] ? "mistyrose" : "white";
    buf_printf(b, "\", fillcolor=%s];\n", fill);
    if (p->a)
      buf_printf(b, "  n%d -> n%d;\n", p->a->id, i);
    if (p->b)
      buf_printf(b, "  n%d -> n%d;\n", p->b->id, i);
  }
  buf_printf(b, "  out [label=\"%s\", shape=ellipse, fillcolor=palegreen];\n  n%d -> out;\n",
             c->outname, c->out->id);
  for (int i = 0; grads && i < c->nvars; i++)
    if (c->vars[i].wrt && c->grads[i]) {
      buf_printf(b, "  g%d [label=\"d%s/d%s\", shape=ellipse, fillcolor=lightsalmon];\n", i,
                 c->outname, c->vars[i].name);
      buf_printf(b, "  n%d -> g%d [color=firebrick];\n", c->grads[i]->id, i);
    }
  buf_puts(b, "}\n");
done:
  free(seen);
  free(primal);
}
