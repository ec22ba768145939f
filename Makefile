# matdiff - a source-to-source compiler for matrix calculus.
#
#   make          build build/matdiff, build/libmatdiff.a, build/libmatdiff_rt.a
#   make demo     the notebook's loss: formulas, value and gradients
#   make test     every test (Criterion suites, examples, PyTorch, valgrind, Python);
#                 SAN=1 all of it under ASan and UBSan, SAN=thread the threads
#                 under ThreadSanitizer
#   make check    the Criterion suites alone: the fast edit-test loop
#   make pytest   the Python package's tests alone (tests/python, pytest)
#   make deps     install the Debian packages the build needs
#   make bench    time matdiff against hand-written CBLAS, PyTorch and NumPy
#                 (bench/results.md); make readme-bench copies its table into
#                 the README
#   make install  PREFIX=/usr/local DESTDIR=: CLI, headers, static and shared
#                 libraries, pkg-config files, man page, the Python package;
#                 make uninstall removes them
#   make train    build examples/train against matdiff and train for a moment
#   make newton   build examples/newton (Newton's method, the Hessian from
#                 matdiff compile) and fit: at most 10 iterations
#
# Quiet by default; V=1 shows full commands.

CC      ?= cc
PYTHON  ?= /usr/bin/python3
V       ?= 0
SAN     ?= 0
B       := build

# SAN=1: everything built with AddressSanitizer and UBSan, in build/san.
# SAN=thread: with ThreadSanitizer, in build/tsan; `make test SAN=thread`
# runs the tests that call one function from many threads (THREAD_TESTS).
ifeq ($(SAN),1)
B       := build/san
SAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
else ifeq ($(SAN),thread)
B       := build/tsan
SAN_FLAGS := -fsanitize=thread -fno-omit-frame-pointer
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

# The elementwise functions on blocks (runtime/vmath.h) use glibc's vector
# math library, libmvec, through vmath_avx2.c, built for AVX2 on x86-64
# and called where the CPU has it; -lm brings libmvec in. BLAS=none leaves
# it out too: scalar libm only.
ifeq ($(BLAS)-$(filter x86_64-%,$(shell $(CC) -dumpmachine)),openblas-$(shell $(CC) -dumpmachine))
VMATH_CFLAGS := -DMDRT_VMATH_AVX2
VMATH_SRCS   := runtime/vmath_avx2.c
endif
AVX2_FLAGS := -mavx2 -mfma

WARN    := -Wall -Wextra -Werror -Wshadow -Wmissing-prototypes -Wstrict-prototypes
CFLAGS  ?= -O2 -g
ALL_CFLAGS := -std=c11 $(WARN) $(CFLAGS) $(SAN_FLAGS) -D_POSIX_C_SOURCE=200809L -MMD -MP \
              -Icompiler -Iruntime -I$(B) $(BLAS_CFLAGS) $(VMATH_CFLAGS)
LIBS    := -ltcc $(BLAS_LIBS) -ldl -lm -lpthread

RT_SRCS := runtime/kernels.c runtime/functions.c runtime/float.c runtime/tape.c \
           $(if $(filter none,$(BLAS)),,runtime/linalg.c runtime/linalg_f.c) $(VMATH_SRCS)
LIB_SRCS := compiler/arena.c compiler/ctx.c compiler/diag.c compiler/ast.c \
            compiler/shape.c compiler/lower.c compiler/infer.c compiler/expr.c compiler/diff.c compiler/second.c \
            compiler/simplify.c compiler/print.c compiler/plan.c compiler/emit_c.c compiler/abi.c compiler/emit_numpy.c \
            compiler/emit_second.c \
            compiler/cost.c compiler/record.c compiler/jit.c \
            compiler/api.c compiler/check.c compiler/check2.c compiler/graph.c compiler/dump.c compiler/optab.c \
            compiler/chain.c
GEN_SRCS := $(B)/parser.c $(B)/lexer.c
# The command and its files: text matrices and .npy in and out. Not in
# libmatdiff, whose API takes buffers and never prints.
CLI_SRCS := compiler/cli.c compiler/dataio.c compiler/npy.c

RT_OBJS  := $(RT_SRCS:%.c=$(B)/%.o)
# Objects of sources generated into $(B): the parser, the lexer, the
# runtime as strings, the C headers' identifiers.
GEN_OBJS := $(B)/parser.o $(B)/lexer.o $(B)/rt_header.o $(B)/rt_standalone.o $(B)/c_names.o
LIB_OBJS := $(LIB_SRCS:%.c=$(B)/%.o) $(GEN_OBJS)
CLI_OBJS := $(CLI_SRCS:%.c=$(B)/%.o)
CLI_IO_OBJS := $(filter-out $(B)/compiler/cli.o,$(CLI_OBJS))

TESTS    := test_runtime test_dataio test_npy test_front test_check test_grad test_aot test_cli test_cookbook test_cost test_random test_fuzz_regress test_hostile test_ops test_second test_emit2 test_latex test_api_hostile test_threads \
            test_chain test_symmetric
TEST_BINS := $(TESTS:%=$(B)/tests/%)
THREAD_TESTS := test_threads

