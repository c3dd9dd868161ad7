# DPO data: preference-pair JSONL -> one pair file (llmc/pairs.h, dev/data/DPO.md). Included by
# the top-level Makefile (-include $(wildcard dev/*/*.mk)).
DPO_DEPS = llmc/pairs.h llmc/bpe.h llmc/bpe_unicode.h llmc/chat.h llmc/utils.h llmc/args.h dev/data/doc_reader.h dev/data/json_text.h

dev/data/dpo_prepare: dev/data/dpo_prepare.c $(DPO_DEPS)
	$(CC) $(CFLAGS) -o $@ $< $(LDLIBS)

# the pair-file checker of the tests (reads, writes, round-trips; lives in build/)
build/test_pairs: dev/data/test_pairs.c llmc/pairs.h llmc/utils.h
	@mkdir -p build
	$(CC) $(CFLAGS) -o $@ $< $(LDLIBS)

TEST_BINS += dev/data/dpo_prepare build/test_pairs
QUICK_BINS += dev/data/dpo_prepare build/test_pairs
# template, masks, the HH common-prefix logic, bad-record counting, truncation and the pair-file
# reader's checks on real HH-RLHF lines (a few seconds; expected tokens from tiktoken in .venv)
TESTS += dev/data/test_dpo_prepare.sh
QUICK_TESTS += dev/data/test_dpo_prepare.sh

# `make dpo-data`: HH-RLHF helpful-base -> runs/dpo_data/{train,test}.bin at T=256 with GPT-2's
# vocabulary (../shared/data/gpt2, dpo_prepare's default). sft_sources.py hh_pairs writes the
# pairs with hh_chosen's train/test split (a test pair's prompt was never an SFT train prompt),
# then dpo_prepare converts each side, cutting too-long prompts from the left.
DPO_DATA = runs/dpo_data
DPO_T ?= 256
.PHONY: dpo-data
dpo-data: dev/data/dpo_prepare
	python3 dev/data/sft_sources.py hh_pairs --out $(DPO_DATA)/jsonl
	for s in train test; do \
		./dev/data/dpo_prepare $(DPO_DATA)/jsonl/hh_pairs_$$s.jsonl -o $(DPO_DATA)/$$s.bin --seq-len $(DPO_T) --truncate \
			--report $(DPO_DATA)/$$s.json || exit 1; \
		echo "$(DPO_DATA)/$$s.json:"; cat $(DPO_DATA)/$$s.json; \
	done
