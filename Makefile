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
V       ?= 0
SAN     ?= 0
B       := build

# SAN=1: everything built with AddressSanitizer and UBSan, in build/san.
ifeq ($(SAN),1)
B       := build/san
SAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
endif
Q       := $(if $(filter 1,$(V)),,@)

# BLAS=none: the runtime's own blocked matrix product instead of OpenBLAS,
# for machines without it (in build/noblas).
BLAS    ?= openblas
ifeq ($(BLAS),none)
B       := $(B)/noblas
BLAS_CFLAGS := -DMDRT_NO_BLAS
BLAS_LIBS   :=
else
BLAS_CFLAGS := $(shell pkg-config --cflags openblas 2>/dev/null)
BLAS_LIBS   := $(shell pkg-config --libs openblas 2>/dev/null || echo -lopenblas)
endif

WARN    := -Wall -Wextra -Werror -Wshadow -Wmissing-prototypes -Wstrict-prototypes
CFLAGS  ?= -O2 -g
ALL_CFLAGS := -std=c11 $(WARN) $(CFLAGS) $(SAN_FLAGS) -D_POSIX_C_SOURCE=200809L -MMD -MP \
              -Icompiler -Iruntime -I$(B) $(BLAS_CFLAGS)
LIBS    := -ltcc $(BLAS_LIBS) -ldl -lm -lpthread

RT_SRCS := runtime/kernels.c runtime/functions.c runtime/float.c runtime/tape.c
LIB_SRCS := compiler/arena.c compiler/ctx.c compiler/diag.c compiler/ast.c \
            compiler/shape.c compiler/diff.c compiler/simplify.c compiler/print.c \
            compiler/emit_c.c compiler/tape.c compiler/jit.c compiler/api.c \
            compiler/dataio.c compiler/graph.c
GEN_SRCS := $(B)/parser.c $(B)/lexer.c
CLI_SRCS := compiler/cli.c

RT_OBJS  := $(RT_SRCS:%.c=$(B)/%.o)
LIB_OBJS := $(LIB_SRCS:%.c=$(B)/%.o) $(B)/parser.o $(B)/lexer.o $(B)/rt_header.o $(B)/rt_standalone.o
CLI_OBJS := $(CLI_SRCS:%.c=$(B)/%.o)

TESTS    := test_runtime test_dataio test_front test_grad test_aot test_cookbook test_cost
TEST_BINS := $(TESTS:%=$(B)/tests/%)

# Debian packages: the build needs these, the tests the rest.
BUILD_PKGS := gcc make flex bison tcc libtcc-dev libopenblas-dev pkg-config
TEST_PKGS  := libcriterion-dev valgrind python3-numpy python3-torch
# `make fuzz` also needs clang and its libFuzzer and sanitizer runtimes.
FUZZ_PKGS  := clang libclang-rt-14-dev

all: $(B)/matdiff $(B)/libmatdiff.a $(B)/libmatdiff_rt.a

$(B)/libmatdiff_rt.a: $(RT_OBJS)
	@echo "  AR      $@"
	$(Q)rm -f $@ && ar rcs $@ $^

$(B)/libmatdiff.a: $(LIB_OBJS)
	@echo "  AR      $@"
	$(Q)rm -f $@ && ar rcs $@ $^

$(B)/matdiff: $(CLI_OBJS) $(B)/libmatdiff.a $(B)/libmatdiff_rt.a
	@echo "  LD      $@"
	$(Q)$(CC) $(CFLAGS) $(SAN_FLAGS) -o $@ $(CLI_OBJS) $(B)/libmatdiff.a $(B)/libmatdiff_rt.a $(LIBS)

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
$(B)/rt_standalone.c: runtime/standalone.c
	@mkdir -p $(B)
	@echo "  GEN     $@"
	$(Q){ echo 'const char md_rt_standalone[] ='; \
	  sed 's/\\/\\\\/g; s/"/\\"/g; s/^/  "/; s/$$/\\n"/' $<; echo ';'; } > $@
$(B)/rt_standalone.o: $(B)/rt_standalone.c
	@echo "  CC      $<"
	$(Q)$(CC) -std=c11 $(SAN_FLAGS) -c $< -o $@
$(B)/rt_header.o: $(B)/rt_header.c
	@echo "  CC      $<"
	$(Q)$(CC) -std=c11 $(SAN_FLAGS) -c $< -o $@

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
ifneq ($(SAN),1)
	@echo "== valgrind: matdiff eval --grad on the seed"
	@$(VALGRIND) $(B)/matdiff eval examples/seed.expr $(SEED_ARGS) --grad > /dev/null
endif
	@echo "== PyTorch, the third oracle"
	@if $(PYTHON) -c "import torch" 2>/dev/null; then \
	  $(PYTHON) tests/torch_seed.py $(B)/matdiff && $(PYTHON) tests/torch_examples.py $(B)/matdiff; \
	else echo "skipped: $(PYTHON) cannot import torch (apt-get install python3-torch)"; fi

demo: deps all
	@echo "== build/matdiff diff examples/seed.expr"
	@$(B)/matdiff diff examples/seed.expr
	@echo
	@echo "== build/matdiff eval examples/seed.expr X=... W=... b=... --grad"
	@$(B)/matdiff eval examples/seed.expr $(SEED_ARGS) --grad
	@if command -v dot >/dev/null; then \
	  $(B)/matdiff graph examples/seed.expr --grad | dot -Tsvg -o $(B)/seed.svg && \
	  echo && echo "== the expression DAG and its gradients: $(B)/seed.svg"; fi

