# GPT training in C. `make` builds the CPU trainer and its test, `make data` prepares the
# training data (tiny shakespeare, GPT-2's tokenizer), `make eval-data` the multiple-choice eval tasks,
# `make test` runs every test, `make test-quick` the unit and fast end-to-end tests (a few
# minutes), `make bench` runs the CPU benchmarks. `make clean` removes what was built;
# `make distclean` also removes downloads (cuDNN headers, data) and generated data. See README.md.

CC ?= gcc
# -march=native: the binaries are built on the machine that runs them (CI included).
# No -ffast-math: the NaN checks and bitwise reproducibility rely on IEEE semantics.
CFLAGS ?= -O3 -march=native -fno-math-errno
CFLAGS += -fopenmp -Wall -Wextra -Wno-unused-function -Wno-unused-parameter -std=gnu11 -I.
LDLIBS = -lm
PYTHON ?= $(shell test -x .venv/bin/python && echo .venv/bin/python || echo python3)

DATA_DIR = dev/data/tinyshakespeare
DATA = $(DATA_DIR)/tiny_shakespeare_train.bin $(DATA_DIR)/tiny_shakespeare_val.bin dev/data/gpt2_tokenizer.bin
HELLASWAG = dev/data/eval/hellaswag.bin
# every multiple-choice task (llmc/mc_task.h), make eval-data
EVAL_TASKS = $(addprefix dev/data/eval/,$(addsuffix .bin,hellaswag arc_easy arc_challenge piqa winogrande \
             truthfulqa_mc1 truthfulqa_mc2 jcommonsenseqa jtruthfulqa_mc1 jtruthfulqa_mc2))
LLMC_HEADERS = $(wildcard llmc/*.h)

# Tests and benchmarks register here; dev/*/*.mk add their own.
# TESTS are commands run by dev/test/run_tests.sh, each printing PASS:/FAIL: lines.
# QUICK_TESTS (make test-quick) are the unit tests and the fast end-to-end ones: no sanitizers,
# no CUDA emulation or compile checks, no fuzzing, no tokenizer/pipeline corpus runs.
# A dev/*/*.mk adds a quick test with QUICK_TESTS += and TESTS += (TESTS is set below from the
# list here; make test runs every test), and QUICK_BINS += for what it needs.
TEST_BINS := dev/test/test_llmc dev/test/test_rendezvous dev/test/test_mc_eval
QUICK_TESTS := "dev/test/test_llmc $(DATA_DIR)/tiny_shakespeare_val.bin dev/data/gpt2_tokenizer.bin $(HELLASWAG)" \
         dev/test/test_reference.sh \
         dev/test/test_train.sh \
         dev/test/test_resume.sh \
         dev/test/test_eval.sh \
         dev/test/test_mpi.sh \
         dev/test/test_rendezvous \
         dev/test/test_build_variants.sh \
         dev/test/test_plot.sh \
         dev/test/test_launch.sh \
         dev/test/test_scaling_sweep.sh \
         dev/test/test_sft.sh
QUICK_BINS := $(TEST_BINS) dev/test/test_matmul
TESTS := $(QUICK_TESTS) dev/test/test_data_fallback.sh
BENCH_BINS :=
BENCH_SCRIPTS :=

.PHONY: all test test-quick bench data eval-data clean distclean FORCE

all: train_gpt test_gpt

# With OpenMPI's compiler wrapper present, train_gpt is built for data-parallel runs
# (mpirun -np N ./train_gpt); without it, for one process. NO_MPI=1 forces the latter.
MPICC := $(if $(NO_MPI),,$(shell command -v mpicc 2>/dev/null))
ifneq ($(MPICC),)
TRAIN_CC = OMPI_CC=$(CC) $(MPICC)
TRAIN_FLAGS = -DUSE_MPI
else
TRAIN_CC = $(CC)
TRAIN_FLAGS =
endif

# Build variants: the flags that make a binary are stamped into build/flags.NAME, a file
# rewritten only when its content changes and a prerequisite of the binary, so that
# `make train_gpt NO_MPI=1` (or CFLAGS=..., PRECISION=FP32, USE_CUDNN=1, CUDA_ARCHS=... for the
# CUDA builds) rebuilds instead of saying "up to date". FLAGS_NAME holds the flags and
# $(eval $(call flags_stamp,NAME)) defines the rule.
flags_quote = '$(subst ','\'',$(strip $(1)))'
define flags_stamp
build/flags.$(1): FORCE
	@mkdir -p build; f=$$(call flags_quote,$$(FLAGS_$(1))); \
	if [ "$$$$f" != "$$$$(cat $$@ 2>/dev/null)" ]; then printf '%s\n' "$$$$f" > $$@; fi
