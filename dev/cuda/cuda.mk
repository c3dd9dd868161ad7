# CUDA build (included by the top-level Makefile). Nothing here runs on a machine without
# nvcc unless asked: the CUDA targets are not part of `all`, and the compile check only
# registers itself as a test when nvcc exists.
#   make train_gpt_cu test_gpt_cu              bf16 build for sm_80 + sm_90
#   make train_gpt_cu PRECISION=FP32           fp32 everywhere (exact comparisons)
#   make train_gpt_cu USE_CUDNN=1              cuDNN attention (bf16); fetches cuDNN's frontend headers first
#   make cuda-harnesses                        dev/cuda/*_check.cu -> build/cuda/*_check[_fp32], build/cuda/ceilings
#   make cuda-refs                             PyTorch references for test_gpt_cu -> build/cuda_refs/
#   CUDA_ARCHS="-gencode arch=compute_90,code=sm_90" make ...   one architecture (faster builds)
NVCC ?= /usr/local/cuda/bin/nvcc
PRECISION ?= BF16
USE_CUDNN ?= 0
CUDA_ARCHS ?= -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90
# -Drestrict: the C headers use C99's restrict, which C++ spells __restrict__.
# The diag-suppress'd warnings are about the CPU matmul's GCC pragmas, seen by nvcc's front end.
NVCC_FLAGS ?= -O3 -lineinfo -std=c++17
NVCC_FLAGS += -I. -Drestrict=__restrict__ -diag-suppress 1675,550,177 \
              -Xcompiler -fopenmp,-Wall,-Wno-unused-function,-Wno-unknown-pragmas,-Wno-unused-parameter
NVCC_LDLIBS = -lcublasLt -lnccl -lm
# with OpenMPI present, the GPU trainer can run one process per GPU under mpirun (NCCL set up
# through MPI, llmc/comm_nccl.h); NO_MPI=1 builds it for one GPU
MPICC_CU := $(if $(NO_MPI),,$(shell command -v mpicc 2>/dev/null))
ifneq ($(MPICC_CU),)
NVCC_MPI_FLAGS = -DUSE_MPI $(shell $(MPICC_CU) -showme:compile)
NVCC_MPI_LIBS = $(shell $(MPICC_CU) -showme:link)
endif
ifeq ($(PRECISION),FP32)
NVCC_FLAGS += -DENABLE_FP32
else ifneq ($(PRECISION),BF16)
$(error PRECISION must be BF16 or FP32, not $(PRECISION))
endif
# cuDNN's attention goes through its header-only C++ frontend, which dev/cuda/get_cudnn_frontend.sh
# unpacks from PyPI into build/cudnn_frontend (CUDNN_FRONTEND_PATH to use another copy)
CUDNN_FRONTEND_PATH ?= build/cudnn_frontend/include
# The frontend is host C++ and slow to compile (llmc/attention_cudnn.h says why it is its own
# translation unit): build/attention_cudnn.o is compiled once and linked into every program.
CUDNN_OBJ = build/attention_cudnn.o
ifeq ($(USE_CUDNN),1)
NVCC_FLAGS += -DENABLE_CUDNN
NVCC_LDLIBS += $(CUDNN_OBJ) -lcudnn -lnvrtc
CUDNN_DEPS = $(CUDNN_OBJ)
endif
CUDA_HEADERS = $(wildcard llmc/*.h) $(wildcard dev/cuda/*.h)
CUDA_HARNESSES = $(basename $(notdir $(wildcard dev/cuda/*_check.cu)))

.PHONY: cuda cuda-harnesses cuda-refs

cuda: train_gpt_cu test_gpt_cu

build/cudnn_frontend/include/cudnn_frontend.h:
	bash dev/cuda/get_cudnn_frontend.sh

$(CUDNN_OBJ): llmc/attention_cudnn.cpp llmc/attention_cudnn.h $(CUDNN_FRONTEND_PATH)/cudnn_frontend.h
	@mkdir -p build
	$(NVCC) -O2 -std=c++17 -isystem $(CUDNN_FRONTEND_PATH) -c -o $@ $<

# build variants (PRECISION, USE_CUDNN, CUDA_ARCHS, NO_MPI, NVCC_FLAGS) are stamped into
# build/flags.* (flags_stamp, top-level Makefile), so changing one rebuilds
FLAGS_train_gpt_cu = $(NVCC) $(NVCC_FLAGS) $(NVCC_MPI_FLAGS) $(CUDA_ARCHS) $(NVCC_LDLIBS) $(NVCC_MPI_LIBS)
FLAGS_test_gpt_cu = $(NVCC) $(NVCC_FLAGS) $(CUDA_ARCHS) $(NVCC_LDLIBS)
FLAGS_cuda_harness = $(NVCC) $(filter-out -DENABLE_FP32,$(NVCC_FLAGS)) $(CUDA_ARCHS) $(NVCC_LDLIBS)
$(eval $(call flags_stamp,train_gpt_cu))
$(eval $(call flags_stamp,test_gpt_cu))
$(eval $(call flags_stamp,cuda_harness))

train_gpt_cu: train_gpt.cu $(CUDA_HEADERS) $(CUDNN_DEPS) build/flags.train_gpt_cu
	$(NVCC) $(NVCC_FLAGS) $(NVCC_MPI_FLAGS) $(CUDA_ARCHS) -o $@ $< $(NVCC_LDLIBS) $(NVCC_MPI_LIBS)

test_gpt_cu: test_gpt.cu train_gpt.cu train_gpt.c $(CUDA_HEADERS) $(CUDNN_DEPS) build/flags.test_gpt_cu
	$(NVCC) $(NVCC_FLAGS) $(CUDA_ARCHS) -o $@ $< $(NVCC_LDLIBS)

# the harnesses in both precisions, side by side
build/cuda/%_check: dev/cuda/%_check.cu $(CUDA_HEADERS) $(CUDNN_DEPS) build/flags.cuda_harness
	@mkdir -p build/cuda
	$(NVCC) $(filter-out -DENABLE_FP32,$(NVCC_FLAGS)) $(CUDA_ARCHS) -o $@ $< $(NVCC_LDLIBS)

build/cuda/%_check_fp32: dev/cuda/%_check.cu $(CUDA_HEADERS) $(CUDNN_DEPS) build/flags.cuda_harness
	@mkdir -p build/cuda
	$(NVCC) $(filter-out -DENABLE_FP32,$(NVCC_FLAGS)) -DENABLE_FP32 $(CUDA_ARCHS) -o $@ $< $(NVCC_LDLIBS)

build/cuda/ceilings: dev/cuda/ceilings.cu $(CUDA_HEADERS) build/flags.cuda_harness
	@mkdir -p build/cuda
	$(NVCC) $(filter-out -DENABLE_FP32,$(NVCC_FLAGS)) $(CUDA_ARCHS) -o $@ $< $(NVCC_LDLIBS)

cuda-harnesses: $(addprefix build/cuda/,$(CUDA_HARNESSES)) $(addsuffix _fp32,$(addprefix build/cuda/,$(CUDA_HARNESSES))) build/cuda/ceilings

cuda-refs:
	bash dev/cuda/make_refs.sh

# CI without a GPU: our CUDA code runs on the CPU through dev/cuda/emu (g++ only, no nvcc needed)
TESTS += "bash dev/cuda/emu/run_emu_tests.sh"

# CI without a GPU: every .cu file compiles and links (sm_80, sm_90; bf16, fp32; cuDNN attention)
ifneq ($(wildcard $(NVCC)),)
TESTS += dev/cuda/check_compile.sh
endif
