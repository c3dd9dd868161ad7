// Knowledge distillation (Hinton et al. 2015): the student's classifier loss mixed with the KL
// divergence from a teacher's softened distribution, per position.
//   logits, teacher_logits: (B*T, Vp), the student's and the teacher's logits over the same
//           vocabulary; only the first V entries of a row are real tokens (the padding up to Vp
//           never enters a softmax, and its dlogits are 0)
//   targets: (B*T) next tokens; weights: (B*T) per-position loss weights (NULL: all 1)
// With student s, teacher t, temperature tau > 0 and weight alpha in [0, 1], per position:
//   ce   = logsumexp(s) - s[target]                        the hard cross-entropy
//   q    = softmax(s / tau),  p = softmax(t / tau)         the softened distributions
//   KL   = sum_v p_v (log p_v - log q_v)    forward KL(p || q): mass-covering (reverse = 0)
//        = sum_v q_v (log q_v - log p_v)    reverse KL(q || p): mode-seeking  (reverse = 1)
//   loss = (1 - alpha) * ce + alpha * tau^2 * KL
// Why tau^2: d KL / d s is (1 / tau) * g with g = q - p (forward) or q * (log q - log p - KL)
// (reverse), and g itself shrinks like 1 / tau as the softened distributions flatten, so the
// soft term's gradient falls like 1 / tau^2; the tau^2 keeps it on the scale of the hard term's
// whatever the temperature (and the same alpha means the same mix at any tau). Hence
//   dlogits[v] = dloss * w * ( (1 - alpha) * (softmax(s)_v - [v == target]) + alpha * tau * g_v )
// with dloss the weight of one position in the step's loss (as in llmc/crossentropy.h) and w the
// position's loss weight. The teacher is fixed: no gradient flows to it.
// dev/reference/align_reference.py (distill_loss) is the same loss in PyTorch autograd.
//
// The C reference computes each row in double (inputs and outputs are fp32), so it is a
// sharper oracle than the fp32 CUDA twin it checks (dev/cuda/distill_check.cu).
#ifndef LLMC_DISTILL_H
#define LLMC_DISTILL_H

#include <math.h>
#include <stddef.h>

// The three log-normalizers of one row: logsumexp(s), logsumexp(s / tau), logsumexp(t / tau).
static void distill_row_lse(double* lse_s, double* lse_q, double* lse_p,
                            const float* s, const float* t, double tau, int V) {
    double ms = -INFINITY, mt = -INFINITY;
    for (int i = 0; i < V; i++) {
        if (s[i] > ms) { ms = s[i]; }
        if (t[i] > mt) { mt = t[i]; }
    }
    double s1 = 0.0, s2 = 0.0, s3 = 0.0;
    for (int i = 0; i < V; i++) {
        s1 += exp((double)s[i] - ms);
        s2 += exp(((double)s[i] - ms) / tau);
        s3 += exp(((double)t[i] - mt) / tau);
    }
    *lse_s = ms + log(s1);
    *lse_q = ms / tau + log(s2);
    *lse_p = mt / tau + log(s3);
}

// KL of one row (forward: KL(p || q), reverse: KL(q || p)), given its log-normalizers.
static double distill_row_kl(const float* s, const float* t, double tau, double lse_q, double lse_p,
                             int reverse, int V) {
    double kl = 0.0;
    for (int i = 0; i < V; i++) {
        double logq = (double)s[i] / tau - lse_q;
        double logp = (double)t[i] / tau - lse_p;
        kl += reverse ? exp(logq) * (logq - logp) : exp(logp) * (logp - logq);
    }
    return kl;
}

