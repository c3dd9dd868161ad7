# Scaling-law fits and the compute-optimal planner (dev/scaling/). Included by the top-level Makefile.
#   python3 dev/scaling/fit.py MANIFEST --out fit.json --report fit.md --plots DIR
#   python3 dev/scaling/plan.py --flops 1e18,1e19 --mfu 0.4 --peak-tflops 989
#   bash dev/scaling/test_scaling.sh   its tests (run by `make test`; about 40 s, Python only)
.PHONY: test-scaling
test-scaling:
	@bash dev/test/run_tests.sh dev/scaling/test_scaling.sh

TESTS += dev/scaling/test_scaling.sh
