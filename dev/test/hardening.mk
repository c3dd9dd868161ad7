# The trainer against hostile and careless use (issue 19): run-directory lock, overwrite
# protection, checkpoint integrity, output paths, bad shards, non-file inputs, overflow.
# About a minute: in make test-quick too.
QUICK_TESTS += dev/test/test_hardening.sh
TESTS += dev/test/test_hardening.sh
