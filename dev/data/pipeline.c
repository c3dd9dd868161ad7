// Corpus preparation pipeline: raw text / JSONL -> extraction -> quality filters -> exact
// dedup -> near dedup (MinHash-LSH) -> URL host filter -> PII masking -> GPT-2 BPE
// tokenization -> llm.c token shards with a train/val split, plus a per-stage report.
//
// How it runs (streaming, bounded memory):
//   - the main thread reads the input line by line and cuts it into batches of documents;
//   - N worker threads each take a whole batch and do everything that depends on one
//     document only: JSON parsing, the quality statistics, the dedup hash and MinHash
//     signature, the host verdict, PII masking, BPE encoding;
//   - a committer thread takes the finished batches strictly in input order and makes the
//     decisions that depend on earlier documents (exact and near dedup keep the first
//     occurrence), counts every stage and writes the shards. Because decisions and output
//     happen in input order, the output is byte-identical for any thread count.
//   At most 4 x threads batches are in memory at once, so memory is bounded by the batch
//   size, except for the dedup indexes: the exact-dedup set costs 16 bytes and the
//   near-dedup index about 4*K + 32*bands bytes (3 KB at the defaults) per kept document.
//   --near-max-docs caps the near-dedup index; documents after the cap are still checked
//   against it but are not added, and the report counts them.
//
// Usage: see --help (or print_usage below). Example:
//   ./pipeline --lang ja --report out/livedoor_report.json --out-prefix out/livedoor
//       ../shared/data/livedoor/livedoor_news.jsonl
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <time.h>
#include <sys/resource.h>
#include "llmc/utils.h"
#include "llmc/shard.h"
#include "llmc/signals.h"
#include "dev/data/pipeline_text.h"
#include "dev/data/pipeline_filters.h"
#include "llmc/bpe.h"
#include "dev/data/doc_reader.h"   // .json arrays, the shared path checks and default vocabulary

// ----------------------------------------------------------------------------
// configuration

enum { FMT_AUTO = 0, FMT_JSONL, FMT_TEXT, FMT_LINES, FMT_JSON };  // FMT_JSON: an array of objects, each a JSONL-like record

typedef struct {
    int format;
    int japanese;
    int threads;
    int batch_docs;
    long batch_bytes;
    int quality;
    QualityConfig qc;
    int exact_dedup;
    int near_dedup;
    int shingle, bands, rows;
    double jaccard;
    long near_max_docs;
    const char* block_hosts;
    const char* allow_hosts;
    int allow_only;
    int pii;
    int tokenize;
    const char* tokenizer_dir;
    const char* out_prefix;
    double val_fraction;
    long shard_tokens;
    const char* out_jsonl;
    const char* rejects;
    const char* report;
    int quiet;
} Config;

// bad input kinds (counted in the extraction stage)
enum { BAD_NONE = 0, BAD_JSON, BAD_NOT_OBJECT, BAD_NO_TEXT, BAD_TEXT_NOT_STRING, BAD_EMPTY, BAD_NKINDS };
static const char* bad_name[BAD_NKINDS] = { "none", "malformed_json", "not_an_object", "missing_text", "text_not_string", "empty" };
#define BAD_KEEP_LINES 5

// ----------------------------------------------------------------------------
// documents and batches

typedef struct {
    int file;            // index into the input file list
    long line;           // 1-based line number (1 for whole-file documents)
    char* raw;           // the input record (owned until the worker is done with it)
    size_t raw_len;
    // set by the worker
    long raw_chars;
    int bad;             // BAD_*
    const char* bad_msg; // static string (JSON syntax error)
    long bad_utf8;       // invalid UTF-8 bytes / lone surrogates replaced by U+FFFD
    Buf text;            // extracted text (valid UTF-8)
    Buf id, url;
    long chars;
    int quality;         // QF_*
    uint64_t exact_hash;
    uint32_t* sig;
    int host_blocked;
    Buf masked;          // text after PII masking (empty if not computed)
    long masked_chars;
    long pii[PII_NKINDS];
    int* tokens;
    long ntok;
} Doc;

typedef struct {
    Doc* docs;
    int n;
    int state;   // 0 free/being read, 1 ready for work, 2 taken by a worker, 3 done
} Batch;

// ----------------------------------------------------------------------------
// the report

typedef struct {
    const char* name;
    int enabled;
    long docs_in, docs_out;
    long chars_in, chars_out;
} Stage;

enum { ST_EXTRACT = 0, ST_QUALITY, ST_EXACT, ST_NEAR, ST_HOST, ST_PII, ST_TOKENIZE, ST_N };

typedef struct {
    Stage st[ST_N];
    long records;
    long bytes_in;
    long bad[BAD_NKINDS];
    char bad_where[BAD_NKINDS][BAD_KEEP_LINES][160];
    long bad_utf8_docs, bad_utf8_chars;
    char bad_utf8_where[BAD_KEEP_LINES][160];
    long quality_reason[QF_NREASONS];
    long pii[PII_NKINDS];
    long pii_docs;
    long near_index_full;
    long host_no_url;
    long tokens_train, tokens_val, docs_train, docs_val;
    int shards_train, shards_val;
    double seconds;
    double cpu_seconds;  // user + system time of all threads
} Report;

// ----------------------------------------------------------------------------
// shared state

typedef struct {
    Config cfg;
    char** files;
    int nfiles;
    int* file_fmt;     // FMT_* of each input
    MinHashConfig mh;
    HostList block, allow;
#ifndef PIPELINE_NO_BPE
    BPE bpe;
#endif
    int eot;

    // batch ring: batch seq lives in slot seq % nslots
    Batch* slots;
    int nslots;
    long read_seq;     // batches handed out by the reader so far
    long work_seq;     // next batch a worker takes
    long commit_seq;   // next batch the committer takes
    int reading_done;
    pthread_mutex_t mu;
    pthread_cond_t cv;

    // committer state
    Report rep;
    HashCount exact_set;
    LshIndex lsh;
    uint16_t* shard_buf[2];   // 0 train, 1 val
    long shard_fill[2];
    int shard_count[2];
    long kept_docs;           // documents that reached the tokenization stage
    AtomicFile jsonl_out, rejects_out;
    int have_jsonl, have_rejects;
    Buf line_buf;
} Pipeline;

// ----------------------------------------------------------------------------
// worker: everything that depends on one document only

typedef struct {
    int32_t* cps;
    long cps_cap;
    int32_t* norm;
    JsonFields jf;
#ifndef PIPELINE_NO_BPE
    BpeWork* bw;
#endif
} WorkerScratch;

