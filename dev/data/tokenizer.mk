# Byte-level BPE tokenizer tools (llmc/bpe.h). Included by the top-level Makefile.
TOKENIZER_DEPS = llmc/bpe.h llmc/bpe_unicode.h llmc/utils.h llmc/args.h llmc/shard.h llmc/tokenizer.h dev/data/doc_reader.h

dev/data/tokenize: dev/data/tokenize.c $(TOKENIZER_DEPS)
	$(CC) $(CFLAGS) -o $@ $< $(LDLIBS)

TEST_BINS += dev/data/tokenize
BENCH_BINS += dev/data/tokenize

dev/data/bpe_train: dev/data/bpe_train.c llmc/bpe_train.h $(TOKENIZER_DEPS)
	$(CC) $(CFLAGS) -o $@ $< $(LDLIBS)

TEST_BINS += dev/data/bpe_train

dev/data/resize_embedding: dev/data/resize_embedding.c llmc/utils.h llmc/args.h llmc/checkpoint.h llmc/rand.h llmc/tokenizer.h
	$(CC) $(CFLAGS) -o $@ $< $(LDLIBS)

TEST_BINS += dev/data/resize_embedding
# tests: exactness vs tiktoken (every corpus, whole), BPE training, embedding resize
TESTS += dev/data/test_tokenizer.sh
# command-line hardening of tokenize, pipeline, bpe_train, resize_embedding (a few seconds)
TESTS += dev/data/test_data_cli.sh
QUICK_TESTS += dev/data/test_data_cli.sh
QUICK_BINS += dev/data/tokenize dev/data/pipeline dev/data/bpe_train dev/data/resize_embedding
BENCH_SCRIPTS += dev/data/bench_tokenizer.sh

.PHONY: bench-tokenizer
bench-tokenizer: dev/data/tokenize
	bash dev/data/bench_tokenizer.sh
