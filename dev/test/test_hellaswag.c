/*
HellaSwag scoring against PyTorch, ending by ending: the mean loss of every ending of the first
N examples, computed the way train_gpt's evaluation does (llmc/hellaswag.h sequences, one
forward each), against dev/eval/hellaswag_reference.py's float64 scores.
usage: test_hellaswag MODEL HELLASWAG_BIN N SCORES   (SCORES: N x 4 float32 from the reference)
Tolerance: 1e-5 relative per score (fp32 forward against float64).
*/
#define TESTING
#include "train_gpt.c"
#include "dev/test/testing.h"

int main(int argc, char** argv) {
    if (argc != 5) { die("usage: test_hellaswag MODEL HELLASWAG_BIN N SCORES"); }
    int n = atoi(argv[3]);
    GPT2 model;
    gpt2_build_from_checkpoint(&model, argv[1]);
    char err[LLMC_ERRLEN];
    HellaSwag hs;
    if (hellaswag_load(&hs, argv[2], model.config.vocab_size, err) != 0) { die("%s", err); }
    if (n < 1 || n > hs.num_examples) { die("N=%d outside 1..%d", n, hs.num_examples); }
    float* ref = float_alloc_check((size_t)n * 4, "reference scores");
    FILE* f = fopen_check(argv[4], "rb");
    if (fread_exact(ref, sizeof(float), (size_t)n * 4, f, argv[4], err) != 0) { die("%s", err); }
    fclose(f);
    int T = model.config.max_seq_len;
    gpt2_allocate(&model, 1, T, 0, model.num_parameters);
    int* seq = (int*)malloc_check((size_t)(T + 1) * sizeof(int), "sequence");
    double worst = 0.0;
    int same_pick = 0;
    for (int i = 0; i < n; i++) {
        const HellaSwagExample* ex = &hs.examples[i];
        int best = 0, ref_best = 0;
        double best_loss = INFINITY;
        for (int j = 0; j < 4; j++) {
            int first;
            int len = hellaswag_sequence(ex, j, seq, T + 1, &first);
            gpt2_forward(&model, seq, seq + 1, NULL, 1, len - 1);
            double sum = 0.0;
            for (int p = first; p < len - 1; p++) { sum += model.acts.losses[p]; }
            double mean = sum / (len - 1 - first);
            double e = fabs(mean - ref[i * 4 + j]) / fabs(ref[i * 4 + j]);
            if (!(e <= worst)) { worst = e; }
            if (mean < best_loss) { best_loss = mean; best = j; }
            if (ref[i * 4 + j] < ref[i * 4 + ref_best]) { ref_best = j; }
        }
        same_pick += best == ref_best;
    }
    check(worst <= 1e-5, "HellaSwag ending scores vs PyTorch", "%d examples x 4 endings, worst relative error %.2e, tolerance 1e-5", n, worst);
    printf("(the same ending picked in %d of %d examples)\n", same_pick, n);
    free(ref);
    free(seq);
    hellaswag_free(&hs);
    gpt2_free(&model);
    return test_failures == 0 ? 0 : 1;
}
