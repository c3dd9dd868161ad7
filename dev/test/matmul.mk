# llmc/matmul.h: its test and its benchmark (included by the top-level Makefile).
#
# test_matmul is built with the Makefile's CFLAGS (-march=native: on this machine the
# AVX-512 kernel). Two extra builds of the same test switch the wider instruction sets off
# so the AVX2+FMA kernel and the plain-C fallback are tested too; they run with --quick
# (no GPT-2 shapes). They are only built where the compiler knows the x86 flags.

dev/test/test_matmul: dev/test/test_matmul.c llmc/matmul.h build/flags.cc
	$(CC) $(CFLAGS) -o $@ $< $(LDLIBS)

TEST_BINS += dev/test/test_matmul
TESTS += dev/test/test_matmul

MATMUL_X86 := $(shell $(CC) -mno-avx512f -mno-avx2 -mno-fma -E -x c /dev/null >/dev/null 2>&1 && echo yes)
ifeq ($(MATMUL_X86),yes)
dev/test/test_matmul_avx2: dev/test/test_matmul.c llmc/matmul.h build/flags.cc
	$(CC) $(CFLAGS) -mno-avx512f -o $@ $< $(LDLIBS)

dev/test/test_matmul_plainc: dev/test/test_matmul.c llmc/matmul.h build/flags.cc
	$(CC) $(CFLAGS) -mno-avx512f -mno-avx2 -mno-fma -o $@ $< $(LDLIBS)

TEST_BINS += dev/test/test_matmul_avx2 dev/test/test_matmul_plainc
TESTS += "dev/test/test_matmul_avx2 --quick" "dev/test/test_matmul_plainc --quick"
endif

# the benchmark compares against OpenBLAS (libopenblas-dev), linked into this binary only
dev/bench/bench_matmul: dev/bench/bench_matmul.c llmc/matmul.h
	$(CC) $(CFLAGS) -o $@ $< $(LDLIBS) -lopenblas

BENCH_BINS += dev/bench/bench_matmul