// losses[bt] = (1 - alpha) * ce + alpha * tau^2 * KL; kl[bt] = KL alone (for logging). Both (BT).
static void distill_forward(float* losses, float* kl, const float* logits, const float* teacher_logits,
                            const int* targets, float alpha, float tau, int reverse, int BT, int V, int Vp) {
    #pragma omp parallel for
    for (int bt = 0; bt < BT; bt++) {
        const float* s = logits + (size_t)bt * Vp;
        const float* t = teacher_logits + (size_t)bt * Vp;
        double lse_s, lse_q, lse_p;
        distill_row_lse(&lse_s, &lse_q, &lse_p, s, t, tau, V);
        double ce = lse_s - (double)s[targets[bt]];
        double k = distill_row_kl(s, t, tau, lse_q, lse_p, reverse, V);
        losses[bt] = (float)((1.0 - (double)alpha) * ce + (double)alpha * (double)tau * (double)tau * k);
        kl[bt] = (float)k;
    }
}

// dlogits (BT, Vp) is overwritten (not accumulated; the padding columns get 0). It may not alias
// logits. weights: (BT) or NULL (all 1).
static void distill_backward(float* dlogits, const float* logits, const float* teacher_logits,
                             const int* targets, const float* weights, float dloss, float alpha, float tau,
                             int reverse, int BT, int V, int Vp) {
    #pragma omp parallel for
    for (int bt = 0; bt < BT; bt++) {
        const float* s = logits + (size_t)bt * Vp;
        const float* t = teacher_logits + (size_t)bt * Vp;
        float* dl = dlogits + (size_t)bt * Vp;
        double lse_s, lse_q, lse_p;
        double dtau = tau;
        distill_row_lse(&lse_s, &lse_q, &lse_p, s, t, dtau, V);
        double k = reverse ? distill_row_kl(s, t, dtau, lse_q, lse_p, 1, V) : 0.0;
        double d = weights != NULL ? (double)dloss * (double)weights[bt] : (double)dloss;
        double hard = d * (1.0 - (double)alpha);
        double soft = d * (double)alpha * dtau;
        int target = targets[bt];
        for (int i = 0; i < V; i++) {
            double logq = (double)s[i] / dtau - lse_q;
            double logp = (double)t[i] / dtau - lse_p;
            double q = exp(logq);
            double g = reverse ? q * (logq - logp - k) : q - exp(logp);
            double ce = exp((double)s[i] - lse_s) - (i == target ? 1.0 : 0.0);
            dl[i] = (float)(hard * ce + soft * g);
        }
        for (int i = V; i < Vp; i++) { dl[i] = 0.0f; }
    }
}

#ifdef __CUDACC__
// ----------------------------------------------------------------------------
// CUDA twin: the fused distillation classifier, like fused_classifier_cuda (llmc/crossentropy.h).
// One block per position reads its rows of floatX student and teacher logits; the three
// log-normalizers come from one pass of online max/sums (logsumexp(s / tau) shares the max of s,
// since tau > 0), the KL from a second pass, and, if dloss != 0, a third pass overwrites the
// student's row with dlogits (times weights[row], NULL: 1; padding columns 0). No fp32 logits or
// probabilities are ever stored. All reductions are fixed trees (llmc/cuda_common.h): the same
// inputs give bitwise the same outputs.
//   logits: (BT, Vp) floatX, in: student logits, out: dlogits (when dloss != 0)
//   teacher_logits: (BT, Vp) floatX, read only
//   losses, kl: (BT) fp32, always written: the combined loss and the KL alone
#include "cuda_common.h"

#define DISTILL_THREADS 1024

