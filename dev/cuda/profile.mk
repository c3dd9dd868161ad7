# The GPU trainer's profile without a GPU (dev/cuda/PROFILE.md). Included by the top-level
# Makefile (-include $(wildcard dev/*/*.mk)).
#   make cuda-profile     the emulated memory profile of one step (dev/cuda/profile.sh, about 40
#                         minutes on 2 cores), the static kernel report and the predicted step
#                         time of GPT-2 124M on an H100 and an H200, into build/profile/
# Tests (make test): the report's, the SASS walk's and the prediction's rules on known cases;
# with nvcc, the static report on the real sm_90 build. The profiler itself is checked by test_profile in
# dev/cuda/emu/run_emu_tests.sh.
cuda-profile:
	bash dev/cuda/profile.sh
	python3 dev/cuda/kernel_report.py --profile build/profile/step_bf16_scalar_L1.csv \
	    --profile build/profile/step_bf16_tc_L1.csv --out build/profile/kernels_bf16.md
	python3 dev/cuda/predict_step.py --profiles build/profile --out build/profile/PREDICTION.md

TESTS += "python3 dev/cuda/sass_loops.py --self-test" "python3 dev/cuda/kernel_report.py --self-test" "python3 dev/cuda/predict_step.py --self-test" "python3 dev/cuda/compare_profiles.py --self-test" "python3 dev/cuda/ncu_step.py --self-test"
QUICK_TESTS += "python3 dev/cuda/sass_loops.py --self-test" "python3 dev/cuda/kernel_report.py --self-test" "python3 dev/cuda/predict_step.py --self-test" "python3 dev/cuda/compare_profiles.py --self-test" "python3 dev/cuda/ncu_step.py --self-test"
ifneq ($(wildcard $(NVCC)),)
TESTS += dev/cuda/test_kernel_report.sh
endif
.PHONY: cuda-profile
