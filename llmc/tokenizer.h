// Decode-only tokenizer: llm.c's tokenizer file, token id -> bytes.
//
// File: 256 x int32 header (magic 20240328, version 1 or 2, vocab_size, and for version 2 the
// end-of-text token id), then for each token: one uint8 length (1..255) and that many bytes.
// Encoding (text -> ids) is the BPE tokenizer's job; this is what sampling needs.
#ifndef LLMC_TOKENIZER_H
#define LLMC_TOKENIZER_H

#include <ctype.h>
#include "utils.h"

#define TOKENIZER_MAGIC 20240328

typedef struct {
    int vocab_size;
    int eot_token;
    char** token_table;  // token_table[i] is a NUL-terminated copy of token i's bytes
    int* token_length;   // byte length of each token (tokens may contain NUL bytes)
} Tokenizer;

static void tokenizer_free(Tokenizer* tok) {
    if (tok->token_table != NULL) {
        for (int i = 0; i < tok->vocab_size; i++) { free(tok->token_table[i]); }
    }
    free(tok->token_table);
    free(tok->token_length);
    memset(tok, 0, sizeof(*tok));
}

// 0 on success, -1 with err set. On failure tok is left empty.
static int tokenizer_init(Tokenizer* tok, const char* path, char* err) {
    memset(tok, 0, sizeof(*tok));
    FILE* f = fopen_regular(path, err);
    if (f == NULL) { return -1; }
    int32_t header[256];
    if (fread_exact(header, sizeof(int32_t), 256, f, path, err) != 0) { fclose(f); return -1; }
    if (header[0] != TOKENIZER_MAGIC) {
        fclose(f);
        return set_err(err, "%s: bad magic %d in tokenizer header (expected %d)", path, header[0], TOKENIZER_MAGIC);
    }
    int version = header[1];
    if (version != 1 && version != 2) {
        fclose(f);
        return set_err(err, "%s: unsupported tokenizer version %d (supported: 1, 2)", path, version);
    }
    int V = header[2];
    if (V <= 0 || V > (1 << 24)) { fclose(f); return set_err(err, "%s: bad vocabulary size %d", path, V); }
    long fsize = file_size_of(f);
    if (fsize - 1024 < 2L * V) {  // every token takes at least 2 bytes: check before allocating
        fclose(f);
        return set_err(err, "%s: file is truncated: %ld bytes cannot hold %d tokens", path, fsize, V);
    }
    // version 1 files predate the field; they are GPT-2's, whose end-of-text token is 50256
    int eot = (version == 2) ? header[3] : 50256;
    if (eot < 0 || eot >= V) { fclose(f); return set_err(err, "%s: end-of-text token %d outside vocabulary of %d", path, eot, V); }
    tok->vocab_size = V;
    tok->eot_token = eot;
    tok->token_table = (char**)calloc_check(V, sizeof(char*), "tokenizer table");
    tok->token_length = (int*)calloc_check(V, sizeof(int), "tokenizer lengths");
    for (int i = 0; i < V; i++) {
        unsigned char len;
        if (fread_exact(&len, 1, 1, f, path, err) != 0) { fclose(f); tokenizer_free(tok); return -1; }
        if (len == 0) { fclose(f); tokenizer_free(tok); return set_err(err, "%s: token %d has length 0", path, i); }
        tok->token_table[i] = (char*)malloc_check(len + 1, "token");
        if (fread_exact(tok->token_table[i], 1, len, f, path, err) != 0) { fclose(f); tokenizer_free(tok); return -1; }
        tok->token_table[i][len] = '\0';
        tok->token_length[i] = len;
    }
    int extra = fgetc(f);
    fclose(f);
    if (extra != EOF) { tokenizer_free(tok); return set_err(err, "%s: trailing bytes after %d tokens", path, V); }
    return 0;
}