__global__ static void __launch_bounds__(DISTILL_THREADS)
fused_distill_classifier_kernel(floatX* logits, float* losses, float* kl, const floatX* teacher_logits,
                                const int* targets, const float* weights, float dloss, float alpha,
                                float tau, int reverse, int V, int Vp) {
    __shared__ float shared[32];
    int row = blockIdx.x;
    floatX* x = logits + (size_t)row * Vp;
    const floatX* y = teacher_logits + (size_t)row * Vp;
    int target = targets[row];
    float inv_tau = 1.0f / tau;
    // read before any thread can overwrite the row: the write pass comes after the barriers of
    // the reductions below, which every thread reaches only after its reads
    float x_target = fx2f(x[target]);

    // pass 1: online max and sums. s1 = sum exp(s - ms), s2 = sum exp((s - ms) / tau) share the
    // running max ms of the student; s3 = sum exp((t - mt) / tau) with the teacher's max mt
    float ms = -FLT_MAX, s1 = 0.0f, s2 = 0.0f;
    float mt = -FLT_MAX, s3 = 0.0f;
    for (int i = threadIdx.x; i < V; i += blockDim.x) {
        float v = fx2f(x[i]);
        if (v > ms) {
            float dm = ms - v;
            s1 = s1 * expf(dm) + 1.0f;
            s2 = s2 * expf(dm * inv_tau) + 1.0f;
            ms = v;
        } else {
            s1 += expf(v - ms);
            s2 += expf((v - ms) * inv_tau);
        }
        float u = fx2f(y[i]);
        if (u > mt) { s3 = s3 * expf((mt - u) * inv_tau) + 1.0f; mt = u; }
        else { s3 += expf((u - mt) * inv_tau); }
    }
    float MS = block_reduce_max(ms, shared);
    float MT = block_reduce_max(mt, shared);
    // a thread without elements has sums 0 (and a factor exp(-huge) = 0): it adds nothing
    float S1 = block_reduce_sum(s1 * expf(ms - MS), shared);
    float S2 = block_reduce_sum(s2 * expf((ms - MS) * inv_tau), shared);
    float S3 = block_reduce_sum(s3 * expf((mt - MT) * inv_tau), shared);
    float lse_s = MS + logf(S1);
    float lse_q = MS * inv_tau + logf(S2);
    float lse_p = MT * inv_tau + logf(S3);
    // lse_q - lse_p without the rounding of the two ~10-sized values: a small KL is computed
    // against it (forward KL = sum p (t - s) / tau + lse_q - lse_p)
    float dlse = (MS - MT) * inv_tau + logf(S2 / S3);

    // pass 2: the KL. log q - log p = (s - t) / tau - (lse_q - lse_p)
    float k = 0.0f;
    for (int i = threadIdx.x; i < V; i += blockDim.x) {
        float v = fx2f(x[i]);
        float u = fx2f(y[i]);
        float d = (v - u) * inv_tau - dlse;
        if (reverse) { k += expf(v * inv_tau - lse_q) * d; }
        else { k -= expf(u * inv_tau - lse_p) * d; }
    }
    float KL = block_reduce_sum(k, shared);  // its barriers: every thread is done reading the row
    if (threadIdx.x == 0) {
        float ce = lse_s - x_target;
        losses[row] = (1.0f - alpha) * ce + alpha * tau * tau * KL;
        kl[row] = KL;
    }
    if (dloss == 0.0f) { return; }
    if (weights != NULL) { dloss *= weights[row]; }

    // pass 3: dlogits, in place (each thread rewrites only the elements it reads)
    float hard = dloss * (1.0f - alpha);
    float soft = dloss * alpha * tau;
    for (int i = threadIdx.x; i < Vp; i += blockDim.x) {
        float dl = 0.0f;
        if (i < V) {
            float v = fx2f(x[i]);
            float u = fx2f(y[i]);
            float logq = v * inv_tau - lse_q;
            float q = expf(logq);
            float g;
            if (reverse) { g = q * ((v - u) * inv_tau - dlse - KL); }
            else { g = q - expf(u * inv_tau - lse_p); }
            float ce = expf(v - lse_s) - (i == target ? 1.0f : 0.0f);
            dl = hard * ce + soft * g;
        }
        x[i] = f2fx(dl);
    }
}

// losses and kl (BT) are always written; dlogits (in place over logits) only when dloss != 0.
static void fused_distill_classifier_cuda(floatX* logits, float* losses, float* kl, const floatX* teacher_logits,
                                          const int* targets, const float* weights, float dloss, float alpha,
                                          float tau, int reverse, int BT, int V, int Vp, cudaStream_t stream) {
    fused_distill_classifier_kernel<<<BT, DISTILL_THREADS, 0, stream>>>(logits, losses, kl, teacher_logits, targets,
                                                                       weights, dloss, alpha, tau, reverse, V, Vp);
    cudaCheckLaunch();
}
#endif // __CUDACC__

#endif // LLMC_DISTILL_H