static void process_doc(Pipeline* P, WorkerScratch* ws, Doc* d) {
    const Config* cfg = &P->cfg;
    d->raw_chars = (long)utf8_count(d->raw, d->raw_len);
    int fmt = cfg->format;
    if (fmt == FMT_JSONL || fmt == FMT_JSON) {
        const char* msg = NULL;
        long bad = 0;
        int rc = json_parse_record(d->raw, d->raw_len, &ws->jf, &msg, &bad);
        if (d->raw_len == 0 || (rc != JSON_OK && strspn(d->raw, " \t\r") == d->raw_len)) {
            d->bad = BAD_EMPTY;
            d->bad_msg = "blank line";
            return;
        }
        if (rc == JSON_ERR_NOT_OBJECT) { d->bad = BAD_NOT_OBJECT; d->bad_msg = msg; return; }
        if (rc != JSON_OK) { d->bad = BAD_JSON; d->bad_msg = msg; return; }
        if (ws->jf.text_not_string) { d->bad = BAD_TEXT_NOT_STRING; d->bad_msg = "\"text\" is not a string"; return; }
        if (!ws->jf.has_text) { d->bad = BAD_NO_TEXT; d->bad_msg = "no \"text\" field"; return; }
        d->bad_utf8 = bad;
        buf_put(&d->text, ws->jf.text.data ? ws->jf.text.data : "", ws->jf.text.len);
        if (ws->jf.has_id) { buf_put(&d->id, ws->jf.id.data, ws->jf.id.len); }
        if (ws->jf.has_url) { buf_put(&d->url, ws->jf.url.data, ws->jf.url.len); }
    } else {
        d->bad_utf8 = utf8_repair(d->raw, d->raw_len, &d->text);
        if (fmt == FMT_TEXT) { buf_puts(&d->id, P->files[d->file]); }  // a whole file: its path names it
    }
    free(d->raw);
    d->raw = NULL;
    if (d->text.data == NULL) { buf_reserve(&d->text, 0); d->text.data[0] = '\0'; }

    // code points (the text is valid UTF-8 now)
    if ((long)d->text.len + 1 > ws->cps_cap) {
        ws->cps_cap = (long)d->text.len + 1;
        free(ws->cps);
        free(ws->norm);
        ws->cps = malloc_check(ws->cps_cap * sizeof(int32_t), "code points");
        ws->norm = malloc_check(ws->cps_cap * sizeof(int32_t), "normalized code points");
    }
    long n = utf8_to_cps(d->text.data, d->text.len, ws->cps);
    d->chars = n;
    long nonspace = 0;
    for (long i = 0; i < n && nonspace == 0; i++) { nonspace += !cp_is_space(ws->cps[i]); }
    if (nonspace == 0) { d->bad = BAD_EMPTY; d->bad_msg = "empty or white-space-only text"; return; }

    QualityStats qs;
    d->quality = cfg->quality ? quality_check(&cfg->qc, ws->cps, n, &qs) : QF_PASS;
    if (d->quality != QF_PASS) { return; }

    if (cfg->exact_dedup || cfg->near_dedup) {
        long m = normalize_cps(ws->cps, n, ws->norm);
        if (cfg->exact_dedup) { d->exact_hash = hash_cps(ws->norm, m); }
        if (cfg->near_dedup) {
            d->sig = malloc_check((size_t)P->mh.bands * P->mh.rows * sizeof(uint32_t), "minhash signature");
            minhash_signature(&P->mh, ws->norm, m, d->sig);
        }
    }

    if (P->block.n > 0 || P->allow.n > 0) {
        char host[256];
        url_host(d->url.data ? d->url.data : "", host, sizeof(host));
        int blocked = hostlist_match(&P->block, host) && !hostlist_match(&P->allow, host);
        if (cfg->allow_only && !hostlist_match(&P->allow, host)) { blocked = 1; }
        d->host_blocked = blocked;
        if (blocked) { return; }
    }

    // later stages work on the masked text; the dedup decision is made by the committer,
    // so a duplicate is masked and encoded for nothing (cheap compared to keeping order)
    if (cfg->pii) {
        pii_mask(ws->cps, n, &d->masked, d->pii);
        d->masked_chars = utf8_count(d->masked.data ? d->masked.data : "", d->masked.len);
    } else {
        buf_put(&d->masked, d->text.data, d->text.len);
        d->masked_chars = n;
    }
#ifndef PIPELINE_NO_BPE
    if (cfg->tokenize) {
        BpeIds ids = {0};
        bpe_ids_push(&ids, P->eot);  // <|endoftext|> before every document, like llm.c
        bpe_encode(&P->bpe, ws->bw, (const unsigned char*)d->masked.data, d->masked.len, 0, &ids);
        d->tokens = ids.data;
        d->ntok = (long)ids.len;
    }
#endif
}

static void doc_free(Doc* d) {
    free(d->raw);
    buf_free(&d->text);
    buf_free(&d->id);
    buf_free(&d->url);
    buf_free(&d->masked);
    free(d->sig);
    free(d->tokens);
    memset(d, 0, sizeof(*d));
}

static void* worker_main(void* arg) {
    Pipeline* P = arg;
    WorkerScratch ws;
    memset(&ws, 0, sizeof(ws));
#ifndef PIPELINE_NO_BPE
    if (P->cfg.tokenize) { ws.bw = bpe_work_new(); }
#endif
    while (1) {
        pthread_mutex_lock(&P->mu);
        while (P->work_seq >= P->read_seq && !P->reading_done) { pthread_cond_wait(&P->cv, &P->mu); }
        if (P->work_seq >= P->read_seq) { pthread_mutex_unlock(&P->mu); break; }
        long seq = P->work_seq++;
        Batch* b = &P->slots[seq % P->nslots];
        b->state = 2;
        pthread_mutex_unlock(&P->mu);

        for (int i = 0; i < b->n; i++) { process_doc(P, &ws, &b->docs[i]); }

        pthread_mutex_lock(&P->mu);
        b->state = 3;
        pthread_cond_broadcast(&P->cv);
        pthread_mutex_unlock(&P->mu);
    }
    free(ws.cps);
    free(ws.norm);
    json_fields_free(&ws.jf);
#ifndef PIPELINE_NO_BPE
    if (ws.bw) { bpe_work_free(ws.bw); }
#endif
    return NULL;
}

// ----------------------------------------------------------------------------
// committer: in-order decisions, counting and output

static void flush_shard(Pipeline* P, int split) {
    if (P->shard_fill[split] == 0) { return; }
    char path[1100];
    snprintf(path, sizeof(path), "%s_%s_%06d.bin", P->cfg.out_prefix, split ? "val" : "train", P->shard_count[split]);
    shard_write(path, P->shard_buf[split], P->shard_fill[split], 2, NULL);
    P->shard_count[split]++;
    P->shard_fill[split] = 0;
}

static void emit_tokens(Pipeline* P, int split, const int* tok, long n) {
    for (long i = 0; i < n; i++) {
        if (tok[i] < 0 || tok[i] > 65535) { die("token id %d does not fit a version-1 (uint16) shard", tok[i]); }
        P->shard_buf[split][P->shard_fill[split]++] = (uint16_t)tok[i];
        if (P->shard_fill[split] == P->cfg.shard_tokens) { flush_shard(P, split); }
    }
}

static void note_where(char where[][160], long count_before, const Pipeline* P, const Doc* d, const char* msg) {
    if (count_before >= BAD_KEEP_LINES) { return; }
    snprintf(where[count_before], 160, "%s:%ld%s%s", P->files[d->file], d->line, msg ? ": " : "", msg ? msg : "");
}

static void write_reject(Pipeline* P, const Doc* d, const char* stage, const char* reason) {
    if (!P->have_rejects) { return; }
    Buf* b = &P->line_buf;
    b->len = 0;
    buf_puts(b, "{\"file\": ");
    json_put_string(b, P->files[d->file], strlen(P->files[d->file]));
    char tmp[64];
    int k = snprintf(tmp, sizeof(tmp), ", \"line\": %ld, \"id\": ", d->line);
    buf_put(b, tmp, k);
    if (d->id.len) { json_put_string(b, d->id.data, d->id.len); } else { buf_puts(b, "null"); }
    buf_puts(b, ", \"stage\": ");
    json_put_string(b, stage, strlen(stage));
    buf_puts(b, ", \"reason\": ");
    json_put_string(b, reason, strlen(reason));
    buf_puts(b, "}\n");
    atomic_write(&P->rejects_out, b->data, 1, b->len);
}