// Returns the bytes of token_id (NUL-terminated), or NULL for an id outside the vocabulary.
static const char* tokenizer_decode(const Tokenizer* tok, int token_id) {
    if (token_id < 0 || token_id >= tok->vocab_size) { return NULL; }
    return tok->token_table[token_id];
}

// Prints tokens as valid UTF-8 however the model splits or garbles characters: a token may
// end inside a multi-byte character (the rest comes with the next token), and a sampled byte
// sequence may be invalid. Complete characters are printed as they arrive; an invalid byte
// becomes U+FFFD, so logs stay text (grep does not call them binary).
typedef struct {
    unsigned char pending[4];
    int n;      // bytes of an incomplete character held back
    int need;   // its length
} Utf8Printer;

static void utf8_printer_init(Utf8Printer* p) { memset(p, 0, sizeof(*p)); }

static void utf8_put_replacement(FILE* out) { fputs("\xEF\xBF\xBD", out); }

static void utf8_printer_byte(Utf8Printer* p, unsigned char c, FILE* out) {
    if (p->n > 0) {
        int ok = c >= 0x80 && c <= 0xBF;
        if (ok && p->n == 1) {  // the second byte's narrower ranges: no overlong forms or surrogates
            unsigned char lead = p->pending[0];
            if (lead == 0xE0) { ok = c >= 0xA0; }
            else if (lead == 0xED) { ok = c <= 0x9F; }
            else if (lead == 0xF0) { ok = c >= 0x90; }
            else if (lead == 0xF4) { ok = c <= 0x8F; }
        }
        if (ok) {
            p->pending[p->n++] = c;
            if (p->n == p->need) { fwrite(p->pending, 1, p->n, out); p->n = 0; }
            return;
        }
        utf8_put_replacement(out);  // the held-back character was cut short
        p->n = 0;
    }
    if (c < 0x80) {
        if (c >= 0x20 || c == '\n' || c == '\t') { fputc(c, out); }  // no control bytes on a terminal
    } else if (c >= 0xC2 && c <= 0xDF) { p->pending[0] = c; p->n = 1; p->need = 2; }
    else if (c >= 0xE0 && c <= 0xEF) { p->pending[0] = c; p->n = 1; p->need = 3; }
    else if (c >= 0xF0 && c <= 0xF4) { p->pending[0] = c; p->n = 1; p->need = 4; }
    else { utf8_put_replacement(out); }
}

static void utf8_printer_token(Utf8Printer* p, const Tokenizer* tok, int token_id, FILE* out) {
    const char* s = tokenizer_decode(tok, token_id);
    if (s == NULL) { fprintf(out, "<%d>", token_id); return; }
    for (int i = 0; i < tok->token_length[token_id]; i++) { utf8_printer_byte(p, (unsigned char)s[i], out); }
}

// ends the text: a character still incomplete is printed as U+FFFD
static void utf8_printer_finish(Utf8Printer* p, FILE* out) {
    if (p->n > 0) { utf8_put_replacement(out); p->n = 0; }
}

// Writes a version-2 tokenizer file atomically. tokens[i] has lengths[i] bytes (1..255).
static void tokenizer_write(const char* path, int V, int eot, const unsigned char* const* tokens, const int* lengths) {
    int32_t header[256];
    memset(header, 0, sizeof(header));
    header[0] = TOKENIZER_MAGIC;
    header[1] = 2;
    header[2] = V;
    header[3] = eot;
    AtomicFile af;
    atomic_open(&af, path);
    atomic_write(&af, header, sizeof(int32_t), 256);
    for (int i = 0; i < V; i++) {
        if (lengths[i] < 1 || lengths[i] > 255) { die("tokenizer_write %s: token %d has length %d (1..255 allowed)", path, i, lengths[i]); }
        unsigned char len = (unsigned char)lengths[i];
        atomic_write(&af, &len, 1, 1);
        atomic_write(&af, tokens[i], 1, len);
    }
    atomic_commit(&af);
}

#endif // LLMC_TOKENIZER_H
