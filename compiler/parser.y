/*
 * parser.y - the grammar of the .expr language. Each action is one call
 * into a small builder, so the grammar reads as the language. The result is
 * a list of statements holding expression trees with byte-range locations;
 * shape.c lowers them to the DAG.
 *
 * Precedence, high to low: atoms and calls, postfix ', ^ and .^ (right
 * associative), unary -, * / .* ./, + -. So -x^2 is -(x^2).
 */
%code requires {
#include "md.h"
#define YYLTYPE Loc
#define YYLLOC_DEFAULT(Cur, Rhs, N)                   \
  do {                                                \
    if (N) {                                          \
      (Cur).begin = YYRHSLOC(Rhs, 1).begin;           \
      (Cur).end = YYRHSLOC(Rhs, N).end;               \
    } else {                                          \
      (Cur).begin = (Cur).end = YYRHSLOC(Rhs, 0).end; \
    }                                                 \
  } while (0)
typedef void *yyscan_t;
}

%code {
#include <string.h>
#include "lexer.h"
static void yyerror(Loc *loc, Ctx *c, yyscan_t scanner, const char *msg);
static Expr *unary(Ctx *c, ExprKind kind, Loc loc, Expr *a);
static Expr *binop(Ctx *c, Op op, Loc loc, Expr *a, Expr *b);
static Expr *leaf_num(Ctx *c, Loc loc, double v);
static Expr *leaf_name(Ctx *c, Loc loc, char *name);
static Expr *norm(Ctx *c, Loc loc, Expr *a, int sub);
static Expr *call(Ctx *c, Loc loc, char *name, Expr *args);
static Expr *arg_push(Expr *list, Expr *e);
static Stmt *decl(Ctx *c, Loc loc, char *name, Loc tloc, char *type, Stmt *dims);
static Stmt *dims_push(Ctx *c, Stmt *dims, DimSpec d);
static DimSpec dim_num(Ctx *c, Loc loc, double v);
static Stmt *wrt_push(Ctx *c, Loc loc, Stmt *s, char *name, Loc nloc);
static Stmt *assign(Ctx *c, Loc loc, char *name, Expr *e);
static void add_stmt(Ctx *c, Stmt *s);
#define NEW(x) do { if (!(x)) YYNOMEM; } while (0)
}

%define api.pure full
%define parse.error custom
%define parse.lac full
%locations
%parse-param {Ctx *c} {yyscan_t scanner}
%lex-param {yyscan_t scanner}
%expect 0

%union {
  double num;
  char *str;
  Expr *expr;
  Stmt *stmt;
  DimSpec dim;
  int sub;
}

%token <num> NUMBER
%token <str> IDENT
%token WRT BARS NORM_F NORM_2 NORM_1 EMUL EDIV EPOW NEWLINE LEXERROR
%token EXPR_START  /* the first token of a one-line expression (c->implicit) */
%type <expr> expr term unary power postfix primary args
%type <stmt> stmt decl dims wrtlist
%type <dim> dim
%type <sub> normsub

%%

program: stmts
       | EXPR_START expr newlines   { Stmt *s = assign(c, @2, NULL, $2); NEW(s); add_stmt(c, s); }
       ;

newlines: %empty | newlines NEWLINE ;

stmts: stmt                 { add_stmt(c, $1); }
     | stmts sep stmt       { add_stmt(c, $3); }
     ;

sep: NEWLINE | ';' ;

stmt: %empty                { $$ = NULL; }
    | decl
    | WRT wrtlist           { $$ = $2; }
    | IDENT '=' expr        { NEW($$ = assign(c, @1, $1, $3)); }
    ;

decl: IDENT ':' IDENT                  { NEW($$ = decl(c, @1, $1, @3, $3, NULL)); }
    | IDENT ':' IDENT '(' dims ')'     { NEW($$ = decl(c, @1, $1, @3, $3, $5)); }
    ;

dims: dim                   { NEW($$ = dims_push(c, NULL, $1)); }
    | dims ',' dim          { NEW($$ = dims_push(c, $1, $3)); }
    ;

dim: NUMBER                 { $$ = dim_num(c, @1, $1); if (!$$.n) YYABORT; }
   | IDENT                  { $$ = (DimSpec){.name = $1, .loc = @1}; }
   ;

