// cuDNN's fused attention: the implementation behind llmc/attention_cudnn.h (which says why it
// is a separate translation unit). Host C++ only: built by `make build/attention_cudnn.o`
// (USE_CUDNN=1 builds do it for you) with cuDNN's frontend headers on the include path.
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include "attention_cudnn.h"
#include <cudnn.h>
#include <cudnn_frontend.h>
#include <memory>
#include <vector>

namespace fe = cudnn_frontend;

// our tensor ids in the graphs
enum {
    ATT_CUDNN_Q = 1, ATT_CUDNN_K, ATT_CUDNN_V, ATT_CUDNN_O, ATT_CUDNN_STATS,
    ATT_CUDNN_DO, ATT_CUDNN_DQ, ATT_CUDNN_DK, ATT_CUDNN_DV, ATT_CUDNN_NUM_IDS
};

struct AttentionCudnn {
    cudnnHandle_t handle;
    int B, T, C, NH;
    std::shared_ptr<fe::graph::Graph> forward, backward;
    // the order of the device pointers each graph's execute wants (its tensor ids, sorted)
    int forward_order[ATT_CUDNN_NUM_IDS], backward_order[ATT_CUDNN_NUM_IDS];
    int forward_n, backward_n;
    void* workspace;
    int64_t workspace_bytes;
};

static void att_cuda_check(cudaError_t e, const char* what) {
    if (e != cudaSuccess) {
        fprintf(stderr, "error: CUDA: %s: %s\n", what, cudaGetErrorString(e));
        exit(EXIT_FAILURE);
    }
}

static void cudnn_check_status(cudnnStatus_t s, const char* what) {
    if (s != CUDNN_STATUS_SUCCESS) {
        fprintf(stderr, "error: cuDNN: %s: %s\n", what, cudnnGetErrorString(s));
        exit(EXIT_FAILURE);
    }
}

static void cudnn_check_frontend(fe::error_t e, const char* what, const AttentionCudnn* a) {
    if (e.is_bad()) {
        fprintf(stderr, "error: cuDNN attention (B=%d T=%d C=%d NH=%d): %s: %s\n"
                        "       (run with --attention scalar or tc to use our kernels instead)\n",
                a->B, a->T, a->C, a->NH, what, e.get_message().c_str());
        exit(EXIT_FAILURE);
    }
}

// a (B, NH, T, HS) bf16 view with row stride `ld` elements between consecutive t
static std::shared_ptr<fe::graph::Tensor_attributes> att_cudnn_tensor(fe::graph::Graph& g, const char* name, int uid,
                                                                      int B, int NH, int T, int HS, int64_t ld) {
    return g.tensor(fe::graph::Tensor_attributes()
                        .set_name(name)
                        .set_uid(uid)
                        .set_dim({B, NH, T, HS})
                        .set_stride({(int64_t)T * ld, HS, ld, 1})
                        .set_data_type(fe::DataType_t::BFLOAT16));
}

// a graph with bf16 inputs and outputs and fp32 math inside, and its q, k, v views of qkv
static std::shared_ptr<fe::graph::Graph> att_cudnn_graph(int B, int NH, int T, int HS,
                                                         std::shared_ptr<fe::graph::Tensor_attributes> qkv[3]) {
    auto g = std::make_shared<fe::graph::Graph>();
    g->set_io_data_type(fe::DataType_t::BFLOAT16)
        .set_intermediate_data_type(fe::DataType_t::FLOAT)
        .set_compute_data_type(fe::DataType_t::FLOAT);
    const char* names[3] = {"q", "k", "v"};
    for (int i = 0; i < 3; i++) {
        qkv[i] = att_cudnn_tensor(*g, names[i], ATT_CUDNN_Q + i, B, NH, T, HS, 3 * (int64_t)NH * HS);
    }
    return g;
}

static void att_cudnn_build(AttentionCudnn* a, fe::graph::Graph& g, const char* which) {
    char what[128];
    snprintf(what, sizeof(what), "%s graph: validate", which);
    cudnn_check_frontend(g.validate(), what, a);
    snprintf(what, sizeof(what), "%s graph: build_operation_graph", which);
    cudnn_check_frontend(g.build_operation_graph(a->handle), what, a);
    snprintf(what, sizeof(what), "%s graph: create_execution_plans", which);
    cudnn_check_frontend(g.create_execution_plans({fe::HeurMode_t::A}), what, a);
    snprintf(what, sizeof(what), "%s graph: check_support (no cuDNN engine for this shape on this GPU)", which);
    cudnn_check_frontend(g.check_support(a->handle), what, a);
    snprintf(what, sizeof(what), "%s graph: build_plans", which);
    cudnn_check_frontend(g.build_plans(a->handle), what, a);
}