# One recipe, two lists: `deps` for the build and the tests, `fuzz-deps` for
# the build and the fuzzer.
deps: PKGS = $(BUILD_PKGS) $(TEST_PKGS)
fuzz-deps: PKGS = $(BUILD_PKGS) $(FUZZ_PKGS)
deps fuzz-deps:
	@missing=""; for p in $(PKGS); do \
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

# ---- fuzzing --------------------------------------------------------------
#
#   make fuzz [FUZZ_SECONDS=N] [FUZZ_JIT=0] [FUZZ_ARGS=...]
#                      libFuzzer, ASan and UBSan on tests/fuzz/fuzz_md.c, one job
#   make fuzz-regress  every input in tests/fuzz/regress/ through that binary
#
# The library is built again with clang and the sanitizers into build/fuzz/,
# from the same sources and the same generated parser and lexer; the normal
# build is untouched. The fuzzer keeps what it finds in build/fuzz/corpus/,
# reads the seeds in tests/fuzz/corpus/, and writes crashes, leaks and
# timeouts to build/fuzz/artifacts/. FUZZ_JIT=0 leaves out md_compile's libtcc
# step and the calls (see fuzz_md.c).
FZ          := $(B)/fuzz
FUZZ_CC     ?= clang
FUZZ_SECONDS ?= 60
FUZZ_JIT    ?= 1
FUZZ_ARGS   ?=
# UBSan may recover, so that tests/fuzz/ubsan.supp can skip a known open bug;
# any other report halts (halt_on_error=1).
FUZZ_SAN    := -fsanitize=address,undefined -fno-omit-frame-pointer
# -Wno-unknown-warning-option: the sources quiet GCC-only warnings by name.
FUZZ_CFLAGS := -std=c11 $(WARN) -Wno-unknown-warning-option -g -O1 $(FUZZ_SAN) \
               -D_POSIX_C_SOURCE=200809L -MMD -MP \
               -Icompiler -Iruntime -I$(B) $(BLAS_CFLAGS)
FUZZ_OBJS   := $(RT_SRCS:%.c=$(FZ)/%.o) $(LIB_SRCS:%.c=$(FZ)/%.o) \
               $(FZ)/parser.o $(FZ)/lexer.o $(FZ)/rt_header.o
FUZZ_RUN    := OPENBLAS_NUM_THREADS=1 MD_FUZZ_JIT=$(FUZZ_JIT) \
               ASAN_OPTIONS=detect_leaks=1 \
               UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:suppressions=$(abspath tests/fuzz/ubsan.supp)

$(FZ)/%.o: %.c | $(B)/parser.h $(B)/lexer.h
	@mkdir -p $(dir $@)
	@echo "  FUZZCC  $<"
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@
$(FZ)/parser.o: $(B)/parser.c $(B)/lexer.h
	@mkdir -p $(dir $@)
	@echo "  FUZZCC  $<"
	$(Q)$(FUZZ_CC) $(filter-out -Wmissing-prototypes -Wshadow,$(FUZZ_CFLAGS)) -Wno-unused-function \
	  -fsanitize=fuzzer-no-link -c $< -o $@
$(FZ)/lexer.o: $(B)/lexer.c $(B)/parser.h
	@mkdir -p $(dir $@)
	@echo "  FUZZCC  $<"
	$(Q)$(FUZZ_CC) $(filter-out -Wmissing-prototypes -Wshadow,$(FUZZ_CFLAGS)) -Wno-unused-function \
	  -fsanitize=fuzzer-no-link -c $< -o $@
$(FZ)/rt_header.o: $(B)/rt_header.c
	@mkdir -p $(dir $@)
	@echo "  FUZZCC  $<"
	$(Q)$(FUZZ_CC) -std=c11 -c $< -o $@

$(FZ)/fuzz_md: tests/fuzz/fuzz_md.c tests/fuzz/fuzz_one.h $(FUZZ_OBJS)
	@echo "  FUZZLD  $@"
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_OBJS) $(LIBS)

fuzz: fuzz-deps $(FZ)/fuzz_md
	@mkdir -p $(FZ)/corpus $(FZ)/artifacts
	@echo "== libFuzzer for $(FUZZ_SECONDS)s, JIT $(if $(filter 0,$(FUZZ_JIT)),off,on)"
	$(FUZZ_RUN) $(FZ)/fuzz_md $(FZ)/corpus tests/fuzz/corpus \
	  -dict=tests/fuzz/matdiff.dict -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
	  -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	  -artifact_prefix=$(FZ)/artifacts/ $(FUZZ_ARGS)

fuzz-regress: fuzz-deps $(FZ)/fuzz_md
	@echo "== tests/fuzz/regress through $(FZ)/fuzz_md"
	$(FUZZ_RUN) $(FZ)/fuzz_md tests/fuzz/regress/*

clean:
	rm -rf $(B)

.PHONY: all test demo deps clean fuzz fuzz-deps fuzz-regress
-include $(shell find $(B) -name '*.d' 2>/dev/null)
