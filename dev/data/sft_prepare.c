// Supervised fine-tuning (SFT) data: instruction JSONL -> one token shard with a per-token
// loss mask (llmc/shard.h, version 2), so that training learns the responses and not the
// prompts. See dev/data/SFT.md for the longer story and examples.
//
//   sft_prepare INPUT.jsonl... -o OUT.bin --seq-len T [--truncate]   aligned: one example per row
//   sft_prepare INPUT.jsonl... -o OUT.bin --pack [--seq-len T]       packed: back to back
//
// Input: one JSON object per line, in either form (other keys are ignored):
//   {"prompt": "...", "response": "...", "system": "..."}     "system" optional
//   {"messages": [{"role": "system", "content": "..."},        system optional, and only first;
//                 {"role": "user", "content": "..."},          then user / assistant alternate,
//                 {"role": "assistant", "content": "..."}]}    starting with user, ending with
//                                                              assistant
// \uXXXX escapes (surrogate pairs included) are decoded.
//
// Chat template (defined in llmc/chat.h, which dev/eval/sft_eval uses too). An example is the
// following segments back to back. Each segment is encoded on its own, so every mask boundary
// falls between two tokens, and a prompt assembled the same way at inference time (chat.h's
// chat_prompt_ids) encodes to exactly the tokens the model was trained on. EOT is the
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
// Message text is encoded as plain text: "<|endoftext|>" written inside a message stays those
// 13 characters (several ordinary tokens), never the special token, so data cannot forge a
// document boundary. Such examples are counted in the report.
//
// Mask semantics (llmc/shard.h, llmc/dataloader.h): mask[p] = 1 means that token p counts as a
// target, i.e. the loss of predicting token p from the tokens before it is counted.
//
// Layouts. The data loader reads row i as the T+1 tokens [i*T, i*T + T]: inputs are the
// first T, targets the last T.
// - aligned (the default; needs --seq-len T): each example starts a row, at a multiple of T,
//   and EOT tokens of mask 0 fill the rest of the row. A row then holds exactly one example,
//   so attention never mixes two examples. An example longer than T tokens (its leading EOT
//   included) cannot fit in a row: it is dropped and counted, or with --truncate cut to its
//   first T tokens (and dropped anyway if no response token is left). One more EOT of mask 0
//   ends the file, so the last row has its (T+1)-th token: ntok = rows * T + 1.
// - packed (--pack): examples back to back, as llm.c packs pretraining text, then one EOT of
//   mask 0; no padding, but a row may start inside an example and span several.
//
// Bad lines are never dropped silently: each is counted under one reason, and stderr gets a
// table of the reasons with the first 5 file:line positions of each.
#include <ctype.h>
#include "llmc/utils.h"
#include "llmc/shard.h"
#include "llmc/bpe.h"
#include "llmc/chat.h"
#include "dev/data/doc_reader.h"
#include "dev/data/json_text.h"

static const char* usage_text =
"usage: sft_prepare [options] INPUT.jsonl... -o OUT.bin (--seq-len T | --pack)\n"
"Instruction JSONL -> one token shard with a loss mask (shard version 2; dev/data/SFT.md).\n"
"Each line: {\"prompt\", \"response\"[, \"system\"]} or {\"messages\": [{\"role\", \"content\"}, ...]}.\n"
"Template, each segment encoded on its own; mask 1 = the token is a target that counts:\n"
"  EOT                                             mask 0\n"
"  \"### System:\\n\" + system + \"\\n\\n\"                 mask 0 (only with a system message)\n"
"  per turn: \"### User:\\n\" + user + \"\\n\\n### Assistant:\\n\"   mask 0\n"
"            assistant text, then EOT              mask 1\n"
"Layout: aligned (default): each example starts at a multiple of T, padded with EOT (mask 0);\n"
"examples longer than T tokens are dropped (or cut with --truncate). --pack: back to back.\n"
"Vocabulary: GPT-2 from ../shared/data/gpt2 (looked up from the current directory, then from\n"
"this program's repository), or --encoder/--merges, or --tiktoken. Numbers accept 1e6.\n"
"Exit status: 0 ok, 1 on bad usage, unreadable input, no usable example, or --max-bad exceeded.";

// ----------------------------------------------------------------------------
// bad-line reasons

enum {
    BAD_JSON,        // not valid JSON (syntax, raw control characters, bad literals, trailing text)
    BAD_NOT_OBJECT,  // valid JSON, but not an object
    BAD_DUP_KEY,     // a key we read given twice
    BAD_BOTH,        // both "prompt"/"response" and "messages"
    BAD_MISSING,     // a required key is missing
    BAD_TYPE,        // a key we read has the wrong JSON type
    BAD_EMPTY,       // an empty (or white-space only) text, or an empty "messages"
    BAD_ROLE,        // a role other than system, user, assistant
    BAD_ORDER,       // the roles are not system?, (user, assistant)+
    NUM_BAD
};
static const char* bad_key[NUM_BAD] = {  // names in the JSON report
    "invalid_json", "not_object", "duplicate_key", "both_formats", "missing_field",
    "wrong_type", "empty_text", "bad_role", "bad_role_order",
};
static const char* bad_text[NUM_BAD] = {  // names in the stderr table
    "invalid JSON", "not an object", "duplicate key", "prompt and messages", "missing field",
    "wrong type", "empty text", "unknown role", "bad role order",
};

