# Inference: the generator with a KV cache (dev/infer/generate.c over llmc/infer.h), its
# decoding rules (llmc/sampler.h, llmc/beam.h) and their tests. Included by the top-level
# Makefile (dev/*/*.mk); the quantization tool has its own quant.mk.
INFER_DEPS = $(LLMC_HEADERS) dev/data/doc_reader.h dev/data/json_text.h

dev/infer/generate: dev/infer/generate.c $(INFER_DEPS) build/flags.cc
	$(CC) $(CFLAGS) -o $@ $< $(LDLIBS)

# the cache against train_gpt.c's full forward, beam search against exhaustive search,
# the sampling rules (includes train_gpt.c for its model)
dev/infer/test_infer: dev/infer/test_infer.c train_gpt.c dev/test/testing.h $(INFER_DEPS) build/flags.cc
	$(CC) $(CFLAGS) -o $@ $< $(LDLIBS)

TEST_BINS += dev/infer/generate dev/infer/test_infer
QUICK_BINS += dev/infer/generate dev/infer/test_infer
TESTS += dev/infer/test_infer dev/infer/test_generate.sh
QUICK_TESTS += dev/infer/test_infer
# decode tokens/s at batch 1 against the STREAM bound, fp32 / int8 / int4 (make bench)
BENCH_SCRIPTS += dev/infer/bench_generate.sh

# the CUDA build (nvcc; compiled and linked by make test's compile checks, run on a GPU only)
dev/infer/generate_cu: dev/infer/generate.cu dev/infer/generate.c $(INFER_DEPS) build/flags.train_gpt_cu
	$(NVCC) $(NVCC_FLAGS) $(CUDA_ARCHS) -I. -o $@ $< $(NVCC_LDLIBS)
