// DPO data: preference-pair JSONL -> one pair file (llmc/pairs.h), each pair two rows of T+1
// tokens (the chosen and the rejected conversation) with a mask that marks the reply, so the
// trainer can sum log pi(reply | prompt) for each side. See dev/data/DPO.md.
//
//   dpo_prepare INPUT.jsonl... -o OUT.bin --seq-len T [--truncate] [--report R.json]
//
// Input: one JSON object per line, in one of three forms (other keys are ignored):
//   (a) {"prompt": "...", "chosen": "...", "rejected": "...", "system": "..."}   system optional
//   (b) {"prompt": [{"role": "system"|"user"|"assistant", "content": "..."}, ...],
//        "chosen": "...", "rejected": "..."}
//       an optional system message first, then user / assistant alternating from user to user:
//       a multi-turn prompt whose earlier assistant turns are context
//   (c) Anthropic HH-RLHF's {"chosen": "\n\nHuman: ...\n\nAssistant: ...", "rejected": "..."}:
//       two whole dialogues. The prompt is their longest common prefix, cut back to the start of
//       the last "\n\nAssistant:" that lies whole in it; what follows that marker on each side is
//       that side's reply. The prompt is split into turns at "\n\nHuman:" / "\n\nAssistant:".
//       Turns and replies are stripped of surrounding white space (Python's str.strip(), as
//       dev/data/sft_sources.py strips hh_chosen's turns, so SFT and DPO see the same prompts).
//       sft_sources.py's hh_pairs applies the same rules and writes form (b), with the
//       train/test split of hh_chosen; converting that or the raw file gives the same pairs.
// In forms (a) and (b) text is used as is (no stripping), as in sft_prepare.
//
// Each row is the chat template of llmc/chat.h, exactly as sft_prepare renders an SFT example
// (each segment encoded on its own):
//   EOT                                                    mask 0
//   "### System:\n" + system + "\n\n"                      mask 0   (only with a system message)
//   per prompt turn: "### User:\n" + user + "\n\n### Assistant:\n"   mask 0
//                    earlier assistant turn + EOT          mask 0   (context in DPO)
//   the reply (chosen in one row, rejected in the other)   mask 1
//   EOT                                                    mask 1   (stopping is part of the reply)
//   EOT padding to T+1 tokens                              mask 0
// The mask is per target: mask[t] = 1 when row[t+1] is a reply token (or the reply's EOT). Both
// rows of a pair hold the same prompt tokens. An example may use all T+1 tokens of a row: the
// leading EOT is only ever an input.
//
// Too long: when the prompt and the longer reply exceed T+1 tokens the pair is dropped
// (too_long), or with --truncate the prompt is cut from the left (the leading EOT stays, then the
// last tokens of the prompt) so that both rows fit; replies are never cut. A reply that cannot
// fit even behind the EOT and one prompt token (reply + EOT >= T tokens) is dropped as
// reply_too_long.
//
// Bad records are never dropped silently: each is counted under one reason, stderr gets a table
// with the first 5 file:line positions of each, and --report writes the counts as JSON.
#include <ctype.h>
#include "llmc/utils.h"
#include "llmc/bpe.h"
#include "llmc/chat.h"
#include "llmc/pairs.h"
#include "dev/data/doc_reader.h"
#include "dev/data/json_text.h"

static const char* usage_text =
"usage: dpo_prepare [options] INPUT.jsonl... -o OUT.bin --seq-len T\n"
"Preference-pair JSONL -> one DPO pair file (llmc/pairs.h; dev/data/DPO.md).\n"
"Each line: {\"prompt\": \"...\", \"chosen\", \"rejected\"[, \"system\"]}, or \"prompt\" as a list of\n"
"{\"role\", \"content\"} messages ending with the user's, or HH-RLHF's {\"chosen\", \"rejected\"}\n"
"whole dialogues (\"\\n\\nHuman: ...\\n\\nAssistant: ...\"; the prompt is their common beginning).\n"
"Each pair is two rows of T+1 tokens (chosen, rejected) by the chat template of llmc/chat.h;\n"
"mask 1 on the reply and its EOT, 0 on the prompt and the EOT padding.\n"
"Vocabulary: GPT-2 from ../shared/data/gpt2 (looked up from the current directory, then from\n"
"this program's repository), or --encoder/--merges, or --tiktoken. Numbers accept 1e6.\n"
"Exit status: 0 ok, 1 on bad usage, unreadable input, no usable pair, or --max-bad exceeded.";

// ----------------------------------------------------------------------------
// bad-record reasons

