// Text generation from any of our checkpoints, with a KV cache (llmc/infer.h): the prompt in
// one forward, then one position per new token.
//
//   generate -e MODEL.bin [--prompt TEXT | --prompt-file FILE|-] [decoding options]
//
// MODEL: an llm.c checkpoint (fp32 or bf16), a quantized one (dev/infer/quantize), or a base
// with --peft-init ADAPTER.peft (LoRA and BitFit are merged into the base on load). --quant
// int8|int4 quantizes an fp32 model on load instead.
// Prompts: --prompt, or one per line of --prompt-file (- is standard input; a literal \n in
// a line stands for a newline). No prompt: generation starts from end-of-text alone. --chat
// wraps each prompt in the SFT template of llmc/chat.h (EOT, "### User:" ... "### Assistant:").
// Decoding (llmc/sampler.h, llmc/beam.h; transformers' conventions): --greedy, --temperature,
// --top-k, --top-p, --repetition-penalty, or --beams N with --length-penalty and
// --early-stopping true|false|never. Generation stops at end-of-text, at --stop STRING (the
// text up to it is kept), or after -n tokens. --batch N decodes N prompts side by side
// (sampling and greedy). Output: the text, streamed as it comes for one prompt at a time
// (--format text), or one JSON line per prompt (--format jsonl: ids, text, stop reason,
// timings). Timing goes to standard error: prompt tokens, time to first token, tokens/s.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "llmc/utils.h"
#include "llmc/args.h"
#include "llmc/checkpoint.h"
#include "llmc/peft.h"
#include "llmc/quant.h"
#include "llmc/infer.h"
#include "llmc/sampler.h"
#include "llmc/beam.h"
#include "llmc/rand.h"
#include "llmc/bpe.h"
#include "llmc/chat.h"
#include "dev/data/doc_reader.h"
#include "dev/data/json_text.h"

static const char* usage_text =
"usage: generate -e MODEL.bin [--prompt TEXT | --prompt-file FILE|-] [options]\n"
"Generates text with a KV cache. MODEL is an llm.c checkpoint (fp32/bf16), a quantized checkpoint\n"
"(dev/infer/quantize), or a base with --peft-init (LoRA/BitFit merged on load). One prompt per line\n"
"of --prompt-file (- = stdin; \\n in a line is a newline). Decoding follows Hugging Face transformers'\n"
"rules: repetition penalty, temperature, top-k, top-p; greedy; beam search. Timing on stderr.\n"
"Vocabulary: GPT-2 from ../shared/data/gpt2, or --encoder/--merges, or --tiktoken.";

enum { STOP_EOT, STOP_STRING, STOP_LENGTH };
static const char* const STOP_NAMES[3] = { "eot", "stop", "length" };

typedef struct {
    BpeIds prompt;        // tokens
    BpeIds out;           // generated tokens (the EOT excluded)
    BpeBytes text;        // decoded generated text (cut at the stop string)
    int stop;
    double t_first, t_end;  // seconds from this prompt's start: first token, last token
    double score;         // beam search: the hypothesis' score
    BpeBytes hyps;        // beam search, --num-return-sequences > 1: JSON of the ranked hypotheses
} Job;

// "\n" in a line of a prompt file is a newline (one prompt per line, multi-line prompts still fit)
static void unescape_newlines(char* s) {
    char* w = s;
    for (char* r = s; *r; r++) {
        if (r[0] == '\\' && r[1] == 'n') { *w++ = '\n'; r++; }
        else { *w++ = *r; }
    }
    *w = '\0';
}

static char** read_prompts(const char* path, int* count) {
    FILE* f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (f == NULL) { die("--prompt-file %s: cannot open", path); }
    char** list = NULL;
    int n = 0, cap = 0;
    char* line = NULL;
    size_t lcap = 0;
    ssize_t len;
    while ((len = getline(&line, &lcap, f)) >= 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) { line[--len] = '\0'; }
        if (len == 0) { continue; }
        if (n == cap) { cap = cap ? 2 * cap : 16; list = (char**)realloc(list, (size_t)cap * sizeof(char*)); if (!list) { die("out of memory"); } }
        unescape_newlines(line);
        list[n++] = strdup(line);
    }
    free(line);
    if (f != stdin) { fclose(f); }
    if (n == 0) { die("--prompt-file %s: no prompt (blank lines are skipped)", path); }
    *count = n;
    return list;
}

