# libFuzzer targets for the file readers (clang). `make fuzz` runs each for FUZZ_SECONDS
# (default 60); `make test` runs each briefly over its seed corpus as a regression check.
FUZZ_READERS = checkpoint shard tokenizer state mc_task args docs gpt2bpe tiktoken done peft pairs
FUZZ_BINS = $(addprefix build/fuzz_,$(FUZZ_READERS))
FUZZ_SECONDS ?= 60
FUZZ_CC ?= clang
FUZZ_FLAGS = -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -I. -std=gnu11

build/fuzz_%: dev/fuzz/fuzz_reader.c $(LLMC_HEADERS) dev/data/doc_reader.h
	@mkdir -p build
	$(FUZZ_CC) $(FUZZ_FLAGS) -DFUZZ_$(shell echo $* | tr a-z A-Z) -o $@ $< -lm

.PHONY: fuzz
fuzz: $(FUZZ_BINS) data
	FUZZ_SECONDS=$(FUZZ_SECONDS) bash dev/fuzz/run_fuzz.sh

# the quantized-checkpoint reader (llmc/quant.h) has a target of its own
build/fuzz_quant: dev/fuzz/fuzz_quant.c $(LLMC_HEADERS)
	@mkdir -p build
	$(FUZZ_CC) $(FUZZ_FLAGS) -march=native -o $@ $< -lm
FUZZ_BINS += build/fuzz_quant

TEST_BINS += $(FUZZ_BINS)
TESTS += "FUZZ_SECONDS=5 bash dev/fuzz/run_fuzz.sh"
