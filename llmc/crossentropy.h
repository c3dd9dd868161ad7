// Softmax + cross-entropy over the vocabulary, the classifier at the top of the model.
//   logits: (B, T, Vp); only the first V entries of a row are real tokens, the padding
//           (up to Vp, a multiple of 128 for fast matmuls) never enters the softmax
//   forward:  probs (B, T, Vp) and per-position losses = -log probs[target]
//   backward: dlogits = (probs - onehot(target)) * dloss, where dloss is the weight of each
//             position in the mean loss (1 / (B*T*grad_accum_steps) for plain training)
#ifndef LLMC_CROSSENTROPY_H
#define LLMC_CROSSENTROPY_H

#include <math.h>
#include <stddef.h>

static void softmax_forward(float* probs, const float* logits, int B, int T, int V, int Vp) {
    int BT = B * T;
    #pragma omp parallel for
    for (int bt = 0; bt < BT; bt++) {
        const float* x = logits + (size_t)bt * Vp;
        float* p = probs + (size_t)bt * Vp;
        float maxval = -INFINITY;
        for (int i = 0; i < V; i++) { if (x[i] > maxval) { maxval = x[i]; } }
        float sum = 0.0f;
        for (int i = 0; i < V; i++) { p[i] = expf(x[i] - maxval); sum += p[i]; }
        float inv = 1.0f / sum;
        for (int i = 0; i < V; i++) { p[i] *= inv; }
        for (int i = V; i < Vp; i++) { p[i] = 0.0f; }
    }
}

static void crossentropy_forward(float* losses, const float* probs, const int* targets,
                                 int B, int T, int Vp) {
    int BT = B * T;
    for (int bt = 0; bt < BT; bt++) {
        losses[bt] = -logf(probs[(size_t)bt * Vp + targets[bt]]);
    }
}

// dlogits is overwritten (not accumulated): the logits feed nothing but the loss.
static void crossentropy_softmax_backward(float* dlogits, const float* probs, const int* targets,
                                          float dloss, int B, int T, int V, int Vp) {
    int BT = B * T;
    #pragma omp parallel for
    for (int bt = 0; bt < BT; bt++) {
        float* dl = dlogits + (size_t)bt * Vp;
        const float* p = probs + (size_t)bt * Vp;
        for (int i = 0; i < V; i++) { dl[i] = p[i] * dloss; }
        for (int i = V; i < Vp; i++) { dl[i] = 0.0f; }
        dl[targets[bt]] -= dloss;
    }
}

#endif // LLMC_CROSSENTROPY_H