# Debian packages: the build needs these, the tests the rest.
BUILD_PKGS := gcc make flex bison tcc libtcc-dev libopenblas-dev pkg-config
TEST_PKGS  := libcriterion-dev valgrind python3-numpy python3-torch graphviz
# The Python package: its tests, and `pip install ./python` in a venv.
TEST_PKGS  += python3-pytest python3-venv python3-setuptools python3-wheel python3-pip
# `make fuzz` also needs clang and its libFuzzer and sanitizer runtimes.
FUZZ_PKGS  := clang libclang-rt-14-dev
# tests/install_test.sh links a program with -static: OpenBLAS's archive
# needs gfortran's.
TEST_PKGS  += libgfortran-12-dev

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

# Every object of every build (this one, the -fPIC one for the shared
# libraries, the fuzzer's) is made by this one recipe, from a source of the
# tree or one generated into $(B); the builds differ only in OBJ_CC and
# OBJ_CFLAGS, set for each below.
OBJ_CC     = $(CC)
OBJ_CFLAGS = $(ALL_CFLAGS)
OBJ_TAG    = CC
define make_object
	@mkdir -p $(dir $@)
	@printf '  %-8s%s\n' '$(OBJ_TAG)' '$<'
	$(Q)$(OBJ_CC) $(OBJ_CFLAGS) -c $< -o $@
endef
$(B)/%.o: %.c
	$(make_object)
$(B)/%.o: $(B)/%.c
	$(make_object)

# The generated parser and lexer live in build/ and are never committed.
# Generated code (they, and the runtime as strings) gets the warnings flex
# and bison can live with.
GEN_CFLAGS := $(filter-out -Wmissing-prototypes -Wshadow,$(ALL_CFLAGS)) -Wno-unused-function
$(GEN_OBJS): OBJ_CFLAGS = $(GEN_CFLAGS)
$(B)/parser.c $(B)/parser.h &: compiler/parser.y
	@mkdir -p $(B)
	@echo "  BISON   $<"
	$(Q)bison -Wall -Werror -o $(B)/parser.c --header=$(B)/parser.h $<

$(B)/lexer.c $(B)/lexer.h &: compiler/lexer.l
	@mkdir -p $(B)
	@echo "  FLEX    $<"
	$(Q)flex -o $(B)/lexer.c --header-file=$(B)/lexer.h $<

$(B)/parser.o: $(B)/lexer.h
$(B)/lexer.o: $(B)/parser.h
$(LIB_OBJS) $(CLI_OBJS): | $(B)/parser.h $(B)/lexer.h

# `make -j test` and `make -j demo` on a fresh machine: nothing is built
# before the packages it needs (bison, flex, libtcc, OpenBLAS, Criterion)
# are in, as in a serial make, where deps comes first.
ifneq ($(filter test demo,$(MAKECMDGOALS)),)
$(B)/parser.c $(B)/parser.h $(B)/lexer.c $(B)/lexer.h $(LIB_OBJS) $(CLI_OBJS) $(RT_OBJS) \
  $(TEST_BINS): | deps
endif

# The runtime's header as installed and as the JIT sees it: kernels.def
# copied in where matdiff_rt.h includes it, so that it includes nothing.
$(B)/include/matdiff_rt.h: runtime/matdiff_rt.h runtime/kernels.def
	@mkdir -p $(dir $@)
	@echo "  GEN     $@"
	$(Q)awk '/^#include "kernels.def"$$/ { while ((getline l < "runtime/kernels.def") > 0) print l; \
	  close("runtime/kernels.def"); next } { print }' $< > $@

# The JIT compiles emitted code after the runtime's header, built in as a string.
$(B)/rt_header.c: $(B)/include/matdiff_rt.h
	@mkdir -p $(B)
	@echo "  GEN     $@"
	$(Q){ echo 'const char md_rt_header[] ='; \
	  sed 's/\\/\\\\/g; s/"/\\"/g; s/^/  "/; s/$$/\\n"/' $<; echo ';'; } > $@
$(B)/rt_standalone.c: runtime/standalone.c
	@mkdir -p $(B)
	@echo "  GEN     $@"
	$(Q){ echo 'const char md_rt_standalone[] ='; \
	  sed 's/\\/\\\\/g; s/"/\\"/g; s/^/  "/; s/$$/\\n"/' $<; echo ';'; } > $@
# Every identifier the headers of emitted C and of the programs around it
# declare or define, as this machine's compiler reads them, sorted: the
# names a generated function may not take (compiler/abi.c).
C_NAMES_HEADERS := math.h stdlib.h tgmath.h stdio.h string.h
$(B)/c_names.c: Makefile
	@mkdir -p $(B)
	@echo "  GEN     $@"
	$(Q)printf '#include <%s>\n' $(C_NAMES_HEADERS) > $@.h
	$(Q){ echo '/* generated by the Makefile from <$(C_NAMES_HEADERS)> */'; \
	  echo '#include <stddef.h>'; echo 'const char *const md_c_names[] = {'; \
	  { $(CC) -E -dM -x c $@.h | cut -d' ' -f2 | cut -d'(' -f1; \
	    $(CC) -E -P -x c $@.h | tr -c 'A-Za-z0-9_' '\n'; } | \
	  grep -E '^[A-Za-z][A-Za-z0-9_]*$$' | LC_ALL=C sort -u | sed 's/.*/  "&",/'; \
	  echo '};'; echo 'const size_t md_c_names_n = sizeof md_c_names / sizeof *md_c_names;'; } > $@
	$(Q)rm -f $@.h