// where each of our ids goes in the pointer array execute() takes
static int att_cudnn_order(const fe::graph::Graph& g, int* order, const char* which) {
    std::vector<int64_t> uids = g.get_variant_pack_uids_sorted();
    if (uids.empty() || uids.size() > ATT_CUDNN_NUM_IDS) {
        fprintf(stderr, "error: cuDNN attention: %s graph wants %d device pointers\n", which, (int)uids.size());
        exit(EXIT_FAILURE);
    }
    for (size_t i = 0; i < uids.size(); i++) {
        if (uids[i] < ATT_CUDNN_Q || uids[i] >= ATT_CUDNN_NUM_IDS) {
            fprintf(stderr, "error: cuDNN attention: %s graph wants a tensor %lld we did not give it\n", which, (long long)uids[i]);
            exit(EXIT_FAILURE);
        }
        order[i] = (int)uids[i];
    }
    return (int)uids.size();
}

AttentionCudnn* attention_cudnn_create(int B, int T, int C, int NH, cudaStream_t stream) {
    AttentionCudnn* a = new AttentionCudnn();
    a->B = B; a->T = T; a->C = C; a->NH = NH;
    int HS = C / NH;
    if (HS % 8 != 0) {
        fprintf(stderr, "error: --attention cudnn: head size %d must be a multiple of 8 for cuDNN's SDPA\n", HS);
        exit(EXIT_FAILURE);
    }
    cudnn_check_status(cudnnCreate(&a->handle), "cudnnCreate");
    cudnn_check_status(cudnnSetStream(a->handle, stream), "cudnnSetStream");
    float scale = 1.0f / sqrtf((float)HS);

    // forward: (q, k, v) -> out, stats
    std::shared_ptr<fe::graph::Tensor_attributes> fq[3];
    a->forward = att_cudnn_graph(B, NH, T, HS, fq);
    fe::graph::Graph& f = *a->forward;
    auto fwd_opts = fe::graph::SDPA_attributes()
                        .set_name("attention_forward")
                        .set_generate_stats(true)
                        .set_causal_mask(true)
                        .set_attn_scale(scale);
    auto fwd_out = f.sdpa(fq[0], fq[1], fq[2], fwd_opts);
    fwd_out[0]->set_output(true).set_uid(ATT_CUDNN_O).set_dim({B, NH, T, HS})
        .set_stride({(int64_t)T * C, HS, C, 1}).set_data_type(fe::DataType_t::BFLOAT16);
    fwd_out[1]->set_output(true).set_uid(ATT_CUDNN_STATS).set_dim({B, NH, T, 1})
        .set_stride({(int64_t)NH * T, T, 1, 1}).set_data_type(fe::DataType_t::FLOAT);
    att_cudnn_build(a, f, "forward");
    a->forward_n = att_cudnn_order(f, a->forward_order, "forward");

    // backward: (q, k, v, out, dout, stats) -> dq, dk, dv
    std::shared_ptr<fe::graph::Tensor_attributes> bq[3];
    a->backward = att_cudnn_graph(B, NH, T, HS, bq);
    fe::graph::Graph& g = *a->backward;
    auto bo = att_cudnn_tensor(g, "o", ATT_CUDNN_O, B, NH, T, HS, C);
    auto bdo = att_cudnn_tensor(g, "do", ATT_CUDNN_DO, B, NH, T, HS, C);
    auto bstats = g.tensor(fe::graph::Tensor_attributes()
                               .set_name("stats")
                               .set_uid(ATT_CUDNN_STATS)
                               .set_dim({B, NH, T, 1})
                               .set_stride({(int64_t)NH * T, T, 1, 1})
                               .set_data_type(fe::DataType_t::FLOAT));
    auto bwd_opts = fe::graph::SDPA_backward_attributes()
                        .set_name("attention_backward")
                        .set_causal_mask(true)
                        .set_attn_scale(scale)
                        .set_deterministic_algorithm(true);
    auto grads = g.sdpa_backward(bq[0], bq[1], bq[2], bo, bdo, bstats, bwd_opts);
    const int ids[3] = {ATT_CUDNN_DQ, ATT_CUDNN_DK, ATT_CUDNN_DV};
    for (int i = 0; i < 3; i++) {
        grads[i]->set_output(true).set_uid(ids[i]).set_dim({B, NH, T, HS})
            .set_stride({(int64_t)T * 3 * C, HS, 3 * C, 1}).set_data_type(fe::DataType_t::BFLOAT16);
    }
    att_cudnn_build(a, g, "backward");
    a->backward_n = att_cudnn_order(g, a->backward_order, "backward");

    int64_t wf = a->forward->get_workspace_size(), wb = a->backward->get_workspace_size();
    a->workspace_bytes = wf > wb ? wf : wb;
    a->workspace = NULL;
    if (a->workspace_bytes > 0) {
        att_cuda_check(cudaMalloc(&a->workspace, (size_t)a->workspace_bytes), "cudaMalloc of the cuDNN attention workspace");
    }
    return a;
}

