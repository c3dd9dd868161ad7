// Token + position embedding.
//   forward:  out[b,t,:] = wte[inp[b,t],:] + wpe[t,:]
//   backward: dwte[inp[b,t],:] += dout[b,t,:];  dwpe[t,:] += dout[b,t,:]
#ifndef LLMC_ENCODER_H
#define LLMC_ENCODER_H

#include <stddef.h>

static void encoder_forward(float* out, const int* inp, const float* wte, const float* wpe,
                            int B, int T, int C) {
    #pragma omp parallel for collapse(2)
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            float* out_bt = out + ((size_t)b * T + t) * C;
            const float* wte_ix = wte + (size_t)inp[b * T + t] * C;
            const float* wpe_t = wpe + (size_t)t * C;
            for (int i = 0; i < C; i++) { out_bt[i] = wte_ix[i] + wpe_t[i]; }
        }
    }
}

// Several positions can hold the same token, so rows of dwte receive several updates.
// Threads split the channels instead of the positions: each (row, channel) is then summed by
// one thread, in position order, and the result does not depend on the thread count.
static void encoder_backward(float* dwte, float* dwpe, const float* dout, const int* inp,
                             int B, int T, int C) {
    const int chunk = 64;
    int nchunks = (C + chunk - 1) / chunk;
    #pragma omp parallel for
    for (int ch = 0; ch < nchunks; ch++) {
        int c0 = ch * chunk;
        int c1 = c0 + chunk < C ? c0 + chunk : C;
        for (int b = 0; b < B; b++) {
            for (int t = 0; t < T; t++) {
                const float* dout_bt = dout + ((size_t)b * T + t) * C;
                float* dwte_ix = dwte + (size_t)inp[b * T + t] * C;
                float* dwpe_t = dwpe + (size_t)t * C;
                for (int i = c0; i < c1; i++) {
                    dwte_ix[i] += dout_bt[i];
                    dwpe_t[i] += dout_bt[i];
                }
            }
        }
    }
}

#endif // LLMC_ENCODER_H