# vmath_avx2.c alone is built for AVX2 and FMA (see VMATH_CFLAGS).
$(B)/runtime/vmath_avx2.o: ALL_CFLAGS += $(AVX2_FLAGS)

# The CLI prints the BLAS flags it was built with (matdiff config).
$(B)/compiler/cli.o: ALL_CFLAGS += -DMD_BLAS_LIBS='"$(BLAS_LIBS)"' -DMD_SAN_LIBS='"$(SAN_FLAGS)"'

# ---- tests ----------------------------------------------------------------

$(B)/tests/%: tests/%.c $(B)/libmatdiff.a $(B)/libmatdiff_rt.a
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(ALL_CFLAGS) -DMD_BUILD_DIR='"$(abspath $(B))"' -DMD_SRC_DIR='"$(abspath .)"' \
	  -o $@ $< $(filter %.o,$^) $(B)/libmatdiff.a $(B)/libmatdiff_rt.a -lcriterion $(LIBS)
# A plain program: Criterion cannot start under ThreadSanitizer.
$(B)/tests/test_threads: tests/test_threads.c $(B)/libmatdiff.a $(B)/libmatdiff_rt.a
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $< $(B)/libmatdiff.a $(B)/libmatdiff_rt.a $(LIBS)
# The CLI's file formats are tested on their own.
$(B)/tests/test_dataio $(B)/tests/test_npy: $(CLI_IO_OBJS)

$(B)/practice: examples/practice.c $(B)/libmatdiff.a $(B)/libmatdiff_rt.a
	@echo "  CC      $<"
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $< $(B)/libmatdiff.a $(B)/libmatdiff_rt.a $(LIBS)

VALGRIND := valgrind -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect
SEED_ARGS := X=examples/seed/X.txt W=examples/seed/W.txt b=examples/seed/b.txt

# Under SAN=1, LeakSanitizer skips the test framework's own leaks
# (tests/lsan.supp), never matdiff's.
TEST_ENV := $(if $(filter 1,$(SAN)),LSAN_OPTIONS=suppressions=$(abspath tests/lsan.supp))

# The fast loop: build and run the Criterion suites, no apt-get, no root,
# in under a minute: with 500 random programs (MD_RANDOM_N, which the
# environment may set) where make test runs 2,000.
check: all $(TEST_BINS)
	@for t in $(TEST_BINS); do echo "== $$t"; MD_RANDOM_N=$${MD_RANDOM_N:-500} $(TEST_ENV) $$t --jobs 2 \
	  || exit 1; done

# The Python tests load build/pic/libmatdiff.so (python/matdiff finds a source
# tree's build/pic/), so they run in the default build only.
PYTHON_TESTS := $(if $(filter build,$(B)),pytest)

# Under ThreadSanitizer, the tests that call from many threads. OpenBLAS
# starts no threads of its own (it is not instrumented), and the first race
# fails the test.
TSAN_ENV := OPENBLAS_NUM_THREADS=1 TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
ifeq ($(SAN),thread)
test: deps $(THREAD_TESTS:%=$(B)/tests/%)
	@for t in $(THREAD_TESTS:%=$(B)/tests/%); do echo "== $$t under ThreadSanitizer"; \
	  $(TSAN_ENV) $$t --jobs 1 || exit 1; done
