#!/usr/bin/env bash
# Tests of dev/data/dpo_prepare (preference-pair JSONL -> DPO pair file) and of llmc/pairs.h's
# reader and writer, on real HH-RLHF lines of ../shared/data/hh_rlhf and hand-written lines of
# forms (a) and (b). The expected tokens come from tiktoken's GPT-2 (built from
# ../shared/data/gpt2, not from our BPE), one chat-template segment at a time, and the HH split
# from a Python version of the rule written here; the expected pair files are built from those
# and dpo_prepare's output is only compared against them.
# Checks: the template and both rows' masks token for token (a known answer written out, system
# prompts, multi-turn prompts, escapes, literal "<|endoftext|>", invalid UTF-8), the HH
# common-prefix rule (replies that share a beginning, dialogues that differ before the last
# reply, identical and empty replies, unparseable turns), every bad reason counted with
# file:line on stderr and in --report, too_long / reply_too_long and --truncate (the prompt cut
# from the left, the boundaries), --max-bad failing with nothing written, the atomic write,
# usage errors; the raw HH file (form c) and sft_sources.py's hh_pairs (form b, train + test)
# giving the same pairs; pairs_read refusing broken files (magic, version, truncated, trailing
# bytes, a token out of range, a mask byte, a row without a masked target, header fields,
# reference log-probs) with a message naming the file, and a round trip with has_ref = 1.
# Also writes build/dpo_pairs_seed.bin, the seed of the pairs fuzz target (dev/fuzz).
# A few seconds. Prints PASS:/FAIL: lines; exits non-zero on failure. DATA_DIR overrides ../shared/data.
set -u
cd "$(dirname "$0")/../.."
REPO=$(pwd)
DATA=${DATA_DIR:-$REPO/../shared/data}
PY=${VENV_PYTHON:-$REPO/.venv/bin/python}
W=$(mktemp -d /tmp/test_dpo_prepare.XXXXXX)
trap 'rm -rf "$W"' EXIT

for f in dev/data/dpo_prepare build/test_pairs; do
    if [ ! -x "$f" ]; then echo "FAIL: $f is not built (make $f)"; exit 1; fi
done
for f in hh_rlhf/helpful_base_test.jsonl hh_rlhf/harmless_base_test.jsonl gpt2/encoder.json gpt2/vocab.bpe; do
    if [ ! -r "$DATA/$f" ]; then echo "FAIL: data: $DATA/$f is missing (set DATA_DIR)"; exit 1; fi
done
if ! "$PY" -c "import numpy, tiktoken" 2>/dev/null; then
    echo "FAIL: $PY lacks numpy or tiktoken (the setup makes .venv; VENV_PYTHON overrides)"; exit 1
fi

"$PY" - "$REPO" "$DATA" "$W" <<'EOF'
import json, os, re, struct, subprocess, sys
import numpy as np
import tiktoken
from tiktoken.load import data_gym_to_mergeable_bpe_ranks

REPO, DATA, W = sys.argv[1:4]
DP = os.environ.get("DPO_PREPARE", os.path.join(REPO, "dev", "data", "dpo_prepare"))  # override: to test a build elsewhere
TP = os.path.join(REPO, "build", "test_pairs")
HELPFUL = os.path.join(DATA, "hh_rlhf", "helpful_base_test.jsonl")
EOT, V = 50256, 50257
fails = 0


def ok(name, cond, why=""):
    global fails
    if cond:
        print("PASS: %s" % name, flush=True)
    else:
        fails += 1
        print("FAIL: %s: %s" % (name, str(why)[:600]), flush=True)


def run(cmd, env=None):
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=e, cwd=REPO)
    return p.returncode, p.stdout, p.stderr


def dpo(*args, env=None):
    return run([DP] + list(args), env=env)


def P(name):
    return os.path.join(W, name)


def leftovers(d):
    return [f for f in os.listdir(d) if ".tmp." in f]


# ------------------------------------------------------------------ the reference: encoder, template, HH rule
PAT = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
ranks = data_gym_to_mergeable_bpe_ranks(os.path.join(DATA, "gpt2", "vocab.bpe"), os.path.join(DATA, "gpt2", "encoder.json"))
enc = tiktoken.Encoding("gpt2_shared", pat_str=PAT, mergeable_ranks=ranks, special_tokens={"<|endoftext|>": EOT})
ok("reference encoder: tiktoken GPT-2 from ../shared/data/gpt2 ('hello world' = [31373, 995])",
   enc.encode_ordinary("hello world") == [31373, 995])


def prompt_ids(msgs):
    """EOT, then each prompt message as its own segment (llmc/chat.h); earlier replies end with EOT."""
    ids = [EOT]
    for role, text in msgs:
        if role == "system":
            ids += enc.encode_ordinary("### System:\n" + text + "\n\n")
        elif role == "user":
            ids += enc.encode_ordinary("### User:\n" + text + "\n\n### Assistant:\n")
        else:
            ids += enc.encode_ordinary(text) + [EOT]
    return ids


def reply_ids(text):
    return enc.encode_ordinary(text) + [EOT]


MARK = re.compile(r"\n\n(Human|Assistant):")