static void commit_doc(Pipeline* P, Doc* d) {
    Report* R = &P->rep;
    Stage* S = R->st;
    R->records++;
    S[ST_EXTRACT].docs_in++;
    S[ST_EXTRACT].chars_in += d->raw_chars;
    if (d->bad != BAD_NONE) {
        note_where(R->bad_where[d->bad], R->bad[d->bad], P, d, d->bad_msg);
        R->bad[d->bad]++;
        write_reject(P, d, "extract", bad_name[d->bad]);
        return;
    }
    if (d->bad_utf8 > 0) {
        note_where(R->bad_utf8_where, R->bad_utf8_docs, P, d, "invalid UTF-8 replaced by U+FFFD");
        R->bad_utf8_docs++;
        R->bad_utf8_chars += d->bad_utf8;
    }
    S[ST_EXTRACT].docs_out++;
    S[ST_EXTRACT].chars_out += d->chars;

    S[ST_QUALITY].docs_in++;
    S[ST_QUALITY].chars_in += d->chars;
    R->quality_reason[d->quality]++;
    if (d->quality != QF_PASS) { write_reject(P, d, "quality", qf_reason_name[d->quality]); return; }
    S[ST_QUALITY].docs_out++;
    S[ST_QUALITY].chars_out += d->chars;

    S[ST_EXACT].docs_in++;
    S[ST_EXACT].chars_in += d->chars;
    if (P->cfg.exact_dedup && hc_add(&P->exact_set, d->exact_hash, 0) > 1) { write_reject(P, d, "exact_dedup", "duplicate"); return; }
    S[ST_EXACT].docs_out++;
    S[ST_EXACT].chars_out += d->chars;

    S[ST_NEAR].docs_in++;
    S[ST_NEAR].chars_in += d->chars;
    if (P->cfg.near_dedup) {
        double sim;
        if (lsh_query(&P->lsh, d->sig, &sim) >= 0) { write_reject(P, d, "near_dedup", "near_duplicate"); return; }
        if (lsh_insert(&P->lsh, d->sig) != 0) { R->near_index_full++; }
    }
    S[ST_NEAR].docs_out++;
    S[ST_NEAR].chars_out += d->chars;

    S[ST_HOST].docs_in++;
    S[ST_HOST].chars_in += d->chars;
    if (d->url.len == 0) { R->host_no_url++; }
    if (d->host_blocked) { write_reject(P, d, "host", "blocked_host"); return; }
    S[ST_HOST].docs_out++;
    S[ST_HOST].chars_out += d->chars;

    S[ST_PII].docs_in++;
    S[ST_PII].chars_in += d->chars;
    long any = 0;
    for (int k = 0; k < PII_NKINDS; k++) { R->pii[k] += d->pii[k]; any += d->pii[k]; }
    R->pii_docs += any > 0;
    S[ST_PII].docs_out++;
    S[ST_PII].chars_out += d->masked_chars;

    S[ST_TOKENIZE].docs_in++;
    S[ST_TOKENIZE].chars_in += d->masked_chars;
    // deterministic split: document k (0-based, among those that get here) goes to val when
    // floor((k+1) f) > floor(k f), which spreads exactly round-down(n f) val documents evenly
    double f = P->cfg.val_fraction;
    long k = P->kept_docs++;
    int split = (long)((k + 1) * f) > (long)(k * f);
    if (P->cfg.tokenize) {
        emit_tokens(P, split, d->tokens, d->ntok);
        if (split) { R->tokens_val += d->ntok; R->docs_val++; } else { R->tokens_train += d->ntok; R->docs_train++; }
    }
    S[ST_TOKENIZE].docs_out++;
    S[ST_TOKENIZE].chars_out += d->masked_chars;

    if (P->have_jsonl) {
        Buf* b = &P->line_buf;
        b->len = 0;
        buf_puts(b, "{\"id\": ");
        if (d->id.len) { json_put_string(b, d->id.data, d->id.len); } else { buf_puts(b, "null"); }
        if (d->url.len) { buf_puts(b, ", \"url\": "); json_put_string(b, d->url.data, d->url.len); }
        buf_puts(b, ", \"split\": ");
        buf_puts(b, split ? "\"val\"" : "\"train\"");
        buf_puts(b, ", \"text\": ");
        json_put_string(b, d->masked.data ? d->masked.data : "", d->masked.len);
        buf_puts(b, "}\n");
        atomic_write(&P->jsonl_out, b->data, 1, b->len);
    }
}

static void* committer_main(void* arg) {
    Pipeline* P = arg;
    while (1) {
        pthread_mutex_lock(&P->mu);
        while (!(P->commit_seq < P->read_seq && P->slots[P->commit_seq % P->nslots].state == 3) &&
               !(P->reading_done && P->commit_seq >= P->read_seq)) {
            pthread_cond_wait(&P->cv, &P->mu);
        }
        if (P->reading_done && P->commit_seq >= P->read_seq) { pthread_mutex_unlock(&P->mu); break; }
        Batch* b = &P->slots[P->commit_seq % P->nslots];
        pthread_mutex_unlock(&P->mu);

        for (int i = 0; i < b->n; i++) {
            commit_doc(P, &b->docs[i]);
            doc_free(&b->docs[i]);
        }

        pthread_mutex_lock(&P->mu);
        b->n = 0;
        b->state = 0;
        P->commit_seq++;
        pthread_cond_broadcast(&P->cv);
        pthread_mutex_unlock(&P->mu);
    }
    return NULL;
}

// ----------------------------------------------------------------------------
// SIGINT / SIGTERM: the reader stops, the threads drain, the temp files are removed

// the signal flag is llmc/signals.h's; the atexit handler below can reach the pipeline only
// through this one pointer
static Pipeline* g_pipeline = NULL;

// at exit (die() included): remove the temp files of outputs not yet committed
static void remove_open_temp_files(void) {
    Pipeline* P = g_pipeline;
    if (P == NULL) { return; }
    if (P->have_jsonl && P->jsonl_out.f != NULL) { atomic_abort(&P->jsonl_out); }
    if (P->have_rejects && P->rejects_out.f != NULL) { atomic_abort(&P->rejects_out); }
}

// ----------------------------------------------------------------------------
// reader (main thread)

// Returns the slot for the next batch, waiting while all slots are in flight.
static Batch* reader_get_slot(Pipeline* P) {
    pthread_mutex_lock(&P->mu);
    while (P->read_seq - P->commit_seq >= P->nslots) { pthread_cond_wait(&P->cv, &P->mu); }
    Batch* b = &P->slots[P->read_seq % P->nslots];
    pthread_mutex_unlock(&P->mu);
    b->n = 0;
    return b;
}

static void reader_submit(Pipeline* P, Batch* b) {
    pthread_mutex_lock(&P->mu);
    b->state = 1;
    P->read_seq++;
    pthread_cond_broadcast(&P->cv);
    pthread_mutex_unlock(&P->mu);
}

static int file_format(const Config* cfg, const char* path) {
    if (cfg->format != FMT_AUTO) { return cfg->format; }
    size_t n = strlen(path);
    if (n >= 6 && strcmp(path + n - 6, ".jsonl") == 0) { return FMT_JSONL; }
    if (n >= 5 && strcmp(path + n - 5, ".json") == 0) { return FMT_JSON; }
    return FMT_TEXT;
}