else
test: deps all $(if $(PYTHON_TESTS),shared) $(TEST_BINS) $(B)/practice
	@for t in $(TEST_BINS); do echo "== $$t"; $(TEST_ENV) $$t --jobs 2 || exit 1; done
	@echo "== examples/practice"; $(B)/practice > /dev/null
	@echo "== matdiff check on every example"
	@for f in examples/*.expr; do $(B)/matdiff check $$f || exit 1; done
	@echo "== random losses over products, sums, inverses and structured matrices"
	@$(PYTHON) tests/structure_soak.py $(B)/matdiff 400 1
ifneq ($(SAN),1)
	@echo "== valgrind: matdiff eval --grad on the seed"
	@$(VALGRIND) $(B)/matdiff eval examples/seed.expr $(SEED_ARGS) --grad > /dev/null
endif
	@echo "== PyTorch, the third oracle"
	@if $(PYTHON) -c "import torch" 2>/dev/null; then \
	  $(PYTHON) tests/torch_seed.py $(B)/matdiff && $(PYTHON) tests/torch_examples.py $(B)/matdiff; \
	else echo "skipped: $(PYTHON) cannot import torch (apt-get install python3-torch)"; fi
	@$(MAKE) --no-print-directory train
ifeq ($(filter none,$(BLAS)),)
	@$(MAKE) --no-print-directory newton
endif
ifneq ($(PYTHON_TESTS),)
	@$(MAKE) --no-print-directory pytest
else
	@echo "== Python: skipped in $(B); the package loads build/pic/libmatdiff.so, so"
	@echo "   make test without SAN=1 or BLAS=none runs them"
endif
	@echo "== standalone and float C, Graphviz and LaTeX output"
	@bash tests/outputs_test.sh $(B)
ifneq ($(SAN),1)
	@echo "== make install into a temporary DESTDIR, pkg-config, make uninstall"
	@MAKE="$(MAKE)" bash tests/install_test.sh
endif
endif

# The Python package's tests, on the tree's build/pic/libmatdiff.so. The
# torch tests skip, saying why, when python3 cannot import torch. pytest
# exits 5 when it collected no test: here that means a broken setup, not
# a pass, so it fails with a message.
PYTEST := OPENBLAS_NUM_THREADS=1 PYTHONDONTWRITEBYTECODE=1 \
          $(PYTHON) -m pytest -p no:cacheprovider -q -rs tests/python
pytest: shared
	@echo "== Python: tests/python under pytest (the package, matdiff.torch, examples/python)"
	@$(PYTEST); rc=$$?; \
	if [ $$rc = 5 ]; then echo "pytest collected no test in tests/python"; exit 1; fi; \
	exit $$rc

demo: deps all
	@echo "== build/matdiff diff examples/seed.expr"
	@$(B)/matdiff diff examples/seed.expr
	@echo
	@echo "== build/matdiff eval examples/seed.expr X=... W=... b=... --grad"
	@$(B)/matdiff eval examples/seed.expr $(SEED_ARGS) --grad
	@if command -v dot >/dev/null; then \
	  $(B)/matdiff graph examples/seed.expr --grad | dot -Tsvg -o $(B)/seed.svg && \
	  echo && echo "== the expression DAG and its gradients: $(B)/seed.svg"; fi

# One recipe, three lists: `deps` for the build and the tests, `fuzz-deps` for
# the build and the fuzzer, `bench-deps` for the build and the benchmark
# (the tests' python3-torch and python3-numpy, and matplotlib, with which
# bench/plot.py draws the goals).
deps: PKGS = $(BUILD_PKGS) $(TEST_PKGS)
bench-deps: PKGS = $(BUILD_PKGS) $(TEST_PKGS) python3-matplotlib
fuzz-deps: PKGS = $(BUILD_PKGS) $(FUZZ_PKGS)
deps fuzz-deps bench-deps:
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
#   make fuzz [FUZZ_SECONDS=N] [FUZZ_JIT=0] [FUZZ_KEEP_GOING=0] [FUZZ_ARGS=...]
#                      libFuzzer, ASan and UBSan on tests/fuzz/fuzz_md.c, one job
#   make fuzz-regress  every input in tests/fuzz/regress/ through that binary
#
# The library is built again with clang and the sanitizers into build/fuzz/,
# from the same sources and the same generated parser and lexer; the normal
# build is untouched. The fuzzer keeps what it finds in build/fuzz/corpus/,
# reads the seeds in tests/fuzz/corpus/, and writes crashes, leaks and
# timeouts to build/fuzz/artifacts/, and `make fuzz` fails if it wrote a new
# one there. One forked worker at a time runs the fuzzer, so that a crash,
# timeout or out-of-memory is saved and the fuzzing goes on (a seed that
# trips an open bug would otherwise end every run at once); FUZZ_KEEP_GOING=0
# stops at the first instead. FUZZ_JIT=0 leaves out md_compile's libtcc step
# and the calls (see fuzz_md.c). An input is a timeout past 30 s: the
# sanitizers and coverage tracing make the library 10 to 40 times slower
# than the normal build (regress/horner_quadratic.expr: 0.2 s against 5-10).
FZ          := $(B)/fuzz
FUZZ_CC     ?= clang
FUZZ_SECONDS ?= 60
FUZZ_JIT    ?= 1
FUZZ_KEEP_GOING ?= 1
FUZZ_ARGS   ?=
# UBSan may recover, so that tests/fuzz/ubsan.supp can skip a known open bug;
# any other report halts (halt_on_error=1).
FUZZ_SAN    := -fsanitize=address,undefined -fno-omit-frame-pointer
# -Wno-unknown-warning-option: the sources quiet GCC-only warnings by name.
FUZZ_CFLAGS := -std=c11 $(WARN) -Wno-unknown-warning-option -g -O1 $(FUZZ_SAN) \
               -D_POSIX_C_SOURCE=200809L -MMD -MP \
               -Icompiler -Iruntime -I$(B) $(BLAS_CFLAGS) $(VMATH_CFLAGS)
FUZZ_OBJS   := $(patsubst $(B)/%,$(FZ)/%,$(RT_OBJS) $(LIB_OBJS))
FUZZ_ENV    := OPENBLAS_NUM_THREADS=1 MD_FUZZ_JIT=$(FUZZ_JIT) ASAN_OPTIONS=detect_leaks=1 \
               UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
FUZZ_RUN    := $(FUZZ_ENV):suppressions=$(abspath tests/fuzz/ubsan.supp)

$(FZ)/%.o: OBJ_CC = $(FUZZ_CC)
$(FZ)/%.o: OBJ_TAG = FUZZCC
$(FZ)/%.o: OBJ_CFLAGS = $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link
$(FZ)/%.o: %.c
	$(make_object)
$(FZ)/%.o: $(B)/%.c
	$(make_object)
$(patsubst $(B)/%,$(FZ)/%,$(GEN_OBJS)): OBJ_CFLAGS = $(filter-out -Wmissing-prototypes -Wshadow,\
  $(FUZZ_CFLAGS)) -Wno-unused-function -fsanitize=fuzzer-no-link
$(FUZZ_OBJS): | $(B)/parser.h $(B)/lexer.h
$(FZ)/runtime/vmath_avx2.o: FUZZ_CFLAGS += $(AVX2_FLAGS)

$(FZ)/fuzz_md: tests/fuzz/fuzz_md.c tests/fuzz/fuzz_one.h $(FUZZ_OBJS)
	@echo "  FUZZLD  $@"
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -DMD_SRC_DIR='"$(abspath .)"' -fsanitize=fuzzer -o $@ $< \
	  $(FUZZ_OBJS) $(LIBS)

# The language's tokens and every identifier of C's headers (c_names.c), as
# names the fuzzer splices in.
$(FZ)/fuzz.dict: tests/fuzz/matdiff.dict $(B)/c_names.c
	@mkdir -p $(FZ)
	@echo "  GEN     $@"
	$(Q){ cat $<; echo '# identifiers of the C headers (build/c_names.c)'; \
	  sed -n 's/^  "\([A-Za-z0-9_]*\)",$$/c_\1="\1"/p' $(B)/c_names.c; } > $@

fuzz: fuzz-deps $(FZ)/fuzz_md $(FZ)/fuzz.dict
	@mkdir -p $(FZ)/corpus $(FZ)/artifacts
	@LC_ALL=C ls $(FZ)/artifacts > $(FZ)/artifacts.before
	@echo "== libFuzzer for $(FUZZ_SECONDS)s, JIT $(if $(filter 0,$(FUZZ_JIT)),off,on)"
	$(Q)$(FUZZ_RUN) $(FZ)/fuzz_md $(FZ)/corpus tests/fuzz/corpus \
	  -dict=$(FZ)/fuzz.dict -max_len=4096 -timeout=30 -rss_limit_mb=2048 \
	  -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 -artifact_prefix=$(FZ)/artifacts/ \
	  $(if $(filter 1,$(FUZZ_KEEP_GOING)),-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1) \
	  $(FUZZ_ARGS); status=$$?; \
	LC_ALL=C ls $(FZ)/artifacts | LC_ALL=C comm -13 $(FZ)/artifacts.before - > $(FZ)/artifacts.new; \
	if [ -s $(FZ)/artifacts.new ]; then echo "== new in $(FZ)/artifacts/ (tests/fuzz/README.md" \
	  "says what to do with them):"; sed 's/^/  /' $(FZ)/artifacts.new; exit 1; \
	elif [ $$status != 0 ]; then exit $$status; \
	else echo "== nothing new in $(FZ)/artifacts/"; fi

# Each file on its own, with no workaround or guard (MD_FUZZ_STRICT=1); the
# failures are listed at the end. The timeout is generous: writing out a
# mebibyte-long formula (deep_recursion.expr) takes well under a second in
# the normal build but tens of seconds under ASan and coverage tracing.
fuzz-regress: fuzz-deps $(FZ)/fuzz_md
	@echo "== tests/fuzz/regress through $(FZ)/fuzz_md"
	@failed=""; for f in tests/fuzz/regress/*.expr; do \
	  if $(FUZZ_ENV) MD_FUZZ_STRICT=1 $(FZ)/fuzz_md -timeout=120 -rss_limit_mb=2048 $$f \
	       > $(FZ)/regress.log 2>&1; then echo "  ok      $$f"; \
	  else echo "  FAILED  $$f: $$(grep -m1 -E 'ERROR|SUMMARY|fuzz_one:|runtime error' $(FZ)/regress.log)"; \
	    failed="$$failed $$f"; fi; \
	done; \
	if [ -n "$$failed" ]; then echo "failed:$$failed"; exit 1; fi

# ---- shared libraries, install and uninstall -------------------------------
#
#   make shared      build/pic/libmatdiff.so and build/pic/libmatdiff_rt.so
#   make install     [PREFIX=/usr/local] [DESTDIR=]: the CLI, both headers, the
#                    static and shared libraries, pkg-config files, the man page
#   make uninstall   removes exactly the files install wrote (INSTALL_FILES)
#
# The shared libraries are built from a second, -fPIC set of objects in
# build/pic/, so the static libraries and the CLI are unchanged. Each exports
# only its public API: md_* from matdiff.h, mdrt_* from matdiff_rt.h.
# libmatdiff.so needs libmatdiff_rt.so and carries libtcc inside it, hidden:
# Debian has no libtcc.so, and its libtcc.a is not -fPIC (see
# compiler/tcc_so.c for how it fits in a shared library anyway).
PREFIX     ?= /usr/local
DESTDIR    ?=
BINDIR     ?= $(PREFIX)/bin
INCLUDEDIR ?= $(PREFIX)/include
LIBDIR     ?= $(PREFIX)/lib
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
MANDIR     ?= $(PREFIX)/share/man
# The Python package goes where Debian's python3 looks for the prefix's
# packages: /usr/lib/python3/dist-packages for /usr,
# /usr/local/lib/python3.X/dist-packages for /usr/local; for a prefix it does
# not search, $(PREFIX)/lib/python3/dist-packages (then PYTHONPATH names it).
PYTHONDIR  ?= $(shell $(PYTHON) -c 'import site, sys; p = "$(PREFIX)"; v = "%d.%d" % sys.version_info[:2]; \
                c = [p + "/lib/python3/dist-packages", p + "/lib/python" + v + "/dist-packages", \
                     p + "/lib/python" + v + "/site-packages"]; \
                print(next((d for d in c if d in site.getsitepackages()), c[0]))' 2>/dev/null \
                || echo "$(PREFIX)/lib/python3/dist-packages")
PY_SRCS    := python/matdiff/__init__.py python/matdiff/_errors.py python/matdiff/_function.py \
              python/matdiff/_lib.py python/matdiff/torch.py
PY_PKGDIR   = $(PYTHONDIR)/matdiff

MD_VERSION := $(shell sed -n 's/^\#define MATDIFF_VERSION "\(.*\)"$$/\1/p' compiler/matdiff.h)
MD_SOMAJOR := $(firstword $(subst ., ,$(MD_VERSION)))
PIC        := $(B)/pic
PIC_CFLAGS := -fPIC -fno-semantic-interposition
PIC_RT_OBJS  := $(patsubst $(B)/%,$(PIC)/%,$(RT_OBJS))
PIC_LIB_OBJS := $(patsubst $(B)/%,$(PIC)/%,$(LIB_OBJS)) $(PIC)/compiler/tcc_so.o
SO_RT      := $(PIC)/libmatdiff_rt.so.$(MD_VERSION)
SO_LIB     := $(PIC)/libmatdiff.so.$(MD_VERSION)
TCC_A      := $(shell $(CC) -print-file-name=libtcc.a)

# Every file install writes, without DESTDIR; uninstall removes these.
INSTALL_SO := $(foreach l,libmatdiff libmatdiff_rt,\
                $(LIBDIR)/$(l).so $(LIBDIR)/$(l).so.$(MD_SOMAJOR) $(LIBDIR)/$(l).so.$(MD_VERSION))
INSTALL_FILES := $(BINDIR)/matdiff $(INCLUDEDIR)/matdiff.h $(INCLUDEDIR)/matdiff_rt.h \
                 $(LIBDIR)/libmatdiff.a $(LIBDIR)/libmatdiff_rt.a $(INSTALL_SO) \
                 $(PKGCONFIGDIR)/matdiff.pc $(PKGCONFIGDIR)/matdiff-rt.pc \
                 $(MANDIR)/man1/matdiff.1 \
                 $(addprefix $(PY_PKGDIR)/,$(notdir $(PY_SRCS)) _install.py)

# matdiff-rt.pc names BLAS through its own .pc when there is one, so that
# `pkg-config --static` also lists what a static OpenBLAS needs (gfortran).
PC_BLAS_REQUIRES := $(if $(BLAS_LIBS),$(shell pkg-config --exists openblas 2>/dev/null && echo openblas))
PC_BLAS_LIBS     := $(if $(PC_BLAS_REQUIRES),,$(BLAS_LIBS))
PC_SUBST = -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(MD_VERSION)|' \
           -e 's|@LIBDIR@|$(patsubst $(PREFIX)/%,$${prefix}/%,$(LIBDIR))|' \
           -e 's|@INCLUDEDIR@|$(patsubst $(PREFIX)/%,$${prefix}/%,$(INCLUDEDIR))|' \
           -e 's|@BLAS_REQUIRES@|$(PC_BLAS_REQUIRES)|' -e 's|@BLAS_LIBS@ *|$(if $(PC_BLAS_LIBS),$(PC_BLAS_LIBS) )|' \
           -e '/^Requires.private: *$$/d'

shared: $(PIC)/libmatdiff.so $(PIC)/libmatdiff_rt.so

$(PIC)/%.o: OBJ_CFLAGS = $(ALL_CFLAGS) $(PIC_CFLAGS)
$(PIC)/%.o: OBJ_TAG = PICCC
$(PIC)/%.o: %.c
	$(make_object)
$(PIC)/%.o: $(B)/%.c
	$(make_object)
$(patsubst $(B)/%,$(PIC)/%,$(GEN_OBJS)): OBJ_CFLAGS = $(GEN_CFLAGS) $(PIC_CFLAGS)
$(PIC_LIB_OBJS): | $(B)/parser.h $(B)/lexer.h
$(PIC)/runtime/vmath_avx2.o: ALL_CFLAGS += $(AVX2_FLAGS)

# Version scripts: the public names, read from the public headers.
$(PIC)/matdiff.map: compiler/matdiff.h
	@mkdir -p $(dir $@)
	@echo "  GEN     $@"
	$(Q){ echo 'MATDIFF_$(MD_SOMAJOR) { global:'; \
	  grep -o '\bmd_[a-z0-9_]*(' $< | tr -d '(' | sort -u | sed 's/$$/;/'; \
	  echo 'local: *; };'; } > $@
$(PIC)/matdiff_rt.map: runtime/matdiff_rt.h
	@mkdir -p $(dir $@)
	@echo "  GEN     $@"
	$(Q)echo 'MATDIFF_RT_$(MD_SOMAJOR) { global: mdrt_*; local: *; };' > $@

# libtcc.a with stdout, stderr and environ renamed (compiler/tcc_so.c).
$(PIC)/libtcc_so.a: $(TCC_A)
	@mkdir -p $(dir $@)
	@echo "  OBJCOPY $@"
	$(Q)objcopy --redefine-sym stdout=mdtcc_stdout --redefine-sym stderr=mdtcc_stderr \
	  --redefine-sym environ=mdtcc_environ $< $@

$(SO_RT): $(PIC_RT_OBJS) $(PIC)/matdiff_rt.map
	@echo "  LD      $@"
	$(Q)$(CC) $(CFLAGS) $(SAN_FLAGS) -shared -o $@ $(PIC_RT_OBJS) \
	  -Wl,-soname,libmatdiff_rt.so.$(MD_SOMAJOR) -Wl,--version-script=$(PIC)/matdiff_rt.map \
	  -Wl,-z,defs -Wl,--as-needed $(BLAS_LIBS) -lm

$(SO_LIB): $(PIC_LIB_OBJS) $(PIC)/matdiff.map $(PIC)/libtcc_so.a $(PIC)/libmatdiff_rt.so
	@echo "  LD      $@"
	$(Q)$(CC) $(CFLAGS) $(SAN_FLAGS) -shared -o $@ $(PIC_LIB_OBJS) $(PIC)/libtcc_so.a \
	  -Wl,-soname,libmatdiff.so.$(MD_SOMAJOR) -Wl,--version-script=$(PIC)/matdiff.map \
	  -Wl,--exclude-libs,ALL -Wl,-z,defs -Wl,--as-needed -L$(PIC) -lmatdiff_rt -ldl -lm -lpthread

# The links a linker and a loader look for: libX.so -> libX.so.0 -> libX.so.0.1.0.
$(PIC)/%.so: $(PIC)/%.so.$(MD_VERSION)
	$(Q)ln -sf $(notdir $<) $@.$(MD_SOMAJOR) && ln -sf $(notdir $@).$(MD_SOMAJOR) $@

install: all shared $(B)/include/matdiff_rt.h
	@echo "  INSTALL $(DESTDIR)$(PREFIX)"
	$(Q)install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(LIBDIR) \
	  $(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(MANDIR)/man1
	$(Q)install -m 755 $(B)/matdiff $(DESTDIR)$(BINDIR)/matdiff
	$(Q)install -m 644 compiler/matdiff.h $(B)/include/matdiff_rt.h $(DESTDIR)$(INCLUDEDIR)/
	$(Q)install -m 644 $(B)/libmatdiff.a $(B)/libmatdiff_rt.a $(DESTDIR)$(LIBDIR)/
	$(Q)for l in libmatdiff libmatdiff_rt; do \
	  install -m 755 $(PIC)/$$l.so.$(MD_VERSION) $(DESTDIR)$(LIBDIR)/ && \
	  ln -sf $$l.so.$(MD_VERSION) $(DESTDIR)$(LIBDIR)/$$l.so.$(MD_SOMAJOR) && \
	  ln -sf $$l.so.$(MD_SOMAJOR) $(DESTDIR)$(LIBDIR)/$$l.so || exit 1; done
	$(Q)sed $(PC_SUBST) compiler/matdiff.pc.in > $(DESTDIR)$(PKGCONFIGDIR)/matdiff.pc
	$(Q)sed $(PC_SUBST) runtime/matdiff-rt.pc.in > $(DESTDIR)$(PKGCONFIGDIR)/matdiff-rt.pc
	$(Q)chmod 644 $(DESTDIR)$(PKGCONFIGDIR)/matdiff.pc $(DESTDIR)$(PKGCONFIGDIR)/matdiff-rt.pc
	$(Q)install -m 644 docs/matdiff.1 $(DESTDIR)$(MANDIR)/man1/matdiff.1
	$(Q)install -d $(DESTDIR)$(PY_PKGDIR)
	$(Q)install -m 644 $(PY_SRCS) $(DESTDIR)$(PY_PKGDIR)/
	$(Q)echo "LIBDIR = \"$$($(PYTHON) -c 'import os, sys; print(os.path.relpath(*sys.argv[1:]))' \
	  '$(LIBDIR)' '$(PY_PKGDIR)')\"  # libmatdiff.so, from here" > $(DESTDIR)$(PY_PKGDIR)/_install.py
	$(Q)$(LDCONFIG_IF_LIVE)

# The package's directory goes too, with the __pycache__ Python wrote there.
uninstall:
	@echo "  RM      $(addprefix $(DESTDIR),$(INSTALL_FILES))"
	$(Q)rm -f $(addprefix $(DESTDIR),$(INSTALL_FILES))
	$(Q)rm -rf $(DESTDIR)$(PY_PKGDIR)/__pycache__
	$(Q)if [ -d $(DESTDIR)$(PY_PKGDIR) ]; then rmdir $(DESTDIR)$(PY_PKGDIR); fi
	$(Q)$(LDCONFIG_IF_LIVE)

# A live install (no DESTDIR) by root refreshes the loader's cache, so that
# /usr/local/lib/libmatdiff.so.0 is found at once.
LDCONFIG_IF_LIVE = if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && command -v ldconfig >/dev/null; \
                   then ldconfig; fi

# ---- examples/train: matdiff in a user's build -----------------------------
#
#   make train    builds examples/train (a .expr -> .c -> binary rule, as a
#                 user's Makefile would have it) and trains for a moment

train: all
	@echo "== examples/train: logistic regression, gradients from matdiff compile"
	$(Q)$(MAKE) --no-print-directory $(if $(Q),-s) -C examples/train MATDIFF=$(abspath $(B)/matdiff) \
	  OUT=$(abspath $(B)/train) CFLAGS="$(CFLAGS) $(SAN_FLAGS)" WARN="-Wall -Wextra -pedantic -Werror" run

# examples/newton: the same loss by Newton's method, its Hessian from
# `matdiff compile` and LAPACK's dposv (OpenBLAS): it fails unless
# it converges in at most 10 iterations.
newton: all
	@echo "== examples/newton: Newton's method, the Hessian from matdiff compile"
	$(Q)$(MAKE) --no-print-directory $(if $(Q),-s) -C examples/newton MATDIFF=$(abspath $(B)/matdiff) \
	  OUT=$(abspath $(B)/newton) CFLAGS="$(CFLAGS) $(SAN_FLAGS)" WARN="-Wall -Wextra -pedantic -Werror" run

# ---- benchmarks -------------------------------------------------------------
#
#   make bench         bench/results.md: every implementation of every case
#                      (the emitted C built ahead of time, the JIT, hand-written
#                      CBLAS, PyTorch, NumPy) timed in one process, in the same
#                      rounds, one thread; and md_compile's time and memory on
#                      generated programs. bench/README.md says how. About 10
#                      minutes; not run by CI.
#   make readme-bench  the README's performance table, from bench/results.md
#
# bench/bench.py builds the emitted C as a user does: `matdiff compile`, then
# cc -O2, here into shared objects that harness.c's timing loop calls.
BB          := $(B)/bench
BENCH_OPT   := -O2 -g
BENCH_ENV   := OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 PYTHONDONTWRITEBYTECODE=1

$(BB)/libharness.so: bench/harness.c bench/hand.c bench/hand.h $(PIC)/libmatdiff.so
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) -std=c11 $(WARN) $(BENCH_OPT) -D_POSIX_C_SOURCE=200809L -fPIC -shared -Icompiler \
	  $(BLAS_CFLAGS) -o $@ \
	  bench/harness.c bench/hand.c -L$(PIC) -lmatdiff -lmatdiff_rt $(BLAS_LIBS) \
	  -Wl,-rpath,$(abspath $(PIC))
$(BB)/compile_probe: bench/compile_probe.c $(B)/libmatdiff.a $(B)/libmatdiff_rt.a
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $< $(B)/libmatdiff.a $(B)/libmatdiff_rt.a $(LIBS)

bench: bench-deps all shared $(BB)/libharness.so $(BB)/compile_probe
	@echo "== bench/bench.py: every implementation, interleaved (about 10 minutes)"
	$(Q)$(BENCH_ENV) $(PYTHON) bench/bench.py --build $(B) --cc "$(CC)" \
	  --cflags "$(BLAS_CFLAGS)" --libs "$(BLAS_LIBS)"

readme-bench:
	$(Q)$(PYTHON) bench/readme.py bench/results.md README.md

# make soak [N=100000] [SEED=S]: N random programs through every oracle of
# tests/test_random.c, on every core, from seed S (default: from the clock);
# prints the throughput, and shrinks and saves failures to tests/regress/.
soak: all $(B)/tests/test_random
	@MD_RANDOM_N=$(or $(N),100000) MD_RANDOM_SEED=$(or $(SEED),$$(($$(date +%s) * 1000000))) \
	  $(B)/tests/test_random --filter 'random/expressions'

# make structure-soak [N=5000] [SEED=S]: N random losses where the rewrites
# for cost are (tests/structure_soak.py), through matdiff check --order 2.
structure-soak: all
	@$(PYTHON) tests/structure_soak.py $(B)/matdiff $(or $(N),5000) $(or $(SEED),$$(date +%s))

clean:
	rm -rf $(B)

.PHONY: all check test pytest demo deps clean fuzz fuzz-deps fuzz-regress shared install \
        uninstall train newton bench bench-deps readme-bench soak structure-soak
-include $(shell find $(B) -name '*.d' 2>/dev/null)