def hh_reference(c, r):
    """(msgs, chosen, rejected) or a reason, by DPO.md's rule: written again here, differently."""
    if c == r:
        return "identical_chosen_rejected"
    common = os.path.commonprefix([c, r])
    cut = common.rfind("\n\nAssistant:")
    if cut < 0:
        return "bad_turns"
    tail = len(common[:cut]) + len("\n\nAssistant:")
    if MARK.search(c[tail:]) or MARK.search(r[tail:]):
        return "differs_before_last_reply"
    marks = list(MARK.finditer(c[:cut]))
    if not marks or c[:marks[0].start()].strip():
        return "bad_turns"
    msgs = []
    for k, m in enumerate(marks):
        end = marks[k + 1].start() if k + 1 < len(marks) else cut
        text = c[m.end():end].strip()
        want = "Human" if k % 2 == 0 else "Assistant"
        if m.group(1) != want or not text:
            return "bad_turns"
        msgs.append(("user" if want == "Human" else "assistant", text))
    if msgs[-1][0] != "user":
        return "bad_turns"
    rc, rr = c[tail:].strip(), r[tail:].strip()
    if not rc or not rr:
        return "empty_reply"
    if rc == rr:
        return "identical_chosen_rejected"
    return msgs, rc, rr


def pair_of(obj):
    """The (msgs, chosen, rejected) of a good line of any form, or a reason (HH reasons only)."""
    if "prompt" not in obj:
        return hh_reference(obj["chosen"], obj["rejected"])
    if isinstance(obj["prompt"], list):
        msgs = [(m["role"], m["content"]) for m in obj["prompt"]]
    else:
        s = obj.get("system")
        msgs = ([("system", s)] if isinstance(s, str) and s.strip(" \t\r\n") else []) + [("user", obj["prompt"])]
    return msgs, obj["chosen"], obj["rejected"]


def layout(p, rc, rr, T, truncate):
    """(rows, masks) of one pair or the too-long reason: rows of T+1 tokens, masks of T."""
    R = max(len(rc), len(rr))
    if R >= T:
        return "reply_too_long"
    if len(p) + R > T + 1:
        if not truncate:
            return "too_long"
        p = [p[0]] + p[len(p) - (T - R):]   # the EOT, then the last T+1-R-1 prompt tokens
    rows, masks = [], []
    for rep in (rc, rr):
        row = p + rep
        rows.append(row + [EOT] * (T + 1 - len(row)))
        masks.append([1 if len(p) <= t + 1 < len(row) else 0 for t in range(T)])
    return rows, masks


def expected(lines, T, truncate=False):
    """For raw lines (bytes): the pairs' rows and masks in order, and reason -> [line numbers]."""
    rows, masks, bad = [], [], {}
    for i, raw in enumerate(lines):
        if not raw.strip():
            continue
        obj = json.loads(raw.decode("utf-8", errors="replace").lstrip("\ufeff"))
        got = pair_of(obj)
        if not isinstance(got, str):
            msgs, c, r = got
            got = layout(prompt_ids(msgs), reply_ids(c), reply_ids(r), T, truncate)
        if isinstance(got, str):
            bad.setdefault(got, []).append(i + 1)
            continue
        rows += got[0]
        masks += got[1]
    return rows, masks, bad


def read_pairs(path):
    b = open(path, "rb").read()
    h = struct.unpack("<256i", b[:1024])
    n, T = h[2], h[3]
    rec = 8 * (T + 1) + 2 * T
    rows, masks = [], []
    for i in range(n):
        o = 1024 + i * rec
        t = np.frombuffer(b, dtype="<u4", count=2 * (T + 1), offset=o).reshape(2, T + 1)
        m = np.frombuffer(b, dtype=np.uint8, count=2 * T, offset=o + 8 * (T + 1)).reshape(2, T)
        rows += t.tolist()
        masks += m.tolist()
    ref = np.frombuffer(b, dtype="<f4", count=2 * n, offset=1024 + n * rec).tolist() if h[4] else None
    return h, len(b), rows, masks, ref


def same_pairs(name, path, rows, masks, T):
    h, size, got_rows, got_masks, _ = read_pairs(path)
    n = len(rows) // 2
    ok(name + ": header magic 20241203, version 1, %d pairs, T %d, no ref, vocab 50257, eot 50256, size exact" % (n, T),
       h[:9] == (20241203, 1, n, T, 0, 0, 0, V, EOT) and not any(h[9:]) and size == 1024 + n * (8 * (T + 1) + 2 * T), (h[:9], size))
    k = next((i for i in range(min(len(rows), len(got_rows))) if rows[i] != got_rows[i]), None)
    ok(name + ": the %d rows equal the independently built ones" % len(rows), got_rows == rows,
       "row %s: got %s want %s" % (k, got_rows[k][:40] if k is not None else len(got_rows), rows[k][:40] if k is not None else len(rows)))
    ok(name + ": the masks equal the independently built ones (%d targets)" % sum(map(sum, masks)), got_masks == masks)


# ------------------------------------------------------------------ inputs
raw_lines = open(HELPFUL, "rb").read().split(b"\n")
if raw_lines[-1] == b"":
    raw_lines.pop()
ref_all = [pair_of(json.loads(l)) for l in raw_lines]
by_reason = {}
for i, g in enumerate(ref_all):
    if isinstance(g, str):
        by_reason.setdefault(g, []).append(i)
ok("reference HH rule on helpful_base_test: 2354 lines, bad: 2 identical, 3 empty reply, 7 bad turns, 9 differ before the last reply",
   len(raw_lines) == 2354 and {k: len(v) for k, v in by_reason.items()} ==
   {"identical_chosen_rejected": 2, "empty_reply": 3, "bad_turns": 7, "differs_before_last_reply": 9},
   {k: len(v) for k, v in by_reason.items()})