endef
FLAGS_train_gpt = $(TRAIN_CC) $(CFLAGS) $(TRAIN_FLAGS) $(LDLIBS)
FLAGS_cc = $(CC) $(CFLAGS) $(LDLIBS)
$(eval $(call flags_stamp,train_gpt))
$(eval $(call flags_stamp,cc))

train_gpt: train_gpt.c $(LLMC_HEADERS) build/flags.train_gpt
	$(TRAIN_CC) $(CFLAGS) $(TRAIN_FLAGS) -o $@ train_gpt.c $(LDLIBS) -lpthread

test_gpt: test_gpt.c train_gpt.c $(LLMC_HEADERS) build/flags.cc
	$(CC) $(CFLAGS) -o $@ test_gpt.c $(LDLIBS)

dev/test/test_llmc: dev/test/test_llmc.c $(LLMC_HEADERS) build/flags.cc
	$(CC) $(CFLAGS) -o $@ $< $(LDLIBS)

dev/test/test_mc_eval: dev/test/test_mc_eval.c train_gpt.c $(LLMC_HEADERS) build/flags.cc
	$(CC) $(CFLAGS) -o $@ $< $(LDLIBS)

dev/test/test_rendezvous: dev/test/test_rendezvous.c $(LLMC_HEADERS) build/flags.cc
	$(CC) $(CFLAGS) -o $@ $< $(LDLIBS)

# training data (what train_gpt needs by default) and evaluation data (the multiple-choice
# tasks, for -h, --tasks and the eval tests) are prepared separately: training needs no tasks
data: $(DATA)

eval-data: $(EVAL_TASKS)

$(DATA) &: dev/data/tinyshakespeare.py dev/data/tokenize
	$(PYTHON) dev/data/tinyshakespeare.py

$(EVAL_TASKS) &: dev/data/eval_tasks.py dev/data/hellaswag.py dev/data/tinyshakespeare.py
	$(PYTHON) dev/data/eval_tasks.py

-include $(wildcard dev/*/*.mk)

test: all data eval-data $(TEST_BINS)
	@bash dev/test/run_tests.sh $(TESTS)

test-quick: all data eval-data $(QUICK_BINS)
	@bash dev/test/run_tests.sh $(QUICK_TESTS) "dev/test/test_matmul --quick"

bench: all data $(BENCH_BINS)
	@BENCH_SCRIPTS="$(BENCH_SCRIPTS)" bash dev/bench/run_bench.sh

# clean keeps what was downloaded or is slow to remake (cuDNN's frontend headers, the PyTorch
# references in build/cuda_refs, dev/data/downloads); distclean removes those and the data too
KEEP_IN_CLEAN = build/cudnn_frontend build/cuda_refs
clean:
	rm -rf $(filter-out $(KEEP_IN_CLEAN),$(wildcard build/*)) train_gpt test_gpt train_gpt_cu test_gpt_cu $(TEST_BINS) $(BENCH_BINS)

distclean: clean
	rm -rf build dev/data/downloads $(DATA) $(EVAL_TASKS)