#define FIRST_LINES 5   // positions remembered per reason
#define DETAIL_LEN 256

typedef struct {
    long count;
    int nfirst;
    int first_file[FIRST_LINES];
    long first_line[FIRST_LINES];
    char detail[DETAIL_LEN + 1100];   // "file:line: what exactly was wrong" for the first one
} BadCount;

// ----------------------------------------------------------------------------
// one parsed example: its messages, the text of each in one buffer

enum { ROLE_SYSTEM, ROLE_USER, ROLE_ASSISTANT };
static const char* role_name[3] = { "system", "user", "assistant" };

typedef struct { int role; size_t off, len; } Msg;

typedef struct {
    BpeBytes text;   // every message's content, back to back
    Msg* msgs;
    int n, cap;
} Example;

// the text of message i (never NULL, also when it is empty)
static const unsigned char* msg_text(const Example* ex, int i) {
    return ex->text.data != NULL ? ex->text.data + ex->msgs[i].off : (const unsigned char*)"";
}

static void example_add(Example* ex, int role, size_t off) {
    if (ex->n == ex->cap) {
        ex->cap = ex->cap ? 2 * ex->cap : 16;
        ex->msgs = (Msg*)realloc(ex->msgs, (size_t)ex->cap * sizeof(Msg));
        if (ex->msgs == NULL) { die("out of memory"); }
    }
    ex->msgs[ex->n].role = role;
    ex->msgs[ex->n].off = off;
    ex->msgs[ex->n].len = ex->text.len - off;
    ex->n++;
}

// ----------------------------------------------------------------------------
// JSON checks. doc_reader.h parses JSON structure; these add what it leaves out, so that a
// line Python's json.loads rejects is "invalid JSON" here too (NaN and Infinity aside).

// 1 if the token t[0..n) is true, false, null or a JSON number
static int json_literal_ok(const unsigned char* t, size_t n) {
    if ((n == 4 && memcmp(t, "true", 4) == 0) || (n == 5 && memcmp(t, "false", 5) == 0) ||
        (n == 4 && memcmp(t, "null", 4) == 0)) {
        return 1;
    }
    size_t i = 0;
    if (i < n && t[i] == '-') { i++; }
    if (i < n && t[i] == '0') { i++; }
    else if (i < n && t[i] >= '1' && t[i] <= '9') { while (i < n && isdigit(t[i])) { i++; } }
    else { return 0; }
    if (i < n && t[i] == '.') {
        size_t d = ++i;
        while (i < n && isdigit(t[i])) { i++; }
        if (i == d) { return 0; }
    }
    if (i < n && (t[i] == 'e' || t[i] == 'E')) {
        i++;
        if (i < n && (t[i] == '+' || t[i] == '-')) { i++; }
        size_t d = i;
        while (i < n && isdigit(t[i])) { i++; }
        if (i == d) { return 0; }
    }
    return i == n;
}

static int json_literal_char(unsigned char c) { return isalnum(c) || c == '-' || c == '+' || c == '.'; }

// The lexical rules doc_json_skip does not check: no raw control characters inside strings,
// literals spelled exactly. 0 if fine, else -1 with what (DETAIL_LEN bytes) saying what is wrong.
static int json_lexical_check(const unsigned char* s, size_t n, char* what) {
    size_t i = 0;
    while (i < n) {
        if (s[i] == '"') {
            for (i++; i < n && s[i] != '"'; i++) {
                if (s[i] < 0x20) {
                    snprintf(what, DETAIL_LEN, "raw control character 0x%02x in a string at byte %zu (write it as an escape)", s[i], i + 1);
                    return -1;
                }
                if (s[i] == '\\') { i++; }  // skip the escaped byte; the parser checks it
            }
            i++;  // past the closing quote (an unterminated string is the parser's to report)
        } else if (json_literal_char(s[i])) {
            size_t a = i;
            while (i < n && json_literal_char(s[i])) { i++; }
            if (!json_literal_ok(s + a, i - a)) {
                int shown = i - a < 24 ? (int)(i - a) : 24;
                snprintf(what, DETAIL_LEN, "'%.*s%s' at byte %zu is not a number, true, false or null", shown,
                         (const char*)(s + a), (int)(i - a) > shown ? "..." : "", a + 1);
                return -1;
            }
        } else {
            i++;
        }
    }
    return 0;
}

// ----------------------------------------------------------------------------
// parsing one line into an Example

typedef struct {
    BpeBytes key;        // scratch: a decoded key or role
    long unpaired;       // unpaired surrogate escapes seen (decoded as U+FFFD)
} Parser;

static int bad(char* detail, int reason, const char* fmt, ...) {
    va_list args;
    va_start(args, fmt);
    vsnprintf(detail, DETAIL_LEN, fmt, args);
    va_end(args);
    return reason;
}

