// Weight interpolation between two checkpoints of one model (PAINT, Ilharco et al. 2022):
//
//   theta(alpha) = (1 - alpha) * theta_0 + alpha * theta_1
//
// theta_0 is typically the pre-trained model and theta_1 a fine-tuned one; alpha = 0 gives
// theta_0 back, alpha = 1 gives theta_1, and the points between trade the task that theta_1
// learned against what theta_0 knew. theta_1 may be any plain checkpoint of the same shape:
// a full fine-tuning, or a LoRA/BitFit adapter merged into its base by train_gpt --merge-out
// (then theta_1 - theta_0 is the adapter's update, and alpha scales that update alone).
//
//   interpolate THETA0.bin THETA1.bin -o OUT.bin --alpha 0.4 [--out-version 3|5]
//   interpolate THETA0.bin THETA1.bin -o 'DIR/theta_{alpha}.bin' --alphas 0,0.1,0.5,1
//
// Each output is written atomically (temp file, fsync, rename). Every input check is made
// before the first output is written, so a refused run leaves no output behind and an
// existing output untouched. Checkpoints: llm.c's model file (llmc/checkpoint.h), version 3
// (fp32) or 5 (bf16, widened to fp32 on reading); the two inputs may differ in version.
#include "llmc/utils.h"
#include "llmc/args.h"
#include "llmc/checkpoint.h"

static const char* usage_text =
"usage: interpolate THETA0.bin THETA1.bin -o OUT.bin --alpha A [--out-version 3|5]\n"
"       interpolate THETA0.bin THETA1.bin -o 'PATTERN_{alpha}.bin' --alphas A1,A2,... [--out-version 3|5]\n"
"Writes theta(alpha) = (1 - alpha) * theta_0 + alpha * theta_1 for two checkpoints of the same\n"
"shape (L, C, NH, V, Vp, maxT): alpha 0 is THETA0, alpha 1 is THETA1, bitwise. THETA1 may be a\n"
"LoRA or BitFit adapter merged into THETA0 (train_gpt --merge-out): alpha then scales the\n"
"adapter's update. Computed in double, stored as fp32 (version 3) unless --out-version 5 (bf16,\n"
"rounded to nearest even). An alpha outside [0, 1] extrapolates (task arithmetic does this on\n"
"purpose): allowed, with a warning. With --alphas, '{alpha}' in -o is replaced by each alpha\n"
"as %g prints it (0.1 -> theta_0.1.bin). Inputs may be fp32 or bf16 files.\n"
"Exit status: 0 ok; 1 on bad usage or input (nothing is written then).";

#define MAX_ALPHAS 1024

// "{alpha}" in pattern replaced by alpha (%g); 0, or -1 with err when the result is too long
static int expand_output(const char* pattern, double alpha, char* out, size_t n, char* err) {
    const char* at = strstr(pattern, "{alpha}");
    int w;
    if (at == NULL) { w = snprintf(out, n, "%s", pattern); }
    else { w = snprintf(out, n, "%.*s%g%s", (int)(at - pattern), pattern, alpha, at + strlen("{alpha}")); }
    if (w < 0 || (size_t)w >= n) { return set_err(err, "-o %s: the output path is too long", pattern); }
    return 0;
}

// "0,0.25,1" -> alphas; 0, or -1 with err naming the flag and the bad item
static int parse_alpha_list(const char* text, double* alphas, int* n, char* err) {
    *n = 0;
    const char* p = text;
    while (1) {
        const char* comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        char item[64];
        if (len == 0) { return set_err(err, "--alphas %s: empty item (expected numbers separated by commas)", text); }
        if (len >= sizeof(item)) { return set_err(err, "--alphas: item '%.*s...' is too long", 20, p); }
        memcpy(item, p, len);
        item[len] = '\0';
        if (*n >= MAX_ALPHAS) { return set_err(err, "--alphas: more than %d values", MAX_ALPHAS); }
        if (parse_number("--alphas", item, -1e300, 1e300, &alphas[*n], err) != 0) { return -1; }
        (*n)++;
        if (comma == NULL) { break; }
        p = comma + 1;
    }
    return 0;
}

// The first non-finite parameter of a checkpoint, named by tensor and index: interpolating a
// diverged model gives NaNs everywhere it touches, and the user should hear which file it was.
static int check_finite(const char* path, const GPT2Config* cfg, const float* p, char* err) {
    size_t sizes[NUM_PARAMETER_TENSORS];
    gpt2_parameter_sizes(sizes, cfg);
    size_t off = 0;
    for (int t = 0; t < NUM_PARAMETER_TENSORS; t++) {
        for (size_t i = 0; i < sizes[t]; i++) {
            if (!isfinite(p[off + i])) {
                return set_err(err, "%s: parameter %s[%zu] is %g: the checkpoint holds non-finite values (a diverged run?)",
                               path, PARAMETER_NAMES[t], i, p[off + i]);
            }
        }
        off += sizes[t];
    }
    return 0;
}

