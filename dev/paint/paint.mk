# PAINT: weight interpolation between two checkpoints (dev/paint/README.md). Included by the
# top-level Makefile.
dev/paint/interpolate: dev/paint/interpolate.c llmc/utils.h llmc/args.h llmc/checkpoint.h llmc/rand.h llmc/schedule.h
	$(CC) $(CFLAGS) -o $@ $< $(LDLIBS)

TEST_BINS += dev/paint/interpolate
QUICK_BINS += dev/paint/interpolate
# endpoints bitwise, a mid alpha against numpy, bf16 in and out, the refusals (mismatched
# shapes, truncated or non-finite inputs, bad alpha) with nothing written, a merged LoRA as
# THETA1 (a few seconds on tiny d1 models made by train_gpt)
TESTS += dev/paint/test_interpolate.sh
QUICK_TESTS += dev/paint/test_interpolate.sh