// Decoded bytes of ids, appended to out.
static void append_decoded(const BPE* bpe, const int* ids, size_t n, BpeBytes* out) {
    for (size_t i = 0; i < n; i++) {
        int len;
        const unsigned char* b = bpe_token_bytes(bpe, ids[i], &len);
        if (b != NULL) { bpe_bytes_append(out, b, (size_t)len); }
    }
}

// the first occurrence of stop in the text, or -1
static long find_stop(const BpeBytes* text, const char* stop) {
    size_t k = strlen(stop);
    if (stop == NULL || k == 0 || text->len < k) { return -1; }
    for (size_t i = 0; i + k <= text->len; i++) { if (memcmp(text->data + i, stop, k) == 0) { return (long)i; } }
    return -1;
}

// ----------------------------------------------------------------------------
// Where the forward runs: the CPU (llmc/infer.h's InferState, any weights), or, in the CUDA
// build (dev/infer/generate.cu), the GPU (InferCU: fp32 weights held as floatX, int8/int4
// matrices as they are). Decoding
// stays on the host either way: it reads each row's logits from engine_logits.

typedef struct {
    InferState cpu;
#ifdef __CUDACC__
    InferCU gpu;
#endif
    int on_gpu;
} Engine;

static void engine_init(Engine* e, int on_gpu, const QuantModel* model, int rows, int cap) {
    memset(e, 0, sizeof(*e));
    e->on_gpu = on_gpu;
#ifdef __CUDACC__
    if (on_gpu) { infer_cu_init(&e->gpu, model, rows, cap, 512); return; }
#endif
    infer_init(&e->cpu, model, rows, cap, 512);
}

static float* engine_logits(Engine* e) {
#ifdef __CUDACC__
    if (e->on_gpu) { return e->gpu.logits; }
#endif
    return e->cpu.logits;
}

static void engine_reset(Engine* e, int row) {
#ifdef __CUDACC__
    if (e->on_gpu) { infer_cu_reset(&e->gpu, row); return; }
#endif
    infer_reset(&e->cpu, row);
}

static void engine_prefill(Engine* e, int row, const int* tokens, int n) {
#ifdef __CUDACC__
    if (e->on_gpu) { infer_cu_prefill(&e->gpu, row, tokens, n); return; }
#endif
    infer_prefill(&e->cpu, row, tokens, n);
}

// one new token for each of rows[0..nrows)
static void engine_step(Engine* e, const int* rows, int nrows, const int* tokens) {
#ifdef __CUDACC__
    if (e->on_gpu) { infer_cu_forward(&e->gpu, rows, nrows, tokens, 1); return; }
#endif
    infer_forward(&e->cpu, rows, nrows, tokens, 1, NULL);
}

static void engine_reorder(Engine* e, const int* src, int nb) {
#ifdef __CUDACC__
    if (e->on_gpu) { infer_cu_reorder(&e->gpu, src, nb); return; }
#endif
    infer_reorder(&e->cpu, src, nb);
}

static void engine_free(Engine* e) {
#ifdef __CUDACC__
    if (e->on_gpu) { infer_cu_free(&e->gpu); return; }
#endif
    infer_free(&e->cpu);
}