// Decodes the key at s[*p] into ps->key, moves past the ':' that follows, and returns the index
// of the key in names[] (-1 if not there). The line is known to be valid JSON.
static int read_key(Parser* ps, const unsigned char* s, size_t n, size_t* p, const char* const* names, int nnames) {
    ps->key.len = 0;
    doc_json_ws(s, n, p);
    doc_json_string(s, n, p, &ps->key, NULL);
    doc_json_ws(s, n, p);
    (*p)++;  // ':'
    doc_json_ws(s, n, p);
    for (int k = 0; k < nnames; k++) {
        if (ps->key.len == strlen(names[k]) && memcmp(ps->key.data, names[k], ps->key.len) == 0) { return k; }
    }
    return -1;
}

// After a value: past the ',' (returns 1: more follow) or the closing '}' / ']' (returns 0).
static int next_member(const unsigned char* s, size_t n, size_t* p) {
    doc_json_ws(s, n, p);
    return *p < n && s[(*p)++] == ',';
}

// Appends the decoded string at s[p] to ex->text and adds it as a message of role.
static void add_string(Parser* ps, Example* ex, int role, const unsigned char* s, size_t n, size_t p) {
    size_t off = ex->text.len;
    doc_json_string(s, n, &p, &ex->text, &ps->unpaired);
    example_add(ex, role, off);
}

// The role sequence must be: system?, then user / assistant alternating, starting with user
// and ending with assistant. -1 if fine, else BAD_ORDER with detail.
static int check_order(const Example* ex, char* detail) {
    int k = 0;  // user / assistant messages so far
    for (int i = 0; i < ex->n; i++) {
        int role = ex->msgs[i].role;
        if (role == ROLE_SYSTEM) {
            if (i != 0) { return bad(detail, BAD_ORDER, "messages[%d]: a system message may only come first", i); }
            continue;
        }
        int want = k % 2 == 0 ? ROLE_USER : ROLE_ASSISTANT;
        if (role != want) {
            return bad(detail, BAD_ORDER, "messages[%d] is from the %s where the %s's turn was expected "
                       "(user and assistant alternate, starting with user)", i, role_name[role], role_name[want]);
        }
        k++;
    }
    if (k == 0) { return bad(detail, BAD_ORDER, "no user or assistant message"); }
    if (k % 2 == 1) { return bad(detail, BAD_ORDER, "the last message is the user's: it must be the assistant's"); }
    return -1;
}

// The "messages" array at s[p] -> ex. -1 if fine, else the bad reason with detail.
static int parse_messages(Parser* ps, const unsigned char* s, size_t n, size_t p, Example* ex, char* detail) {
    static const char* const keys[2] = { "role", "content" };
    if (s[p] != '[') { return bad(detail, BAD_TYPE, "\"messages\" is %s, not an array", json_kind(s[p])); }
    p++;
    doc_json_ws(s, n, &p);
    if (s[p] == ']') { return bad(detail, BAD_EMPTY, "\"messages\" is an empty array"); }
    for (int i = 0; ; i++) {
        doc_json_ws(s, n, &p);
        if (s[p] != '{') { return bad(detail, BAD_TYPE, "messages[%d] is %s, not an object", i, json_kind(s[p])); }
        size_t at[2] = { 0, 0 };  // value offsets of role and content (0: absent; a value never starts at 0)
        p++;
        doc_json_ws(s, n, &p);
        if (s[p] == '}') { p++; }
        else {
            do {
                int k = read_key(ps, s, n, &p, keys, 2);
                if (k >= 0 && at[k] != 0) { return bad(detail, BAD_DUP_KEY, "messages[%d] has the key \"%s\" twice", i, keys[k]); }
                if (k >= 0) { at[k] = p; }
                doc_json_skip(s, n, &p, 1);
            } while (next_member(s, n, &p));
        }
        for (int k = 0; k < 2; k++) {
            if (at[k] == 0) { return bad(detail, BAD_MISSING, "messages[%d] has no \"%s\"", i, keys[k]); }
            if (s[at[k]] != '"') { return bad(detail, BAD_TYPE, "messages[%d].%s is %s, not a string", i, keys[k], json_kind(s[at[k]])); }
        }
        size_t q = at[0];
        ps->key.len = 0;
        doc_json_string(s, n, &q, &ps->key, NULL);
        int role = -1;
        for (int r = 0; r < 3; r++) {
            if (ps->key.len == strlen(role_name[r]) && memcmp(ps->key.data, role_name[r], ps->key.len) == 0) { role = r; }
        }
        if (role < 0) {
            return bad(detail, BAD_ROLE, "messages[%d] has the role \"%.*s\" (expected system, user or assistant)",
                       i, (int)(ps->key.len < 40 ? ps->key.len : 40), ps->key.len ? (const char*)ps->key.data : "");
        }
        add_string(ps, ex, role, s, n, at[1]);
        if (blank_text(msg_text(ex, ex->n - 1), ex->msgs[ex->n - 1].len)) {
            return bad(detail, BAD_EMPTY, "messages[%d] (%s) has empty content", i, role_name[role]);
        }
        if (!next_member(s, n, &p)) { break; }
    }
    return check_order(ex, detail);
}

