# FineWeb / FineWeb-Edu parquet -> pipeline JSONL (scripts/fineweb_to_jsonl.py). Included by the
# top-level Makefile. The test writes parquet files from the real samples in ../shared/data and
# converts them (no network; ~15 s); it needs pyarrow in .venv and dev/data/pipeline (--pipeline).
#   bash dev/data/test_fineweb.sh
TEST_BINS += dev/data/pipeline
TESTS += dev/data/test_fineweb.sh
