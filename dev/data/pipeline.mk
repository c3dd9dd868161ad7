# Corpus pipeline (dev/data/pipeline.c). Included by the top-level Makefile.
#   make dev/data/pipeline          the pipeline (needs llmc/bpe.h for the tokenization stage)
#   bash dev/data/test_pipeline.sh  its tests (run by `make test`)
#   make bench-pipeline             docs/s and MB/s, writes dev/data/results/pipeline_<date>.md
PIPELINE_DEPS = dev/data/pipeline_text.h dev/data/pipeline_filters.h dev/data/doc_reader.h llmc/utils.h llmc/args.h llmc/shard.h \
                $(wildcard llmc/bpe.h llmc/bpe_unicode.h llmc/tokenizer.h)

dev/data/pipeline: dev/data/pipeline.c $(PIPELINE_DEPS)
	$(CC) $(CFLAGS) -pthread -o $@ $< $(LDLIBS) -pthread

dev/data/test_pipeline: dev/data/test_pipeline.c $(PIPELINE_DEPS)
	$(CC) $(CFLAGS) -o $@ $< $(LDLIBS)

.PHONY: bench-pipeline
bench-pipeline: dev/data/pipeline
	bash dev/data/bench_pipeline.sh

TEST_BINS += dev/data/pipeline dev/data/test_pipeline
BENCH_BINS += dev/data/pipeline
TESTS += dev/data/test_pipeline.sh
BENCH_SCRIPTS += dev/data/bench_pipeline.sh