static void read_inputs(Pipeline* P) {
    Batch* b = reader_get_slot(P);
    long batch_bytes = 0;
    for (int fi = 0; fi < P->nfiles && !stop_signal; fi++) {
        const char* path = P->files[fi];
        char err[LLMC_ERRLEN];
        if (P->file_fmt[fi] == FMT_JSON) {
            // a JSON array: each element is one record (checked in main before any work)
            size_t n, *starts, *ends, m;
            long* lines;
            unsigned char* s = read_all(path, &n);
            if (doc_json_array_elements(path, s, n, &starts, &ends, &lines, &m, err) != 0) { die("%s", err); }
            P->rep.bytes_in += (long)n;
            for (size_t i = 0; i < m && !stop_signal; i++) {
                size_t len = ends[i] - starts[i];
                Doc* d = &b->docs[b->n++];
                memset(d, 0, sizeof(*d));
                d->file = fi;
                d->line = lines[i];
                d->raw = malloc_check(len + 1, "JSON element");
                memcpy(d->raw, s + starts[i], len);
                d->raw[len] = '\0';
                d->raw_len = len;
                batch_bytes += (long)len;
                if (b->n == P->cfg.batch_docs || batch_bytes >= P->cfg.batch_bytes) {
                    reader_submit(P, b);
                    b = reader_get_slot(P);
                    batch_bytes = 0;
                }
            }
            free(starts); free(ends); free(lines); free(s);
            continue;
        }
        FILE* f = fopen_regular(path, err);
        if (f == NULL) { die("%s", err); }
        int fmt = P->cfg.format;  // resolved in main, the same for every file
        if (fmt == FMT_TEXT) {
            // the whole file is one document
            Buf all = {0};
            char chunk[1 << 16];
            size_t got;
            while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0) { buf_put(&all, chunk, got); }
            if (ferror(f)) { die("read error on %s", path); }
            P->rep.bytes_in += (long)all.len;
            size_t bom = doc_bom_len((const unsigned char*)all.data, all.len);
            if (bom > 0) { memmove(all.data, all.data + bom, all.len - bom); all.len -= bom; all.data[all.len] = '\0'; }
            Doc* d = &b->docs[b->n++];
            memset(d, 0, sizeof(*d));
            d->file = fi;
            d->line = 1;
            d->raw = all.data ? all.data : strdup("");
            d->raw_len = all.len;
            batch_bytes += (long)all.len;
        } else {
            char* line = NULL;
            size_t cap = 0;
            ssize_t len;
            long lineno = 0;
            while (!stop_signal && (len = getline(&line, &cap, f)) >= 0) {
                lineno++;
                P->rep.bytes_in += len;
                if (len > 0 && line[len - 1] == '\n') { len--; }
                if (len > 0 && line[len - 1] == '\r') { len--; }
                char* rec = line;
                if (lineno == 1) {  // a UTF-8 byte order mark before the first record
                    size_t bom = doc_bom_len((const unsigned char*)line, (size_t)len);
                    rec += bom;
                    len -= (ssize_t)bom;
                }
                // a final empty line after the last '\n' is no record, but an empty line in the
                // middle is (counted as empty)
                Doc* d = &b->docs[b->n++];
                memset(d, 0, sizeof(*d));
                d->file = fi;
                d->line = lineno;
                d->raw = malloc_check(len + 1, "input line");
                memcpy(d->raw, rec, len);
                d->raw[len] = '\0';
                d->raw_len = len;
                batch_bytes += len;
                if (b->n == P->cfg.batch_docs || batch_bytes >= P->cfg.batch_bytes) {
                    reader_submit(P, b);
                    b = reader_get_slot(P);
                    batch_bytes = 0;
                }
            }
            free(line);
            if (ferror(f)) { die("read error on %s", path); }
        }
        fclose(f);
        if (b->n == P->cfg.batch_docs || batch_bytes >= P->cfg.batch_bytes) {
            reader_submit(P, b);
            b = reader_get_slot(P);
            batch_bytes = 0;
        }
    }
    if (b->n > 0) { reader_submit(P, b); }
    pthread_mutex_lock(&P->mu);
    P->reading_done = 1;
    pthread_cond_broadcast(&P->cv);
    pthread_mutex_unlock(&P->mu);
}

// ----------------------------------------------------------------------------
// report output

static void print_report(const Pipeline* P, FILE* out) {
    const Report* R = &P->rep;
    fprintf(out, "%-12s %4s %10s %10s %7s %14s %14s %7s\n", "stage", "on", "docs_in", "docs_out", "docs%", "chars_in", "chars_out", "chars%");
    for (int s = 0; s < ST_N; s++) {
        const Stage* t = &R->st[s];
        fprintf(out, "%-12s %4s %10ld %10ld %6.1f%% %14ld %14ld %6.1f%%\n", t->name, t->enabled ? "yes" : "off",
                t->docs_in, t->docs_out, t->docs_in ? 100.0 * t->docs_out / t->docs_in : 0.0,
                t->chars_in, t->chars_out, t->chars_in ? 100.0 * t->chars_out / t->chars_in : 0.0);
    }
    fprintf(out, "records %ld, %ld bytes read, %.2f s (%.1f docs/s, %.2f MB/s)\n", R->records, R->bytes_in, R->seconds,
            R->seconds > 0 ? R->records / R->seconds : 0.0, R->seconds > 0 ? R->bytes_in / 1e6 / R->seconds : 0.0);
    for (int k = 1; k < BAD_NKINDS; k++) {
        if (R->bad[k] == 0) { continue; }
        fprintf(out, "bad input: %ld %s", R->bad[k], bad_name[k]);
        for (int i = 0; i < BAD_KEEP_LINES && i < R->bad[k]; i++) { fprintf(out, "%s %s", i ? ";" : " (first:", R->bad_where[k][i]); }
        fprintf(out, ")\n");
    }
    if (R->bad_utf8_docs) {
        fprintf(out, "invalid UTF-8: %ld documents kept with %ld bytes replaced by U+FFFD (first: %s)\n", R->bad_utf8_docs, R->bad_utf8_chars, R->bad_utf8_where[0]);
    }
    fprintf(out, "quality drops:");
    for (int k = 1; k < QF_NREASONS; k++) { if (R->quality_reason[k]) { fprintf(out, " %s=%ld", qf_reason_name[k], R->quality_reason[k]); } }
    fprintf(out, "\n");
    fprintf(out, "pii masked: email=%ld phone=%ld ip=%ld card=%ld in %ld documents\n", R->pii[PII_EMAIL], R->pii[PII_PHONE], R->pii[PII_IP], R->pii[PII_CARD], R->pii_docs);
    if (P->cfg.tokenize) {
        fprintf(out, "tokens: train %ld (%ld docs, %d shards), val %ld (%ld docs, %d shards)\n", R->tokens_train, R->docs_train,
                R->shards_train, R->tokens_val, R->docs_val, R->shards_val);
    }
    if (R->near_index_full) { fprintf(out, "near-dedup index full: %ld kept documents were not indexed\n", R->near_index_full); }
}

static void json_kv_str(Buf* b, const char* k, const char* v) {
    json_put_string(b, k, strlen(k));
    buf_puts(b, ": ");
    if (v) { json_put_string(b, v, strlen(v)); } else { buf_puts(b, "null"); }
}

static void json_kv_long(Buf* b, const char* k, long v) {
    char tmp[64];
    json_put_string(b, k, strlen(k));
    int n = snprintf(tmp, sizeof(tmp), ": %ld", v);
    buf_put(b, tmp, n);
}

