// LayerNorm over the channel dimension, eps = 1e-5 (PyTorch's default).
//   forward:  out = (x - mean) * rstd * weight + bias, saving mean and rstd per row
//   backward: accumulates into dinp, dweight, dbias
#ifndef LLMC_LAYERNORM_H
#define LLMC_LAYERNORM_H

#include <math.h>
#include <stddef.h>

static void layernorm_forward(float* out, float* mean, float* rstd, const float* inp,
                              const float* weight, const float* bias, int B, int T, int C) {
    const float eps = 1e-5f;
    int BT = B * T;
    #pragma omp parallel for
    for (int bt = 0; bt < BT; bt++) {
        const float* x = inp + (size_t)bt * C;
        float m = 0.0f;
        for (int i = 0; i < C; i++) { m += x[i]; }
        m /= C;
        // two passes: the one-pass E[x^2] - m^2 formula loses precision on the residual stream
        float v = 0.0f;
        for (int i = 0; i < C; i++) { float d = x[i] - m; v += d * d; }
        v /= C;
        float s = 1.0f / sqrtf(v + eps);
        float* y = out + (size_t)bt * C;
        for (int i = 0; i < C; i++) { y[i] = (s * (x[i] - m)) * weight[i] + bias[i]; }
        mean[bt] = m;
        rstd[bt] = s;
    }
}

static void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                               const float* inp, const float* weight, const float* mean,
                               const float* rstd, int B, int T, int C) {
    int BT = B * T;
    // input gradient: rows are independent
    #pragma omp parallel for
    for (int bt = 0; bt < BT; bt++) {
        const float* dy = dout + (size_t)bt * C;
        const float* x = inp + (size_t)bt * C;
        float* dx = dinp + (size_t)bt * C;
        float m = mean[bt];
        float s = rstd[bt];
        float dnorm_mean = 0.0f;
        float dnorm_norm_mean = 0.0f;
        for (int i = 0; i < C; i++) {
            float norm = (x[i] - m) * s;
            float dnorm = weight[i] * dy[i];
            dnorm_mean += dnorm;
            dnorm_norm_mean += dnorm * norm;
        }
        dnorm_mean /= C;
        dnorm_norm_mean /= C;
        for (int i = 0; i < C; i++) {
            float norm = (x[i] - m) * s;
            float dnorm = weight[i] * dy[i];
            dx[i] += (dnorm - dnorm_mean - norm * dnorm_norm_mean) * s;
        }
    }
    // weight and bias gradients reduce over rows: split the channels among threads so each
    // sum runs in row order whatever the thread count
    const int chunk = 16;
    int nchunks = (C + chunk - 1) / chunk;
    #pragma omp parallel for
    for (int ch = 0; ch < nchunks; ch++) {
        int c0 = ch * chunk;
        int c1 = c0 + chunk < C ? c0 + chunk : C;
        float dw[16] = {0};
        float db[16] = {0};
        for (int bt = 0; bt < BT; bt++) {
            const float* dy = dout + (size_t)bt * C;
            const float* x = inp + (size_t)bt * C;
            float m = mean[bt];
            float s = rstd[bt];
            for (int i = c0; i < c1; i++) {
                dw[i - c0] += (x[i] - m) * s * dy[i];
                db[i - c0] += dy[i];
            }
        }
        for (int i = c0; i < c1; i++) {
            dweight[i] += dw[i - c0];
            dbias[i] += db[i - c0];
        }
    }
}

#endif // LLMC_LAYERNORM_H