wrtlist: IDENT              { NEW($$ = wrt_push(c, @$, NULL, $1, @1)); }
       | wrtlist ',' IDENT  { NEW($$ = wrt_push(c, @$, $1, $3, @3)); }
       ;

/* expr = term ("+" term | "-" term)* */
expr: term
    | expr '+' term         { NEW($$ = binop(c, OP_ADD, @2, $1, $3)); }
    | expr '-' term         { NEW($$ = binop(c, OP_SUB, @2, $1, $3)); }
    ;

/* term = unary ("*" unary | "/" unary | ".*" unary | "./" unary)* */
term: unary
    | term '*' unary        { NEW($$ = binop(c, OP_MUL, @2, $1, $3)); }
    | term '/' unary        { NEW($$ = binop(c, OP_DIV, @2, $1, $3)); }
    | term EMUL unary       { NEW($$ = binop(c, OP_EMUL, @2, $1, $3)); }
    | term EDIV unary       { NEW($$ = binop(c, OP_EDIV, @2, $1, $3)); }
    ;

/* unary = "-" unary | power */
unary: power
     | '-' unary            { NEW($$ = unary(c, EX_NEG, @1, $2)); }
     ;

/* power = postfix ("^" unary | ".^" unary)?   right associative */
power: postfix
     | postfix '^' unary    { NEW($$ = binop(c, OP_POW, @2, $1, $3)); }
     | postfix EPOW unary   { NEW($$ = binop(c, OP_EPOW, @2, $1, $3)); }
     ;

/* postfix = primary "'"* */
postfix: primary
       | postfix '\''       { NEW($$ = unary(c, EX_TRANS, @2, $1)); }
       ;

/* primary = number | name | name "(" args ")" | "(" expr ")" | "||" expr "||" normsub */
primary: NUMBER                     { NEW($$ = leaf_num(c, @1, $1)); }
       | IDENT                      { NEW($$ = leaf_name(c, @1, $1)); }
       | IDENT '(' args ')'         { NEW($$ = call(c, @$, $1, $3)); }
       | '(' expr ')'               { $$ = $2; }
       | BARS expr BARS normsub     { NEW($$ = norm(c, @$, $2, $4)); }
       ;

normsub: %empty  { $$ = 0; }
       | NORM_F  { $$ = 'F'; }
       | NORM_2  { $$ = '2'; }
       | NORM_1  { $$ = '1'; }
       ;

args: expr                  { $$ = arg_push(NULL, $1); }
    | args ',' expr         { $$ = arg_push($1, $3); }
    ;

%%

static const char *token_text(yysymbol_kind_t k) {
  switch (k) {
  case YYSYMBOL_YYEOF: return "end of input";
  case YYSYMBOL_NEWLINE: return "end of line";
  case YYSYMBOL_NUMBER: return "a number";
  case YYSYMBOL_IDENT: return "a name";
  case YYSYMBOL_WRT: return "'wrt'";
  case YYSYMBOL_BARS: return "'||'";
  case YYSYMBOL_NORM_F: return "'_F'";
  case YYSYMBOL_NORM_2: return "'_2'";
  case YYSYMBOL_NORM_1: return "'_1'";
  case YYSYMBOL_EMUL: return "'.*'";
  case YYSYMBOL_EDIV: return "'./'";
  case YYSYMBOL_EPOW: return "'.^'";
  default: return yysymbol_name(k);
  }
}