// Parses one line (no newline) into ex. Returns -1 if it is a usable example, else the reason
// it is bad, with detail saying exactly what is wrong.
static int parse_example(Parser* ps, const unsigned char* s, size_t n, Example* ex, char* detail) {
    enum { K_PROMPT, K_RESPONSE, K_SYSTEM, K_MESSAGES, NKEYS };
    static const char* const keys[NKEYS] = { "prompt", "response", "system", "messages" };
    ex->text.len = 0;
    ex->n = 0;
    // syntax first, so that everything after may assume valid JSON
    size_t p = 0;
    if (json_lexical_check(s, n, detail) != 0) { return BAD_JSON; }
    int r = doc_json_skip(s, n, &p, 1);
    if (r == -2) { return bad(detail, BAD_JSON, "nesting deeper than %d", DOC_JSON_MAX_DEPTH); }
    if (r != 0) { return bad(detail, BAD_JSON, "syntax error at byte %zu", p + 1); }
    doc_json_ws(s, n, &p);
    if (p != n) { return bad(detail, BAD_JSON, "text after the JSON value at byte %zu", p + 1); }
    p = 0;
    doc_json_ws(s, n, &p);
    if (s[p] != '{') { return bad(detail, BAD_NOT_OBJECT, "the line is %s, not an object", json_kind(s[p])); }
    // the keys we read, by where their values start (0: absent; a value never starts at 0)
    size_t at[NKEYS] = { 0, 0, 0, 0 };
    p++;
    doc_json_ws(s, n, &p);
    if (s[p] != '}') {
        do {
            int k = read_key(ps, s, n, &p, keys, NKEYS);
            if (k >= 0 && at[k] != 0) { return bad(detail, BAD_DUP_KEY, "the key \"%s\" is given twice", keys[k]); }
            if (k >= 0) { at[k] = p; }
            doc_json_skip(s, n, &p, 1);
        } while (next_member(s, n, &p));
    }
    // a null "system" is the same as none (exported tables often write null for "missing")
    int has_system = at[K_SYSTEM] && s[at[K_SYSTEM]] != 'n';
    int has_pr = at[K_PROMPT] || at[K_RESPONSE] || has_system;
    if (at[K_MESSAGES] && has_pr) {
        return bad(detail, BAD_BOTH, "both \"messages\" and \"%s\": give one form", at[K_PROMPT] ? "prompt" : at[K_RESPONSE] ? "response" : "system");
    }
    if (at[K_MESSAGES]) { return parse_messages(ps, s, n, at[K_MESSAGES], ex, detail); }
    if (!has_pr) { return bad(detail, BAD_MISSING, "no \"prompt\" and \"response\", nor \"messages\""); }
    for (int k = K_PROMPT; k <= K_RESPONSE; k++) {
        if (!at[k]) { return bad(detail, BAD_MISSING, "no \"%s\"", keys[k]); }
    }
    for (int k = K_PROMPT; k <= K_SYSTEM; k++) {
        if (at[k] && s[at[k]] != '"' && !(k == K_SYSTEM && s[at[k]] == 'n')) {
            return bad(detail, BAD_TYPE, "\"%s\" is %s, not a string", keys[k], json_kind(s[at[k]]));
        }
    }
    // in template order: system (if any, and not empty), user, assistant
    if (at[K_SYSTEM] && s[at[K_SYSTEM]] == '"') {
        add_string(ps, ex, ROLE_SYSTEM, s, n, at[K_SYSTEM]);
        if (blank_text(msg_text(ex, 0), ex->msgs[0].len)) { ex->n = 0; ex->text.len = 0; }
    }
    add_string(ps, ex, ROLE_USER, s, n, at[K_PROMPT]);
    add_string(ps, ex, ROLE_ASSISTANT, s, n, at[K_RESPONSE]);
    for (int i = ex->n - 2; i < ex->n; i++) {
        if (blank_text(msg_text(ex, i), ex->msgs[i].len)) {
            return bad(detail, BAD_EMPTY, "\"%s\" is empty", ex->msgs[i].role == ROLE_USER ? "prompt" : "response");
        }
    }
    return -1;
}

// ----------------------------------------------------------------------------
// encoding an example by the chat template

// Appends n weights of value w (one per token a chat.h segment appended).
static void push_weights(BpeBytes* weights, size_t n, unsigned char w) {
    for (size_t i = 0; i < n; i++) { bpe_bytes_append(weights, &w, 1); }
}

// ids and weights (0: context, 1: target) of ex, by the template of llmc/chat.h
static void encode_example(ChatEncoder* ce, const Example* ex, BpeIds* ids, BpeBytes* weights) {
    ids->len = 0;
    weights->len = 0;
    push_weights(weights, chat_begin(ce, ids), 0);
    for (int i = 0; i < ex->n; i++) {
        const Msg* m = &ex->msgs[i];
        const unsigned char* text = msg_text(ex, i);
        if (m->role == ROLE_SYSTEM) {
            push_weights(weights, chat_system(ce, text, m->len, ids), 0);
        } else if (m->role == ROLE_USER) {
            push_weights(weights, chat_user(ce, text, m->len, ids), 0);
        } else {
            push_weights(weights, chat_assistant_text(ce, text, m->len, ids), 1);
            push_weights(weights, chat_end(ce, ids), 1);
        }
    }
}

// 1 if some message of ex contains the literal text "<|endoftext|>"
static int has_literal_eot(const Example* ex) {
    static const char eot[] = "<|endoftext|>";
    const size_t el = sizeof(eot) - 1;
    for (int i = 0; i < ex->n; i++) {
        const unsigned char* s = msg_text(ex, i);
        size_t n = ex->msgs[i].len;
        for (size_t j = 0; j + el <= n; j++) {
            if (s[j] == '<' && memcmp(s + j, eot, el) == 0) { return 1; }
        }
    }
    return 0;
}