static void write_report_json(const Pipeline* P, const char* path) {
    const Report* R = &P->rep;
    Buf b = {0};
    char tmp[256];
    buf_puts(&b, "{\n  ");
    json_kv_long(&b, "records", R->records);
    buf_puts(&b, ",\n  ");
    json_kv_long(&b, "bytes_in", R->bytes_in);
    int n = snprintf(tmp, sizeof(tmp), ",\n  \"seconds\": %.4f,\n  \"cpu_seconds\": %.4f,\n  \"threads\": %d,\n  \"inputs\": [", R->seconds, R->cpu_seconds, P->cfg.threads);
    buf_put(&b, tmp, n);
    for (int i = 0; i < P->nfiles; i++) {
        if (i) { buf_puts(&b, ", "); }
        json_put_string(&b, P->files[i], strlen(P->files[i]));
    }
    buf_puts(&b, "],\n  \"stages\": [\n");
    for (int s = 0; s < ST_N; s++) {
        const Stage* t = &R->st[s];
        n = snprintf(tmp, sizeof(tmp), "    {\"name\": \"%s\", \"enabled\": %s, \"docs_in\": %ld, \"docs_out\": %ld, \"chars_in\": %ld, \"chars_out\": %ld}%s\n",
                     t->name, t->enabled ? "true" : "false", t->docs_in, t->docs_out, t->chars_in, t->chars_out, s + 1 < ST_N ? "," : "");
        buf_put(&b, tmp, n);
    }
    buf_puts(&b, "  ],\n  \"bad_input\": {");
    for (int k = 1; k < BAD_NKINDS; k++) {
        n = snprintf(tmp, sizeof(tmp), "%s\n    \"%s\": {\"count\": %ld, \"first\": [", k > 1 ? "," : "", bad_name[k], R->bad[k]);
        buf_put(&b, tmp, n);
        for (int i = 0; i < BAD_KEEP_LINES && i < R->bad[k]; i++) {
            if (i) { buf_puts(&b, ", "); }
            json_put_string(&b, R->bad_where[k][i], strlen(R->bad_where[k][i]));
        }
        buf_puts(&b, "]}");
    }
    n = snprintf(tmp, sizeof(tmp), ",\n    \"invalid_utf8\": {\"docs\": %ld, \"bytes_replaced\": %ld, \"first\": [", R->bad_utf8_docs, R->bad_utf8_chars);
    buf_put(&b, tmp, n);
    for (int i = 0; i < BAD_KEEP_LINES && i < R->bad_utf8_docs; i++) {
        if (i) { buf_puts(&b, ", "); }
        json_put_string(&b, R->bad_utf8_where[i], strlen(R->bad_utf8_where[i]));
    }
    buf_puts(&b, "]}\n  },\n  \"quality_reasons\": {");
    for (int k = 1; k < QF_NREASONS; k++) {
        buf_puts(&b, k > 1 ? ", " : "");
        json_kv_long(&b, qf_reason_name[k], R->quality_reason[k]);
    }
    buf_puts(&b, "},\n  \"pii\": {");
    for (int k = 0; k < PII_NKINDS; k++) {
        buf_puts(&b, k ? ", " : "");
        json_kv_long(&b, pii_kind_name[k], R->pii[k]);
    }
    buf_puts(&b, ", ");
    json_kv_long(&b, "docs_with_pii", R->pii_docs);
    n = snprintf(tmp, sizeof(tmp), "},\n  \"near_dedup\": {\"shingle\": %d, \"bands\": %d, \"rows\": %d, \"threshold\": %.4f, \"indexed\": %ld, \"index_full_skipped\": %ld},\n",
                 P->cfg.shingle, P->cfg.bands, P->cfg.rows, P->cfg.jaccard, P->lsh.ndocs, R->near_index_full);
    buf_put(&b, tmp, n);
    n = snprintf(tmp, sizeof(tmp), "  \"host\": {\"docs_without_url\": %ld},\n", R->host_no_url);
    buf_put(&b, tmp, n);
    n = snprintf(tmp, sizeof(tmp), "  \"tokens\": {\"train\": %ld, \"val\": %ld, \"docs_train\": %ld, \"docs_val\": %ld, \"shards_train\": %d, \"shards_val\": %d},\n  ",
                 R->tokens_train, R->tokens_val, R->docs_train, R->docs_val, R->shards_train, R->shards_val);
    buf_put(&b, tmp, n);
    json_kv_str(&b, "out_prefix", P->cfg.tokenize ? P->cfg.out_prefix : NULL);
    buf_puts(&b, "\n}\n");
    AtomicFile af;
    atomic_open(&af, path);
    atomic_write(&af, b.data, 1, b.len);
    atomic_commit(&af);
    buf_free(&b);
}

// ----------------------------------------------------------------------------
// command line

static void print_usage(void) {
    printf(
"usage: pipeline [options] INPUT...\n"
"Streams INPUT files (JSONL with a \"text\" field and optional \"url\"/\"id\", or plain text)\n"
"through the stages below, in this order, and writes llm.c token shards and a report.\n"
"\n"
"input\n"
"  --format F            jsonl | json (an array of objects) | text (whole file = one\n"
"                        document) | lines (one document per line). Default: jsonl for\n"
"                        *.jsonl, json for *.json, text otherwise. A UTF-8 BOM is skipped.\n"
"  --lang L              ja: Japanese defaults (min Japanese fraction 0.5, mean word length\n"
"                        rule off); en (default): no Japanese rule, mean word length 3..10\n"
"  --threads N           worker threads (default 2); output does not depend on N\n"
"  --batch-docs N        documents per batch (default 64; batches also end at 1 MB)\n"
"1. quality (Swallow + Gopher, Rae et al. 2021, defaults in brackets)\n"
"  --no-quality          switch the whole stage off\n"
"  --min-chars N         drop documents with fewer characters (code points) [400]\n"
"  --min-ja-frac F       drop documents whose fraction of Japanese characters (kana, CJK,\n"
"                        CJK punctuation, full-width forms) is below F [0.5 with --lang ja,\n"
"                        off otherwise; negative = off]\n"
"  --no-gopher           switch the Gopher heuristics below off\n"
"  --mean-word-len A,B   mean word length must lie in [A,B] characters [3,10; 0,0 = off]\n"
"  --max-symbol-ratio F  max '#' per word, and max \"...\"/\"…\" per word [0.1]\n"
"  --max-ellipsis-lines F  max fraction of lines ending in an ellipsis [0.3]\n"
"  --max-dup-lines F,G   max fraction of duplicate lines, and of characters in them [0.3,0.2]\n"
"  --max-dup-paras F,G   the same for paragraphs (split at blank lines) [0.3,0.2]\n"
"  --max-top-ngram A,B,C max fraction of word characters in the most frequent 2/3/4-gram\n"
"                        [0.20,0.18,0.16]. Words are runs of non-space characters; each\n"
"                        kana/CJK character is a word on its own.\n"
"  --words A,B           the number of words must lie in [A,B] [50,100000; off with --lang ja]\n"
"  --max-bullet-lines F  max fraction of lines starting with a bullet (- * \u2022 \u30fb ...) [0.9]\n"
"  --min-alpha-words F   min fraction of words holding a letter (kana/CJK count) [0.8]\n"
"2. exact dedup (64-bit hash of the text, ASCII lower-cased, white space collapsed)\n"
"  --no-exact-dedup\n"
"3. near dedup (MinHash + LSH over character shingles of the normalized text)\n"
"  --no-near-dedup\n"
"  --shingle N           characters per shingle [5]\n"
"  --bands B --rows R    LSH bands x rows = signature length [64 x 4 = 256]; a pair\n"
"                        with Jaccard J becomes a candidate with probability\n"
"                        1-(1-J^R)^B (> 0.9999 at J = 0.7), then it is verified\n"
"  --jaccard T           a candidate is a duplicate when its estimated Jaccard >= T [0.7];\n"
"                        the first occurrence is kept\n"
"  --near-max-docs N     index at most N documents (4*B*R + about 32*B bytes each,\n"
"                        3 KB at the defaults) [2000000, 0 = unbounded]\n"
"4. host filter (suffix match on the host of the \"url\" field)\n"
"  --block-hosts FILE    one host per line: drop matching hosts (and their subdomains)\n"
"  --allow-hosts FILE    hosts exempt from the block list\n"
"  --allow-only          keep only documents whose host is on the allow list\n"
"5. privacy: e-mail, phone (JP 03-1234-5678 / 090-1234-5678, +81 3 1234 5678,\n"
"   +1 (555) 123-4567, 555-123-4567), IPv4/IPv6, card numbers (13-19 digits, Luhn)\n"
"   become <EMAIL> <PHONE> <IP> <CARD>\n"
"  --no-pii\n"
"6. tokenization (GPT-2 BPE, <|endoftext|> = 50256 before every document)\n"
"  --no-tokenize\n"
"  --tokenizer-dir DIR   encoder.json + vocab.bpe [../shared/data/gpt2, looked up from the\n"
"                        current directory, then from this program's repository]\n"
"  --out-prefix P        shards P_train_000000.bin, P_val_000000.bin, ... [out/pipeline];\n"
"                        the prefix's folder is created\n"
"  --val-fraction F      fraction of kept documents for val: document k goes to val when\n"
"                        floor((k+1)F) > floor(kF) (every 1/F-th) [0.01]\n"
"  --shard-tokens N      tokens per shard [100000000] (--shard-size is the same flag)\n"
"output\n"
"  --report PATH         the per-stage report as JSON\n"
"  --out-jsonl PATH      kept documents after PII masking, as JSONL (id, url, split, text)\n"
"  --rejects PATH        one JSONL line per dropped document: file, line, id, stage, reason\n"
"  --quiet               no table on stdout\n"
"All outputs are written to a temporary file, fsynced and renamed. An output may not be an\n"
"input or another output. Numbers accept 1e6; each flag may be given once; --name=value works.\n"
"A stage that drops every document prints a warning; a run whose output is empty exits 1.\n");
}