enum {
    BAD_JSON,        // not valid JSON (syntax, raw control characters, bad literals, trailing text)
    BAD_NOT_OBJECT,  // valid JSON, but not an object
    BAD_DUP_KEY,     // a key we read given twice
    BAD_MISSING,     // no "chosen" or "rejected"; a message without role or content
    BAD_TYPE,        // a key we read has the wrong JSON type
    BAD_MIXED,       // "system" with a message-list prompt, or with the HH form
    BAD_EMPTY,       // an empty prompt, an empty message, an empty "prompt" list
    BAD_ROLE,        // a role other than system, user, assistant
    BAD_ORDER,       // the prompt's roles are not system?, user, (assistant, user)*
    BAD_EMPTY_REPLY, // chosen or rejected is empty (white space only)
    BAD_IDENTICAL,   // chosen and rejected are the same: nothing to prefer
    BAD_TURNS,       // HH: no parseable turns (no common "\n\nAssistant:", empty or misordered turns)
    BAD_DIFFERS,     // HH: the dialogues differ before the last reply (or in their number of turns)
    BAD_TOO_LONG,    // prompt + longer reply > T+1 tokens (without --truncate)
    BAD_REPLY_LONG,  // a reply that does not fit a row even behind one prompt token
    NUM_BAD
};
static const char* bad_key[NUM_BAD] = {  // names in the JSON report (hh_pairs in sft_sources.py uses the same)
    "invalid_json", "not_object", "duplicate_key", "missing_field", "wrong_type", "mixed_forms",
    "empty_text", "bad_role", "bad_role_order", "empty_reply", "identical_chosen_rejected",
    "bad_turns", "differs_before_last_reply", "too_long", "reply_too_long",
};
static const char* bad_text[NUM_BAD] = {  // names in the stderr table
    "invalid JSON", "not an object", "duplicate key", "missing field", "wrong type", "mixed forms",
    "empty text", "unknown role", "bad role order", "empty reply", "identical replies",
    "no parseable turns", "differ before last", "too long", "reply too long",
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
// one parsed pair: the prompt's messages and the two replies, all pointing into one buffer

enum { ROLE_SYSTEM, ROLE_USER, ROLE_ASSISTANT };
static const char* role_name[3] = { "system", "user", "assistant" };
enum { FORM_A, FORM_B, FORM_C };

typedef struct { int role; size_t off, len; } Msg;

typedef struct {
    BpeBytes text;   // decoded strings, back to back; msgs and replies are slices of it
    Msg* msgs;       // the prompt
    int n, cap;
    Msg reply[2];    // chosen, rejected
    int form;
} Pair;

static const unsigned char* slice(const Pair* pr, const Msg* m) {
    return pr->text.data != NULL ? pr->text.data + m->off : (const unsigned char*)"";
}

static void msg_add(Pair* pr, int role, size_t off, size_t len) {
    if (pr->n == pr->cap) {
        pr->cap = pr->cap ? 2 * pr->cap : 16;
        pr->msgs = (Msg*)realloc(pr->msgs, (size_t)pr->cap * sizeof(Msg));
        if (pr->msgs == NULL) { die("out of memory"); }
    }
    pr->msgs[pr->n++] = (Msg){ role, off, len };
}

// ----------------------------------------------------------------------------
// JSON checks: the rules doc_reader.h's parser leaves out, so that a line Python's json.loads
// rejects is "invalid JSON" here too (NaN and Infinity aside). The same rules as
// dev/data/sft_prepare.c's (kept there as statics; the two tools must agree on what is JSON).

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

// 0 if fine, else -1 with what (DETAIL_LEN bytes) saying what is wrong
static int json_lexical_check(const unsigned char* s, size_t n, char* what) {
    size_t i = 0;
    while (i < n) {
        if (s[i] == '"') {
            for (i++; i < n && s[i] != '"'; i++) {
                if (s[i] < 0x20) {
                    snprintf(what, DETAIL_LEN, "raw control character 0x%02x in a string at byte %zu (write it as an escape)", s[i], i + 1);
                    return -1;
                }
                if (s[i] == '\\') { i++; }
            }
            i++;
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
// white space as Python's str.strip() sees it (sft_sources.py strips HH turns with it)

static int py_space_cp(uint32_t c) {
    return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

// bytes of the white-space character at s[i] (s has n bytes), or 0 if it is not white space
static int py_space_len(const unsigned char* s, size_t n, size_t i) {
    unsigned c = s[i];
    if (c < 0x80) { return py_space_cp(c) ? 1 : 0; }
    int len = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : 0;  // every such space is 2 or 3 bytes
    if (len == 0 || i + (size_t)len > n) { return 0; }
    uint32_t cp = c & (len == 2 ? 0x1Fu : 0x0Fu);
    for (int k = 1; k < len; k++) {
        if ((s[i + k] & 0xC0) != 0x80) { return 0; }
        cp = (cp << 6) | (s[i + k] & 0x3Fu);
    }
    return py_space_cp(cp) ? len : 0;
}

// narrows the slice s[*a..*b) to its text without surrounding white space
static void py_strip(const unsigned char* s, size_t* a, size_t* b) {
    int k;
    while (*a < *b && (k = py_space_len(s, *b, *a)) > 0) { *a += (size_t)k; }
    while (*b > *a) {
        size_t j = *b - 1;
        while (j > *a && (s[j] & 0xC0) == 0x80 && *b - j < 4) { j--; }  // the last character's first byte
        if (py_space_len(s, *b, j) != (int)(*b - j)) { break; }
        *b = j;
    }
}

// ----------------------------------------------------------------------------
// the HH-RLHF form

static const char HH_HUMAN[] = "\n\nHuman:";
static const char HH_ASSISTANT[] = "\n\nAssistant:";
#define HH_HUMAN_LEN 8
#define HH_ASSISTANT_LEN 12

// The first turn marker ("\n\nHuman:" or "\n\nAssistant:") in s[from..n), as Python's
// re.search(r"\n\n(Human|Assistant):") finds it: its position or -1, its length, its speaker.
static long hh_marker(const unsigned char* s, size_t n, size_t from, size_t* len, int* human) {
    for (size_t i = from; i + HH_HUMAN_LEN <= n; i++) {
        if (s[i] != '\n' || s[i + 1] != '\n') { continue; }
        if (memcmp(s + i, HH_HUMAN, HH_HUMAN_LEN) == 0) { *len = HH_HUMAN_LEN; *human = 1; return (long)i; }
        if (i + HH_ASSISTANT_LEN <= n && memcmp(s + i, HH_ASSISTANT, HH_ASSISTANT_LEN) == 0) {
            *len = HH_ASSISTANT_LEN; *human = 0; return (long)i;
        }
    }
    return -1;
}

static int bad(char* detail, int reason, const char* fmt, ...) {
    va_list args;
    va_start(args, fmt);
    vsnprintf(detail, DETAIL_LEN, fmt, args);
    va_end(args);
    return reason;
}

// pr->reply[0..1] hold the two whole dialogues; splits them into the prompt's turns and the two
// replies. -1 if fine, else the bad reason with detail. The order of the checks is that of
// split_hh_pair in sft_sources.py, so both count a record under the same reason.
static int hh_split(Pair* pr, char* detail) {
    const unsigned char* c = slice(pr, &pr->reply[0]);
    const unsigned char* r = slice(pr, &pr->reply[1]);
    size_t lc = pr->reply[0].len, lr = pr->reply[1].len;
    if (lc == lr && memcmp(c, r, lc) == 0) { return bad(detail, BAD_IDENTICAL, "\"chosen\" and \"rejected\" are the same dialogue"); }
    size_t common = 0;
    while (common < lc && common < lr && c[common] == r[common]) { common++; }
    // the last "\n\nAssistant:" that lies whole in the common beginning starts the replies
    long p = -1;
    for (size_t i = common >= HH_ASSISTANT_LEN ? common - HH_ASSISTANT_LEN + 1 : 0; i-- > 0;) {
        if (c[i] == '\n' && memcmp(c + i, HH_ASSISTANT, HH_ASSISTANT_LEN) == 0) { p = (long)i; break; }
    }
    if (p < 0) {
        return bad(detail, BAD_TURNS, "the dialogues differ at byte %zu, before any \"\\n\\nAssistant:\" turn", common);
    }
    size_t q = (size_t)p + HH_ASSISTANT_LEN, ml;
    int human;
    for (int s = 0; s < 2; s++) {
        const unsigned char* d = s == 0 ? c : r;
        size_t n = s == 0 ? lc : lr;
        long m = hh_marker(d, n, q, &ml, &human);
        if (m >= 0) {
            return bad(detail, BAD_DIFFERS, "the dialogues differ at byte %zu, in an assistant turn that is not the last: "
                       "the %s reply (from byte %zu) holds another \"%s\" turn at byte %ld",
                       common, s == 0 ? "chosen" : "rejected", q, human ? "Human:" : "Assistant:", m + 2);
        }
    }
    // the prompt c[0..p): Human, Assistant, ..., Human, nothing but white space before the first
    size_t off0 = pr->reply[0].off;
    long m = hh_marker(c, (size_t)p, 0, &ml, &human);
    if (m < 0) { return bad(detail, BAD_TURNS, "no \"\\n\\nHuman:\" turn before the last reply"); }
    size_t a = 0, b = (size_t)m;
    py_strip(c, &a, &b);
    if (a < b) { return bad(detail, BAD_TURNS, "text before the first turn marker"); }
    for (int k = 0; m >= 0; k++) {
        if (human != (k % 2 == 0)) {
            return bad(detail, BAD_TURNS, "prompt turn %d is the %s's where the %s's was expected (they alternate, from Human)",
                       k + 1, human ? "Human" : "Assistant", k % 2 == 0 ? "Human" : "Assistant");
        }
        size_t start = (size_t)m + ml, len2;
        int human2;
        long next = hh_marker(c, (size_t)p, start, &len2, &human2);
        a = start;
        b = next >= 0 ? (size_t)next : (size_t)p;
        py_strip(c, &a, &b);
        if (a == b) { return bad(detail, BAD_TURNS, "prompt turn %d (%s) is empty", k + 1, human ? "Human" : "Assistant"); }
        msg_add(pr, human ? ROLE_USER : ROLE_ASSISTANT, off0 + a, b - a);
        m = next;
        human = human2;
        ml = len2;
    }
    if (pr->msgs[pr->n - 1].role != ROLE_USER) {
        return bad(detail, BAD_TURNS, "the prompt ends with an assistant turn, not the human's");
    }
    for (int s = 0; s < 2; s++) {
        const unsigned char* d = s == 0 ? c : r;
        size_t ra = q, rb = pr->reply[s].len;
        py_strip(d, &ra, &rb);
        if (ra == rb) { return bad(detail, BAD_EMPTY_REPLY, "the %s dialogue's last assistant turn is empty", s == 0 ? "chosen" : "rejected"); }
        pr->reply[s].off += ra;
        pr->reply[s].len = rb - ra;
    }
    if (pr->reply[0].len == pr->reply[1].len && memcmp(slice(pr, &pr->reply[0]), slice(pr, &pr->reply[1]), pr->reply[0].len) == 0) {
        return bad(detail, BAD_IDENTICAL, "the two replies are the same once stripped of white space");
    }
    return -1;
}

// ----------------------------------------------------------------------------
// parsing one line into a Pair

typedef struct {
    BpeBytes key;        // scratch: a decoded key or role
    long unpaired;       // unpaired surrogate escapes seen (decoded as U+FFFD)
} Parser;

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

// Appends the decoded string at s[p] to pr->text; *m gets its slice.
static void decode_string(Parser* ps, Pair* pr, const unsigned char* s, size_t n, size_t p, Msg* m) {
    size_t off = pr->text.len;
    doc_json_string(s, n, &p, &pr->text, &ps->unpaired);
    m->off = off;
    m->len = pr->text.len - off;
}

static void add_string(Parser* ps, Pair* pr, int role, const unsigned char* s, size_t n, size_t p) {
    Msg m;
    decode_string(ps, pr, s, n, p, &m);
    msg_add(pr, role, m.off, m.len);
}

// The "prompt" array at s[p] -> pr->msgs: system?, then user / assistant alternating from user
// to user. -1 if fine, else the bad reason with detail.
static int parse_messages(Parser* ps, const unsigned char* s, size_t n, size_t p, Pair* pr, char* detail) {
    static const char* const keys[2] = { "role", "content" };
    p++;
    doc_json_ws(s, n, &p);
    if (s[p] == ']') { return bad(detail, BAD_EMPTY, "\"prompt\" is an empty list"); }
    for (int i = 0; ; i++) {
        doc_json_ws(s, n, &p);
        if (s[p] != '{') { return bad(detail, BAD_TYPE, "prompt[%d] is %s, not an object", i, json_kind(s[p])); }
        size_t at[2] = { 0, 0 };  // value offsets of role and content (0: absent; a value never starts at 0)
        p++;
        doc_json_ws(s, n, &p);
        if (s[p] == '}') { p++; }
        else {
            do {
                int k = read_key(ps, s, n, &p, keys, 2);
                if (k >= 0 && at[k] != 0) { return bad(detail, BAD_DUP_KEY, "prompt[%d] has the key \"%s\" twice", i, keys[k]); }
                if (k >= 0) { at[k] = p; }
                doc_json_skip(s, n, &p, 1);
            } while (next_member(s, n, &p));
        }
        for (int k = 0; k < 2; k++) {
            if (at[k] == 0) { return bad(detail, BAD_MISSING, "prompt[%d] has no \"%s\"", i, keys[k]); }
            if (s[at[k]] != '"') { return bad(detail, BAD_TYPE, "prompt[%d].%s is %s, not a string", i, keys[k], json_kind(s[at[k]])); }
        }
        size_t q = at[0];
        ps->key.len = 0;
        doc_json_string(s, n, &q, &ps->key, NULL);
        int role = -1;
        for (int r = 0; r < 3; r++) {
            if (ps->key.len == strlen(role_name[r]) && memcmp(ps->key.data, role_name[r], ps->key.len) == 0) { role = r; }
        }
        if (role < 0) {
            return bad(detail, BAD_ROLE, "prompt[%d] has the role \"%.*s\" (expected system, user or assistant)",
                       i, (int)(ps->key.len < 40 ? ps->key.len : 40), ps->key.len ? (const char*)ps->key.data : "");
        }
        add_string(ps, pr, role, s, n, at[1]);
        const Msg* m = &pr->msgs[pr->n - 1];
        if (blank_text(slice(pr, m), m->len)) { return bad(detail, BAD_EMPTY, "prompt[%d] (%s) has empty content", i, role_name[role]); }
        if (!next_member(s, n, &p)) { break; }
    }
    int k = 0;  // user / assistant messages so far
    for (int i = 0; i < pr->n; i++) {
        int role = pr->msgs[i].role;
        if (role == ROLE_SYSTEM) {
            if (i != 0) { return bad(detail, BAD_ORDER, "prompt[%d]: a system message may only come first", i); }
            continue;
        }
        int want = k % 2 == 0 ? ROLE_USER : ROLE_ASSISTANT;
        if (role != want) {
            return bad(detail, BAD_ORDER, "prompt[%d] is from the %s where the %s's turn was expected "
                       "(user and assistant alternate, starting with user)", i, role_name[role], role_name[want]);
        }
        k++;
    }
    if (k == 0) { return bad(detail, BAD_ORDER, "the prompt has no user message"); }
    if (k % 2 == 0) { return bad(detail, BAD_ORDER, "the prompt ends with the assistant's message: it must end with the user's"); }
    return -1;
}

// Parses one line (no newline) into pr. Returns -1 if it is a usable pair, else the reason it is
// bad, with detail saying exactly what is wrong.
static int parse_pair(Parser* ps, const unsigned char* s, size_t n, Pair* pr, char* detail) {
    enum { K_PROMPT, K_CHOSEN, K_REJECTED, K_SYSTEM, NKEYS };
    static const char* const keys[NKEYS] = { "prompt", "chosen", "rejected", "system" };
    pr->text.len = 0;
    pr->n = 0;
    // syntax first, so that everything after may assume valid JSON
    size_t p = 0;
    if (json_lexical_check(s, n, detail) != 0) { return BAD_JSON; }
    int rc = doc_json_skip(s, n, &p, 1);
    if (rc == -2) { return bad(detail, BAD_JSON, "nesting deeper than %d", DOC_JSON_MAX_DEPTH); }
    if (rc != 0) { return bad(detail, BAD_JSON, "syntax error at byte %zu", p + 1); }
    doc_json_ws(s, n, &p);
    if (p != n) { return bad(detail, BAD_JSON, "text after the JSON value at byte %zu", p + 1); }
    p = 0;
    doc_json_ws(s, n, &p);
    if (s[p] != '{') { return bad(detail, BAD_NOT_OBJECT, "the line is %s, not an object", json_kind(s[p])); }
    size_t at[NKEYS] = { 0, 0, 0, 0 };  // where the values of the keys we read start (0: absent)
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
    for (int k = K_CHOSEN; k <= K_REJECTED; k++) {
        if (!at[k]) { return bad(detail, BAD_MISSING, "no \"%s\"", keys[k]); }
        if (s[at[k]] != '"') { return bad(detail, BAD_TYPE, "\"%s\" is %s, not a string", keys[k], json_kind(s[at[k]])); }
    }
    // a null "system" is the same as none (exported tables often write null for "missing")
    int has_system = at[K_SYSTEM] && s[at[K_SYSTEM]] != 'n';
    if (!at[K_PROMPT]) {
        if (has_system) {
            return bad(detail, BAD_MIXED, "\"system\" without \"prompt\": the HH form (whole dialogues in \"chosen\" and "
                       "\"rejected\") has no system message");
        }
        pr->form = FORM_C;
        decode_string(ps, pr, s, n, at[K_CHOSEN], &pr->reply[0]);
        decode_string(ps, pr, s, n, at[K_REJECTED], &pr->reply[1]);
        return hh_split(pr, detail);
    }
    if (s[at[K_PROMPT]] == '"') {
        pr->form = FORM_A;
        if (has_system && s[at[K_SYSTEM]] != '"') {
            return bad(detail, BAD_TYPE, "\"system\" is %s, not a string", json_kind(s[at[K_SYSTEM]]));
        }
        if (has_system) {
            add_string(ps, pr, ROLE_SYSTEM, s, n, at[K_SYSTEM]);
            if (blank_text(slice(pr, &pr->msgs[0]), pr->msgs[0].len)) { pr->n = 0; }  // a blank system is none
        }
        add_string(ps, pr, ROLE_USER, s, n, at[K_PROMPT]);
        const Msg* m = &pr->msgs[pr->n - 1];
        if (blank_text(slice(pr, m), m->len)) { return bad(detail, BAD_EMPTY, "\"prompt\" is empty"); }
    } else if (s[at[K_PROMPT]] == '[') {
        pr->form = FORM_B;
        if (has_system) {
            return bad(detail, BAD_MIXED, "\"system\" with a message-list \"prompt\": put the system message first in the list");
        }
        int r = parse_messages(ps, s, n, at[K_PROMPT], pr, detail);
        if (r >= 0) { return r; }
    } else {
        return bad(detail, BAD_TYPE, "\"prompt\" is %s, not a string or a list of messages", json_kind(s[at[K_PROMPT]]));
    }
    decode_string(ps, pr, s, n, at[K_CHOSEN], &pr->reply[0]);
    decode_string(ps, pr, s, n, at[K_REJECTED], &pr->reply[1]);
    for (int k = 0; k < 2; k++) {
        if (blank_text(slice(pr, &pr->reply[k]), pr->reply[k].len)) {
            return bad(detail, BAD_EMPTY_REPLY, "\"%s\" is empty", keys[K_CHOSEN + k]);
        }
    }
    if (pr->reply[0].len == pr->reply[1].len && memcmp(slice(pr, &pr->reply[0]), slice(pr, &pr->reply[1]), pr->reply[0].len) == 0) {
        return bad(detail, BAD_IDENTICAL, "\"chosen\" and \"rejected\" are the same text");
    }
    return -1;
}

// ----------------------------------------------------------------------------
// encoding by the chat template of llmc/chat.h (as sft_prepare's encode_example)

// the prompt: EOT, the system segment, user segments, earlier assistant turns with their EOT
static void encode_prompt(ChatEncoder* ce, const Pair* pr, BpeIds* ids) {
    ids->len = 0;
    chat_begin(ce, ids);
    for (int i = 0; i < pr->n; i++) {
        const Msg* m = &pr->msgs[i];
        if (m->role == ROLE_SYSTEM) { chat_system(ce, slice(pr, m), m->len, ids); }
        else if (m->role == ROLE_USER) { chat_user(ce, slice(pr, m), m->len, ids); }
        else { chat_assistant_text(ce, slice(pr, m), m->len, ids); chat_end(ce, ids); }
    }
}

// ----------------------------------------------------------------------------
// the whole run

typedef struct {
    // settings
    const char* const* inputs;
    int ninputs;
    long T;
    int truncate;
    long long max_bad;       // -1: no limit
    int eot;
    // output: npairs pairs, two rows of T+1 tokens and two masks of T each
    uint32_t* tok;
    uint8_t* mask;
    size_t npairs, cap;
    // counts
    long lines, blank, read, nbad, truncated, forms[3], multi_turn;
    long utf8_lines, utf8_bytes, unpaired;
    long long prompt_tokens, cut_tokens, reply_tokens[2], padding;
    long longest;            // the longest example (prompt + longer reply) among those written, before any cut
    BadCount reasons[NUM_BAD];
} Run;

static void remember(BadCount* b, int file, long line) {
    if (b->nfirst < FIRST_LINES) {
        b->first_file[b->nfirst] = file;
        b->first_line[b->nfirst] = line;
        b->nfirst++;
    }
    b->count++;
}

static void print_positions(FILE* f, const Run* r, const BadCount* b) {
    for (int k = 0; k < b->nfirst; k++) { fprintf(f, " %s:%ld", r->inputs[b->first_file[k]], b->first_line[k]); }
    if (b->count > b->nfirst) { fprintf(f, " ..."); }
}

static void print_table(const Run* r) {
    if (r->nbad > 0) {
        fprintf(stderr, "%ld bad record%s, skipped (reason, count, first positions):\n", r->nbad, r->nbad == 1 ? "" : "s");
        for (int k = 0; k < NUM_BAD; k++) {
            const BadCount* b = &r->reasons[k];
            if (b->count == 0) { continue; }
            fprintf(stderr, "  %-20s %7ld ", bad_text[k], b->count);
            print_positions(stderr, r, b);
            fprintf(stderr, "\n  %-20s         first: %s\n", "", b->detail);
        }
    }
    if (r->blank > 0) { fprintf(stderr, "%ld blank line%s skipped (not errors)\n", r->blank, r->blank == 1 ? "" : "s"); }
    if (r->utf8_lines > 0) {
        fprintf(stderr, "%ld line%s with invalid UTF-8: %ld bytes replaced by U+FFFD, pairs kept\n",
                r->utf8_lines, r->utf8_lines == 1 ? "" : "s", r->utf8_bytes);
    }
    if (r->unpaired > 0) { fprintf(stderr, "%ld unpaired surrogate escapes decoded as U+FFFD\n", r->unpaired); }
}

// Lays out one pair as two rows. -1 if written, else the reason it cannot be (with detail).
static int add_pair(Run* r, const BpeIds* prompt, const BpeIds* reply0, const BpeIds* reply1, char* detail) {
    const BpeIds* reply[2] = { reply0, reply1 };
    size_t T = (size_t)r->T, P = prompt->len;
    size_t Rmax = reply0->len > reply1->len ? reply0->len : reply1->len;
    int longer = reply1->len > reply0->len;
    if (Rmax >= T) {
        return bad(detail, BAD_REPLY_LONG, "the %s reply is %zu tokens with its EOT: behind the leading EOT and at least "
                   "one prompt token it cannot fit a row of T+1 = %zu tokens", longer ? "rejected" : "chosen", Rmax, T + 1);
    }
    size_t keep = P;  // prompt tokens kept, the leading EOT included
    if (P + Rmax > T + 1) {
        if (!r->truncate) {
            return bad(detail, BAD_TOO_LONG, "%zu prompt tokens + %zu of the %s reply > T+1 = %zu (--truncate keeps the "
                       "end of the prompt)", P, Rmax, longer ? "rejected" : "chosen", T + 1);
        }
        keep = T + 1 - Rmax;
    }
    if (r->npairs == (size_t)INT32_MAX) { die("more than %d pairs: the pair file counts them in 32 bits; split the input", INT32_MAX); }
    if (r->npairs == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 1024;
        r->tok = (uint32_t*)realloc(r->tok, r->cap * 2 * (T + 1) * sizeof(uint32_t));
        r->mask = (uint8_t*)realloc(r->mask, r->cap * 2 * T);
        if (r->tok == NULL || r->mask == NULL) { die("out of memory holding %zu pairs of T = %zu", r->cap, T); }
    }
    for (int s = 0; s < 2; s++) {
        uint32_t* row = r->tok + (2 * r->npairs + (size_t)s) * (T + 1);
        uint8_t* m = r->mask + (2 * r->npairs + (size_t)s) * T;
        size_t R = reply[s]->len, j = 0;
        row[j++] = (uint32_t)prompt->data[0];  // the leading EOT, kept when the prompt is cut
        for (size_t i = P - keep + 1; i < P; i++) { row[j++] = (uint32_t)prompt->data[i]; }
        for (size_t i = 0; i < R; i++) { row[j++] = (uint32_t)reply[s]->data[i]; }
        r->padding += (long long)(T + 1 - j);
        while (j < T + 1) { row[j++] = (uint32_t)r->eot; }
        // target t is row[t+1]: a reply token when keep <= t+1 < keep+R
        for (size_t t = 0; t < T; t++) { m[t] = (uint8_t)(t + 1 >= keep && t + 1 < keep + R); }
        r->reply_tokens[s] += (long long)R;
    }
    if (keep < P) { r->truncated++; r->cut_tokens += (long long)(P - keep); }
    r->prompt_tokens += (long long)keep;
    if ((long)(P + Rmax) > r->longest) { r->longest = (long)(P + Rmax); }
    r->npairs++;
    return -1;
}

static void count_bad(Run* r, int reason, int file, long lineno, const char* detail) {
    const char* path = r->inputs[file];
    BadCount* b = &r->reasons[reason];
    if (b->count == 0) { snprintf(b->detail, sizeof(b->detail), "%.1000s:%ld: %s", path, lineno, detail); }
    remember(b, file, lineno);
    r->nbad++;
    if (r->max_bad >= 0 && r->nbad > r->max_bad) {
        print_table(r);
        die("%s:%ld: more than %lld bad records (--max-bad %lld): %s: %s; nothing written",
            path, lineno, r->max_bad, r->max_bad, bad_key[reason], detail);
    }
}

static void process_file(Run* r, int file, Parser* ps, ChatEncoder* ce, Pair* pr, BpeIds* ids, BpeIds* rep0, BpeIds* rep1, BpeBytes* fixed) {
    char err[LLMC_ERRLEN], detail[DETAIL_LEN];
    const char* path = r->inputs[file];
    FILE* f = fopen_regular(path, err);
    if (f == NULL) { die("%s", err); }
    char* line = NULL;
    size_t cap = 0;
    ssize_t got;
    long lineno = 0;
    while ((got = getline(&line, &cap, f)) != -1) {
        lineno++;
        r->lines++;
        const unsigned char* s = (const unsigned char*)line;
        size_t n = (size_t)got;
        if (lineno == 1) { size_t b = doc_bom_len(s, n); s += b; n -= b; }
        if (n > 0 && s[n - 1] == '\n') { n--; }
        if (blank_text(s, n)) { r->blank++; continue; }
        r->read++;
        long replaced = chat_utf8_repair(s, n, fixed);  // as sft_prepare and any evaluator do (llmc/chat.h)
        if (replaced > 0) {
            r->utf8_lines++;
            r->utf8_bytes += replaced;
            s = fixed->data;
            n = fixed->len;
        }
        long unpaired_before = ps->unpaired;
        int reason = parse_pair(ps, s, n, pr, detail);
        if (reason < 0) {
            encode_prompt(ce, pr, ids);
            chat_answer_ids(ce, slice(pr, &pr->reply[0]), pr->reply[0].len, rep0);
            chat_answer_ids(ce, slice(pr, &pr->reply[1]), pr->reply[1].len, rep1);
            reason = add_pair(r, ids, rep0, rep1, detail);
        }
        if (reason >= 0) {
            ps->unpaired = unpaired_before;  // count them in the pairs kept only
            count_bad(r, reason, file, lineno, detail);
            continue;
        }
        r->forms[pr->form]++;
        int turns = 0;
        for (int i = 0; i < pr->n; i++) { turns += pr->msgs[i].role == ROLE_USER; }
        r->multi_turn += turns > 1;
    }
    if (ferror(f)) { die("%s: read error after line %ld", path, lineno); }
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
    buf_printf(&b, ",\n  \"format\": \"pairs\",\n  \"pairs_version\": %d,\n  \"seq_len\": %ld,\n  \"truncate\": %s,\n",
               PAIRS_VERSION, r->T, r->truncate ? "true" : "false");
    buf_printf(&b, "  \"vocab_size\": %d,\n  \"eot\": %d,\n", bpe->vocab_size, bpe->eot);
    buf_printf(&b, "  \"lines\": %ld,\n  \"blank_lines\": %ld,\n  \"records_read\": %ld,\n  \"pairs_written\": %zu,\n",
               r->lines, r->blank, r->read, r->npairs);
    buf_printf(&b, "  \"forms\": {\"prompt_text\": %ld, \"prompt_messages\": %ld, \"hh_dialogues\": %ld},\n",
               r->forms[FORM_A], r->forms[FORM_B], r->forms[FORM_C]);
    buf_printf(&b, "  \"multi_turn_prompts\": %ld,\n  \"truncated\": %ld,\n  \"truncated_prompt_tokens\": %lld,\n",
               r->multi_turn, r->truncated, r->cut_tokens);
    buf_printf(&b, "  \"bad_records\": %ld,\n  \"bad\": {\n", r->nbad);
    for (int k = 0; k < NUM_BAD; k++) {
        const BadCount* bc = &r->reasons[k];
        buf_printf(&b, "    \"%s\": {\"count\": %ld, \"first_lines\": ", bad_key[k], bc->count);
        buf_positions(&b, r, bc);
        buf_printf(&b, ", \"first_detail\": ");
        buf_json_string(&b, bc->detail);
        buf_printf(&b, "}%s\n", k + 1 < NUM_BAD ? "," : "");
    }
    buf_printf(&b, "  },\n  \"invalid_utf8_lines\": %ld,\n  \"invalid_utf8_bytes\": %ld,\n  \"unpaired_surrogates\": %ld,\n",
               r->utf8_lines, r->utf8_bytes, r->unpaired);
    double np = r->npairs > 0 ? (double)r->npairs : 1.0;
    buf_printf(&b, "  \"prompt_tokens\": %lld,\n  \"chosen_tokens\": %lld,\n  \"rejected_tokens\": %lld,\n",
               r->prompt_tokens, r->reply_tokens[0], r->reply_tokens[1]);
    buf_printf(&b, "  \"mean_prompt_tokens\": %.1f,\n  \"mean_chosen_tokens\": %.1f,\n  \"mean_rejected_tokens\": %.1f,\n",
               (double)r->prompt_tokens / np, (double)r->reply_tokens[0] / np, (double)r->reply_tokens[1] / np);
    buf_printf(&b, "  \"longest_example_tokens\": %ld,\n  \"padding_tokens\": %lld,\n  \"padding_fraction\": %.6f\n}\n",
               r->longest, r->padding, (double)r->padding / (np * 2.0 * (double)(r->T + 1)));
    AtomicFile af;
    atomic_open(&af, path);
    atomic_write(&af, b.data, 1, b.len);
    atomic_commit(&af);
    bpe_bytes_free(&b);
}

// ----------------------------------------------------------------------------

#define DPO_NUM_ARGS 8

int main(int argc, char** argv) {
    char vocab_dir[PATH_MAX], enc_default[PATH_MAX + 32], merges_default[PATH_MAX + 32], err[LLMC_ERRLEN];
    doc_default_vocab_dir(vocab_dir, sizeof(vocab_dir));
    snprintf(enc_default, sizeof(enc_default), "%s/encoder.json", vocab_dir);
    snprintf(merges_default, sizeof(merges_default), "%s/vocab.bpe", vocab_dir);
    const char *out = NULL, *report = NULL, *encoder = NULL, *merges = NULL, *tiktoken = NULL;
    // numbers without a default value are read as text, so that --help shows no made-up default
    const char *seq_len_arg = NULL, *max_bad_arg = NULL;
    int truncate = 0;
    ArgSpec specs[DPO_NUM_ARGS] = {
        {"-o", "--out", ARG_STRING, &out, 0, 0, "output pair file (written atomically)"},
        {"-t", "--seq-len", ARG_STRING, &seq_len_arg, 0, 0, "sequence length T of training: each row is T+1 tokens (required)"},
        {NULL, "--truncate", ARG_FLAG, &truncate, 0, 0, "cut a too-long prompt from the left (keeping its leading EOT) instead of dropping the pair"},
        {NULL, "--max-bad", ARG_STRING, &max_bad_arg, 0, 0, "fail (exit 1, nothing written) if more than N records are bad or too long (default: no limit)"},
        {NULL, "--report", ARG_STRING, &report, 0, 0, "write the counts as JSON to this file (atomically)"},
        {NULL, "--encoder", ARG_STRING, &encoder, 0, 0, "GPT-2 encoder.json (default: GPT-2 from ../shared/data/gpt2)"},
        {NULL, "--merges", ARG_STRING, &merges, 0, 0, "GPT-2 vocab.bpe"},
        {NULL, "--tiktoken", ARG_STRING, &tiktoken, 0, 0, "tiktoken rank file instead (e.g. from bpe_train)"},
    };
    const char** inputs = (const char**)malloc_check((size_t)(argc + 1) * sizeof(char*), "inputs");
    int ninputs = 0;
    int rc = args_parse_positional(argc, argv, specs, DPO_NUM_ARGS, inputs, argc, &ninputs, 0, err);
    if (rc == 1) {
        args_print_help(stdout, usage_text, specs, DPO_NUM_ARGS);
        return 0;
    }
    if (rc != 0) { die("%s", err); }
    long long T = 0, max_bad = -1;
    const long long big = 4000000000000000000LL;
    if (seq_len_arg && parse_integer("--seq-len", seq_len_arg, 2, PAIRS_MAX_T, &T, err) != 0) { die("%s", err); }
    if (max_bad_arg && parse_integer("--max-bad", max_bad_arg, 0, big, &max_bad, err) != 0) { die("%s", err); }
    if (ninputs == 0) { die("no INPUT.jsonl given (see --help)"); }
    if (out == NULL) { die("-o (--out): an output pair file is required"); }
    if (T == 0) { die("--seq-len T is required: each pair is two rows of T+1 tokens (train with the same T)"); }
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
    r.truncate = truncate;
    r.max_bad = max_bad;
    r.eot = bpe.eot;
    Parser ps = {0};
    ChatEncoder ce;
    chat_init(&ce, &bpe);
    Pair pr;
    memset(&pr, 0, sizeof(pr));
    BpeIds ids = {0}, rep0 = {0}, rep1 = {0};
    BpeBytes fixed = {0};
    double t0 = now_seconds();
    for (int k = 0; k < ninputs; k++) { process_file(&r, k, &ps, &ce, &pr, &ids, &rep0, &rep1, &fixed); }
    r.unpaired = ps.unpaired;
    print_table(&r);
    if (r.npairs == 0) {
        BpeBytes names = {0};
        for (int k = 0; k < ninputs; k++) { buf_printf(&names, "%s%s", k ? ", " : "", inputs[k]); }
        bpe_bytes_append(&names, "", 1);
        die("no usable pairs in %s (%ld lines: %ld bad, %ld blank); nothing written",
            (const char*)names.data, r.lines, r.nbad, r.blank);
    }
    PairFile pf = { .npairs = (int)r.npairs, .T = (int)r.T, .has_ref = 0, .vocab = bpe.vocab_size, .eot = bpe.eot,
                    .ref_hash = 0, .tokens = r.tok, .mask = r.mask, .ref_logp = NULL };
    pairs_write(out, &pf);
    if (report) { write_report(&r, &bpe, out, report); }
    double dt = now_seconds() - t0;
    printf("wrote %s: %zu pairs, two rows of T+1 = %ld tokens each (pair file version %d), %.2f s\n",
           out, r.npairs, r.T + 1, PAIRS_VERSION, dt);
    printf("pairs: %ld read, %zu written, %ld bad (%ld too long, %ld reply too long), %ld truncated (%lld prompt tokens cut), "
           "%ld blank lines; mean tokens: prompt %.1f, chosen %.1f, rejected %.1f\n",
           r.read, r.npairs, r.nbad, r.reasons[BAD_TOO_LONG].count, r.reasons[BAD_REPLY_LONG].count, r.truncated, r.cut_tokens,
           r.blank, (double)r.prompt_tokens / (double)r.npairs, (double)r.reply_tokens[0] / (double)r.npairs,
           (double)r.reply_tokens[1] / (double)r.npairs);
    flush_stdout_check();
    chat_free(&ce);
    bpe_bytes_free(&ps.key); bpe_bytes_free(&pr.text); bpe_bytes_free(&fixed);
    bpe_ids_free(&ids); bpe_ids_free(&rep0); bpe_ids_free(&rep1);
    free(pr.msgs); free(r.tok); free(r.mask); free(inputs);
    bpe_free(&bpe);
    return 0;
}
