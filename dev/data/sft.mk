# Supervised fine-tuning data: instruction JSONL -> one token shard with a loss mask
# (dev/data/SFT.md). Included by the top-level Makefile.
SFT_DEPS = llmc/bpe.h llmc/bpe_unicode.h llmc/chat.h llmc/utils.h llmc/args.h llmc/shard.h llmc/tokenizer.h dev/data/doc_reader.h dev/data/json_text.h

dev/data/sft_prepare: dev/data/sft_prepare.c $(SFT_DEPS)
	$(CC) $(CFLAGS) -o $@ $< $(LDLIBS)

TEST_BINS += dev/data/sft_prepare
QUICK_BINS += dev/data/sft_prepare
# template, masks, layouts, bad-line counting and errors on real Dolly-ja and OASST lines (a few
# seconds; the expected tokens come from tiktoken in .venv, independent of llmc/bpe.h)
TESTS += dev/data/test_sft_prepare.sh
QUICK_TESTS += dev/data/test_sft_prepare.sh