// Names every field in which the two shapes differ; 0 if none.
static int compare_configs(const char* a, const GPT2Config* ca, const char* b, const GPT2Config* cb, char* err) {
    const char* names[6] = { "L", "C", "NH", "V", "Vp", "maxT" };
    int va[6] = { ca->num_layers, ca->channels, ca->num_heads, ca->vocab_size, ca->padded_vocab_size, ca->max_seq_len };
    int vb[6] = { cb->num_layers, cb->channels, cb->num_heads, cb->vocab_size, cb->padded_vocab_size, cb->max_seq_len };
    char diff[256] = "";
    size_t used = 0;
    for (int i = 0; i < 6; i++) {
        if (va[i] != vb[i] && used < sizeof(diff)) {
            used += snprintf(diff + used, sizeof(diff) - used, "%s%s %d vs %d", used ? ", " : "", names[i], va[i], vb[i]);
        }
    }
    if (used == 0) { return 0; }
    return set_err(err, "%s and %s are checkpoints of different models (%s): interpolation needs two checkpoints of the same shape",
                   a, b, diff);
}

int main(int argc, char** argv) {
    const char* out_arg = NULL;
    const char* alphas_arg = NULL;
    const char* alpha_arg = NULL;
    int out_version = 3;
    ArgSpec specs[4] = {
        {"-o", "--output", ARG_STRING, &out_arg, 0, 0, "output checkpoint; with --alphas, a path containing {alpha}"},
        {NULL, "--alpha", ARG_STRING, &alpha_arg, 0, 0, "the mixing coefficient: 0 = THETA0, 1 = THETA1"},
        {NULL, "--alphas", ARG_STRING, &alphas_arg, 0, 0, "several coefficients, comma-separated (one output each)"},
        {NULL, "--out-version", ARG_INT, &out_version, 3, 5, "3: fp32 parameters, 5: bf16"},
    };
    const int nspecs = 4;
    const char* pos[2];
    int npos = 0;
    char err[LLMC_ERRLEN];
    int rc = args_parse_positional(argc, argv, specs, nspecs, pos, 2, &npos, 0, err);
    if (rc == 1) { args_print_help(stdout, usage_text, specs, nspecs); return 0; }
    if (rc != 0) { die("%s", err); }
    if (npos != 2) { die("expected THETA0.bin THETA1.bin, got %d checkpoint argument%s (see --help)", npos, npos == 1 ? "" : "s"); }
    if (out_arg == NULL) { die("-o OUT.bin is required (see --help)"); }
    if (out_version != 3 && out_version != 5) { die("--out-version %d: must be 3 (fp32) or 5 (bf16)", out_version); }
    if ((alpha_arg != NULL) == (alphas_arg != NULL)) { die("give --alpha A or --alphas A1,A2,..., exactly one of them"); }

    static double alphas[MAX_ALPHAS];
    int nalpha = 0;
    if (alpha_arg != NULL) {
        if (parse_number("--alpha", alpha_arg, -1e300, 1e300, &alphas[0], err) != 0) { die("%s", err); }
        nalpha = 1;
    } else if (parse_alpha_list(alphas_arg, alphas, &nalpha, err) != 0) { die("%s", err); }
    if (nalpha > 1 && strstr(out_arg, "{alpha}") == NULL) {
        die("-o %s: with several alphas the output path must contain {alpha} (e.g. -o 'theta_{alpha}.bin')", out_arg);
    }

    for (int i = 0; i < nalpha; i++) {
        if (alphas[i] < 0.0 || alphas[i] > 1.0) {
            fprintf(stderr, "warning: alpha %g is outside [0, 1]: this extrapolates along theta_1 - theta_0 (legitimate in task "
                    "arithmetic: alpha > 1 amplifies the fine-tuning, alpha < 0 subtracts it), but nothing says the result is a good model\n",
                    alphas[i]);
        }
    }

    // every output path, checked before any work: writable kind, distinct, not an input
    const char* th0 = pos[0];
    const char* th1 = pos[1];
    static char outs[MAX_ALPHAS][LLMC_PATH_MAX];
    for (int i = 0; i < nalpha; i++) {
        if (expand_output(out_arg, alphas[i], outs[i], LLMC_PATH_MAX, err) != 0) { die("%s", err); }
        if (check_output_path(outs[i], err) != 0) { die("%s", err); }
        for (int j = 0; j < i; j++) {
            if (strcmp(outs[i], outs[j]) == 0) {
                die("--alphas: %g and %g both name the output %s (an alpha given twice, or two that print alike with %%g)",
                    alphas[j], alphas[i], outs[i]);
            }
        }
        const char* ins[2] = { th0, th1 };
        for (int k = 0; k < 2; k++) {
            if (same_file(outs[i], ins[k])) {
                die("%s: is the same file as the input THETA%d %s; refusing to overwrite an input", outs[i], k, ins[k]);
            }
        }
    }

    GPT2Config c0, c1;
    float *p0 = NULL, *p1 = NULL;
    if (checkpoint_read(th0, &c0, &p0, err) != 0) { die("THETA0: %s", err); }
    if (checkpoint_read(th1, &c1, &p1, err) != 0) { die("THETA1: %s", err); }
    if (compare_configs(th0, &c0, th1, &c1, err) != 0) { die("%s", err); }
    if (check_finite(th0, &c0, p0, err) != 0) { die("THETA0: %s", err); }
    if (check_finite(th1, &c1, p1, err) != 0) { die("THETA1: %s", err); }
    size_t n = gpt2_num_parameters(&c0);
    int v0 = checkpoint_file_version(th0), v1 = checkpoint_file_version(th1);

    // What theta_1 - theta_0 is, per tensor: which tensors a merged adapter touched, and how far
    // the fine-tuning moved each one (relative L2 norm of the change).
    size_t sizes[NUM_PARAMETER_TENSORS];
    gpt2_parameter_sizes(sizes, &c0);
    printf("interpolate: L=%d C=%d NH=%d V=%d Vp=%d maxT=%d, %zu parameters; THETA0 %s (%s), THETA1 %s (%s)\n",
           c0.num_layers, c0.channels, c0.num_heads, c0.vocab_size, c0.padded_vocab_size, c0.max_seq_len, n,
           th0, v0 == 5 ? "bf16" : "fp32", th1, v1 == 5 ? "bf16" : "fp32");
    {
        char changed[1024] = "", same[512] = "";
        size_t uc = 0, us = 0, off = 0;
        double d2_all = 0.0, n2_all = 0.0;
        for (int t = 0; t < NUM_PARAMETER_TENSORS; t++) {
            double d2 = 0.0, n2 = 0.0;
            for (size_t i = 0; i < sizes[t]; i++) {
                double d = (double)p1[off + i] - (double)p0[off + i];
                d2 += d * d;
                n2 += (double)p0[off + i] * p0[off + i];
            }
            d2_all += d2;
            n2_all += n2;
            if (d2 > 0.0 && uc < sizeof(changed)) {
                uc += snprintf(changed + uc, sizeof(changed) - uc, " %s %.2e", PARAMETER_NAMES[t], n2 > 0.0 ? sqrt(d2 / n2) : sqrt(d2));
            } else if (d2 == 0.0 && us < sizeof(same)) {
                us += snprintf(same + us, sizeof(same) - us, " %s", PARAMETER_NAMES[t]);
            }
            off += sizes[t];
        }
        printf("theta_1 - theta_0: L2 norm %.6g (%.3e of |theta_0|)\n", sqrt(d2_all), n2_all > 0.0 ? sqrt(d2_all / n2_all) : 0.0);
        printf("  changed (relative L2):%s\n", uc ? changed : " none: the two checkpoints are equal");
        if (us) { printf("  unchanged:%s\n", same); }
    }
    flush_stdout_check();

    float* out = float_alloc_check(n, "interpolated parameters");
    // Between 0 and 1 the result lies between two finite floats and cannot overflow; an
    // extrapolating alpha can, so those are checked first: a refused run writes nothing.
    for (int i = 0; i < nalpha; i++) {
        double a = alphas[i];
        if (a >= 0.0 && a <= 1.0) { continue; }
        long bad = -1;
        #pragma omp parallel for reduction(max:bad)
        for (long k = 0; k < (long)n; k++) {
            float v = (float)((1.0 - a) * (double)p0[k] + a * (double)p1[k]);
            if (!isfinite(v) && k > bad) { bad = k; }
        }
        if (bad >= 0) { die("alpha %g: the result overflows fp32 (at parameter %ld); nothing written", a, bad); }
    }
    for (int i = 0; i < nalpha; i++) {
        double a = alphas[i];
        // (1 - a) * x0 + a * x1 rather than x0 + a * (x1 - x0): the endpoints come back bitwise
        // (a = 0: 1 * x0 + 0 * x1 = x0 exactly; a = 1 likewise x1). In between, double's rounding
        // errors (about 1e-16 relative) sit far below the final rounding to fp32 (6e-8), so the
        // stored value is the fp32 rounding of the exact mix except where that mix lies within
        // about 1e-9 ulp of a rounding tie (a few in 10^4 values of a real pair; either neighbour
        // is then as good).
        #pragma omp parallel for
        for (long k = 0; k < (long)n; k++) {
            out[k] = (float)((1.0 - a) * (double)p0[k] + a * (double)p1[k]);
        }
        checkpoint_write(outs[i], &c0, out, out_version);
        printf("wrote %s: alpha %g, %s\n", outs[i], a, out_version == 5 ? "bf16 (version 5)" : "fp32 (version 3)");
        flush_stdout_check();
    }
    free(out);
    free(p0);
    free(p1);
    return 0;
}
