# Hugging Face GPT-2 export / import (dev/infer/hf_export.py, hf_import.py; dev/infer/HF.md).
# Included by the top-level Makefile (dev/*/*.mk). The test needs transformers in .venv
# (scripts/setup.sh), make data, and dev/data/bpe_train (in TEST_BINS); ~30 s of CPU.
TESTS += dev/infer/test_hf.sh