// ----------------------------------------------------------------------------
// the whole run

typedef struct {
    // settings
    const char* const* inputs;
    int ninputs;
    long T;                  // sequence length; 0 if not given (--pack only)
    int pack, truncate;
    long long max_examples;  // -1: all
    long long max_bad;       // -1: no limit
    // output: tokens (token_bytes each) and mask bytes
    int token_bytes;
    unsigned char* tok;
    uint8_t* mask;
    size_t ntok, cap;
    // counts
    long lines, blank, read, written, too_long, truncated, nbad, turns;
    long literal_eot, utf8_lines, utf8_bytes, unpaired;
    long mask_ones, padding, rows;
    int stopped;             // --max-examples reached with input left unread
    BadCount reasons[NUM_BAD];
    BadCount long_lines;     // examples dropped as too long (count and first positions)
} Run;

static void remember(BadCount* b, int file, long line) {
    if (b->nfirst < FIRST_LINES) {
        b->first_file[b->nfirst] = file;
        b->first_line[b->nfirst] = line;
        b->nfirst++;
    }
    b->count++;
}

static void out_push(Run* r, int id, int m) {
    if (r->ntok == (size_t)INT32_MAX) {
        die("the output would hold more than %d tokens, the most one shard can (its header counts them "
            "in 32 bits): split the input and make several shards", INT32_MAX);
    }
    if (r->ntok == r->cap) {
        r->cap = r->cap ? 2 * r->cap : (1u << 20);
        if (r->cap > (size_t)INT32_MAX) { r->cap = (size_t)INT32_MAX; }
        r->tok = (unsigned char*)realloc(r->tok, r->cap * (size_t)r->token_bytes);
        r->mask = (uint8_t*)realloc(r->mask, r->cap);
        if (r->tok == NULL || r->mask == NULL) { die("out of memory holding %zu tokens", r->cap); }
    }
    if (r->token_bytes == 2) { ((uint16_t*)r->tok)[r->ntok] = (uint16_t)id; }
    else { ((uint32_t*)r->tok)[r->ntok] = (uint32_t)id; }
    r->mask[r->ntok] = (uint8_t)m;
    r->mask_ones += m;
    r->ntok++;
}

static void print_positions(FILE* f, const Run* r, const BadCount* b) {
    for (int k = 0; k < b->nfirst; k++) { fprintf(f, " %s:%ld", r->inputs[b->first_file[k]], b->first_line[k]); }
    if (b->count > b->nfirst) { fprintf(f, " ..."); }
}

// the per-reason table of bad lines, and the examples dropped as too long, on stderr
static void print_table(const Run* r) {
    if (r->nbad > 0) {
        fprintf(stderr, "%ld bad line%s, skipped (reason, count, first positions):\n", r->nbad, r->nbad == 1 ? "" : "s");
        for (int k = 0; k < NUM_BAD; k++) {
            const BadCount* b = &r->reasons[k];
            if (b->count == 0) { continue; }
            fprintf(stderr, "  %-20s %7ld ", bad_text[k], b->count);
            print_positions(stderr, r, b);
            fprintf(stderr, "\n  %-20s         first: %s\n", "", b->detail);
        }
    }
    if (r->blank > 0) { fprintf(stderr, "%ld blank line%s skipped (not errors)\n", r->blank, r->blank == 1 ? "" : "s"); }
    if (r->long_lines.count > 0) {
        fprintf(stderr, "%ld example%s longer than --seq-len %ld tokens dropped:", r->long_lines.count,
                r->long_lines.count == 1 ? "" : "s", r->T);
        print_positions(stderr, r, &r->long_lines);
        fprintf(stderr, "\n");
    }
    if (r->utf8_lines > 0) {
        fprintf(stderr, "%ld line%s with invalid UTF-8: %ld bytes replaced by U+FFFD, examples kept\n",
                r->utf8_lines, r->utf8_lines == 1 ? "" : "s", r->utf8_bytes);
    }
}

// Adds one usable example (its ids and weights) to the output, in the run's layout.
static void add_example(Run* r, int file, long line, const BpeIds* ids, const BpeBytes* w) {
    size_t len = ids->len;
    if (!r->pack && len > (size_t)r->T) {
        // with --truncate keep the first T tokens, unless not one response token is among them
        size_t first_target = 0;
        while (first_target < len && w->data[first_target] == 0) { first_target++; }
        if (!r->truncate || first_target >= (size_t)r->T) {
            remember(&r->long_lines, file, line);
            r->too_long++;
            return;
        }
        len = (size_t)r->T;
        r->truncated++;
    }
    for (size_t i = 0; i < len; i++) { out_push(r, ids->data[i], w->data[i]); }
    if (!r->pack) {
        for (size_t i = len; i < (size_t)r->T; i++) { out_push(r, ids->data[0], 0); }  // ids[0] is EOT
        r->padding += r->T - (long)len;
        r->rows++;
    }
    r->written++;
}

