// Causal multi-head self-attention on a fused qkv input.
//   inp: (B, T, 3C) holding q, k, v side by side; head h uses channels [h*hs, (h+1)*hs) of each
//   att: (B, NH, T, T) softmax probabilities, saved for the backward pass (row t uses t+1 entries)
//   out: (B, T, C)
// The CPU reference keeps the T x T probabilities: simple and exact. The CUDA twin will use a
// fused online-softmax kernel that never stores them.
#ifndef LLMC_ATTENTION_H
#define LLMC_ATTENTION_H

#include <math.h>
#include <stddef.h>

static void attention_forward(float* out, float* att, const float* inp, int B, int T, int C, int NH) {
    int C3 = 3 * C;
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    #pragma omp parallel for collapse(3)
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            for (int h = 0; h < NH; h++) {
                const float* q = inp + ((size_t)b * T + t) * C3 + h * hs;
                float* att_row = att + (((size_t)b * NH + h) * T + t) * T;
                // scores and their max, for a stable softmax
                float maxval = -INFINITY;
                for (int t2 = 0; t2 <= t; t2++) {
                    const float* k = inp + ((size_t)b * T + t2) * C3 + C + h * hs;
                    float dot = 0.0f;
                    for (int i = 0; i < hs; i++) { dot += q[i] * k[i]; }
                    dot *= scale;
                    att_row[t2] = dot;
                    if (dot > maxval) { maxval = dot; }
                }
                float sum = 0.0f;
                for (int t2 = 0; t2 <= t; t2++) {
                    float e = expf(att_row[t2] - maxval);
                    att_row[t2] = e;
                    sum += e;
                }
                float inv = 1.0f / sum;
                for (int t2 = 0; t2 <= t; t2++) { att_row[t2] *= inv; }
                for (int t2 = t + 1; t2 < T; t2++) { att_row[t2] = 0.0f; }
                float* o = out + ((size_t)b * T + t) * C + h * hs;
                for (int i = 0; i < hs; i++) { o[i] = 0.0f; }
                for (int t2 = 0; t2 <= t; t2++) {
                    const float* v = inp + ((size_t)b * T + t2) * C3 + 2 * C + h * hs;
                    float a = att_row[t2];
                    for (int i = 0; i < hs; i++) { o[i] += a * v[i]; }
                }
            }
        }
    }
}

// dinp (B, T, 3C) += gradient through attention. Each (b, h) pair owns disjoint slices of
// dinp, so threads split over (b, h) and every sum runs in a fixed order.
static void attention_backward(float* dinp, const float* dout, const float* inp, const float* att,
                               int B, int T, int C, int NH) {
    int C3 = 3 * C;
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    #pragma omp parallel for collapse(2)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            float datt[T];  // one row of d(probabilities), at most maxT floats on the stack
            for (int t = 0; t < T; t++) {
                const float* att_row = att + (((size_t)b * NH + h) * T + t) * T;
                const float* q = inp + ((size_t)b * T + t) * C3 + h * hs;
                float* dq = dinp + ((size_t)b * T + t) * C3 + h * hs;
                const float* dout_bth = dout + ((size_t)b * T + t) * C + h * hs;
                // through out = att @ v
                for (int t2 = 0; t2 <= t; t2++) {
                    const float* v = inp + ((size_t)b * T + t2) * C3 + 2 * C + h * hs;
                    float* dv = dinp + ((size_t)b * T + t2) * C3 + 2 * C + h * hs;
                    float d = 0.0f;
                    for (int i = 0; i < hs; i++) {
                        d += v[i] * dout_bth[i];
                        dv[i] += att_row[t2] * dout_bth[i];
                    }
                    datt[t2] = d;
                }
                // through softmax: dpre = att * (datt - sum(att * datt))
                float dot = 0.0f;
                for (int t2 = 0; t2 <= t; t2++) { dot += att_row[t2] * datt[t2]; }
                // through the scaled scores q . k
                for (int t2 = 0; t2 <= t; t2++) {
                    float dpre = att_row[t2] * (datt[t2] - dot) * scale;
                    const float* k = inp + ((size_t)b * T + t2) * C3 + C + h * hs;
                    float* dk = dinp + ((size_t)b * T + t2) * C3 + C + h * hs;
                    for (int i = 0; i < hs; i++) {
                        dq[i] += dpre * k[i];
                        dk[i] += dpre * q[i];
                    }
                }
            }
        }
    }
}

#endif // LLMC_ATTENTION_H
