# Supervised fine-tuning data: instruction JSONL -> one token shard with a loss mask
# (dev/data/SFT.md). Included by the top-level Makefile.
SFT_DEPS = llmc/bpe.h llmc/bpe_unicode.h llmc/utils.h llmc/args.h llmc/shard.h llmc/tokenizer.h dev/data/doc_reader.h

dev/data/sft_prepare: dev/data/sft_prepare.c $(SFT_DEPS)
	$(CC) $(CFLAGS) -o $@ $< $(LDLIBS)

TEST_BINS += dev/data/sft_prepare
QUICK_BINS += dev/data/sft_prepare
# template, masks, layouts, bad-line counting and errors on real Dolly-ja lines (a few seconds;
# it also runs dev/data/tokenize --batch-encode for the expected tokens)
TESTS += dev/data/test_sft_prepare.sh
QUICK_TESTS += dev/data/test_sft_prepare.sh