// "unexpected ')', expected a number, a name or '('": the expected list
// names at most four tokens.
static int yyreport_syntax_error(const yypcontext_t *ctx, Ctx *c, yyscan_t scanner) {
  (void)scanner;
  yysymbol_kind_t got = yypcontext_token(ctx);
  if (got == YYSYMBOL_LEXERROR)
    return 0;  // the lexer already said what was wrong
  char msg[400];
  Loc at = *yypcontext_location(ctx);
  int n;
  // A name, a number or a symbol is quoted as written: "unexpected 'exp'".
  if (got != YYSYMBOL_YYEOF && got != YYSYMBOL_NEWLINE && at.begin >= 0 && at.end > at.begin &&
      at.end - at.begin <= 40)
    n = snprintf(msg, sizeof msg, "unexpected '%.*s'", at.end - at.begin, c->src + at.begin);
  else
    n = snprintf(msg, sizeof msg, "unexpected %s", token_text(got));
  // What belongs in a file, met in a one-line expression.
  if (c->implicit && (got == YYSYMBOL_WRT || (at.end == at.begin + 1 && c->src[at.begin] &&
                                                 strchr(":=;", c->src[at.begin])))) {
    ctx_error(c, at, "%s: a one-line expression is the expression alone, without declarations, "
              "assignments or wrt; its names are typed by their first letter", msg);
    return 0;
  }
  // The expected tokens, with the operators said once: "expected ')', ','
  // or an operator".
  yysymbol_kind_t exp[YYNTOKENS];
  int ne = yypcontext_expected_tokens(ctx, exp, YYNTOKENS), nw = 0;
  const char *words[8];
  bool op = false;
  for (int i = 0; i < ne; i++) {
    const char *name = yysymbol_name(exp[i]);
    if (exp[i] == YYSYMBOL_EMUL || exp[i] == YYSYMBOL_EDIV || exp[i] == YYSYMBOL_EPOW ||
        (strlen(name) >= 3 && name[0] == '\'' && strchr("+-*/^\\", name[1])))
      op = true;
    else if (nw < 6)
      words[nw++] = token_text(exp[i]);
    else
      nw = 99;
  }
  if (op && nw < 6)
    words[nw++] = "an operator";
  if (ne > 0 && nw <= 6) {
    n += snprintf(msg + n, sizeof msg - (size_t)n, ", expected ");
    for (int i = 0; i < nw; i++)
      n += snprintf(msg + n, sizeof msg - (size_t)n, "%s%s",
                    i == 0 ? "" : i == nw - 1 ? " or " : ", ", words[i]);
  }
  ctx_error(c, *yypcontext_location(ctx), "%s", msg);
  return 0;
}

static void yyerror(Loc *loc, Ctx *c, yyscan_t scanner, const char *msg) {
  (void)scanner;
  // Bison's stack holds a few entries per level of nesting.
  if (!strcmp(msg, "memory exhausted"))
    ctx_error(c, *loc, "the expression is nested too deeply");
  else
    ctx_error(c, *loc, "%s", msg);
}

Expr *expr_new(Ctx *c, ExprKind kind, Loc loc) {
  if (++c->nexprs > MD_MAX_EXPRS) {
    ctx_error(c, loc, "the source is too large: more than %d operations", MD_MAX_EXPRS);
    return NULL;
  }
  Expr *e = arena_alloc(&c->arena, sizeof *e);
  if (e) {
    e->kind = kind;
    e->loc = loc;
    e->depth = 1;
  }
  return e;
}

// Every later stage walks expressions recursively, so their depth is
// bounded here, where it can be reported at its place.
static Expr *deepen(Ctx *c, Expr *e, const Expr *a, const Expr *b) {
  if (!e)
    return NULL;
  int d = a ? a->depth : 0;
  if (b && b->depth > d)
    d = b->depth;
  e->depth = d + 1;
  if (e->depth > MD_MAX_DEPTH) {
    ctx_error(c, e->loc, "the expression is nested too deeply: more than %d levels", MD_MAX_DEPTH);
    return NULL;
  }
  return e;
}

static Expr *unary(Ctx *c, ExprKind kind, Loc loc, Expr *a) {
  Expr *e = expr_new(c, kind, loc);
  if (e)
    e->a = a;
  return deepen(c, e, a, NULL);
}

static Expr *binop(Ctx *c, Op op, Loc loc, Expr *a, Expr *b) {
  Expr *e = expr_new(c, EX_BINARY, loc);
  if (e) {
    e->op = op;
    e->a = a;
    e->b = b;
  }
  return deepen(c, e, a, b);
}

static Expr *leaf_num(Ctx *c, Loc loc, double v) {
  Expr *e = expr_new(c, EX_NUM, loc);
  if (e)
    e->num = v;
  return e;
}

static Expr *leaf_name(Ctx *c, Loc loc, char *name) {
  Expr *e = expr_new(c, EX_NAME, loc);
  if (e)
    e->name = name;
  return e;
}

static Expr *norm(Ctx *c, Loc loc, Expr *a, int sub) {
  Expr *e = unary(c, EX_NORM, loc, a);
  if (e)
    e->sub = sub;
  return e;
}

