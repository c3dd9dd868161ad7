/*
One training step of the GPU model (forward, backward, gradient norm, AdamW) under the CUDA
emulation's memory profiler (dev/cuda/emu/include/emu_profile.h): writes one CSV row per kernel
launch with its global and shared memory counters, and OUT.csv.json with the shape. dev/cuda/predict_step.py turns the rows into
a per-kernel profile and a predicted step time for GPT-2 124M (dev/cuda/PROFILE.md).

usage: profile_step OUT.csv [B T L Vp]      (defaults 1 64 1 50304; C = 768, NH = 12: GPT-2's
                                             layer, so the access patterns are the real ones)
The attention kernel is the build's default, or LLMC_ATTENTION=scalar|tc. Only under the
emulation's profile build (dev/cuda/profile.sh builds and runs it); the counts are exact for
the emulated shape, and the report scales them to other shapes by stated formulas.
*/
#define TESTING
#include "train_gpt.c"
#include "train_gpt.cu"

#ifndef EMU_PROFILE
// Every .cu file compiles and links for sm_80/sm_90 (dev/cuda/check_compile.sh); built by nvcc,
// there are no counters to read, so the program says where to get them and stops.
int main(void) {
    fprintf(stderr, "error: profile_step counts memory traffic under the CUDA emulation's profiler only "
                    "(dev/cuda/profile.sh); on a GPU, profile with ncu (dev/cuda/PROFILE.md)\n");
    return 2;
}
#else
int main(int argc, char** argv) {
    if (argc < 2 || argc > 6) {
        fprintf(stderr, "usage: profile_step OUT.csv [B T L Vp]\n");
        return 2;
    }
    int B = argc > 2 ? atoi(argv[2]) : 1;
    int T = argc > 3 ? atoi(argv[3]) : 64;
    int L = argc > 4 ? atoi(argv[4]) : 1;
    int Vp = argc > 5 ? atoi(argv[5]) : 50304;
    if (B < 1 || T < 1 || T > 1024 || L < 1 || Vp < 128 || Vp % 128 != 0) {
        fprintf(stderr, "error: profile_step: B, T (<= 1024), L must be positive and Vp a positive multiple of 128\n");
        return 2;
    }
    GPT2Config config;
    config.max_seq_len = 1024;
    config.padded_vocab_size = Vp;
    config.vocab_size = Vp == 50304 ? 50257 : Vp - 47;  // a few padded rows, as GPT-2's
    config.num_layers = L;
    config.num_heads = 12;
    config.channels = 768;
    size_t n = gpt2_num_parameters(&config);
    float* params = float_alloc_check(n, "parameters");
    memset(params, 0, n * sizeof(float));
    gpt2_init_random(params, &config, 1337);
    GPT2CU model;
    gpt2cu_build_from_params(&model, &config, params);
    gpt2cu_allocate(&model, B, T);
    int* x = (int*)malloc((size_t)B * T * sizeof(int));
    int* y = (int*)malloc((size_t)B * T * sizeof(int));
    if (x == NULL || y == NULL) { die("profile_step: out of memory"); }
    Rng rng;
    rng_init(&rng, 42);
    for (int i = 0; i < B * T; i++) {
        x[i] = (int)rng_below(&rng, (uint32_t)config.vocab_size);
        y[i] = (int)rng_below(&rng, (uint32_t)config.vocab_size);
    }
    printf("profile_step: B=%d T=%d L=%d C=768 NH=12 Vp=%d, attention %s, %s, %zu parameters\n", B, T, L, Vp,
           model.attention.kind == ATTENTION_TC ? "tc" : model.attention.kind == ATTENTION_CUDNN ? "cudnn" : "scalar", PRECISION_NAME, n);

    // a step as the training loop runs it (train_loop.h): forward, zero_grad, backward, norm, update
    emu_profile_enable(1);
    emu_profile_phase("forward");
    gpt2cu_loss_reset(&model);
    gpt2cu_forward(&model, x, y, NULL, B, T);
    emu_profile_phase("zero_grad");
    gpt2cu_zero_grad(&model);
    emu_profile_phase("backward");
    gpt2cu_backward(&model, 1.0f);
    emu_profile_phase("norm");
    float norm = gpt2cu_grad_norm(&model);
    emu_profile_phase("update");
    gpt2cu_update(&model, 1e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f, 1);
    cudaCheck(cudaDeviceSynchronize());
    emu_profile_enable(0);

    double wsum;
    double loss = gpt2cu_loss_read(&model, &wsum) / wsum;
    printf("profile_step: loss %.4f (ln Vp %.4f), gradient norm %.4f, %zu kernel launches\n", loss, log((double)Vp), norm,
           emu_profile_records().size());
    if (!isfinite(loss) || !isfinite(norm)) { die("profile_step: the step is not finite"); }
    if (emu_profile_write_csv(argv[1]) != 0) { die("profile_step: cannot write %s", argv[1]); }
    // the shape beside the counts, for dev/cuda/predict_step.py
    char meta[1100];
    snprintf(meta, sizeof(meta), "%s.json", argv[1]);
    FILE* f = fopen(meta, "w");
    if (f == NULL) { die("profile_step: cannot write %s", meta); }
    fprintf(f, "{\"B\": %d, \"T\": %d, \"L\": %d, \"C\": 768, \"NH\": 12, \"V\": %d, \"Vp\": %d, \"parameters\": %zu, "
               "\"grad_floats\": %zu, \"attention\": \"%s\", \"precision\": \"%s\"}\n",
            B, T, L, config.vocab_size, Vp, n, model.dev_count,
            model.attention.kind == ATTENTION_TC ? "tc" : model.attention.kind == ATTENTION_CUDNN ? "cudnn" : "scalar",
            PRECISION_NAME);
    if (fclose(f) != 0) { die("profile_step: cannot write %s", meta); }
    printf("profile_step: wrote %s and %s\n", argv[1], meta);
    gpt2cu_free(&model);
    free(x);
    free(y);
    return 0;
}
#endif
