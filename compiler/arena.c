/*
 * arena.c - memory for one compilation: every node, tree and string is
 * carved from chunks that are freed together, so no stage frees anything.
 * Also the few containers the stages share: arrays that grow
 * geometrically, a growable string for the printers and the emitter, and
 * a map from names to numbers.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "md.h"

struct Chunk {
  Chunk *next;
  size_t used, cap;
  max_align_t data[];
};

void *arena_alloc(Arena *a, size_t n) {
  n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
  Chunk *c = a->head;
  if (!c || c->cap - c->used < n) {
    size_t cap = n > 65536 ? n : 65536;
    c = malloc(sizeof(Chunk) + cap);
    if (!c)
      return NULL;
    c->cap = cap;
    c->used = 0;
    c->next = a->head;
    a->head = c;
  }
  void *p = (char *)c->data + c->used;
  c->used += n;
  memset(p, 0, n);
  return p;
}

char *arena_strndup(Arena *a, const char *s, size_t n) {
  char *p = arena_alloc(a, n + 1);
  if (p)
    memcpy(p, s, n);
  return p;
}

char *arena_strdup(Arena *a, const char *s) { return arena_strndup(a, s, strlen(s)); }

char *arena_printf(Arena *a, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  char *p = arena_alloc(a, (size_t)n + 1);
  if (!p)
    return NULL;
  va_start(ap, fmt);
  vsnprintf(p, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return p;
}

void *arena_grow(Arena *a, void *arr, int n, int *cap, size_t size) {
  if (n < *cap)
    return arr;
  int want = *cap ? *cap * 2 : 16;
  if (want <= n)
    want = n + 1;
  void *p = arena_alloc(a, size * (size_t)want);
  if (!p)
    return NULL;
  if (n)
    memcpy(p, arr, size * (size_t)n);
  *cap = want;
  return p;
}

void arena_free(Arena *a) {
  for (Chunk *c = a->head, *next; c; c = next) {
    next = c->next;
    free(c);
  }
  a->head = NULL;
}

static bool buf_reserve(Buf *b, size_t extra) {
  if (b->oom)
    return false;
  if (b->len + extra + 1 <= b->cap)
    return true;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->len + extra + 1)
    cap *= 2;
  char *s = realloc(b->s, cap);
  if (!s) {
    b->oom = true;
    return false;
  }
  b->s = s;
  b->cap = cap;
  return true;
}

void buf_printf(Buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0 || !buf_reserve(b, (size_t)n))
    return;
  va_start(ap, fmt);
  vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

void buf_puts(Buf *b, const char *s) {
  size_t n = strlen(s);
  if (!buf_reserve(b, n))
    return;
  memcpy(b->s + b->len, s, n + 1);
  b->len += n;
}

void buf_free(Buf *b) {
  free(b->s);
  memset(b, 0, sizeof *b);
}

/* ---- names -------------------------------------------------------------- */

static size_t name_hash(const char *s) {
  size_t h = 5381;
  while (*s)
    h = h * 33 + (unsigned char)*s++;
  return h;
}

int names_get(const Names *m, const char *key) {
  if (!m->cap)
    return -1;
  for (size_t i = name_hash(key) & (m->cap - 1); m->slot[i].key; i = (i + 1) & (m->cap - 1))
    if (!strcmp(m->slot[i].key, key))
      return m->slot[i].value;
  return -1;
}

bool names_put(Arena *a, Names *m, const char *key, int value) {
  if (2 * (m->n + 1) > m->cap) {
    Names bigger = {.cap = m->cap ? 2 * m->cap : 64};
    if (!(bigger.slot = arena_alloc(a, sizeof *bigger.slot * bigger.cap)))
      return false;
    for (size_t i = 0; i < m->cap; i++)
      if (m->slot[i].key)
        names_put(a, &bigger, m->slot[i].key, m->slot[i].value);
    *m = bigger;
  }
  size_t i = name_hash(key) & (m->cap - 1);
  while (m->slot[i].key && strcmp(m->slot[i].key, key))
    i = (i + 1) & (m->cap - 1);
  if (!m->slot[i].key)
    m->n++;
  m->slot[i].key = key;
  m->slot[i].value = value;
  return true;
}