// Arguments are collected as a chain through ->next, then laid out as an
// array. The chain's head keeps its tail in ->last.
static Expr *arg_push(Expr *list, Expr *e) {
  if (!list) {
    e->last = e;
    return e;
  }
  list->last->next = e;
  list->last = e;
  return list;
}

static Expr *call(Ctx *c, Loc loc, char *name, Expr *args) {
  Expr *e = expr_new(c, EX_CALL, loc);
  if (!e)
    return NULL;
  e->name = name;
  for (Expr *p = args; p; p = p->next)
    e->nargs++;
  e->args = arena_alloc(&c->arena, sizeof(Expr *) * (size_t)(e->nargs ? e->nargs : 1));
  if (!e->args)
    return NULL;
  int i = 0;
  for (Expr *p = args; p; p = p->next) {
    e->args[i++] = p;
    if (!deepen(c, e, p, NULL))
      return NULL;
  }
  return e;
}

static Stmt *stmt_new(Ctx *c, StmtKind kind, Loc loc) {
  Stmt *s = arena_alloc(&c->arena, sizeof *s);
  if (s) {
    s->kind = kind;
    s->loc = loc;
  }
  return s;
}

static Stmt *decl(Ctx *c, Loc loc, char *name, Loc tloc, char *type, Stmt *dims) {
  Stmt *s = dims ? dims : stmt_new(c, ST_DECL, loc);
  if (s) {
    s->loc = loc;
    s->name = name;
    s->type = type;
    s->typeloc = tloc;
  }
  return s;
}

static Stmt *dims_push(Ctx *c, Stmt *s, DimSpec d) {
  if (!s && !(s = stmt_new(c, ST_DECL, d.loc)))
    return NULL;
  if (s->ndims < 2)
    s->dims[s->ndims] = d;
  s->ndims++;
  return s;
}

static DimSpec dim_num(Ctx *c, Loc loc, double v) {
  DimSpec d = {.loc = loc};
  if (!(v >= 1 && v <= 1e9) || v != (double)(long)v)  // range first: the cast needs it
    ctx_error(c, loc, "a size must be a whole number from 1 to 1000000000");
  else
    d.n = (long)v;
  return d;
}

static Stmt *wrt_push(Ctx *c, Loc loc, Stmt *s, char *name, Loc nloc) {
  if (!s && !(s = stmt_new(c, ST_WRT, loc)))
    return NULL;
  int cap = s->namecap;
  char **names = arena_grow(&c->arena, s->names, s->nnames, &s->namecap, sizeof *names);
  Loc *locs = arena_grow(&c->arena, s->nameloc, s->nnames, &cap, sizeof *locs);
  if (!names || !locs)
    return NULL;
  names[s->nnames] = name;
  locs[s->nnames] = nloc;
  s->names = names;
  s->nameloc = locs;
  s->nnames++;
  return s;
}

static Stmt *assign(Ctx *c, Loc loc, char *name, Expr *e) {
  Stmt *s = stmt_new(c, ST_ASSIGN, loc);
  if (s) {
    s->name = name;
    s->expr = e;
  }
  return s;
}

static void add_stmt(Ctx *c, Stmt *s) {
  if (!s)
    return;
  if (c->last_stmt)
    c->last_stmt->next = s;
  else
    c->stmts = s;
  c->last_stmt = s;
}

bool parse_program(Ctx *c) {
  // Checked before the scanner sees it: flex takes the length as an int,
  // and a location is an int offset.
  if (c->len > MD_MAX_SOURCE)
    return ctx_error(c, (Loc){-1, -1}, "the source is too large: %ld bytes, at most %d", c->len,
                     MD_MAX_SOURCE);
  yyscan_t scanner;
  if (yylex_init_extra(c, &scanner))
    return ctx_error(c, (Loc){-1, -1}, "out of memory");
  if (c->implicit)
    c->start_token = EXPR_START;
  YY_BUFFER_STATE b = yy_scan_bytes(c->src, (int)c->len, scanner);
  int rc = b ? yyparse(c, scanner) : 2;
  if (rc == 2)
    ctx_error(c, (Loc){-1, -1}, "out of memory, or the expression is nested too deeply");
  if (b)
    yy_delete_buffer(b, scanner);
  yylex_destroy(scanner);
  return rc == 0 && !c->failed;
}