#define PIPE_NUM_ARGS 43

int main(int argc, char** argv) {
    Pipeline* P = calloc_check(1, sizeof(Pipeline), "pipeline");
    Config* c = &P->cfg;
    c->format = FMT_AUTO;
    c->threads = 2;
    c->batch_docs = 64;
    c->batch_bytes = 1 << 20;
    c->quality = 1;
    c->exact_dedup = 1;
    c->near_dedup = 1;
    c->shingle = 5;
    c->bands = 64;  // 256 permutations: the estimate's standard deviation at J = 0.7 is 0.03
    c->rows = 4;
    c->jaccard = 0.7;
    c->near_max_docs = 2000000;
    c->pii = 1;
    c->tokenize = 1;
    static char vocab_dir[PATH_MAX];
    doc_default_vocab_dir(vocab_dir, sizeof(vocab_dir));
    c->tokenizer_dir = vocab_dir;
    c->out_prefix = "out/pipeline";
    c->val_fraction = 0.01;
    c->shard_tokens = 100000000;
    // the language decides the quality defaults, so find it first (the parser below refuses
    // a second --lang)
    const char* lang = "en";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--lang") == 0 && i + 1 < argc) { lang = argv[i + 1]; break; }
        if (strncmp(argv[i], "--lang=", 7) == 0) { lang = argv[i] + 7; break; }
    }
    c->japanese = strcmp(lang, "ja") == 0;
    quality_config_default(&c->qc, c->japanese);
    const char *format_s = NULL, *lang_s = NULL, *mwl_s = NULL, *dupl_s = NULL, *dupp_s = NULL, *ngram_s = NULL, *words_s = NULL;
    int no_quality = 0, no_gopher = 0, no_exact = 0, no_near = 0, no_pii = 0, no_tokenize = 0;
    long long min_chars = c->qc.min_chars, near_max_docs = c->near_max_docs, shard_tokens = -1, shard_size_alias = -1;
    const double big = 9.2e18;
    ArgSpec specs[PIPE_NUM_ARGS] = {
        {NULL, "--format", ARG_STRING, &format_s, 0, 0, "jsonl | json | text | lines"},
        {NULL, "--lang", ARG_STRING, &lang_s, 0, 0, "ja | en"},
        {NULL, "--threads", ARG_INT, &c->threads, 1, 256, "worker threads"},
        {NULL, "--batch-docs", ARG_INT, &c->batch_docs, 1, 1 << 20, "documents per batch"},
        {NULL, "--no-quality", ARG_FLAG, &no_quality, 0, 0, ""},
        {NULL, "--min-chars", ARG_LONG, &min_chars, 0, big, ""},
        {NULL, "--min-ja-frac", ARG_DOUBLE, &c->qc.min_ja_frac, -1e300, 1, ""},
        {NULL, "--no-gopher", ARG_FLAG, &no_gopher, 0, 0, ""},
        {NULL, "--mean-word-len", ARG_STRING, &mwl_s, 0, 0, ""},
        {NULL, "--max-symbol-ratio", ARG_DOUBLE, &c->qc.max_symbol_ratio, 0, 1e9, ""},
        {NULL, "--max-ellipsis-lines", ARG_DOUBLE, &c->qc.max_ellipsis_lines, 0, 1, ""},
        {NULL, "--max-dup-lines", ARG_STRING, &dupl_s, 0, 0, ""},
        {NULL, "--max-dup-paras", ARG_STRING, &dupp_s, 0, 0, ""},
        {NULL, "--max-top-ngram", ARG_STRING, &ngram_s, 0, 0, ""},
        {NULL, "--words", ARG_STRING, &words_s, 0, 0, ""},
        {NULL, "--max-bullet-lines", ARG_DOUBLE, &c->qc.max_bullet_lines, 0, 1, ""},
        {NULL, "--min-alpha-words", ARG_DOUBLE, &c->qc.min_alpha_words, 0, 1, ""},
        {NULL, "--no-exact-dedup", ARG_FLAG, &no_exact, 0, 0, ""},
        {NULL, "--no-near-dedup", ARG_FLAG, &no_near, 0, 0, ""},
        {NULL, "--shingle", ARG_INT, &c->shingle, 1, 64, ""},
        {NULL, "--bands", ARG_INT, &c->bands, 1, MINHASH_MAX_PERM, ""},
        {NULL, "--rows", ARG_INT, &c->rows, 1, MINHASH_MAX_PERM, ""},
        {NULL, "--jaccard", ARG_DOUBLE, &c->jaccard, 1e-9, 1, ""},
        {NULL, "--near-max-docs", ARG_LONG, &near_max_docs, 0, big, ""},
        {NULL, "--block-hosts", ARG_STRING, &c->block_hosts, 0, 0, ""},
        {NULL, "--allow-hosts", ARG_STRING, &c->allow_hosts, 0, 0, ""},
        {NULL, "--allow-only", ARG_FLAG, &c->allow_only, 0, 0, ""},
        {NULL, "--no-pii", ARG_FLAG, &no_pii, 0, 0, ""},
        {NULL, "--no-tokenize", ARG_FLAG, &no_tokenize, 0, 0, ""},
        {NULL, "--tokenizer-dir", ARG_STRING, &c->tokenizer_dir, 0, 0, ""},
        {NULL, "--out-prefix", ARG_STRING, &c->out_prefix, 0, 0, ""},
        {NULL, "--val-fraction", ARG_DOUBLE, &c->val_fraction, 0, 1, ""},
        {NULL, "--shard-tokens", ARG_LONG, &shard_tokens, 1, 2147483647.0, ""},
        {NULL, "--shard-size", ARG_LONG, &shard_size_alias, 1, 2147483647.0, ""},
        {NULL, "--report", ARG_STRING, &c->report, 0, 0, ""},
        {NULL, "--out-jsonl", ARG_STRING, &c->out_jsonl, 0, 0, ""},
        {NULL, "--rejects", ARG_STRING, &c->rejects, 0, 0, ""},
        {NULL, "--quiet", ARG_FLAG, &c->quiet, 0, 0, ""},
    };
    int nspecs = 38;
    if (nspecs > PIPE_NUM_ARGS) { die("internal error: flag table"); }
    char err[LLMC_ERRLEN];
    char** files = malloc_check((argc + 1) * sizeof(char*), "file list");
    int nfiles = 0;
    int rc = args_parse_positional(argc, argv, specs, nspecs, (const char**)files, argc, &nfiles, 0, err);
    if (rc == 1) { print_usage(); return 0; }
    if (rc != 0) { die("%s", err); }
    if (lang_s != NULL && strcmp(lang_s, "ja") != 0 && strcmp(lang_s, "en") != 0) { die("--lang: must be ja or en, not '%s'", lang_s); }
    if (format_s != NULL) {
        if (strcmp(format_s, "jsonl") == 0) { c->format = FMT_JSONL; }
        else if (strcmp(format_s, "json") == 0) { c->format = FMT_JSON; }
        else if (strcmp(format_s, "text") == 0) { c->format = FMT_TEXT; }
        else if (strcmp(format_s, "lines") == 0) { c->format = FMT_LINES; }
        else { die("--format: must be jsonl, json, text or lines, not '%s'", format_s); }
    }
    c->quality = !no_quality;
    c->qc.gopher = !no_gopher;
    c->exact_dedup = !no_exact;
    c->near_dedup = !no_near;
    c->pii = !no_pii;
    c->tokenize = !no_tokenize;
    c->qc.min_chars = (long)min_chars;
    c->near_max_docs = (long)near_max_docs;
    if (shard_tokens >= 0 && shard_size_alias >= 0) { die("--shard-tokens and --shard-size are the same setting; give one"); }
    if (shard_tokens >= 0) { c->shard_tokens = (long)shard_tokens; }
    else if (shard_size_alias >= 0) { c->shard_tokens = (long)shard_size_alias; }
    double v[3];
    if (mwl_s != NULL) {
        if (doc_parse_list("--mean-word-len", mwl_s, 2, 0, 1e9, v, err) != 0) { die("%s", err); }
        if (v[0] > v[1]) { die("--mean-word-len: the minimum %g is above the maximum %g", v[0], v[1]); }
        c->qc.mean_word_min = v[0]; c->qc.mean_word_max = v[1];
    }
    if (dupl_s != NULL) {
        if (doc_parse_list("--max-dup-lines", dupl_s, 2, 0, 1, v, err) != 0) { die("%s", err); }
        c->qc.max_dup_line_frac = v[0]; c->qc.max_dup_line_chars = v[1];
    }
    if (dupp_s != NULL) {
        if (doc_parse_list("--max-dup-paras", dupp_s, 2, 0, 1, v, err) != 0) { die("%s", err); }
        c->qc.max_dup_para_frac = v[0]; c->qc.max_dup_para_chars = v[1];
    }
    if (ngram_s != NULL) {
        if (doc_parse_list("--max-top-ngram", ngram_s, 3, 0, 1, v, err) != 0) { die("%s", err); }
        c->qc.max_top_ngram[2] = v[0]; c->qc.max_top_ngram[3] = v[1]; c->qc.max_top_ngram[4] = v[2];
    }
    if (words_s != NULL) {
        if (doc_parse_list("--words", words_s, 2, 0, 9e15, v, err) != 0) { die("%s", err); }
        if (v[0] != floor(v[0]) || v[1] != floor(v[1])) { die("--words: expected whole numbers, got '%s'", words_s); }
        if (v[0] > v[1]) { die("--words: the minimum %.0f is above the maximum %.0f (0,0 switches the rule off)", v[0], v[1]); }
        c->qc.min_words = (long)v[0]; c->qc.max_words = (long)v[1];
    }
    if ((long long)c->bands * (long long)c->rows > MINHASH_MAX_PERM) {
        die("--bands x --rows: %d x %d = %lld permutations, at most %d", c->bands, c->rows, (long long)c->bands * c->rows, MINHASH_MAX_PERM);
    }
    if (nfiles == 0) { die("no input files (see --help)"); }
    if (c->allow_only && c->allow_hosts == NULL) { die("--allow-only needs --allow-hosts"); }
    if (!c->tokenize && shard_tokens >= 0) { die("--shard-tokens does nothing with --no-tokenize"); }
    P->files = files;
    P->nfiles = nfiles;
    // one record kind for the whole run (the workers read it from cfg): JSON arrays and JSONL
    // files both give JSON records and may be mixed
    P->file_fmt = malloc_check((size_t)nfiles * sizeof(int), "formats");
    for (int i = 0; i < nfiles; i++) { P->file_fmt[i] = file_format(c, files[i]); }
    int kind0 = P->file_fmt[0] == FMT_JSON ? FMT_JSONL : P->file_fmt[0];
    for (int i = 1; i < nfiles; i++) {
        int kind = P->file_fmt[i] == FMT_JSON ? FMT_JSONL : P->file_fmt[i];
        if (kind != kind0) { die("%s: all inputs must hold the same kind of records; %s differs from %s (use --format)", files[i], files[i], files[0]); }
    }
    c->format = kind0;
    // every input a regular file, checked before any work; JSON arrays checked whole
    int nin = 0;
    DocPath* in = malloc_check((size_t)(nfiles + 6) * sizeof(DocPath), "paths");
    for (int i = 0; i < nfiles; i++) {
        if (check_regular_file(files[i], err) != 0) { die("%s", err); }
        in[nin++] = (DocPath){"input", files[i]};
        if (P->file_fmt[i] == FMT_JSON) {
            size_t n, *starts, *ends, m;
            long* lines;
            unsigned char* s = read_all(files[i], &n);
            if (doc_json_array_elements(files[i], s, n, &starts, &ends, &lines, &m, err) != 0) { die("%s", err); }
            free(starts); free(ends); free(lines); free(s);
        }
    }
    if (c->block_hosts) { in[nin++] = (DocPath){"--block-hosts", c->block_hosts}; }
    if (c->allow_hosts) { in[nin++] = (DocPath){"--allow-hosts", c->allow_hosts}; }
    char tok_enc[PATH_MAX + 32], tok_voc[PATH_MAX + 32];
    snprintf(tok_enc, sizeof(tok_enc), "%s/encoder.json", c->tokenizer_dir);
    snprintf(tok_voc, sizeof(tok_voc), "%s/vocab.bpe", c->tokenizer_dir);
    if (c->tokenize) {
        in[nin++] = (DocPath){"--tokenizer-dir file", tok_enc};
        in[nin++] = (DocPath){"--tokenizer-dir file", tok_voc};
    }
    DocPath outs[3];
    int nout = 0;
    if (c->report) { outs[nout++] = (DocPath){"--report", c->report}; }
    if (c->out_jsonl) { outs[nout++] = (DocPath){"--out-jsonl", c->out_jsonl}; }
    if (c->rejects) { outs[nout++] = (DocPath){"--rejects", c->rejects}; }
    if (doc_check_paths(in, nin, outs, nout, c->tokenize ? c->out_prefix : NULL, err) != 0) { die("%s", err); }
    free(in);

    minhash_config_init(&P->mh, c->shingle, c->bands, c->rows, c->jaccard);
    if (c->block_hosts) { hostlist_load(&P->block, c->block_hosts, "--block-hosts"); }
    if (c->allow_hosts) { hostlist_load(&P->allow, c->allow_hosts, "--allow-hosts"); }
    if (c->tokenize) {
#ifdef PIPELINE_NO_BPE
        die("this build has no tokenizer (PIPELINE_NO_BPE); use --no-tokenize");
#else
        char enc[PATH_MAX + 32], voc[PATH_MAX + 32];
        snprintf(enc, sizeof(enc), "%s/encoder.json", c->tokenizer_dir);
        snprintf(voc, sizeof(voc), "%s/vocab.bpe", c->tokenizer_dir);
        if (bpe_load_gpt2(&P->bpe, enc, voc, err) != 0) { die("%s", err); }
        P->eot = P->bpe.eot;
        if (P->bpe.vocab_size > 65536) { die("vocabulary of %d tokens does not fit uint16 shards", P->bpe.vocab_size); }
        if (doc_make_parent_dirs(c->out_prefix, err) != 0) { die("--out-prefix: %s", err); }  // e.g. out/ for out/livedoor
        P->shard_buf[0] = malloc_check(c->shard_tokens * sizeof(uint16_t), "train shard buffer");
        P->shard_buf[1] = malloc_check(c->shard_tokens * sizeof(uint16_t), "val shard buffer");
#endif
    }
    g_pipeline = P;
    atexit(remove_open_temp_files);
    install_signal_handler(record_stop_signal);
    if (c->out_jsonl) { atomic_open(&P->jsonl_out, c->out_jsonl); P->have_jsonl = 1; }
    if (c->rejects) { atomic_open(&P->rejects_out, c->rejects); P->have_rejects = 1; }

    static const char* names[ST_N] = { "extract", "quality", "exact_dedup", "near_dedup", "host", "pii", "tokenize" };
    int enabled[ST_N] = { 1, c->quality, c->exact_dedup, c->near_dedup, c->block_hosts || c->allow_hosts, c->pii, c->tokenize };
    for (int s = 0; s < ST_N; s++) { P->rep.st[s].name = names[s]; P->rep.st[s].enabled = enabled[s]; }
    hc_init(&P->exact_set, 1024, 0);
    lsh_init(&P->lsh, &P->mh, c->near_max_docs);

    P->nslots = 4 * c->threads;
    P->slots = calloc_check(P->nslots, sizeof(Batch), "batches");
    for (int i = 0; i < P->nslots; i++) { P->slots[i].docs = calloc_check(c->batch_docs, sizeof(Doc), "batch documents"); }
    pthread_mutex_init(&P->mu, NULL);
    pthread_cond_init(&P->cv, NULL);

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pthread_t* workers = malloc_check(c->threads * sizeof(pthread_t), "threads");
    pthread_t committer;
    for (int t = 0; t < c->threads; t++) {
        if (pthread_create(&workers[t], NULL, worker_main, P) != 0) { die("cannot start worker thread"); }
    }
    if (pthread_create(&committer, NULL, committer_main, P) != 0) { die("cannot start committer thread"); }
    read_inputs(P);
    for (int t = 0; t < c->threads; t++) { pthread_join(workers[t], NULL); }
    pthread_join(committer, NULL);
    if (stop_signal) {
        int sig = (int)stop_signal;
        remove_open_temp_files();
        fprintf(stderr, "error: stopped by signal %d after %ld records; the outputs in progress were removed\n", sig, P->rep.records);
        exit(128 + sig);
    }
    if (c->tokenize) {
        flush_shard(P, 0);
        flush_shard(P, 1);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    P->rep.seconds = (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    P->rep.cpu_seconds = ru.ru_utime.tv_sec + 1e-6 * ru.ru_utime.tv_usec + ru.ru_stime.tv_sec + 1e-6 * ru.ru_stime.tv_usec;
    P->rep.shards_train = P->shard_count[0];
    P->rep.shards_val = P->shard_count[1];
    // bad records are in the report; say so on stderr too (also with --quiet), naming where
    for (int k = 1; k < BAD_NKINDS; k++) {
        const Report* R = &P->rep;
        if (R->bad[k] == 0 || k == BAD_EMPTY) { continue; }
        fprintf(stderr, "warning: %ld %s record%s skipped (first: %s%s)\n", R->bad[k], bad_name[k], R->bad[k] == 1 ? "" : "s",
                R->bad_where[k][0], R->bad[k] > 1 ? ", ..." : "");
    }
    // a stage that drops every document is almost always a wrong setting (--lang en on a
    // Japanese corpus drops everything in the quality stage): say so, and an empty output fails
    for (int st = 0; st < ST_N; st++) {
        const Stage* t = &P->rep.st[st];
        if (t->enabled && t->docs_in > 0 && t->docs_out == 0) {
            fprintf(stderr, "warning: the %s stage dropped every document (%ld of %ld)%s\n", t->name, t->docs_in, t->docs_in,
                    st == ST_QUALITY && !c->japanese ? "; for a Japanese corpus use --lang ja" : "");
        }
    }
    if (c->tokenize && c->val_fraction > 0 && P->rep.docs_val == 0 && P->kept_docs > 0) {
        fprintf(stderr, "warning: --val-fraction %g sent no document to val (%ld kept documents; val needs at least %.0f)\n",
                c->val_fraction, P->kept_docs, 1.0 / c->val_fraction);
    }
    int empty = P->kept_docs == 0;
    if (P->have_jsonl) {
        if (empty) { atomic_abort(&P->jsonl_out); } else { atomic_commit(&P->jsonl_out); }
    }
    if (P->have_rejects) { atomic_commit(&P->rejects_out); }
    if (!c->quiet) { print_report(P, stdout); }
    if (c->report) { write_report_json(P, c->report); }
    if (empty) {
        fprintf(stderr, "error: %s: no document survived the stages (%ld records read): the output is empty%s\n",
                nfiles == 1 ? files[0] : "inputs", P->rep.records, c->report ? "; see the report" : "");
        exit(EXIT_FAILURE);
    }

    // tidy up (keeps leak checkers quiet)
    for (int i = 0; i < P->nslots; i++) { free(P->slots[i].docs); }
    free(P->slots);
    free(workers);
    free(files);
    hc_free(&P->exact_set);
    lsh_free(&P->lsh);
    hostlist_free(&P->block);
    hostlist_free(&P->allow);
    free(P->shard_buf[0]);
    free(P->shard_buf[1]);
    buf_free(&P->line_buf);
#ifndef PIPELINE_NO_BPE
    if (c->tokenize) { bpe_free(&P->bpe); }
#endif
    free(P);
    return 0;
}
