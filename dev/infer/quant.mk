# Weight-only quantization for inference (llmc/quant.h): the quantize tool, its tests and a
# benchmark. Included by the top-level Makefile.
QUANT_DEPS = llmc/quant.h llmc/utils.h llmc/checkpoint.h llmc/matmul.h llmc/rand.h build/flags.cc

dev/infer/quantize: dev/infer/quantize.c $(QUANT_DEPS) llmc/args.h llmc/schedule.h
	$(CC) $(CFLAGS) -o $@ $< $(LDLIBS)

dev/infer/test_quant: dev/infer/test_quant.c $(QUANT_DEPS) dev/test/testing.h
	$(CC) $(CFLAGS) -o $@ $< $(LDLIBS)

dev/infer/bench_quant: dev/infer/bench_quant.c $(QUANT_DEPS)
	$(CC) $(CFLAGS) -o $@ $< $(LDLIBS)

TEST_BINS += dev/infer/quantize dev/infer/test_quant
QUICK_BINS += dev/infer/quantize dev/infer/test_quant
# the kernels, the quantizers and the file (random inputs, a new seed each run, a few seconds);
# the tool end to end on tiny d1 models made by train_gpt (int8, int4, --dequantize-out loaded
# by train_gpt --eval, numpy's independent re-quantization, refusals with nothing written)
TESTS += dev/infer/test_quant dev/infer/test_quantize.sh
QUICK_TESTS += dev/infer/test_quant dev/infer/test_quantize.sh

# the same test built without AVX-512: the portable fallback of quant_matmul_forward
QUANT_X86 := $(shell $(CC) -mno-avx512f -E -x c /dev/null >/dev/null 2>&1 && echo yes)
ifeq ($(QUANT_X86),yes)
dev/infer/test_quant_portable: dev/infer/test_quant.c $(QUANT_DEPS) dev/test/testing.h
	$(CC) $(CFLAGS) -mno-avx512f -o $@ $< $(LDLIBS)

TEST_BINS += dev/infer/test_quant_portable
TESTS += dev/infer/test_quant_portable
endif

# GB/s of quant_matmul_forward at BT = 1 on GPT-2 124M's shapes (make bench)
BENCH_BINS += dev/infer/bench_quant
BENCH_SCRIPTS += dev/infer/bench_quant.sh
