# Roofline report of the CPU training kernels (dev/bench/ROOFLINE.md). Included by the top-level
# Makefile (-include $(wildcard dev/*/*.mk)).
#   make dev/bench/roofline && OMP_NUM_THREADS=2 ./dev/bench/roofline [--csv PATH] [-b B -t T -c C ...]
#   bash dev/bench/run_roofline.sh    the d12 report -> dev/bench/results/roofline_<date>.md/.csv/.png
#                                     (also run by `make bench`)
#   bash dev/bench/test_roofline.sh   its test (run by `make test`; a few seconds at a tiny shape)
ROOFLINE_DEPS = llmc/quant.h llmc/kv_cache.h llmc/utils.h llmc/checkpoint.h llmc/matmul.h llmc/attention.h llmc/layernorm.h llmc/gelu.h llmc/crossentropy.h \
                llmc/adamw.h llmc/encoder.h llmc/residual.h

dev/bench/roofline: dev/bench/roofline.c $(ROOFLINE_DEPS) build/flags.cc
	$(CC) $(CFLAGS) -o $@ $< $(LDLIBS)

TEST_BINS += dev/bench/roofline
BENCH_BINS += dev/bench/roofline
TESTS += dev/bench/test_roofline.sh
BENCH_SCRIPTS += dev/bench/run_roofline.sh
QUICK_TESTS += dev/bench/test_roofline.sh
QUICK_BINS += dev/bench/roofline
