// The chat template of supervised fine-tuning, in one place: what dev/data/sft_prepare writes
// into training shards and what dev/eval/sft_eval (or any inference code) feeds the model
// before it must answer. Both build their tokens with these functions, so a prompt at
// inference time is token for token the prompt the model was trained on.
//
// An example is the following segments back to back. Each segment is BPE-encoded on its own
// (never the concatenation: "\n\n### Assistant:\n" followed by the answer would merge across
// the boundary otherwise), so every loss-mask boundary falls between two tokens. EOT is the
// vocabulary's <|endoftext|> token (50256 for GPT-2).
//
//   segment                                             mask  why
//   EOT                                                 0     separates documents, as llm.c's data
//   "### System:\n" + system + "\n\n"                   0     only if there is a system message
//   for each user / assistant turn:
//     "### User:\n" + user + "\n\n### Assistant:\n"     0     the prompt: context, not learned
//     assistant                                         1     the response: learned
//     EOT                                               1     so the model learns to stop
//
// Message text is encoded as plain text (bpe_encode with allow_special = 0): "<|endoftext|>"
// written inside a message stays those 13 characters, never the special token, so data
// cannot forge a document boundary.
//
// Invalid UTF-8 in a message: sft_prepare replaces each invalid byte of its input lines by
// U+FFFD before anything else (chat_utf8_repair); an evaluator reading the same kind of file
// must do the same, or it would feed the model tokens it never saw in training.
//
// API (header-only, every function static):
//   void   chat_init(ChatEncoder* ce, const BPE* bpe);   chat_free(ChatEncoder* ce);
//   The segments, each APPENDING to ids and returning how many ids it appended:
//   size_t chat_begin(ce, ids)                       EOT
//   size_t chat_system(ce, text, len, ids)           "### System:\n" + text + "\n\n"
//   size_t chat_user(ce, text, len, ids)             "### User:\n" + text + "\n\n### Assistant:\n"
//   size_t chat_assistant_text(ce, text, len, ids)   text (without the EOT)
//   size_t chat_end(ce, ids)                         EOT (after an assistant turn)
//   The two an evaluator needs (each REPLACES the content of ids):
//   void chat_prompt_ids(ce, system, system_len, user, user_len, ids)
//        what the model reads before it answers: EOT [, system segment], user segment.
//        system == NULL (or system_len == 0) means no system message.
//   void chat_answer_ids(ce, text, len, ids)
//        the answer the model should produce: text's tokens, then EOT.
//   long chat_utf8_repair(s, n, out)   invalid UTF-8 bytes -> U+FFFD (see above)
#ifndef LLMC_CHAT_H
#define LLMC_CHAT_H

#include "utils.h"
#include "bpe.h"

#define CHAT_SYSTEM_PREFIX "### System:\n"
#define CHAT_SYSTEM_SUFFIX "\n\n"
#define CHAT_USER_PREFIX   "### User:\n"
#define CHAT_USER_SUFFIX   "\n\n### Assistant:\n"

typedef struct {
    const BPE* bpe;
    BpeWork* work;   // the encoder's scratch and piece cache (one ChatEncoder per thread)
    BpeBytes seg;    // scratch: the text of one segment
} ChatEncoder;

static void chat_init(ChatEncoder* ce, const BPE* bpe) {
    ce->bpe = bpe;
    ce->work = bpe_work_new();
    memset(&ce->seg, 0, sizeof(ce->seg));
}

static void chat_free(ChatEncoder* ce) {
    if (ce->work != NULL) { bpe_work_free(ce->work); }
    bpe_bytes_free(&ce->seg);
    ce->work = NULL;
}

// Encodes prefix + text + suffix as one segment (plain text) and appends its ids.
static size_t chat_segment(ChatEncoder* ce, const char* prefix, const unsigned char* text, size_t len,
                           const char* suffix, BpeIds* ids) {
    size_t before = ids->len;
    ce->seg.len = 0;
    bpe_bytes_append(&ce->seg, prefix, strlen(prefix));
    if (len > 0) { bpe_bytes_append(&ce->seg, text, len); }
    bpe_bytes_append(&ce->seg, suffix, strlen(suffix));
    bpe_encode(ce->bpe, ce->work, ce->seg.data, ce->seg.len, 0, ids);
    ce->seg.len = 0;
    return ids->len - before;
}

static size_t chat_begin(ChatEncoder* ce, BpeIds* ids) {
    bpe_ids_push(ids, ce->bpe->eot);
    return 1;
}

static size_t chat_system(ChatEncoder* ce, const unsigned char* text, size_t len, BpeIds* ids) {
    return chat_segment(ce, CHAT_SYSTEM_PREFIX, text, len, CHAT_SYSTEM_SUFFIX, ids);
}

static size_t chat_user(ChatEncoder* ce, const unsigned char* text, size_t len, BpeIds* ids) {
    return chat_segment(ce, CHAT_USER_PREFIX, text, len, CHAT_USER_SUFFIX, ids);
}

static size_t chat_assistant_text(ChatEncoder* ce, const unsigned char* text, size_t len, BpeIds* ids) {
    return chat_segment(ce, "", text, len, "", ids);
}

static size_t chat_end(ChatEncoder* ce, BpeIds* ids) {
    bpe_ids_push(ids, ce->bpe->eot);
    return 1;
}

static void chat_prompt_ids(ChatEncoder* ce, const unsigned char* system, size_t system_len,
                            const unsigned char* user, size_t user_len, BpeIds* ids) {
    ids->len = 0;
    chat_begin(ce, ids);
    if (system != NULL && system_len > 0) { chat_system(ce, system, system_len, ids); }
    chat_user(ce, user, user_len, ids);
}

static void chat_answer_ids(ChatEncoder* ce, const unsigned char* text, size_t len, BpeIds* ids) {
    ids->len = 0;
    chat_assistant_text(ce, text, len, ids);
    chat_end(ce, ids);
}

// Invalid UTF-8 bytes -> U+FFFD (as dev/data/pipeline does), decoding strictly as the
// tokenizer does (bpe_char_class: no overlongs, no surrogates, nothing above U+10FFFF).
// Returns the number of bytes replaced; out gets the repaired text only if that is > 0.
static long chat_utf8_repair(const unsigned char* s, size_t n, BpeBytes* out) {
    long bad = 0;
    size_t i = 0, done = 0;
    out->len = 0;
    while (i < n) {
        if (s[i] < 0x80) { i++; continue; }
        int clen;
        bpe_char_class(s + i, n - i, &clen);
        if (clen > 1) { i += (size_t)clen; continue; }
        bpe_bytes_append(out, s + done, i - done);
        bpe_bytes_append(out, "\xEF\xBF\xBD", 3);
        bad++;
        done = ++i;
    }
    if (bad > 0) { bpe_bytes_append(out, s + done, n - done); }
    return bad;
}

#endif // LLMC_CHAT_H