# the first 30 real lines, plus the first two of each bad reason, plus a pair whose replies share
# a beginning (the common prefix runs past the marker), a prompt of 3+ human turns
def replies_share(i):
    o = json.loads(raw_lines[i])
    return len(os.path.commonprefix([o["chosen"], o["rejected"]])) > o["chosen"].rfind("\n\nAssistant:") + len("\n\nAssistant: ") + 1
share = next(i for i, g in enumerate(ref_all) if not isinstance(g, str) and i >= 30 and replies_share(i))
multi = next(i for i, g in enumerate(ref_all) if not isinstance(g, str) and i >= 30 and sum(1 for r, _ in g[0] if r == "user") >= 3)
# and a reply too long for T=256 even with --truncate
long_reply = next(i for i, g in enumerate(ref_all) if not isinstance(g, str) and i >= 30 and max(len(reply_ids(g[1])), len(reply_ids(g[2]))) >= 256)
pick = sorted(set(range(30)) | {v for vs in by_reason.values() for v in vs[:2]} | {share, multi, long_reply})
hh = P("hh.jsonl")
open(hh, "wb").write(b"\n".join(raw_lines[i] for i in pick) + b"\n")
hh_lines = [raw_lines[i] for i in pick]
hh_pos = {i: k + 1 for k, i in enumerate(pick)}   # line in helpful -> line in hh.jsonl

edge_lines = [
    b'\xef\xbb\xbf{"system": "Be brief.", "prompt": "Name a colour.", "chosen": "Red.", "rejected": "Blue, I think."}',  # 1 BOM, system
    json.dumps({"prompt": [{"role": "system", "content": "Answer in French."},
                           {"role": "user", "content": "Hello?"}, {"role": "assistant", "content": "Bonjour !"},
                           {"role": "user", "content": "And goodbye?"}], "chosen": "Au revoir.", "rejected": "Goodbye."}).encode(),  # 2
    b'   ',                                                                                            # 3 blank
    b'{"prompt": "What is <|endoftext|>? \\u3053\\u3093 \\ud83d\\ude00", "chosen": "tab\\there", "rejected": "The text <|endoftext|>."}',  # 4
    b'{"prompt": "bad \xff byte", "chosen": "kept", "rejected": "also kept"}',                      # 5 invalid UTF-8
    b'{"id": 3, "meta": [1, {"a": null}], "system": null, "prompt": "Extra?", "chosen": "Ignored.", "rejected": "  Spaces kept."}\r',  # 6 CRLF
    json.dumps({"chosen": "\n\nHuman: Pick a number.\n\nAssistant: I pick 7.",
                "rejected": "\n\nHuman: Pick a number.\n\nAssistant: I pick 12."}).encode(),       # 7 HH, replies share "I pick "
    json.dumps({"chosen": "\n\nHuman:  Hi\u3000\n\nAssistant: Hello.\u00a0\n\nHuman: Bye \u2009\n\nAssistant: Ciao. \n",
                "rejected": "\n\nHuman:  Hi\u3000\n\nAssistant: Hello.\u00a0\n\nHuman: Bye \u2009\n\nAssistant:Later!"}).encode(),  # 8 HH multi-turn, strip
]
edge = P("edge.jsonl")
open(edge, "wb").write(b"\n".join(edge_lines) + b"\n")

# ------------------------------------------------------------------ the template, a known answer
# {"system": "Be brief.", "prompt": "Name a colour."} renders as in SFT.md; then "Red." EOT / "Blue, I think." EOT
KNOWN_PROMPT = [50256, 21017, 4482, 25, 198, 3856, 4506, 13, 628, 21017, 11787, 25, 198, 5376, 257, 9568, 13,
                198, 198, 21017, 15286, 25, 198]
T = 64
rc, out, err = dpo(edge, "-o", P("edge.bin"), "--seq-len", T, "--report", P("edge.json"))
ok("edge lines, T=64: exit 0", rc == 0, err)
if rc == 0:
    _, _, rows, masks, _ = read_pairs(P("edge.bin"))
    want_c = KNOWN_PROMPT + [7738, 13, EOT]
    want_r = KNOWN_PROMPT + [14573, 11, 314, 892, 13, EOT]
    ok("template: system + prompt, chosen \"Red.\": exactly the written-out tokens, EOT padding to T+1",
       rows[0] == want_c + [EOT] * (T + 1 - 26), rows[0][:30])
    ok("template: the rejected row has the same 23 prompt tokens, then \"Blue, I think.\" EOT",
       rows[1] == want_r + [EOT] * (T + 1 - 29), rows[1][:30])
    ok("mask: targets 22..24 of the chosen row (\"Red\", \".\", EOT) are 1, every other is 0",
       masks[0] == [1 if 22 <= t <= 24 else 0 for t in range(T)], masks[0])
    ok("mask: targets 22..27 of the rejected row (5 reply tokens and EOT) are 1, every other is 0",
       masks[1] == [1 if 22 <= t <= 27 else 0 for t in range(T)], masks[1])
    want_rows, want_masks, want_bad = expected(edge_lines, T)
    same_pairs("edge lines", P("edge.bin"), want_rows, want_masks, T)
    R = json.load(open(P("edge.json")))
    ok("edge lines --report: 8 lines, 1 blank, 7 pairs (4 text prompts, 1 message list, 2 HH dialogues; 2 multi-turn), no bad",
       R["lines"] == 8 and R["blank_lines"] == 1 and R["pairs_written"] == 7 and R["bad_records"] == 0
       and R["forms"] == {"prompt_text": 4, "prompt_messages": 1, "hh_dialogues": 2} and R["invalid_utf8_lines"] == 1
       and R["unpaired_surrogates"] == 0 and R["multi_turn_prompts"] == 2, R)
    text = lambda ids: enc.decode([t for t in ids if t != EOT])