int main(int argc, char** argv) {
    char vocab_dir[PATH_MAX], enc_default[PATH_MAX + 32], merges_default[PATH_MAX + 32], err[LLMC_ERRLEN];
    doc_default_vocab_dir(vocab_dir, sizeof(vocab_dir));
    snprintf(enc_default, sizeof(enc_default), "%s/encoder.json", vocab_dir);
    snprintf(merges_default, sizeof(merges_default), "%s/vocab.bpe", vocab_dir);
    const char *model_path = NULL, *peft_path = NULL, *prompt = NULL, *prompt_file = NULL, *stop = NULL;
    const char *encoder = NULL, *merges = NULL, *tiktoken = NULL, *quant = "none", *head = "fp32", *format = "text";
    const char* early = "false";
#ifdef __CUDACC__
    const char* device = "gpu";
#else
    const char* device = "cpu";
#endif
    int max_new = 128, top_k = 0, beams = 0, batch = 1, greedy = 0, chat = 0, group = 32, quiet = 0, num_return = 1;
    int ignore_eot = 0, max_prompt = 0;
    float temperature = 1.0f, top_p = 1.0f, rep = 1.0f, length_penalty = 1.0f;
    long long seed = 1337;
    ArgSpec specs[] = {
        {"-e", "--model", ARG_STRING, &model_path, 0, 0, "checkpoint: llm.c (fp32/bf16) or quantized"},
        {NULL, "--peft-init", ARG_STRING, &peft_path, 0, 0, "LoRA or BitFit adapter (.peft) merged into the base on load"},
        {NULL, "--prompt", ARG_STRING, &prompt, 0, 0, "the prompt text"},
        {NULL, "--prompt-file", ARG_STRING, &prompt_file, 0, 0, "one prompt per line (- = stdin; \\n = newline)"},
        {NULL, "--chat", ARG_FLAG, &chat, 0, 0, "wrap each prompt in the SFT chat template (llmc/chat.h)"},
        {NULL, "--max-prompt-tokens", ARG_INT, &max_prompt, 1, 1 << 20, "keep only the last N tokens of a longer prompt (default: all)"},
        {"-n", "--max-new-tokens", ARG_INT, &max_new, 1, 1 << 20, "at most N new tokens (default 128)"},
        {NULL, "--greedy", ARG_FLAG, &greedy, 0, 0, "always the most likely token (same as --temperature 0)"},
        {NULL, "--temperature", ARG_FLOAT, &temperature, 0, 100, "sampling temperature (default 1; 0 = greedy)"},
        {NULL, "--top-k", ARG_INT, &top_k, 0, 1 << 30, "keep the k most likely tokens (default 0: all)"},
        {NULL, "--top-p", ARG_FLOAT, &top_p, 1e-6, 1, "nucleus: keep the most likely tokens up to mass p (default 1: all)"},
        {NULL, "--repetition-penalty", ARG_FLOAT, &rep, 1e-3, 100, "divide positive / multiply negative logits of seen tokens (default 1: off)"},
        {NULL, "--beams", ARG_INT, &beams, 0, 256, "beam search with N beams (default 0: off)"},
        {NULL, "--length-penalty", ARG_FLOAT, &length_penalty, -10, 10, "beam score = sum logprob / length^p (default 1)"},
        {NULL, "--early-stopping", ARG_STRING, &early, 0, 0, "beam search: true | false (default) | never"},
        {NULL, "--num-return-sequences", ARG_INT, &num_return, 1, 256, "beam search: list the N best hypotheses in --format jsonl (default 1)"},
        {NULL, "--stop", ARG_STRING, &stop, 0, 0, "stop when the text contains STRING (kept up to it)"},
        {NULL, "--ignore-eot", ARG_FLAG, &ignore_eot, 0, 0, "end-of-text is a token like any other (benchmarks: always -n tokens)"},
        {NULL, "--seed", ARG_LONG, &seed, 0, 9.2e18, "sampling seed (default 1337)"},
        {NULL, "--batch", ARG_INT, &batch, 1, 1024, "prompts decoded side by side (default 1)"},
        {NULL, "--quant", ARG_STRING, &quant, 0, 0, "quantize on load: none (default) | int8 | int4"},
        {NULL, "--group", ARG_INT, &group, 1, 1 << 20, "int4 values per scale (default 32)"},
        {NULL, "--head", ARG_STRING, &head, 0, 0, "embedding / LM head when quantizing: fp32 (default) | quant"},
        {NULL, "--format", ARG_STRING, &format, 0, 0, "text (default; streamed) | jsonl (one line per prompt)"},
        {NULL, "--device", ARG_STRING, &device, 0, 0, "cpu, or gpu (the CUDA build's default)"},
        {"-q", "--quiet", ARG_FLAG, &quiet, 0, 0, "no timing lines on stderr"},
        {NULL, "--encoder", ARG_STRING, &encoder, 0, 0, "GPT-2 encoder.json (default: ../shared/data/gpt2)"},
        {NULL, "--merges", ARG_STRING, &merges, 0, 0, "GPT-2 vocab.bpe"},
        {NULL, "--tiktoken", ARG_STRING, &tiktoken, 0, 0, "tiktoken rank file instead (e.g. from bpe_train)"},
    };
    int nspecs = (int)(sizeof(specs) / sizeof(specs[0]));
    int rc = args_parse(argc, argv, specs, nspecs, err);
    if (rc == 1) { args_print_help(stdout, usage_text, specs, nspecs); return 0; }
    if (rc != 0) { die("%s", err); }
    if (model_path == NULL) { die("-e (--model): a checkpoint is required (see --help)"); }
    if (prompt != NULL && prompt_file != NULL) { die("--prompt and --prompt-file: give one"); }
    if (tiktoken != NULL && (encoder != NULL || merges != NULL)) { die("--tiktoken and --encoder/--merges are two vocabularies; give one"); }
    int early_stopping = strcmp(early, "true") == 0 ? 1 : strcmp(early, "false") == 0 ? 0 : strcmp(early, "never") == 0 ? 2 : -1;
    if (early_stopping < 0) { die("--early-stopping %s: expected true, false or never", early); }
    int kind = strcmp(quant, "none") == 0 ? QUANT_F32 : strcmp(quant, "int8") == 0 ? QUANT_INT8 : strcmp(quant, "int4") == 0 ? QUANT_INT4 : -1;
    if (kind < 0) { die("--quant %s: expected none, int8 or int4", quant); }
    int head_quant = strcmp(head, "quant") == 0 ? 1 : strcmp(head, "fp32") == 0 ? 0 : -1;
    if (head_quant < 0) { die("--head %s: expected fp32 or quant", head); }
    int jsonl = strcmp(format, "jsonl") == 0;
    if (!jsonl && strcmp(format, "text") != 0) { die("--format %s: expected text or jsonl", format); }
    if (greedy) { temperature = 0.0f; }
    if (beams > 0 && ignore_eot) { die("--ignore-eot: beam search closes hypotheses at end-of-text; sampling and greedy only"); }
    if (beams > 0 && (temperature > 0.0f && !greedy) && (top_k > 0 || top_p < 1.0f)) {
        die("--beams: beam search is deterministic; --top-k/--top-p apply to sampling only");
    }
    if (num_return > 1 && (beams < num_return || !jsonl)) {
        die("--num-return-sequences %d: needs --beams >= %d and --format jsonl", num_return, num_return);
    }
    int on_gpu = strcmp(device, "gpu") == 0;
    if (!on_gpu && strcmp(device, "cpu") != 0) { die("--device %s: expected cpu or gpu", device); }
#ifndef __CUDACC__
    if (on_gpu) { die("--device gpu: this is the CPU build; the GPU one is dev/infer/generate_cu (make dev/infer/generate_cu)"); }
#endif
    if (encoder == NULL) { encoder = enc_default; }
    if (merges == NULL) { merges = merges_default; }

    // the model
    QuantModel model;
    float* params = NULL;
    GPT2Config cfg;
    if (quant_file_is_quantized(model_path)) {
        if (kind != QUANT_F32 || peft_path != NULL) { die("-e %s: already quantized: --quant and --peft-init need an fp32 model", model_path); }
        if (quant_model_read(model_path, &model, err) != 0) { die("%s", err); }
        cfg = model.config;
    } else {
        if (peft_file_is_adapter(model_path)) { die("-e %s: is a PEFT adapter; give the base with -e and the adapter with --peft-init", model_path); }
        if (checkpoint_read(model_path, &cfg, &params, err) != 0) { die("%s", err); }
        if (peft_path != NULL) {
            PeftLayout lay;
            float* peft;
            if (peft_file_read(peft_path, &cfg, peft_hash_floats(params, gpt2_num_parameters(&cfg)), &lay, &peft, err) != 0) { die("--peft-init: %s", err); }
            if (lay.pc.method != PEFT_LORA && lay.pc.method != PEFT_BITFIT) {
                die("--peft-init %s: a %s adapter adds computation the generator does not run; LoRA and BitFit merge", peft_path,
                    PEFT_METHOD_NAMES[lay.pc.method]);
            }
            peft_merge(params, peft, &lay, &cfg);
            free(peft);
        }
        if (quant_model_from_params(&model, &cfg, params, kind, group, head_quant ? kind : QUANT_F32, err) != 0) { die("%s", err); }
    }
    int V = cfg.vocab_size, Vp = cfg.padded_vocab_size;

    // the vocabulary
    BPE bpe;
    rc = tiktoken ? bpe_load_tiktoken(&bpe, tiktoken, err) : bpe_load_gpt2(&bpe, encoder, merges, err);
    if (rc != 0) { die("%s", err); }
    if (bpe.vocab_size > V) { die("the vocabulary has %d tokens, the model %s %d: not its vocabulary", bpe.vocab_size, model_path, V); }
    int eot = bpe.eot;

    // the prompts, as tokens
    int nprompts = 1;
    char** texts = NULL;
    if (prompt_file != NULL) { texts = read_prompts(prompt_file, &nprompts); }
    Job* jobs = (Job*)calloc_check((size_t)nprompts, sizeof(Job), "prompts");
    BpeWork* work = bpe_work_new();
    ChatEncoder ce;
    chat_init(&ce, &bpe);
    int longest = 0;
    for (int i = 0; i < nprompts; i++) {
        const char* t = texts ? texts[i] : prompt;
        if (chat) { chat_prompt_ids(&ce, NULL, 0, (const unsigned char*)(t ? t : ""), t ? strlen(t) : 0, &jobs[i].prompt); }
        else if (t != NULL && t[0] != '\0') { bpe_encode(&bpe, work, (const unsigned char*)t, strlen(t), 1, &jobs[i].prompt); }
        if (jobs[i].prompt.len == 0) { bpe_ids_push(&jobs[i].prompt, eot); }  // nothing to continue: start a document
        if (max_prompt > 0 && (int)jobs[i].prompt.len > max_prompt) {
            size_t cut = jobs[i].prompt.len - (size_t)max_prompt;
            memmove(jobs[i].prompt.data, jobs[i].prompt.data + cut, (size_t)max_prompt * sizeof(int));
            jobs[i].prompt.len = (size_t)max_prompt;
        }
        if ((int)jobs[i].prompt.len > longest) { longest = (int)jobs[i].prompt.len; }
    }
    chat_free(&ce);
    if (longest >= cfg.max_seq_len) { die("a prompt of %d tokens leaves no room in the model's context of %d", longest, cfg.max_seq_len); }
    int cap = longest + max_new < cfg.max_seq_len ? longest + max_new : cfg.max_seq_len;

    int rows = beams > 0 ? beams : (batch < nprompts ? batch : nprompts);
    Engine st;
    engine_init(&st, on_gpu, &model, rows, cap);
    SamplerConfig sc = { temperature, top_k, top_p, rep };
    Rng rng;
    rng_init(&rng, (uint64_t)seed);
    float* probs = float_alloc_check((size_t)V, "probabilities");
    unsigned char* seen = (unsigned char*)malloc_check((size_t)V, "penalty scratch");
    SamplerItem* items = (SamplerItem*)malloc_check((size_t)V * sizeof(SamplerItem), "sampler scratch");
    int* history = (int*)malloc_check((size_t)(cap + 1) * sizeof(int), "history");
    int* next = (int*)malloc_check((size_t)rows * sizeof(int), "tokens");
    int* live = (int*)malloc_check((size_t)rows * sizeof(int), "rows");
    int* src = (int*)malloc_check((size_t)rows * sizeof(int), "beam sources");
    int stream = !jsonl && rows == 1 && beams == 0;
    double total_tokens = 0.0, total_after_first = 0.0, total_decode = 0.0;
    long total_prompt = 0;
    double t_all = now_seconds();
    if (!quiet) {
        // what one decode step must read: every matmul weight once (and the KV cache so far)
        double wbytes = (double)quant_matrix_file_bytes(model.wte.kind, model.wte.rows, model.wte.cols, model.wte.group);
        for (int l = 0; l < cfg.num_layers; l++) {
            const QuantMatrix* ms[4] = { &model.qkvw[l], &model.attprojw[l], &model.fcw[l], &model.fcprojw[l] };
            for (int k = 0; k < 4; k++) { wbytes += (double)quant_matrix_file_bytes(ms[k]->kind, ms[k]->rows, ms[k]->cols, ms[k]->group); }
        }
        fprintf(stderr, "generate: %s: L=%d C=%d NH=%d V=%d, weights %s%s, %d prompt(s), %s\n", model_path, cfg.num_layers,
                cfg.channels, cfg.num_heads, V, kind == QUANT_F32 && model.kind == QUANT_F32 ? "fp32" : model.kind == QUANT_INT8 ? "int8" : "int4",
                model.head_kind != QUANT_F32 ? " (head too)" : "", nprompts,
                beams > 0 ? "beam search" : temperature <= 0.0f ? "greedy" : "sampling");
        fprintf(stderr, "generate: weights read per token: %.2f MB (matmul weights and the LM head), KV cache %.3f MB per position\n",
                wbytes / 1e6, 2.0 * cfg.num_layers * cfg.channels * sizeof(float) / 1e6);
    }

    int stride = beams > 0 ? 1 : rows;
    for (int first = 0; first < nprompts; first += stride) {
        int nr = beams > 0 ? 1 : (nprompts - first < rows ? nprompts - first : rows);
        double t0 = now_seconds(), t_first = 0.0;
        long chunk_new = 0;
        if (beams > 0) {
            // one prompt, `beams` rows: the prompt once, then its cache copied to every beam
            Job* j = &jobs[first];
            for (int r = 0; r < rows; r++) { engine_reset(&st, r); }
            engine_prefill(&st, 0, j->prompt.data, (int)j->prompt.len);
            for (int r = 0; r < rows; r++) { src[r] = 0; }
            engine_reorder(&st, src, rows);
            total_prompt += (long)j->prompt.len;
            BeamSearch bs;
            int budget = cap - (int)j->prompt.len < max_new ? cap - (int)j->prompt.len : max_new;
            beam_init(&bs, beams, V, budget, eot, length_penalty, early_stopping, rep, j->prompt.data, (int)j->prompt.len);
            for (int step = 0;; step++) {
                int over = beam_step(&bs, engine_logits(&st), Vp, src, next);
                if (step == 0) { j->t_first = t_first = now_seconds() - t0; }
                if (over) { break; }
                engine_reorder(&st, src, rows);
                for (int r = 0; r < rows; r++) { live[r] = r; }
                engine_step(&st, live, rows, next);
            }
            const BeamHyp* best = beam_best(&bs);
            if (num_return > 1) {
                int order[256];
                int nh = beam_ranked(&bs, order);
                buf_printf(&j->hyps, "[");
                for (int h = 0; h < nh && h < num_return; h++) {
                    const BeamHyp* y = &bs.hyps[order[h]];
                    buf_printf(&j->hyps, "%s{\"score\": %.9g, \"eot\": %d, \"tokens\": [", h ? ", " : "", y->score, y->eot);
                    for (int k = 0; k < y->len; k++) { buf_printf(&j->hyps, "%s%d", k ? ", " : "", y->tokens[k]); }
                    buf_printf(&j->hyps, "]}");
                }
                buf_printf(&j->hyps, "]");
            }
            for (int k = 0; k < best->len; k++) { bpe_ids_push(&j->out, best->tokens[k]); }
            j->stop = best->eot ? STOP_EOT : STOP_LENGTH;
            j->score = best->score;
            append_decoded(&bpe, j->out.data, j->out.len, &j->text);
            long at = stop ? find_stop(&j->text, stop) : -1;
            if (at >= 0) { j->text.len = (size_t)at; j->stop = STOP_STRING; }
            j->t_end = now_seconds() - t0;
            chunk_new = bs.step;  // positions of the sequence (each step extends every beam by one)
            beam_free(&bs);
        } else {
            for (int r = 0; r < nr; r++) {
                engine_reset(&st, r);
                Job* j = &jobs[first + r];
                engine_prefill(&st, r, j->prompt.data, (int)j->prompt.len);
                total_prompt += (long)j->prompt.len;
            }
            int nlive = nr;
            for (int r = 0; r < nr; r++) { live[r] = r; }
            for (int step = 0; nlive > 0; step++) {
                int w = 0;
                for (int i = 0; i < nlive; i++) {
                    int r = live[i];
                    Job* j = &jobs[first + r];
                    memcpy(history, j->prompt.data, j->prompt.len * sizeof(int));
                    memcpy(history + j->prompt.len, j->out.data, j->out.len * sizeof(int));
                    float coin = rng_f32(&rng);
                    int tok = sampler_next(engine_logits(&st) + (size_t)r * Vp, V, &sc, history, (int)(j->prompt.len + j->out.len), coin, probs, seen, items);
                    if (step == 0) { j->t_first = t_first = now_seconds() - t0; }
                    int done = 0;
                    if (tok == eot && !ignore_eot) { j->stop = STOP_EOT; done = 1; }
                    else {
                        bpe_ids_push(&j->out, tok);
                        size_t before = j->text.len;
                        append_decoded(&bpe, &tok, 1, &j->text);
                        long at = stop ? find_stop(&j->text, stop) : -1;
                        if (at >= 0) { j->text.len = (size_t)at; j->stop = STOP_STRING; done = 1; }
                        if (stream && j->text.len > before) { fwrite(j->text.data + before, 1, j->text.len - before, stdout); fflush(stdout); }
                        if (!done && ((int)j->out.len >= max_new || (int)(j->prompt.len + j->out.len) >= cap)) { j->stop = STOP_LENGTH; done = 1; }
                    }
                    if (done) { j->t_end = now_seconds() - t0; }
                    else { live[w] = r; next[w] = tok; w++; }
                }
                nlive = w;
                if (nlive > 0) { engine_step(&st, live, nlive, next); }
            }
            for (int r = 0; r < nr; r++) {
                Job* j = &jobs[first + r];
                chunk_new += (long)j->out.len + (j->stop == STOP_EOT ? 1 : 0);
            }
        }
        // decoding speed counts what came after each row's first token (that one is the prompt's)
        total_tokens += (double)chunk_new;
        total_after_first += (double)(chunk_new - nr);
        total_decode += now_seconds() - t0 - t_first;
        // output
        for (int r = 0; r < nr; r++) {
            Job* j = &jobs[first + r];
            if (jsonl) {
                BpeBytes line = {0};
                buf_printf(&line, "{\"prompt\": %d, \"prompt_tokens\": %zu, \"tokens\": [", first + r, j->prompt.len);
                for (size_t k = 0; k < j->out.len; k++) { buf_printf(&line, "%s%d", k ? ", " : "", j->out.data[k]); }
                buf_printf(&line, "], \"text\": ");
                buf_json_bytes(&line, j->text.data, j->text.len);
                buf_printf(&line, ", \"stop\": \"%s\", \"ttft_ms\": %.2f, \"ms\": %.2f", STOP_NAMES[j->stop], 1e3 * j->t_first, 1e3 * j->t_end);
                if (beams > 0) { buf_printf(&line, ", \"score\": %.9g", j->score); }
                if (j->hyps.len > 0) { buf_printf(&line, ", \"hypotheses\": "); bpe_bytes_append(&line, j->hyps.data, j->hyps.len); }
                buf_printf(&line, "}\n");
                fwrite(line.data, 1, line.len, stdout);
                bpe_bytes_free(&line);
            } else {
                if (!stream) { fwrite(j->text.data, 1, j->text.len, stdout); }
                fputc('\n', stdout);
                if (nprompts > 1) { fputc('\n', stdout); }
            }
            if (!quiet) {
                fprintf(stderr, "prompt %d: %zu prompt tokens, %zu generated (%s), time to first token %.1f ms\n", first + r,
                        j->prompt.len, j->out.len, STOP_NAMES[j->stop], 1e3 * j->t_first);
            }
        }
        flush_stdout_check();
    }
    if (!quiet) {
        double elapsed = now_seconds() - t_all;
        fprintf(stderr, "generate: %ld prompt tokens, %.0f new tokens in %.2f s: %.1f tokens/s decoding (after the first token)\n",
                total_prompt, total_tokens, elapsed, total_decode > 0 ? total_after_first / total_decode : 0.0);
    }
    for (int i = 0; i < nprompts; i++) { bpe_ids_free(&jobs[i].prompt); bpe_ids_free(&jobs[i].out); bpe_bytes_free(&jobs[i].text); bpe_bytes_free(&jobs[i].hyps); if (texts) { free(texts[i]); } }
    free(texts); free(jobs); free(probs); free(seen); free(items); free(history); free(next); free(live); free(src);
    bpe_work_free(work);
    bpe_free(&bpe);
    engine_free(&st);
    quant_model_free(&model);
    free(params);
    return 0;
}
