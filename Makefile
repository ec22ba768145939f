# matdiff - a source-to-source compiler for matrix calculus.
#
#   make          build build/matdiff, build/libmatdiff.a, build/libmatdiff_rt.a
#   make demo     the notebook's loss: formulas, value and gradients
#   make test     every test (Criterion suites, examples, PyTorch, valgrind)
#   make deps     install the Debian packages the build needs
#
# Quiet by default; V=1 shows full commands.

CC      ?= cc
PYTHON  ?= /usr/bin/python3
B       := build
V       ?= 0
Q       := $(if $(filter 1,$(V)),,@)

BLAS_CFLAGS := $(shell pkg-config --cflags openblas 2>/dev/null)
BLAS_LIBS   := $(shell pkg-config --libs openblas 2>/dev/null || echo -lopenblas)

WARN    := -Wall -Wextra -Werror -Wshadow -Wmissing-prototypes -Wstrict-prototypes
CFLAGS  ?= -O2 -g
ALL_CFLAGS := -std=c11 $(WARN) $(CFLAGS) -D_POSIX_C_SOURCE=200809L -MMD -MP \
              -Icompiler -Iruntime -I$(B) $(BLAS_CFLAGS)
LIBS    := -ltcc $(BLAS_LIBS) -ldl -lm -lpthread

RT_SRCS := runtime/kernels.c runtime/functions.c runtime/tape.c
LIB_SRCS := compiler/arena.c compiler/ctx.c compiler/diag.c compiler/ast.c \
            compiler/shape.c compiler/diff.c compiler/simplify.c compiler/print.c \
            compiler/emit_c.c compiler/tape.c compiler/jit.c compiler/api.c \
            compiler/dataio.c
GEN_SRCS := $(B)/parser.c $(B)/lexer.c
CLI_SRCS := compiler/cli.c

RT_OBJS  := $(RT_SRCS:%.c=$(B)/%.o)
LIB_OBJS := $(LIB_SRCS:%.c=$(B)/%.o) $(B)/parser.o $(B)/lexer.o $(B)/rt_header.o
CLI_OBJS := $(CLI_SRCS:%.c=$(B)/%.o)

TESTS    := test_runtime test_dataio test_front test_grad test_aot
TEST_BINS := $(TESTS:%=$(B)/tests/%)

# Debian packages: the build needs these, the tests the rest.
BUILD_PKGS := gcc make flex bison tcc libtcc-dev libopenblas-dev pkg-config
TEST_PKGS  := libcriterion-dev valgrind python3-numpy python3-torch

all: $(B)/matdiff $(B)/libmatdiff.a $(B)/libmatdiff_rt.a

$(B)/libmatdiff_rt.a: $(RT_OBJS)
	@echo "  AR      $@"
	$(Q)rm -f $@ && ar rcs $@ $^

$(B)/libmatdiff.a: $(LIB_OBJS)
	@echo "  AR      $@"
	$(Q)rm -f $@ && ar rcs $@ $^

$(B)/matdiff: $(CLI_OBJS) $(B)/libmatdiff.a $(B)/libmatdiff_rt.a
	@echo "  LD      $@"
	$(Q)$(CC) $(CFLAGS) -o $@ $(CLI_OBJS) $(B)/libmatdiff.a $(B)/libmatdiff_rt.a $(LIBS)

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(ALL_CFLAGS) -c $< -o $@

# The generated parser and lexer live in build/ and are never committed.
# Generated code gets the warnings flex and bison can live with.
GEN_CFLAGS := $(filter-out -Wmissing-prototypes -Wshadow,$(ALL_CFLAGS)) -Wno-unused-function
$(B)/parser.c $(B)/parser.h: compiler/parser.y
	@mkdir -p $(B)
	@echo "  BISON   $<"
	$(Q)bison -Wall -Werror -o $(B)/parser.c --header=$(B)/parser.h $<