static void process_file(Run* r, int file, Parser* ps, ChatEncoder* ce, Example* ex, BpeIds* ids, BpeBytes* w, BpeBytes* fixed) {
    char err[LLMC_ERRLEN], detail[DETAIL_LEN];
    const char* path = r->inputs[file];
    FILE* f = fopen_regular(path, err);
    if (f == NULL) { die("%s", err); }
    char* line = NULL;
    size_t cap = 0;
    ssize_t got;
    long lineno = 0;
    while (!(r->max_examples >= 0 && r->written >= r->max_examples) && (got = getline(&line, &cap, f)) != -1) {
        lineno++;
        r->lines++;
        const unsigned char* s = (const unsigned char*)line;
        size_t n = (size_t)got;
        if (lineno == 1) { size_t b = doc_bom_len(s, n); s += b; n -= b; }
        if (n > 0 && s[n - 1] == '\n') { n--; }
        if (blank_text(s, n)) { r->blank++; continue; }
        r->read++;
        long replaced = chat_utf8_repair(s, n, fixed);  // as an evaluator must (llmc/chat.h)
        if (replaced > 0) {
            r->utf8_lines++;
            r->utf8_bytes += replaced;
            s = fixed->data;
            n = fixed->len;
        }
        long unpaired_before = ps->unpaired;
        int reason = parse_example(ps, s, n, ex, detail);
        if (reason >= 0) {
            ps->unpaired = unpaired_before;  // count them in the examples kept only
            BadCount* b = &r->reasons[reason];
            if (b->count == 0) { snprintf(b->detail, sizeof(b->detail), "%.1000s:%ld: %s", path, lineno, detail); }
            remember(b, file, lineno);
            r->nbad++;
            if (r->max_bad >= 0 && r->nbad > r->max_bad) {
                print_table(r);
                die("%s:%ld: more than %lld bad lines (--max-bad %lld): %s; nothing written",
                    path, lineno, r->max_bad, r->max_bad, detail);
            }
            continue;
        }
        encode_example(ce, ex, ids, w);
        long written_before = r->written;
        add_example(r, file, lineno, ids, w);
        if (r->written > written_before) {
            r->literal_eot += has_literal_eot(ex);
            for (int i = 0; i < ex->n; i++) { r->turns += ex->msgs[i].role == ROLE_ASSISTANT; }
        }
    }
    if (ferror(f)) { die("%s: read error after line %ld", path, lineno); }
    // stopped by --max-examples: "stopped reading" only if a non-blank line was left unread
    if (r->max_examples >= 0 && r->written >= r->max_examples) {
        while (!r->stopped && (got = getline(&line, &cap, f)) != -1) { r->stopped = !blank_text((const unsigned char*)line, (size_t)got); }
    }
    fclose(f);
    free(line);
}

// ----------------------------------------------------------------------------
// the JSON report

static void buf_positions(BpeBytes* b, const Run* r, const BadCount* bc) {
    bpe_bytes_append(b, "[", 1);
    for (int k = 0; k < bc->nfirst; k++) {
        char pos[LLMC_PATH_MAX + 32];
        snprintf(pos, sizeof(pos), "%s:%ld", r->inputs[bc->first_file[k]], bc->first_line[k]);
        if (k > 0) { bpe_bytes_append(b, ", ", 2); }
        buf_json_string(b, pos);
    }
    bpe_bytes_append(b, "]", 1);
}

static void write_report(const Run* r, const BPE* bpe, const char* out, const char* path) {
    BpeBytes b = {0};
    buf_printf(&b, "{\n  \"inputs\": [");
    for (int i = 0; i < r->ninputs; i++) {
        if (i > 0) { buf_printf(&b, ", "); }
        buf_json_string(&b, r->inputs[i]);
    }
    buf_printf(&b, "],\n  \"output\": ");
    buf_json_string(&b, out);
    buf_printf(&b, ",\n  \"layout\": \"%s\",\n  \"seq_len\": ", r->pack ? "packed" : "aligned");
    if (r->T > 0) { buf_printf(&b, "%ld", r->T); } else { buf_printf(&b, "null"); }
    buf_printf(&b, ",\n  \"truncate\": %s,\n", r->truncate ? "true" : "false");
    buf_printf(&b, "  \"vocab_size\": %d,\n  \"eot\": %d,\n  \"token_bytes\": %d,\n  \"shard_version\": 2,\n",
               bpe->vocab_size, bpe->eot, r->token_bytes);
    buf_printf(&b, "  \"lines\": %ld,\n  \"blank_lines\": %ld,\n  \"examples_read\": %ld,\n  \"examples_written\": %ld,\n",
               r->lines, r->blank, r->read, r->written);
    buf_printf(&b, "  \"dropped_too_long\": %ld,\n  \"too_long_first_lines\": ", r->too_long);
    buf_positions(&b, r, &r->long_lines);
    buf_printf(&b, ",\n  \"truncated\": %ld,\n  \"bad_lines\": %ld,\n  \"bad\": {\n", r->truncated, r->nbad);
    for (int k = 0; k < NUM_BAD; k++) {
        const BadCount* bc = &r->reasons[k];
        buf_printf(&b, "    \"%s\": {\"count\": %ld, \"first_lines\": ", bad_key[k], bc->count);
        buf_positions(&b, r, bc);
        buf_printf(&b, ", \"first_detail\": ");
        buf_json_string(&b, bc->detail);
        buf_printf(&b, "}%s\n", k + 1 < NUM_BAD ? "," : "");
    }
    buf_printf(&b, "  },\n  \"stopped_at_max_examples\": %s,\n", r->stopped ? "true" : "false");
    buf_printf(&b, "  \"assistant_turns\": %ld,\n  \"literal_eot_examples\": %ld,\n", r->turns, r->literal_eot);
    buf_printf(&b, "  \"invalid_utf8_lines\": %ld,\n  \"invalid_utf8_bytes\": %ld,\n  \"unpaired_surrogates\": %ld,\n",
               r->utf8_lines, r->utf8_bytes, r->unpaired);
    long rows = r->T > 0 ? (long)((r->ntok - 1) / (size_t)r->T) : -1;
    buf_printf(&b, "  \"tokens\": %zu,\n  \"rows\": ", r->ntok);
    if (rows >= 0) { buf_printf(&b, "%ld", rows); } else { buf_printf(&b, "null"); }
    buf_printf(&b, ",\n  \"padding_tokens\": %ld,\n  \"mask_tokens\": %ld,\n  \"mask_fraction\": %.6f\n}\n",
               r->padding, r->mask_ones, (double)r->mask_ones / (double)r->ntok);
    AtomicFile af;
    atomic_open(&af, path);
    atomic_write(&af, b.data, 1, b.len);
    atomic_commit(&af);
    bpe_bytes_free(&b);
}