int attention_cudnn_matches(const AttentionCudnn* a, int B, int T, int C, int NH) {
    return a->B == B && a->T == T && a->C == C && a->NH == NH;
}

size_t attention_cudnn_workspace_bytes(const AttentionCudnn* a) {
    return (size_t)a->workspace_bytes;
}

// fills ptrs in the graph's order from ptr_by_id[our id]
static void att_cudnn_execute(AttentionCudnn* a, const fe::graph::Graph& g, const int* order, int n,
                              void* const* ptr_by_id, cudaStream_t stream, const char* which) {
    void* ptrs[ATT_CUDNN_NUM_IDS];
    for (int i = 0; i < n; i++) { ptrs[i] = ptr_by_id[order[i]]; }
    cudnn_check_status(cudnnSetStream(a->handle, stream), "cudnnSetStream");
    cudnn_check_frontend(g.execute(a->handle, ptrs, n, a->workspace), which, a);
}

// the tensors both graphs read: q, k, v inside qkv, the output and the stats
static void att_cudnn_bind_common(void** by_id, int C, const __nv_bfloat16* qkv, const __nv_bfloat16* out, const float* lse) {
    by_id[ATT_CUDNN_Q] = (void*)qkv;
    by_id[ATT_CUDNN_K] = (void*)(qkv + C);
    by_id[ATT_CUDNN_V] = (void*)(qkv + 2 * C);
    by_id[ATT_CUDNN_O] = (void*)out;
    by_id[ATT_CUDNN_STATS] = (void*)lse;
}

void attention_cudnn_forward(AttentionCudnn* a, __nv_bfloat16* out, float* lse, const __nv_bfloat16* qkv,
                             cudaStream_t stream) {
    void* by_id[ATT_CUDNN_NUM_IDS] = {NULL};
    att_cudnn_bind_common(by_id, a->C, qkv, out, lse);
    att_cudnn_execute(a, *a->forward, a->forward_order, a->forward_n, by_id, stream, "forward execute");
}

void attention_cudnn_backward(AttentionCudnn* a, __nv_bfloat16* dqkv, const __nv_bfloat16* dout,
                              const __nv_bfloat16* qkv, const __nv_bfloat16* out, const float* lse,
                              cudaStream_t stream) {
    int C = a->C;
    void* by_id[ATT_CUDNN_NUM_IDS] = {NULL};
    att_cudnn_bind_common(by_id, C, qkv, out, lse);
    by_id[ATT_CUDNN_DO] = (void*)dout;
    by_id[ATT_CUDNN_DQ] = (void*)dqkv;
    by_id[ATT_CUDNN_DK] = (void*)(dqkv + C);
    by_id[ATT_CUDNN_DV] = (void*)(dqkv + 2 * C);
    att_cudnn_execute(a, *a->backward, a->backward_order, a->backward_n, by_id, stream, "backward execute");
}

void attention_cudnn_destroy(AttentionCudnn* a) {
    if (a->workspace != NULL) { att_cuda_check(cudaFree(a->workspace), "cudaFree of the cuDNN attention workspace"); }
    a->forward.reset();
    a->backward.reset();
    cudnn_check_status(cudnnDestroy(a->handle), "cudnnDestroy");
    delete a;
}

