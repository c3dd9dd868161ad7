# Multiple-choice evaluation of fine-tuned models through the SFT chat template (llmc/chat.h):
# log-likelihood of each choice and greedy generation, on the choices files that
# dev/data/sft_sources.py writes. Included by the top-level Makefile (dev/*/*.mk).
SFT_EVAL_DEPS = train_gpt.c $(LLMC_HEADERS) dev/data/doc_reader.h dev/data/json_text.h

dev/eval/sft_eval: dev/eval/sft_eval.c $(SFT_EVAL_DEPS) build/flags.cc
	$(CC) $(CFLAGS) -o $@ $< $(LDLIBS)

TEST_BINS += dev/eval/sft_eval
QUICK_BINS += dev/eval/sft_eval
# scores against an independent PyTorch computation (a tiny random model, with and without a
# LoRA adapter and a soft prompt), greedy generation, and the errors (about 20 s)
TESTS += dev/eval/test_sft_eval.sh
QUICK_TESTS += dev/eval/test_sft_eval.sh

# the multiple-choice scoring at B=1 against batched (make bench)
BENCH_SCRIPTS += dev/eval/bench_tasks.sh