// ----------------------------------------------------------------------------

#define SFT_NUM_ARGS 10

int main(int argc, char** argv) {
    char vocab_dir[PATH_MAX], enc_default[PATH_MAX + 32], merges_default[PATH_MAX + 32], err[LLMC_ERRLEN];
    doc_default_vocab_dir(vocab_dir, sizeof(vocab_dir));
    snprintf(enc_default, sizeof(enc_default), "%s/encoder.json", vocab_dir);
    snprintf(merges_default, sizeof(merges_default), "%s/vocab.bpe", vocab_dir);
    const char *out = NULL, *report = NULL, *encoder = NULL, *merges = NULL, *tiktoken = NULL;
    // numbers without a default value are read as text, so that --help shows no made-up default
    const char *seq_len_arg = NULL, *max_examples_arg = NULL, *max_bad_arg = NULL;
    int pack = 0, truncate = 0;
    ArgSpec specs[SFT_NUM_ARGS] = {
        {"-o", "--out", ARG_STRING, &out, 0, 0, "output shard (written atomically)"},
        {"-t", "--seq-len", ARG_STRING, &seq_len_arg, 0, 0, "sequence length T of training: each example starts a row of T tokens (required unless --pack)"},
        {NULL, "--pack", ARG_FLAG, &pack, 0, 0, "examples back to back, no padding (T, if given, only counts rows)"},
        {NULL, "--truncate", ARG_FLAG, &truncate, 0, 0, "keep the first T tokens of a longer example instead of dropping it"},
        {NULL, "--max-examples", ARG_STRING, &max_examples_arg, 0, 0, "stop after writing N examples (default: all)"},
        {NULL, "--max-bad", ARG_STRING, &max_bad_arg, 0, 0, "fail (exit 1, nothing written) if more than N lines are bad (default: no limit)"},
        {NULL, "--report", ARG_STRING, &report, 0, 0, "write the counts as JSON to this file (atomically)"},
        {NULL, "--encoder", ARG_STRING, &encoder, 0, 0, "GPT-2 encoder.json (default: GPT-2 from ../shared/data/gpt2)"},
        {NULL, "--merges", ARG_STRING, &merges, 0, 0, "GPT-2 vocab.bpe"},
        {NULL, "--tiktoken", ARG_STRING, &tiktoken, 0, 0, "tiktoken rank file instead (e.g. from bpe_train)"},
    };
    const char** inputs = (const char**)malloc_check((size_t)(argc + 1) * sizeof(char*), "inputs");
    int ninputs = 0;
    int rc = args_parse_positional(argc, argv, specs, SFT_NUM_ARGS, inputs, argc, &ninputs, 0, err);
    if (rc == 1) {
        args_print_help(stdout, usage_text, specs, SFT_NUM_ARGS);
        return 0;
    }
    if (rc != 0) { die("%s", err); }
    long long T = 0, max_examples = -1, max_bad = -1;
    const long long big = 4000000000000000000LL;
    if (seq_len_arg && parse_integer("--seq-len", seq_len_arg, 1, 1 << 20, &T, err) != 0) { die("%s", err); }
    if (max_examples_arg && parse_integer("--max-examples", max_examples_arg, 1, big, &max_examples, err) != 0) { die("%s", err); }
    if (max_bad_arg && parse_integer("--max-bad", max_bad_arg, 0, big, &max_bad, err) != 0) { die("%s", err); }
    if (ninputs == 0) { die("no INPUT.jsonl given (see --help)"); }
    if (out == NULL) { die("-o (--out): an output shard is required"); }
    if (!pack && T == 0) { die("--seq-len T is required (each example starts a row of T tokens), or give --pack"); }
    if (pack && truncate) { die("--truncate cuts examples to one row of T tokens; --pack has no rows to fit: give one of them"); }
    if (tiktoken != NULL && (encoder != NULL || merges != NULL)) { die("--tiktoken and --encoder/--merges are two vocabularies; give one"); }
    if (encoder == NULL) { encoder = enc_default; }
    if (merges == NULL) { merges = merges_default; }
    // inputs must be regular files; no output may be an input or the other output
    {
        DocPath* in = (DocPath*)malloc_check((size_t)(ninputs + 2) * sizeof(DocPath), "paths");
        DocPath outp[2];
        int nin = 0, nout = 0;
        for (int k = 0; k < ninputs; k++) { in[nin++] = (DocPath){"input", inputs[k]}; }
        if (tiktoken) { in[nin++] = (DocPath){"--tiktoken", tiktoken}; }
        else { in[nin++] = (DocPath){"--encoder", encoder}; in[nin++] = (DocPath){"--merges", merges}; }
        for (int k = 0; k < nin; k++) {
            if (check_regular_file(in[k].path, err) != 0) { die("%s%s%s", k < ninputs ? "" : in[k].what, k < ninputs ? "" : ": ", err); }
        }
        outp[nout++] = (DocPath){"-o (--out)", out};
        if (report) { outp[nout++] = (DocPath){"--report", report}; }
        if (doc_check_paths(in, nin, outp, nout, NULL, err) != 0) { die("%s", err); }
        for (int k = 0; k < nout; k++) {
            if (doc_make_parent_dirs(outp[k].path, err) != 0) { die("%s: %s", outp[k].what, err); }
        }
        free(in);
    }
    BPE bpe;
    rc = tiktoken ? bpe_load_tiktoken(&bpe, tiktoken, err) : bpe_load_gpt2(&bpe, encoder, merges, err);
    if (rc != 0) { die("%s", err); }

    Run r;
    memset(&r, 0, sizeof(r));
    r.inputs = inputs;
    r.ninputs = ninputs;
    r.T = (long)T;
    r.pack = pack;
    r.truncate = truncate;
    r.max_examples = max_examples;
    r.max_bad = max_bad;
    r.token_bytes = bpe.vocab_size > 65536 ? 4 : 2;  // ids up to 65535 fit in uint16
    Parser ps = {0};
    ChatEncoder ce;
    chat_init(&ce, &bpe);
    Example ex = {0};
    BpeIds ids = {0};
    BpeBytes w = {0}, fixed = {0};
    double t0 = now_seconds();
    int k = 0;
    for (; k < ninputs && !(max_examples >= 0 && r.written >= max_examples); k++) {
        process_file(&r, k, &ps, &ce, &ex, &ids, &w, &fixed);
    }
    r.unpaired = ps.unpaired;
    if (k < ninputs) { r.stopped = 1; }  // whole files left (process_file notes lines left in one)
    print_table(&r);
    if (r.written == 0) {
        BpeBytes names = {0};
        for (int k = 0; k < ninputs; k++) { buf_printf(&names, "%s%s", k ? ", " : "", inputs[k]); }
        bpe_bytes_append(&names, "", 1);
        die("no usable examples in %s (%ld lines: %ld bad, %ld blank, %ld too long for --seq-len %ld); nothing written",
            (const char*)names.data, r.lines, r.nbad, r.blank, r.too_long, r.T);
    }
    // one EOT of mask 0 after the last example: the last row's (T+1)-th token in the aligned layout
    out_push(&r, bpe.eot, 0);
    shard_write(out, r.tok, (long)r.ntok, r.token_bytes, r.mask);
    if (report) { write_report(&r, &bpe, out, report); }
    double dt = now_seconds() - t0;
    if (r.unpaired > 0) { fprintf(stderr, "%ld unpaired surrogate escapes decoded as U+FFFD\n", r.unpaired); }
    if (r.literal_eot > 0) {
        fprintf(stderr, "%ld example%s the text \"<|endoftext|>\": encoded as plain text, not as the end-of-text token\n",
                r.literal_eot, r.literal_eot == 1 ? " contains" : "s contain");
    }
    if (r.stopped) { printf("reached --max-examples %lld: stopped reading there\n", max_examples); }
    char rows[64];
    if (r.T > 0) { snprintf(rows, sizeof(rows), "%ld rows of %ld", (long)((r.ntok - 1) / (size_t)r.T), r.T); }
    else { snprintf(rows, sizeof(rows), "no rows (packed, no --seq-len)"); }
    printf("wrote %s: %s layout, %d-byte tokens + loss mask (shard version 2), %.2f s\n",
           out, pack ? "packed" : "aligned", r.token_bytes, dt);
    printf("examples: %ld read, %ld written, %ld dropped too long, %ld truncated, %ld bad (%ld blank lines); "
           "%zu tokens, %s, %.4f of tokens with mask 1\n",
           r.read, r.written, r.too_long, r.truncated, r.nbad, r.blank, r.ntok, rows, (double)r.mask_ones / (double)r.ntok);
    flush_stdout_check();
    chat_free(&ce);
    bpe_bytes_free(&ps.key); bpe_bytes_free(&ex.text); bpe_bytes_free(&w); bpe_bytes_free(&fixed);
    bpe_ids_free(&ids);
    free(ex.msgs); free(r.tok); free(r.mask); free(inputs);
    bpe_free(&bpe);
    return 0;
}