$(B)/lexer.c $(B)/lexer.h: compiler/lexer.l
	@mkdir -p $(B)
	@echo "  FLEX    $<"
	$(Q)flex -o $(B)/lexer.c --header-file=$(B)/lexer.h $<

$(B)/parser.o: $(B)/parser.c $(B)/lexer.h
	@echo "  CC      $<"
	$(Q)$(CC) $(GEN_CFLAGS) -c $< -o $@
$(B)/lexer.o: $(B)/lexer.c $(B)/parser.h
	@echo "  CC      $<"
	$(Q)$(CC) $(GEN_CFLAGS) -c $< -o $@
$(LIB_OBJS) $(CLI_OBJS): | $(B)/parser.h $(B)/lexer.h

# The JIT compiles emitted code after the runtime's header, built in as a string.
$(B)/rt_header.c: runtime/matdiff_rt.h
	@mkdir -p $(B)
	@echo "  GEN     $@"
	$(Q){ echo 'const char md_rt_header[] ='; \
	  sed 's/\\/\\\\/g; s/"/\\"/g; s/^/  "/; s/$$/\\n"/' $<; echo ';'; } > $@
$(B)/rt_header.o: $(B)/rt_header.c
	@echo "  CC      $<"
	$(Q)$(CC) -std=c11 -c $< -o $@

# The CLI prints the BLAS flags it was built with (matdiff config).
$(B)/compiler/cli.o: ALL_CFLAGS += -DMD_BLAS_LIBS='"$(BLAS_LIBS)"'

# ---- tests ----------------------------------------------------------------

$(B)/tests/%: tests/%.c $(B)/libmatdiff.a $(B)/libmatdiff_rt.a
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(ALL_CFLAGS) -DMD_BUILD_DIR='"$(abspath $(B))"' -DMD_SRC_DIR='"$(abspath .)"' \
	  -o $@ $< $(B)/libmatdiff.a $(B)/libmatdiff_rt.a -lcriterion $(LIBS)

$(B)/practice: examples/practice.c $(B)/libmatdiff.a $(B)/libmatdiff_rt.a
	@echo "  CC      $<"
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $< $(B)/libmatdiff.a $(B)/libmatdiff_rt.a $(LIBS)

VALGRIND := valgrind -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect
SEED_ARGS := X=examples/seed/X.txt W=examples/seed/W.txt b=examples/seed/b.txt

test: deps all $(TEST_BINS) $(B)/practice
	@for t in $(TEST_BINS); do echo "== $$t"; $$t --jobs 2 || exit 1; done
	@echo "== examples/practice"; $(B)/practice > /dev/null
	@echo "== matdiff check on every example"
	@for f in examples/*.expr; do $(B)/matdiff check $$f || exit 1; done
	@echo "== valgrind: matdiff eval --grad on the seed"
	@$(VALGRIND) $(B)/matdiff eval examples/seed.expr $(SEED_ARGS) --grad > /dev/null
	@echo "== PyTorch, the third oracle"
	@if $(PYTHON) -c "import torch" 2>/dev/null; then \
	  $(PYTHON) tests/torch_seed.py $(B)/matdiff; \
	else echo "skipped: $(PYTHON) cannot import torch (apt-get install python3-torch)"; fi

demo: deps all
	@echo "== build/matdiff diff examples/seed.expr"
	@$(B)/matdiff diff examples/seed.expr
	@echo
	@echo "== build/matdiff eval examples/seed.expr X=... W=... b=... --grad"
	@$(B)/matdiff eval examples/seed.expr $(SEED_ARGS) --grad

deps:
	@missing=""; for p in $(BUILD_PKGS) $(TEST_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "  APT    $$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null || exit 1; \
	  else \
	    echo "missing Debian packages; run:"; \
	    echo "  sudo apt-get install -y$$missing"; exit 1; \
	  fi; \
	fi

clean:
	rm -rf $(B)

.PHONY: all test demo deps clean
-include $(shell find $(B) -name '*.d' 2>/dev/null)