if rc == 0 and len(rows) == 14:
    ok("multi-turn prompt (form b): the earlier reply and its EOT are context (mask 0), only the last reply is a target",
       text([t for t, m in zip(rows[2][1:], masks[2]) if m]) == "Au revoir." and rows[2].count(EOT) >= 3
       and "Bonjour !" in text(rows[2]) and masks[2][rows[2].index(EOT, 1) - 1] == 0)
    eots = [j for j, t in enumerate(rows[5]) if t == EOT]
    ok("escapes decoded, literal \"<|endoftext|>\" stays text: EOT only at the start, after the reply and as padding",
       "こん 😀" in text(rows[4]) and text(rows[5]).count("<|endoftext|>") == 2
       and eots == [0] + list(range(masks[5].index(1) + sum(masks[5]), T + 1)), eots)
    ok("invalid UTF-8 becomes U+FFFD, the pair kept; extra keys ignored, null system = none, reply spaces kept",
       "bad \ufffd byte" in text(rows[6]) and "System" not in text(rows[8]) and "  Spaces kept." in text(rows[9]))
    ok("HH form: replies sharing \"I pick \" keep it (the prompt is cut at the marker, not at the common prefix)",
       text([t for t, m in zip(rows[10][1:], masks[10]) if m]) == "I pick 7."
       and text([t for t, m in zip(rows[11][1:], masks[11]) if m]) == "I pick 12."
       and text(rows[10]).startswith("### User:\nPick a number.\n\n### Assistant:\n"))
    ok("HH form: turns and replies stripped of white space (U+3000, U+00A0, U+2009 too), multi-turn prompt with the earlier reply as context",
       text(rows[12]) == "### User:\nHi\n\n### Assistant:\nHello.### User:\nBye\n\n### Assistant:\nCiao."
       and text(rows[13]).endswith("Bye\n\n### Assistant:\nLater!"), (text(rows[12]), text(rows[13])))
    ok("both rows of every pair hold the same prompt tokens",
       all(rows[2 * i][:masks[2 * i].index(1) + 1] == rows[2 * i + 1][:masks[2 * i].index(1) + 1] for i in range(len(rows) // 2)))

# ------------------------------------------------------------------ real HH lines
T = 256
rc, out, err = dpo(hh, "-o", P("hh.bin"), "--seq-len", T, "--report", P("hh.json"))
ok("real HH lines (%d of helpful_base_test), T=256: exit 0" % len(hh_lines), rc == 0, err)
want_rows, want_masks, want_bad = expected(hh_lines, T)
if rc == 0:
    same_pairs("real HH lines", P("hh.bin"), want_rows, want_masks, T)
    R = json.load(open(P("hh.json")))
    for k in ["identical_chosen_rejected", "empty_reply", "bad_turns", "differs_before_last_reply", "too_long", "reply_too_long"]:
        w = ["%s:%d" % (hh, l) for l in want_bad.get(k, [])]
        b = R["bad"][k]
        ok("HH bad reason %s: %d, counted with file:line %s" % (k, len(w), " ".join(x.rsplit(":", 1)[1] for x in w[:5])),
           len(w) > 0 and b["count"] == len(w) and b["first_lines"] == w[:5] and b["first_detail"].startswith(w[0] + ": "), (b, w))
    ok("HH --report: pairs written and bad records add up to the lines read",
       R["pairs_written"] + R["bad_records"] == R["records_read"] == len(hh_lines) and R["forms"]["hh_dialogues"] == R["pairs_written"], R)
    ok("a real pair that differs earlier (helpful line %d: the first replies differ, the dialogue goes on) is counted, not split"
       % (by_reason["differs_before_last_reply"][0] + 1),
       hh_pos[by_reason["differs_before_last_reply"][0]] in want_bad["differs_before_last_reply"]
       and ("%s:%d" % (hh, hh_pos[by_reason["differs_before_last_reply"][0]])) in R["bad"]["differs_before_last_reply"]["first_lines"])
    ok("stderr table names the HH reasons", re.search(r"^  differ before last +%d  %s:" % (len(want_bad["differs_before_last_reply"]), re.escape(hh)), err, re.M)
       and re.search(r"^  identical replies +2 ", err, re.M), err)
    nmulti = sum(1 for i in pick if not isinstance(ref_all[i], str) and sum(1 for r, _ in ref_all[i][0] if r == "user") > 1
                 and i not in [pick[l - 1] for l in want_bad.get("too_long", []) + want_bad.get("reply_too_long", [])])
    ok("multi-turn prompts counted (%d, one of %d human turns: helpful line %d)"
       % (nmulti, sum(1 for r, _ in ref_all[multi][0] if r == "user"), multi + 1), R["multi_turn_prompts"] == nmulti and nmulti > 1, R)

# --truncate on the real lines
rc, out, err = dpo(hh, "-o", P("hht.bin"), "--seq-len", T, "--truncate", "--report", P("hht.json"))
want_rows_t, want_masks_t, want_bad_t = expected(hh_lines, T, truncate=True)
ok("--truncate T=256: exit 0", rc == 0, err)
if rc == 0:
    same_pairs("--truncate real HH lines", P("hht.bin"), want_rows_t, want_masks_t, T)
    R = json.load(open(P("hht.json")))
    ok("--truncate: the too-long pairs (%d) are cut and counted as truncated, the reply-too-long ones (%d) still dropped"
       % (len(want_bad["too_long"]), len(want_bad_t.get("reply_too_long", []))),
       R["truncated"] == len(want_bad["too_long"]) and R["bad"]["too_long"]["count"] == 0
       and R["bad"]["reply_too_long"]["count"] == len(want_bad_t.get("reply_too_long", [])) == len(want_bad.get("reply_too_long", [])), R)
    _, _, rows, masks, _ = read_pairs(P("hht.bin"))
    ok("--truncate: every row starts with EOT, the longer reply of a cut pair ends its row (%d prompt tokens cut)" % R["truncated_prompt_tokens"],
       all(r[0] == EOT for r in rows) and R["truncated_prompt_tokens"] > 0
       and sum(1 for i in range(0, len(masks), 2) if masks[i][-1] or masks[i + 1][-1]) >= R["truncated"])

# boundaries at T=64 (form a): the reply + EOT at T-1 tokens fits behind EOT and one prompt
# token; at T tokens it is reply_too_long; prompt + reply = T+1 fits without --truncate, T+2 does not
T = 64
def words(n):
    return " ".join(["word"] * n)
assert len(reply_ids(words(10))) == 11
def prompt_len(n):
    return len(prompt_ids([("user", words(n))]))
n_fit = next(n for n in range(1, 64) if prompt_len(n) + 11 == T + 1)
bound_lines = [json.dumps(o).encode() for o in [
    {"prompt": words(n_fit), "chosen": words(10), "rejected": "No."},            # 1 exactly T+1: fits
    {"prompt": words(n_fit + 1), "chosen": words(10), "rejected": "No."},        # 2 T+2: too long / cut 1
    {"prompt": "Say it.", "chosen": words(T - 2), "rejected": "No."},            # 3 R = T-1: fits behind EOT + 1 token
    {"prompt": "Say it.", "chosen": "No.", "rejected": words(T - 1)},            # 4 R = T: reply_too_long
]]
bound = P("bound.jsonl")
open(bound, "wb").write(b"\n".join(bound_lines) + b"\n")
rc, out, err = dpo(bound, "-o", P("bound.bin"), "--seq-len", T, "--report", P("bound.json"))
R = json.load(open(P("bound.json"))) if rc == 0 else {}
ok("boundaries without --truncate: prompt + reply = T+1 kept, T+2 too_long, reply of T tokens reply_too_long, T-1 too_long",
   rc == 0 and R["pairs_written"] == 1 and R["bad"]["too_long"]["first_lines"] == ["%s:2" % bound, "%s:3" % bound]
   and R["bad"]["reply_too_long"]["first_lines"] == ["%s:4" % bound], (rc, err, R.get("bad")))
rc, out, err = dpo(bound, "-o", P("boundt.bin"), "--seq-len", T, "--truncate", "--report", P("boundt.json"))
R = json.load(open(P("boundt.json"))) if rc == 0 else {}
wr, wm, wb = expected(bound_lines, T, truncate=True)
ok("boundaries with --truncate: 3 pairs, 2 cut, reply of T tokens still reply_too_long",
   rc == 0 and R["pairs_written"] == 3 and R["truncated"] == 2 and wb == {"reply_too_long": [4]}
   and R["bad"]["reply_too_long"]["count"] == 1, (rc, err, R))
if rc == 0:
    same_pairs("--truncate boundaries", P("boundt.bin"), wr, wm, T)
    _, _, rows, masks, _ = read_pairs(P("boundt.bin"))
if rc == 0 and len(rows) == 6:
    p_full = prompt_ids([("user", words(n_fit + 1))])
    ok("--truncate cuts the prompt from the left: EOT, then the prompt's last tokens (first one dropped), the reply whole",
       rows[2][0] == EOT and rows[2][1:T + 1 - 11] == p_full[2:] and rows[2][T + 1 - 11:] == reply_ids(words(10)), rows[2][:8])
    ok("--truncate: a reply of T-1 tokens sits behind EOT and exactly one prompt token (its mask covers targets 1..T-1)",
       rows[4][0] == EOT and rows[4][2:] == reply_ids(words(T - 2)) and masks[4] == [0] + [1] * (T - 1), (rows[4][:4], masks[4][:4]))
    ok("--truncate: both rows of the cut pair share the cut prompt", rows[3][:T + 1 - 11] == rows[2][:T + 1 - 11])

# ------------------------------------------------------------------ bad records of forms (a), (b), (c)
HHd = lambda a, b: "\n\nHuman: %s\n\nAssistant: %s" % (a, b)
bad_lines = [
    ('{"prompt": "Good one.", "chosen": "Yes.", "rejected": "No."}', None),                         # 1
    ('{"prompt": "x", "chosen": "a", "rejected": }', "invalid_json"),                              # 2
    ('["prompt", "chosen"]', "not_object"),                                                         # 3
    ('{"prompt": "a", "prompt": "b", "chosen": "c", "rejected": "d"}', "duplicate_key"),            # 4
    ('{"prompt": "a", "chosen": "c"}', "missing_field"),                                            # 5
    ('{"prompt": 5, "chosen": "c", "rejected": "d"}', "wrong_type"),                                # 6
    ('{"system": "s", "prompt": [{"role": "user", "content": "a"}], "chosen": "c", "rejected": "d"}', "mixed_forms"),  # 7
    (json.dumps({"system": "s", "chosen": HHd("a", "b"), "rejected": HHd("a", "c")}), "mixed_forms"),  # 8
    ('{"prompt": " \\n ", "chosen": "c", "rejected": "d"}', "empty_text"),                          # 9
    ('{"prompt": [], "chosen": "c", "rejected": "d"}', "empty_text"),                               # 10
    ('{"prompt": [{"role": "bot", "content": "a"}], "chosen": "c", "rejected": "d"}', "bad_role"),  # 11
    ('{"prompt": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], "chosen": "c", "rejected": "d"}', "bad_role_order"),  # 12
    ('{"prompt": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], "chosen": "c", "rejected": "d"}', "bad_role_order"),  # 13
    ('{"prompt": "a", "chosen": "", "rejected": "d"}', "empty_reply"),                              # 14
    ('{"prompt": "a", "chosen": "same", "rejected": "same"}', "identical_chosen_rejected"),         # 15
    ('{"chosen": "Hello there", "rejected": "Help me"}', "bad_turns"),                              # 16
    (json.dumps({"chosen": "intro" + HHd("a", "b"), "rejected": "intro" + HHd("a", "c")}), "bad_turns"),  # 17
    (json.dumps({"chosen": HHd("a", "b") + HHd("c", "d"), "rejected": HHd("a", "B") + HHd("c", "d")}), "differs_before_last_reply"),  # 18
    (json.dumps({"chosen": HHd("a", "b"), "rejected": "\n\nHuman: a\n\nAssistant:"}), "empty_reply"),  # 19
    (json.dumps({"chosen": HHd("a", "b"), "rejected": HHd("a", "b  \n")}), "identical_chosen_rejected"),  # 20
    ('{"prompt": [{"role": "user", "content": "Good two."}], "chosen": "Yes.", "rejected": "No."}', None),  # 21
    ('{"prompt": "a", "chosen": 3, "rejected": "d"}', "wrong_type"),                                # 22
    ('{"chosen": "x"}', "missing_field"),                                                           # 23
    ('', None),                                                                                     # 24 blank
    ('{"prompt": "raw\ttab", "chosen": "c", "rejected": "d"}', "invalid_json"),                     # 25
    (json.dumps({"chosen": HHd("", "b"), "rejected": HHd("", "c")}), "bad_turns"),                  # 26 empty human turn
]
badf = P("bad.jsonl")
open(badf, "w").write("\n".join(l for l, _ in bad_lines) + "\n")
want = {}
for k, (l, why) in enumerate(bad_lines):
    if why:
        want.setdefault(why, []).append("%s:%d" % (badf, k + 1))
for l, why in bad_lines:   # the reference agrees on the HH lines
    if why and l.startswith('{"chosen"') and '"system"' not in l and '"rejected"' in l:
        got = hh_reference(json.loads(l)["chosen"], json.loads(l)["rejected"])
        if got != why:
            ok("reference HH rule on hand-written line %r" % l[:60], False, got)
nbad = sum(len(v) for v in want.values())
rc, out, err = dpo(badf, "-o", P("bad.bin"), "--seq-len", 64, "--report", P("bad.json"))
R = json.load(open(P("bad.json"))) if rc == 0 else {}
ok("bad records: exit 0, the 2 good lines written, %d bad and 1 blank counted" % nbad,
   rc == 0 and R["pairs_written"] == 2 and R["bad_records"] == nbad and R["blank_lines"] == 1, (rc, err))
if rc == 0:
    wr, wm, _ = expected([bad_lines[0][0].encode(), bad_lines[20][0].encode()], 64)
    same_pairs("bad records: the good lines", P("bad.bin"), wr, wm, 64)
    ok("--report lists all 15 reasons", len(R["bad"]) == 15, sorted(R["bad"]))
    for k, w in want.items():
        b = R["bad"].get(k, {})
        ok("bad reason %s: count %d, file:line %s" % (k, len(w), ",".join(p.rsplit(":", 1)[1] for p in w)),
           b.get("count") == len(w) and b.get("first_lines") == w[:5] and b.get("first_detail", "").startswith(w[0] + ": "), b)
    ok("stderr: '%d bad records, skipped' and a row per reason" % nbad,
       ("%d bad records, skipped" % nbad) in err and len(re.findall(r"^  \S.* +\d+  %s:\d+" % re.escape(badf), err, re.M)) == len(want), err)

# ------------------------------------------------------------------ --max-bad and the atomic write
os.makedirs(P("mb"))
out_p, rep_p = P("mb/out.bin"), P("mb/out.json")
rc, out, err = dpo(badf, "-o", out_p, "--seq-len", 64, "--report", rep_p, "--max-bad", nbad - 1)
ok("--max-bad %d with %d bad: exit 1 naming the line that crossed it (bad.jsonl:26), nothing written" % (nbad - 1, nbad),
   rc == 1 and ("%s:26: more than %d bad records (--max-bad %d)" % (badf, nbad - 1, nbad - 1)) in err
   and "nothing written" in err and not os.path.exists(out_p) and not os.path.exists(rep_p) and not leftovers(P("mb")), (rc, err))
rc, out, err = dpo(badf, "-o", out_p, "--seq-len", 64, "--max-bad", nbad)
ok("--max-bad %d (= the bad records): accepted" % nbad, rc == 0 and os.path.exists(out_p), err)
rc, out, err = dpo(bound, "-o", P("mb/x.bin"), "--seq-len", 64, "--max-bad", 0)
ok("--max-bad 0 counts too-long pairs too (bound.jsonl:2)", rc == 1 and ("%s:2: more than 0 bad records" % bound) in err and "too_long" in err, err)
before = open(out_p, "rb").read()
rc, out, err = dpo(badf, "-o", out_p, "--seq-len", 64, "--max-bad", 1)
ok("a failing run leaves the existing OUT untouched", rc == 1 and open(out_p, "rb").read() == before and not leftovers(P("mb")))
rc, out, err = dpo(edge, "-o", out_p, "--seq-len", 64, env={"LLMC_TEST_KILL_IN_WRITE": "mb/out.bin"})
ok("killed (SIGKILL) after writing, before the rename: OUT is still the old file", rc == -9 and open(out_p, "rb").read() == before, (rc, err))
for f in leftovers(P("mb")):
    os.unlink(os.path.join(P("mb"), f))
allbad = P("allbad.jsonl")
open(allbad, "w").write("\n".join(l for l, why in bad_lines if why) + "\n")
rc, out, err = dpo(allbad, "-o", out_p, "--seq-len", 64)
ok("no usable pair: exit 1, 'no usable pairs in FILE', OUT untouched",
   rc == 1 and ("no usable pairs in %s" % allbad) in err and open(out_p, "rb").read() == before, err)

def refused(name, args, pattern):
    rc, out, err = dpo(*args)
    ok("refuses %s (exit 1: %s)" % (name, err.strip().splitlines()[-1][:100] if err.strip() else ""),
       rc == 1 and pattern in err and not os.path.exists(P("u.bin")), (rc, err))
refused("no --seq-len", [edge, "-o", P("u.bin")], "--seq-len T is required")
refused("--seq-len 1", [edge, "-o", P("u.bin"), "--seq-len", 1], "--seq-len")
refused("a missing input, naming it", [P("nope.jsonl"), "-o", P("u.bin"), "--seq-len", 64], P("nope.jsonl"))
refused("the output = an input", [edge, "-o", edge, "--seq-len", 64], edge)
refused("--tiktoken with --encoder", [edge, "-o", P("u.bin"), "--seq-len", 64, "--tiktoken", edge, "--encoder", edge], "give one")
refused("no output", [edge, "--seq-len", 64], "-o (--out)")

# ------------------------------------------------------------------ form (c) raw = form (b) from sft_sources.py hh_pairs
rc, out, err = run(["python3", "dev/data/sft_sources.py", "hh_pairs", "--data-dir", DATA, "--out", P("src")])
ok("sft_sources.py hh_pairs: exit 0", rc == 0, err)
rc1, o1, e1 = dpo(HELPFUL, "-o", P("raw.bin"), "--seq-len", 256, "--truncate", "--report", P("raw.json"))
rc2, o2, e2 = dpo(P("src/hh_pairs_train.jsonl"), P("src/hh_pairs_test.jsonl"), "-o", P("b.bin"), "--seq-len", 256, "--truncate",
                  "--report", P("b.json"))
if rc1 == 0 and rc2 == 0:
    R1, R2 = json.load(open(P("raw.json"))), json.load(open(P("b.json")))
    key = lambda rows, masks: sorted(tuple(rows[2 * i] + rows[2 * i + 1] + masks[2 * i] + masks[2 * i + 1]) for i in range(len(rows) // 2))
    _, _, ra, ma, _ = read_pairs(P("raw.bin"))
    _, _, rb, mb, _ = read_pairs(P("b.bin"))
    ok("the raw HH file (form c) and hh_pairs train + test (form b) give the same %d pairs, byte for byte (in another order)"
       % R1["pairs_written"], key(ra, ma) == key(rb, mb) and R2["forms"]["prompt_messages"] == R2["pairs_written"])
    S = json.load(open(P("src/hh_pairs_report.json")))
    hh_bad = ["identical_chosen_rejected", "empty_reply", "bad_turns", "differs_before_last_reply"]
    ok("hh_pairs and dpo_prepare skip the same records for the same reasons (%s)" % S["skipped"],
       S["skipped"] == {k: R1["bad"][k]["count"] for k in hh_bad if R1["bad"][k]["count"]}, (S["skipped"], R1["bad"]))
    ok("helpful_base_test at T=256 --truncate: 2354 read, 2284 pairs, 49 reply_too_long, 677 truncated",
       (R1["records_read"], R1["pairs_written"], R1["bad"]["reply_too_long"]["count"], R1["truncated"]) == (2354, 2284, 49, 677),
       (R1["records_read"], R1["pairs_written"], R1["bad"]["reply_too_long"]["count"], R1["truncated"]))
else:
    ok("form (c) vs form (b) runs", False, e1 + e2)

# ------------------------------------------------------------------ pairs_read on broken files
def reader(path):
    return run([TP, "read", path])
small = P("small.bin")
rc, out, err = dpo(edge, "-o", small, "--seq-len", 16, "--truncate")
raw = open(small, "rb").read()
h = list(struct.unpack("<256i", raw[:1024]))
n, T = h[2], h[3]
rc, out, err = reader(small)
ok("pairs_read reads dpo_prepare's file: %d pairs, T=16" % n, rc == 0 and out.split()[:6] == ["ok", str(n), "16", "0", "50257", "50256"], (out, err))
def variant(name, data):
    path = P(name)
    open(path, "wb").write(data)
    return path
def hdr(**kw):
    x = list(h)
    for k, v in kw.items():
        x[{"magic": 0, "version": 1, "npairs": 2, "T": 3, "has_ref": 4, "hlo": 5, "hhi": 6, "vocab": 7, "eot": 8, "r9": 9}[k]] = v
    return struct.pack("<256i", *x)
body = raw[1024:]
rec = 8 * (T + 1) + 2 * T
def poke(off, fmt, v):
    b = bytearray(raw)
    struct.pack_into(fmt, b, off, v)
    return bytes(b)
withref = P("withref.bin")
rc, out, err = run([TP, "addref", small, withref, 1234567890123456789])
ok("round trip with has_ref=1: written by pairs_write, read back equal (%s)" % out.strip(), rc == 0 and "ok round trip" in out, err)
if rc == 0:
    hb, size, rows_b, masks_b, ref = read_pairs(withref)
    _, _, rows_a, masks_a, _ = read_pairs(small)
    ok("has_ref file layout: header has_ref 1, ref_hash split low/high, the pairs unchanged, 2n float32 at the end",
       hb[4] == 1 and (hb[5] & 0xffffffff) | ((hb[6] & 0xffffffff) << 32) == 1234567890123456789 and rows_b == rows_a and masks_b == masks_a
       and size == 1024 + n * rec + 8 * n and ref == [v for i in range(n) for v in (-(i + 1) / 2, -(i + 1) / 4 - 0.125)], (hb[:9], ref[:4]))
    rc, out, err = reader(withref)
    ok("pairs_read reads the has_ref file", rc == 0 and out.split()[3] == "1" and out.split()[6] == "1234567890123456789", (out, err))
    wraw = open(withref, "rb").read()
    def wpoke(k, v):
        b = bytearray(wraw)
        struct.pack_into("<f", b, 1024 + n * rec + 4 * k, v)
        return bytes(b)
    ref_cases = [
        ("a NaN reference log-prob", variant("nan.bin", wpoke(3, float("nan"))), "pair 1: the reference log-prob of the rejected reply is nan"),
        ("a positive reference log-prob", variant("pos.bin", wpoke(0, 0.5)), "pair 0: the reference log-prob of the chosen reply is 0.5"),
        ("an infinite reference log-prob", variant("inf.bin", wpoke(2, float("-inf"))), "expected finite and <= 0"),
        ("has_ref 1 without the log-probs", variant("noref.bin", hdr(has_ref=1) + body), "file is truncated"),
        ("has_ref 0 on a file that has them", variant("extra.bin", raw + wraw[-8 * n:]), "trailing bytes"),
    ]
else:
    ref_cases = []
first_pair_rejected_tok = 1024 + 4 * (T + 1) + 4 * 5
first_pair_chosen_mask = 1024 + 8 * (T + 1)
cases = [
    ("not a pair file (a JSONL file)", hh, "bad magic"),
    ("a file shorter than the header", variant("short.bin", raw[:500]), "shorter than the 1024-byte pair-file header"),
    ("a wrong magic", variant("magic.bin", hdr(magic=20240520) + body), "bad magic 20240520 (expected 20241203)"),
    ("version 2", variant("v2.bin", hdr(version=2) + body), "unsupported pair-file version 2"),
    ("a truncated file (last 10 bytes cut)", variant("trunc.bin", raw[:-10]), "file is truncated"),
    ("trailing bytes", variant("trail.bin", raw + b"\0\0\0\0"), "4 trailing bytes"),
    ("a header with one pair more than the file holds", variant("more.bin", hdr(npairs=n + 1) + body), "file is truncated"),
    ("npairs 0", variant("zero.bin", hdr(npairs=0) + body), "bad pair count 0"),
    ("T = 0", variant("t0.bin", hdr(T=0) + body), "bad sequence length T = 0"),
    ("has_ref 2", variant("hr2.bin", hdr(has_ref=2) + body), "bad has_ref flag 2"),
    ("a ref_hash without has_ref", variant("hash.bin", hdr(hlo=7) + body), "has_ref is 0"),
    ("eot >= vocab", variant("eot.bin", hdr(eot=V) + body), "bad EOT id 50257"),
    ("a non-zero reserved header field", variant("r9.bin", hdr(r9=1) + body), "header[9] = 1"),
    ("a token out of the vocabulary", variant("tok.bin", poke(first_pair_rejected_tok, "<I", V)), "pair 0, rejected row: token 50257 at position 5 is out of range"),
    ("a mask byte of 2", variant("mask2.bin", poke(first_pair_chosen_mask + 3, "<B", 2)), "pair 0, chosen mask: byte 2 at target 3"),
    ("a row without a masked target", variant("nomask.bin", raw[:first_pair_chosen_mask] + bytes(T) + raw[first_pair_chosen_mask + T:]),
     "pair 0, chosen row has no masked target"),
    ("a directory", W, "is a directory"),
] + ref_cases
for name, path, pattern in cases:
    rc, out, err = reader(path)
    ok("pairs_read refuses %s, naming the file (%s)" % (name, err.strip()[len(path):][:100]),
       rc == 1 and err.startswith(path + ": ") and pattern in err, (rc, out, err))

# the seed of the pairs fuzz target: a small valid file with reference log-probs
os.makedirs(os.path.join(REPO, "build"), exist_ok=True)
seed = os.path.join(REPO, "build", "dpo_pairs_seed.bin")
rc, out, err = run([TP, "addref", small, seed, 42])
ok("fuzz seed build/dpo_pairs_seed.bin written (%d bytes)" % (os.path.getsize(seed) if os.path.exists(seed) else 0), rc == 0, err)

sys.exit(1 if fails else 0)
EOF
rc=$?
[ $rc -eq 0 ]
