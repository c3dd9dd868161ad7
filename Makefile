# GPT training in C. `make` builds the CPU trainer and its test, `make test` runs every test,
# `make bench` runs the CPU benchmarks. See README.md.

CC ?= gcc
# -march=native: the binaries are built on the machine that runs them (CI included).
# No -ffast-math: the NaN checks and bitwise reproducibility rely on IEEE semantics.
CFLAGS ?= -O3 -march=native -fno-math-errno
CFLAGS += -fopenmp -Wall -Wextra -Wno-unused-function -Wno-unused-parameter -std=gnu11 -I.
LDLIBS = -lm
PYTHON ?= $(shell test -x .venv/bin/python && echo .venv/bin/python || echo python3)

DATA_DIR = dev/data/tinyshakespeare
DATA = $(DATA_DIR)/tiny_shakespeare_train.bin $(DATA_DIR)/tiny_shakespeare_val.bin dev/data/gpt2_tokenizer.bin
HELLASWAG = dev/data/hellaswag/hellaswag_val.bin
LLMC_HEADERS = $(wildcard llmc/*.h)

# Tests and benchmarks register here; dev/*/*.mk add their own.
# TESTS are commands run by dev/test/run_tests.sh, each printing PASS:/FAIL: lines.
TEST_BINS := dev/test/test_llmc dev/test/test_rendezvous dev/test/test_hellaswag
TESTS := "dev/test/test_llmc $(DATA_DIR)/tiny_shakespeare_val.bin dev/data/gpt2_tokenizer.bin $(HELLASWAG)" \
         dev/test/test_reference.sh \
         dev/test/test_train.sh \
         dev/test/test_resume.sh \
         dev/test/test_eval.sh \
         dev/test/test_mpi.sh \
         dev/test/test_rendezvous
BENCH_BINS :=
BENCH_SCRIPTS :=

.PHONY: all test bench data clean

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

train_gpt: train_gpt.c $(LLMC_HEADERS)
	$(TRAIN_CC) $(CFLAGS) $(TRAIN_FLAGS) -o $@ train_gpt.c $(LDLIBS) -lpthread

test_gpt: test_gpt.c train_gpt.c $(LLMC_HEADERS)
	$(CC) $(CFLAGS) -o $@ test_gpt.c $(LDLIBS)

dev/test/test_llmc: dev/test/test_llmc.c $(LLMC_HEADERS)
	$(CC) $(CFLAGS) -o $@ $< $(LDLIBS)

dev/test/test_hellaswag: dev/test/test_hellaswag.c train_gpt.c $(LLMC_HEADERS)
	$(CC) $(CFLAGS) -o $@ $< $(LDLIBS)

dev/test/test_rendezvous: dev/test/test_rendezvous.c $(LLMC_HEADERS)
	$(CC) $(CFLAGS) -o $@ $< $(LDLIBS)

data: $(DATA) $(HELLASWAG)

$(DATA) &: dev/data/tinyshakespeare.py dev/data/tokenize
	$(PYTHON) dev/data/tinyshakespeare.py

$(HELLASWAG): dev/data/hellaswag.py dev/data/tinyshakespeare.py
	$(PYTHON) dev/data/hellaswag.py

-include $(wildcard dev/*/*.mk)

test: all data $(TEST_BINS)
	@bash dev/test/run_tests.sh $(TESTS)

bench: all data $(BENCH_BINS)
	@BENCH_SCRIPTS="$(BENCH_SCRIPTS)" bash dev/bench/run_bench.sh

clean:
	rm -rf build train_gpt test_gpt train_gpt_cu test_gpt_cu $(TEST_BINS) $(BENCH_BINS)
