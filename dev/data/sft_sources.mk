# SFT JSONL from the instruction / classification sets in ../shared/data (dev/data/SFT.md).
# Included by the top-level Makefile (-include $(wildcard dev/*/*.mk)).
# `make sft-data` writes dev/data/sft/<source>_{train,test}.jsonl, <source>_report.json and the
# classification _test_choices.jsonl files for every source (python3, standard library only;
# the inputs have no download fallback: it needs ../shared/data).
.PHONY: sft-data
sft-data:
	python3 dev/data/sft_sources.py all

# counts, template format, deterministic disjoint splits and bad-record counting of
# sft_sources.py on the real files in ../shared/data (about 10 s)
TESTS += dev/data/test_sft_sources.sh
QUICK_TESTS += dev/data/test_sft_sources.sh
