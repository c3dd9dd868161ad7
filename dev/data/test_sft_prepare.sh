#!/usr/bin/env bash
# Tests of dev/data/sft_prepare (instruction JSONL -> token shard with a loss mask) on real lines
# of ../shared/data (the first Dolly-ja and OASST examples that dev/data/sft_sources.py writes)
# and on hand-written edge cases. The expected tokens come from tiktoken's GPT-2 (built from
# ../shared/data/gpt2, not from our BPE), one segment at a time, and the expected layouts are
# built in Python from those ids; sft_prepare's output is only compared against them.
# Checks: the chat template and masks token for token (a known answer written out, system
# prompts, multi-turn messages, escapes, literal "<|endoftext|>" kept as text, invalid UTF-8 and
# lone surrogates as U+FFFD), the aligned layout (rows at multiples of T, EOT padding with mask
# 0, the trailing EOT, ntok = rows*T + 1), --pack, --truncate, too-long examples dropped and
# counted with file:line, every bad-line reason counted with file:line on stderr and in
# --report, --max-bad failing with nothing written, the atomic write (no partial or temp file
# when it fails), the shard header, and train_gpt reading the shard: 2 steps, the mask changes
# the loss, broken shards refused naming the file. A few seconds.
# Prints PASS:/FAIL: lines; exits non-zero on failure. DATA_DIR overrides ../shared/data.
set -u
cd "$(dirname "$0")/../.."
REPO=$(pwd)
DATA=${DATA_DIR:-$REPO/../shared/data}
PY=${VENV_PYTHON:-$REPO/.venv/bin/python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
W=$(mktemp -d /tmp/test_sft_prepare.XXXXXX)
trap 'rm -rf "$W"' EXIT

for f in dev/data/sft_prepare train_gpt; do
    if [ ! -x "$f" ]; then echo "FAIL: $f is not built (make $f)"; exit 1; fi
done
for f in instruct_ja/databricks_dolly_15k_ja_first3000.jsonl instruct_en/oasst1_en_validation.jsonl gpt2/encoder.json gpt2/vocab.bpe; do
    if [ ! -r "$DATA/$f" ]; then echo "FAIL: data: $DATA/$f is missing (set DATA_DIR)"; exit 1; fi
done
if ! "$PY" -c "import numpy, tiktoken" 2>/dev/null; then
    echo "FAIL: $PY lacks numpy or tiktoken (the setup makes .venv; VENV_PYTHON overrides)"; exit 1
fi

# real lines: the first examples sft_sources.py writes from Dolly-ja and OASST
if ! o=$(python3 dev/data/sft_sources.py dolly_ja oasst_en --data-dir "$DATA" --out "$W/src" 2>&1); then
    echo "FAIL: sft_sources.py dolly_ja oasst_en: $o"; exit 1
fi
head -n 10 "$W/src/dolly_ja_train.jsonl" > "$W/dolly.jsonl"
head -n 12 "$W/src/oasst_en_train.jsonl" > "$W/oasst.jsonl"

"$PY" - "$REPO" "$DATA" "$W" <<'EOF'
import json, os, re, struct, subprocess, sys
import numpy as np
import tiktoken
from tiktoken.load import data_gym_to_mergeable_bpe_ranks

REPO, DATA, W = sys.argv[1:4]
SP = os.environ.get("SFT_PREPARE", os.path.join(REPO, "dev", "data", "sft_prepare"))  # override: to test a build elsewhere
TRAIN = os.path.join(REPO, "train_gpt")
EOT = 50256
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
    p = subprocess.run(cmd, capture_output=True, text=True, env=e, cwd=REPO)
    return p.returncode, p.stdout, p.stderr


def sft(*args, env=None):
    return run([SP] + [str(a) for a in args], env=env)


def P(name):
    return os.path.join(W, name)


def leftovers(d):
    return [f for f in os.listdir(d) if ".tmp." in f]


# ------------------------------------------------------------------ the reference encoder
PAT = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
ranks = data_gym_to_mergeable_bpe_ranks(os.path.join(DATA, "gpt2", "vocab.bpe"), os.path.join(DATA, "gpt2", "encoder.json"))
enc = tiktoken.Encoding("gpt2_shared", pat_str=PAT, mergeable_ranks=ranks, special_tokens={"<|endoftext|>": EOT})
ok("reference encoder: tiktoken GPT-2 from ../shared/data/gpt2 ('hello world' = [31373, 995])",
   enc.encode_ordinary("hello world") == [31373, 995])


def blank(s):
    return s.strip(" \t\r\n") == ""


def messages_of(obj):
    """(role, text) list of a valid line, as the template reads it."""
    if "messages" in obj:
        return [(m["role"], m["content"]) for m in obj["messages"]]
    out = []
    s = obj.get("system")
    if isinstance(s, str) and not blank(s):
        out.append(("system", s))
    return out + [("user", obj["prompt"]), ("assistant", obj["response"])]


def render(msgs):
    """ids, mask of one example by the template in sft_prepare.c: each segment encoded on its own."""
    ids, mask = [EOT], [0]
    for role, text in msgs:
        if role == "system":
            seg, m = "### System:\n" + text + "\n\n", 0
        elif role == "user":
            seg, m = "### User:\n" + text + "\n\n### Assistant:\n", 0
        else:
            seg, m = text, 1
        t = enc.encode_ordinary(seg)
        ids += t
        mask += [m] * len(t)
        if role == "assistant":
            ids.append(EOT)
            mask.append(1)
    return ids, mask


def parse_line(raw):
    """The object of a good line as sft_prepare decodes it: invalid UTF-8 bytes and lone
    surrogate escapes become U+FFFD."""
    s = raw.decode("utf-8", errors="replace").lstrip("\ufeff")
    obj = json.loads(s)
    fix = lambda t: re.sub("[\ud800-\udfff]", "\ufffd", t) if isinstance(t, str) else t
    if "messages" in obj:
        obj["messages"] = [{"role": m["role"], "content": fix(m["content"])} for m in obj["messages"]]
    else:
        obj = {k: fix(v) for k, v in obj.items()}
    return obj


def examples_of(path):
    """[(\"path:line\", ids, mask)] for the non-blank lines of a file of good lines."""
    out = []
    with open(path, "rb") as f:
        for i, raw in enumerate(f.read().split(b"\n")):
            if raw.strip(b" \t\r\n") == b"":
                continue
            ids, mask = render(messages_of(parse_line(raw)))
            out.append(("%s:%d" % (path, i + 1), ids, mask))
    return out


def layout(exs, T=None, pack=False, truncate=False):
    ids, mask, dropped, truncated, rows, written = [], [], [], 0, 0, 0
    for pos, i, m in exs:
        if not pack and len(i) > T:
            if not truncate or m.index(1) >= T:
                dropped.append(pos)
                continue
            i, m = i[:T], m[:T]
            truncated += 1
        ids += i
        mask += m
        if not pack:
            ids += [EOT] * (T - len(i))
            mask += [0] * (T - len(i))
            rows += 1
        written += 1
    ids.append(EOT)
    mask.append(0)
    return {"ids": ids, "mask": mask, "dropped": dropped, "truncated": truncated, "rows": rows, "written": written}


def read_shard(path):
    b = open(path, "rb").read()
    h = struct.unpack("<256i", b[:1024])
    n, tb = h[2], h[3]
    toks = np.frombuffer(b, dtype=np.uint16 if tb == 2 else np.uint32, count=n, offset=1024)
    mask = np.frombuffer(b, dtype=np.uint8, count=n, offset=1024 + tb * n)
    return h, len(b), toks.tolist(), mask.tolist()


def first_diff(a, b):
    k = next((j for j in range(min(len(a), len(b))) if a[j] != b[j]), min(len(a), len(b)))
    return "lengths %d vs %d, first difference at %d: got %s want %s" % (len(a), len(b), k, a[k:k + 6], b[k:k + 6])


def same_layout(name, path, want):
    _, _, toks, mask = read_shard(path)
    ok(name + ": tokens equal the independently built layout (%d tokens)" % len(want["ids"]),
       toks == want["ids"], first_diff(toks, want["ids"]))
    ok(name + ": mask equals the independently built layout (%d ones)" % sum(want["mask"]),
       mask == want["mask"], first_diff(mask, want["mask"]))


# ------------------------------------------------------------------ inputs
# hand-written edge cases (line numbers matter: the checks below name them)
edge_lines = [
    b'\xef\xbb\xbf{"system": "Be brief.", "prompt": "Name a colour.", "response": "Red."}',       # 1 BOM, system
    json.dumps({"messages": [{"role": "system", "content": "Answer in French."},
                             {"role": "user", "content": "Hello?"}, {"role": "assistant", "content": "Bonjour !"},
                             {"role": "user", "content": "And goodbye?"}, {"role": "assistant", "content": "Au revoir."}]}).encode(),  # 2
    b'   ',                                                                                       # 3 blank
    b'{"prompt": "What is <|endoftext|>?", "response": "The text <|endoftext|>, written out."}',   # 4 literal EOT
    b'{"prompt": "\\u3053\\u3093\\u306b\\u3061\\u306f \\ud83d\\ude00", "response": "tab\\there\\nnew \\"q\\" \\\\ \\/"}',  # 5 escapes
    b'{"id": 7, "meta": {"tags": ["a", {"b": null}], "n": -1.5e3}, "prompt": "Extra keys?", "response": "Ignored.", "system": null}',  # 6
    b'{"system": " \\n", "prompt": "Blank system?", "response": "  leading spaces kept"}\r',      # 7 CRLF, blank system
    b'{"prompt": "bad byte \xff here", "response": "kept"}',                                      # 8 invalid UTF-8
    b'{"messages": [{"content": "Keys in any order.", "role": "user"}, {"role": "assistant", "content": "Fine."}]}',  # 9
    b'{"prompt": "lone \\ud800 surrogate", "response": "ok"}',                                    # 10
]
with open(P("edge.jsonl"), "wb") as f:
    f.write(b"\n".join(edge_lines) + b"\n")
dolly, oasst, edge = P("dolly.jsonl"), P("oasst.jsonl"), P("edge.jsonl")
ex_dolly, ex_oasst, ex_edge = examples_of(dolly), examples_of(oasst), examples_of(edge)
ok("inputs: 10 Dolly-ja and 12 OASST lines from sft_sources.py (%d multi-turn), 9 edge cases"
   % sum(1 for l in open(oasst) if len(json.loads(l).get("messages", [])) > 2),
   len(ex_dolly) == 10 and len(ex_oasst) == 12 and len(ex_edge) == 9)
ALL = ex_dolly + ex_oasst + ex_edge

# ------------------------------------------------------------------ the template, a known answer
# {"system": "Be brief.", "prompt": "Name a colour.", "response": "Red."}, written out by hand:
# EOT | "###"," System",":","\n","Be"," brief",".","\n\n" | "###"," User",":","\n","Name"," a",
# " colour",".","\n","\n","###"," Assistant",":","\n" | "Red","." EOT
KNOWN = [50256, 21017, 4482, 25, 198, 3856, 4506, 13, 628, 21017, 11787, 25, 198, 5376, 257, 9568, 13,
         198, 198, 21017, 15286, 25, 198, 7738, 13, 50256]
KNOWN_MASK = [0] * 23 + [1] * 3
rc, out, err = sft(edge, "-o", P("one.bin"), "--pack", "--max-examples", 1)
if rc == 0:
    _, _, toks, mask = read_shard(P("one.bin"))
    ok("template: a system + prompt + response example is exactly the written-out tokens and mask",
       toks == KNOWN + [EOT] and mask == KNOWN_MASK + [0], (toks, mask))
else:
    ok("template: known answer", False, err)
ok("template: the reference renderer gives the same known answer", ex_edge[0][1] == KNOWN and ex_edge[0][2] == KNOWN_MASK)

# ------------------------------------------------------------------ aligned
T = 256
rc, out, err = sft(dolly, oasst, edge, "-o", P("A.bin"), "--seq-len", T, "--report", P("A.json"))
ok("aligned T=%d: exit 0" % T, rc == 0, err)
want = layout(ALL, T=T)
h, size, toks, mask = read_shard(P("A.bin"))
n = h[2]
ok("header: magic 20240520, version 2, 2-byte tokens, mask flag 1, size = 1024 + 3*ntok",
   h[0] == 20240520 and h[1] == 2 and h[3] == 2 and h[4] == 1 and size == 1024 + 3 * n and not any(h[5:]), h[:6])
same_layout("aligned", P("A.bin"), want)
R = json.load(open(P("A.json")))
rows = (n - 1) // T
ok("aligned: ntok = rows*T + 1 (%d = %d*%d + 1), rows = examples written" % (n, rows, T),
   n == rows * T + 1 and rows == want["written"] == R["rows"] == R["examples_written"], (n, rows, R["rows"]))
starts = all(toks[r * T] == EOT and mask[r * T] == 0 for r in range(rows))
second = all(mask[r * T + 1] == 0 for r in range(rows))
ok("aligned: every row starts at a multiple of T with EOT (mask 0) and then prompt (mask 0)", starts and second)
pad_ok, pad = True, 0
for r in range(rows):
    row_t, row_m = toks[r * T:(r + 1) * T], mask[r * T:(r + 1) * T]
    last = max(j for j in range(T) if row_m[j] == 1)
    if row_t[last] != EOT:
        pad_ok = False
    tail_t, tail_m = row_t[last + 1:], row_m[last + 1:]
    if any(t != EOT for t in tail_t) or any(tail_m):
        pad_ok = False
    pad += len(tail_t)
ok("aligned: each row's last target is the response's EOT (mask 1), then EOT padding with mask 0 (%d tokens)" % pad,
   pad_ok and pad == R["padding_tokens"], (pad, R["padding_tokens"]))
ok("aligned: the file ends with one extra EOT of mask 0", toks[-1] == EOT and mask[-1] == 0)
nd = len(want["dropped"])
ok("too long: %d of %d examples over T=%d dropped and counted, the first 5 by file:line in --report"
   % (nd, len(ALL), T),
   nd > 5 and R["dropped_too_long"] == nd and R["too_long_first_lines"] == want["dropped"][:5] and R["truncated"] == 0,
   (R["dropped_too_long"], R["too_long_first_lines"], want["dropped"][:6]))
line = "%d examples longer than --seq-len %d tokens dropped: %s ..." % (nd, T, " ".join(want["dropped"][:5]))
ok("too long: stderr names them by file:line", line in err, err)
ok("too long: both real sources have examples kept and dropped",
   any(p.startswith(dolly) for p in want["dropped"]) and any(p.startswith(oasst) for p in want["dropped"])
   and want["written"] - 9 > 3)
expect = {"layout": "aligned", "seq_len": T, "shard_version": 2, "token_bytes": 2, "eot": EOT, "vocab_size": 50257,
          "lines": 32, "blank_lines": 1, "examples_read": 31, "examples_written": want["written"], "bad_lines": 0,
          "tokens": n, "mask_tokens": sum(want["mask"]), "literal_eot_examples": 1, "invalid_utf8_lines": 1,
          "invalid_utf8_bytes": 1, "unpaired_surrogates": 1, "stopped_at_max_examples": False,
          "inputs": [dolly, oasst, edge], "output": P("A.bin")}
kept = [e for e in ALL if e[0] not in want["dropped"]]
expect["assistant_turns"] = sum(1 for _, i, m in kept for j in range(len(i)) if i[j] == EOT and m[j] == 1)
diff = {k: (R.get(k), v) for k, v in expect.items() if R.get(k) != v}
ok("--report: the counts (%d written, %d assistant turns, %d mask tokens)" % (want["written"], expect["assistant_turns"], expect["mask_tokens"]),
   not diff and abs(R["mask_fraction"] - expect["mask_tokens"] / n) < 1e-6, diff)
ok("stdout summary", ("wrote %s: aligned layout" % P("A.bin")) in out and ("%d written" % want["written"]) in out, out)

# the edge cases, one by one (they all fit T)
by_pos = {p: (i, m) for p, i, m in ALL}
def ids_of(k):
    return by_pos["%s:%d" % (edge, k)]
i2, m2 = ids_of(2)
turns = [j for j in range(len(i2)) if i2[j] == EOT and m2[j] == 1]
text_of = lambda i, m, w: enc.decode([t for t, x in zip(i, m) if x == w and t != EOT])
ok("multi-turn with system: 2 assistant EOTs of mask 1, only the replies are targets",
   len(turns) == 2 and text_of(i2, m2, 1) == "Bonjour !Au revoir."
   and text_of(i2, m2, 0) == "### System:\nAnswer in French.\n\n### User:\nHello?\n\n### Assistant:\n### User:\nAnd goodbye?\n\n### Assistant:\n",
   (text_of(i2, m2, 1), text_of(i2, m2, 0)))
i4, m4 = ids_of(4)
ok("a literal \"<|endoftext|>\" in the text is plain text: EOT (50256) only at the template's 2 places",
   i4.count(EOT) == 2 and i4[0] == EOT and i4[-1] == EOT and enc.decode(i4[1:-1]).count("<|endoftext|>") == 2)
ok("literal <|endoftext|>: counted on stderr", '1 example contains the text "<|endoftext|>"' in err, err)
i5, _ = ids_of(5)
ok("\\u escapes (a surrogate pair too) and \\t \\n \\\" \\\\ \\/ decoded",
   "こんにちは 😀" in enc.decode(i5) and 'tab\there\nnew "q" \\ /' in enc.decode(i5))
ok("extra keys ignored, \"system\": null is no system, a blank system is dropped, leading spaces kept",
   not any("System" in enc.decode(ids_of(k)[0]) for k in (6, 7)) and "  leading spaces kept" in enc.decode(ids_of(7)[0]))
ok("invalid UTF-8 and lone surrogates become U+FFFD (examples kept, counted on stderr)",
   "bad byte \ufffd here" in enc.decode(ids_of(8)[0]) and "lone \ufffd surrogate" in enc.decode(ids_of(10)[0])
   and "1 line with invalid UTF-8: 1 bytes replaced by U+FFFD" in err and "1 unpaired surrogate escapes" in err, err)
ok("aligned: row r holds exactly the r-th example that fits, from its first token, in input order",
   all(toks[r * T:r * T + len(kept[r][1])] == kept[r][1] for r in range(rows)))

# ------------------------------------------------------------------ packed
rc, out, err = sft(dolly, oasst, edge, "-o", P("B.bin"), "--pack", "--report", P("B.json"))
ok("--pack: exit 0", rc == 0, err)
wantp = layout(ALL, pack=True)
same_layout("--pack", P("B.bin"), wantp)
R = json.load(open(P("B.json")))
ok("--pack: nothing dropped or padded, no rows, all %d examples written" % len(ALL),
   R["layout"] == "packed" and R["rows"] is None and R["seq_len"] is None and R["dropped_too_long"] == 0
   and R["padding_tokens"] == 0 and R["examples_written"] == len(ALL), R)
rc, out, err = sft(dolly, oasst, edge, "-o", P("B64.bin"), "--pack", "--seq-len", 64, "--report", P("B64.json"))
R = json.load(open(P("B64.json")))
ok("--pack --seq-len 64: the same bytes, rows only counted ((ntok-1)//64 = %d)" % R["rows"],
   rc == 0 and open(P("B64.bin"), "rb").read() == open(P("B.bin"), "rb").read() and R["rows"] == (R["tokens"] - 1) // 64, R)

# ------------------------------------------------------------------ truncate
T = 64
# the boundary: prompts whose first response token falls at index T-1 (kept: one target) and T
# (not one response token would be left: dropped)
def prompt_with_first_target_at(k):
    for n in range(1, 200):
        p = " ".join(["word"] * n)
        if len(render([("user", p), ("assistant", "Yes.")])[1]) - 3 == k:  # "Yes." EOT: 3 tokens
            return p
bound = P("boundary.jsonl")
with open(bound, "w") as f:
    for k in (T - 1, T):
        f.write(json.dumps({"prompt": prompt_with_first_target_at(k), "response": "Yes."}) + "\n")
ex_bound = examples_of(bound)
ok("--truncate boundary inputs: first response token at index %d and %d" % (T - 1, T),
   [m.index(1) for _, _, m in ex_bound] == [T - 1, T])
rc, out, err = sft(dolly, oasst, edge, bound, "-o", P("C.bin"), "--seq-len", T, "--truncate", "--report", P("C.json"))
ok("--truncate T=%d: exit 0" % T, rc == 0, err)
wantt = layout(ALL + ex_bound, T=T, truncate=True)
ok("--truncate: an example whose first response token is at index T-1 is kept with that one target, at T dropped",
   ex_bound[0][0] not in wantt["dropped"] and ex_bound[1][0] in wantt["dropped"])
same_layout("--truncate", P("C.bin"), wantt)
R = json.load(open(P("C.json")))
ok("--truncate: %d cut to T tokens, %d dropped (no response token within the first T), counted"
   % (wantt["truncated"], len(wantt["dropped"])),
   wantt["truncated"] > 0 and len(wantt["dropped"]) > 0 and R["truncated"] == wantt["truncated"]
   and R["dropped_too_long"] == len(wantt["dropped"]) and R["too_long_first_lines"] == wantt["dropped"][:5]
   and R["rows"] == wantt["rows"] and R["tokens"] == wantt["rows"] * T + 1, R)
C_ROWS = R["rows"]

# ------------------------------------------------------------------ --max-examples
rc, out, err = sft(dolly, oasst, "-o", P("M.bin"), "--pack", "--max-examples", 3, "--report", P("M.json"))
R = json.load(open(P("M.json")))
ok("--max-examples 3: the first 3 examples, and says it stopped",
   rc == 0 and R["examples_written"] == 3 and R["stopped_at_max_examples"] and "reached --max-examples 3" in out
   and read_shard(P("M.bin"))[2] == layout(ALL[:3], pack=True)["ids"], (rc, out, err))
# exactly N examples in the input: nothing left unread, so it did not "stop" early
with open(P("two.jsonl"), "w") as f:
    f.write('{"prompt": "a", "response": "b"}\n{"prompt": "c", "response": "d"}\n\n')
rc, out, err = sft(P("two.jsonl"), "-o", P("two.bin"), "--pack", "--max-examples", 2, "--report", P("two.json"))
R = json.load(open(P("two.json")))
ok("--max-examples N on an input of exactly N examples: not reported as stopped early",
   rc == 0 and R["examples_written"] == 2 and not R["stopped_at_max_examples"] and "reached --max-examples" not in out,
   (rc, out, err))

# ------------------------------------------------------------------ bad lines
bad_lines = [
    ('{"prompt": "Good line one.", "response": "Fine."}', None),                                  # 1
    ('{"prompt": "unterminated, "response": "x"}', "invalid_json"),                              # 2
    ('["prompt", "response"]', "not_object"),                                                     # 3
    ('{"prompt": "a", "prompt": "b", "response": "c"}', "duplicate_key"),                         # 4
    ('{"prompt": "a", "response": "b", "messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}', "both_formats"),  # 5
    ('{"prompt": "only a prompt"}', "missing_field"),                                             # 6
    ('{"prompt": ["a list"], "response": "b"}', "wrong_type"),                                    # 7
    ('{"prompt": "a", "response": " \\n "}', "empty_text"),                                       # 8
    ('{"messages": [{"role": "user", "content": "hi"}, {"role": "bot", "content": "hello"}]}', "bad_role"),  # 9
    ('{"messages": [{"role": "user", "content": "hi"}, {"role": "user", "content": "again"}, {"role": "assistant", "content": "x"}]}', "bad_role_order"),  # 10
    ('{"prompt": "a", "response": "b"} trailing', "invalid_json"),                                # 11
    ('{"prompt": "raw\ttab", "response": "c"}', "invalid_json"),                                  # 12
    ('{"messages": [{"role": "user", "content": "Good line two."}, {"role": "assistant", "content": "Also fine."}]}', None),  # 13
    ('', None),                                                                                   # 14 blank
    ('{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}, {"role": "system", "content": "late"}]}', "bad_role_order"),  # 15
    ('{"messages": "not an array"}', "wrong_type"),                                               # 16
    ('{"messages": []}', "empty_text"),                                                           # 17
    ('{"messages": [{"role": "user", "content": "x"}]}', "bad_role_order"),                       # 18
    ('{"system": "s", "messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]}', "both_formats"),  # 19
    ('{"prompt": "a", "response": 3}', "wrong_type"),                                             # 20
    ('{"response": "no prompt"}', "missing_field"),                                               # 21
]
bad = P("bad.jsonl")
with open(bad, "w") as f:
    f.write("\n".join(l for l, _ in bad_lines) + "\n")
want_bad = {}
for k, (l, why) in enumerate(bad_lines):
    if why:
        want_bad.setdefault(why, []).append("%s:%d" % (bad, k + 1))
py_rejects = [k + 1 for k, (l, why) in enumerate(bad_lines) if why == "invalid_json"]
def py_loads_fails(l):
    try:
        json.loads(l)
        return False
    except ValueError:
        return True
ok("the invalid_json lines are the ones Python's json.loads rejects",
   [k + 1 for k, (l, _) in enumerate(bad_lines) if l and py_loads_fails(l)] == py_rejects)
nbad = sum(len(v) for v in want_bad.values())
rc, out, err = sft(bad, "-o", P("bad.bin"), "--seq-len", 64, "--report", P("bad.json"))
R = json.load(open(P("bad.json"))) if rc == 0 else {}
ok("bad lines: exit 0, the 2 good lines written, %d bad and 1 blank counted" % nbad,
   rc == 0 and R["examples_written"] == 2 and R["bad_lines"] == nbad and R["blank_lines"] == 1 and R["lines"] == len(bad_lines),
   (rc, err))
if rc == 0:
    good = [(None,) + render(messages_of(json.loads(bad_lines[k][0]))) for k in (0, 12)]
    same_layout("bad lines: the good lines", P("bad.bin"), layout(good, T=64))
    keys = ["invalid_json", "not_object", "duplicate_key", "both_formats", "missing_field", "wrong_type",
            "empty_text", "bad_role", "bad_role_order"]
    names = {"invalid_json": "invalid JSON", "not_object": "not an object", "duplicate_key": "duplicate key",
             "both_formats": "prompt and messages", "missing_field": "missing field", "wrong_type": "wrong type",
             "empty_text": "empty text", "bad_role": "unknown role", "bad_role_order": "bad role order"}
    ok("--report: all 9 reasons present", sorted(R["bad"]) == sorted(keys), sorted(R["bad"]))
    for k in keys:
        b = R["bad"].get(k, {})
        w = want_bad[k]
        ok("bad line reason %s: count %d, file:line %s in --report" % (k, len(w), ", ".join(p.rsplit(":", 1)[1] for p in w)),
           b.get("count") == len(w) and b.get("first_lines") == w and b.get("first_detail", "").startswith(w[0] + ": "), b)
        row = re.search(r"^  %s +%d  %s\n +first: %s: " % (re.escape(names[k]), len(w), re.escape(" ".join(w)), re.escape(w[0])), err, re.M)
        ok("bad line reason %s: the stderr table names it with its file:line positions" % k, row, err)
    ok("bad lines: stderr says how many were skipped", ("%d bad lines, skipped" % nbad) in err, err)

# ------------------------------------------------------------------ --max-bad and the atomic write
def nothing_written(d, *paths):
    return all(not os.path.exists(p) for p in paths) and not leftovers(d)
os.makedirs(P("mb"))
out_p, rep_p = P("mb/out.bin"), P("mb/out.json")
rc, out, err = sft(bad, "-o", out_p, "--seq-len", 64, "--report", rep_p, "--max-bad", nbad - 1)
ok("--max-bad %d with %d bad lines: exit 1, names the line that crossed it, nothing written (no temp file)" % (nbad - 1, nbad),
   rc == 1 and ("%s:21: more than %d bad lines (--max-bad %d)" % (bad, nbad - 1, nbad - 1)) in err
   and "nothing written" in err and nothing_written(P("mb"), out_p, rep_p), (rc, err, os.listdir(P("mb"))))
rc, out, err = sft(bad, "-o", out_p, "--seq-len", 64, "--max-bad", nbad)
ok("--max-bad %d (= the bad lines): accepted" % nbad, rc == 0 and os.path.exists(out_p), err)
rc, out, err = sft(bad, "-o", out_p, "--seq-len", 64, "--max-bad", 0)
ok("--max-bad 0 fails at the first bad line (bad.jsonl:2)", rc == 1 and ("%s:2: more than 0 bad lines" % bad) in err, err)
rc, out, err = sft(dolly, "-o", P("mb/clean.bin"), "--pack", "--max-bad", 0)
ok("--max-bad 0 on clean lines: accepted", rc == 0, err)

rc, out, err = sft(dolly, "-o", out_p, "--seq-len", 1024)
before = open(out_p, "rb").read()
rc, out, err = sft(bad, "-o", out_p, "--seq-len", 64, "--max-bad", 1)
ok("a failing run leaves the existing OUT untouched (--max-bad)", rc == 1 and open(out_p, "rb").read() == before and not leftovers(P("mb")))
allbad = P("allbad.jsonl")
with open(allbad, "w") as f:
    f.write("\n".join(l for l, why in bad_lines if why) + "\n")
rc, out, err = sft(allbad, "-o", out_p, "--seq-len", 64)
ok("no usable example: exit 1, 'no usable examples in FILE', OUT untouched",
   rc == 1 and ("no usable examples in %s" % allbad) in err and "nothing written" in err
   and open(out_p, "rb").read() == before and not leftovers(P("mb")), err)
rc, out, err = sft(dolly, "-o", out_p, "--seq-len", 4)
ok("every example too long: exit 1 saying so, OUT untouched",
   rc == 1 and "10 too long for --seq-len 4" in err and open(out_p, "rb").read() == before, err)
# a write that fails half way (file size limit, SIGXFSZ ignored so that write() returns EFBIG)
p = subprocess.run(["bash", "-c", "trap '' XFSZ; ulimit -f 2; exec \"$0\" \"$@\"", SP, dolly, oasst, "-o", out_p, "--pack"],
                   capture_output=True, text=True, cwd=REPO)
ok("a write that fails half way (ulimit -f): exit 1 naming the temp file, OUT untouched, no temp file left",
   p.returncode == 1 and ("write to %s.tmp." % out_p) in p.stderr and open(out_p, "rb").read() == before
   and not leftovers(P("mb")), (p.returncode, p.stderr, os.listdir(P("mb"))))
rc, out, err = sft(dolly, "-o", out_p, "--pack", env={"LLMC_TEST_KILL_IN_WRITE": "mb/out.bin"})
ok("killed (SIGKILL) after writing, before the rename: OUT is still the old file",
   rc == -9 and open(out_p, "rb").read() == before, (rc, err))
for f in leftovers(P("mb")):
    os.unlink(os.path.join(P("mb"), f))

# ------------------------------------------------------------------ usage errors
def refused(name, args, pattern):
    rc, out, err = sft(*args)
    ok("refuses %s (exit 1: %s)" % (name, err.strip().splitlines()[-1][:100] if err.strip() else ""),
       rc == 1 and pattern in err and not os.path.exists(P("u.bin")), (rc, err))
refused("no --seq-len and no --pack", [dolly, "-o", P("u.bin")], "--seq-len T is required")
refused("--pack with --truncate", [dolly, "-o", P("u.bin"), "--pack", "--truncate"], "give one of them")
refused("a missing input, naming it", [P("nope.jsonl"), "-o", P("u.bin"), "--pack"], P("nope.jsonl"))
refused("the output = an input", [dolly, "-o", dolly, "--pack"], dolly)
refused("--seq-len 0", [dolly, "-o", P("u.bin"), "--seq-len", 0], "--seq-len")
refused("a missing --encoder, naming it", [dolly, "-o", P("u.bin"), "--pack", "--encoder", P("no.json")], P("no.json"))
refused("no output", [dolly, "--pack"], "-o (--out)")

# ------------------------------------------------------------------ the trainer reads the shard
def train(shard, *extra):
    return run([TRAIN, "-e", "d1", "-b", "2", "-t", "64", "-i", shard, "-j", P("C.bin"), "-v", "0", "-s", "0",
                "--seed", "5"] + [str(x) for x in extra])
rc, out, err = train(P("C.bin"), "-x", 2)
log = out + err
losses = [float(x) for x in re.findall(r"^step +\d+/2 \| loss ([0-9.]+)", log, re.M)]
ok("train_gpt -e d1 -t 64 -x 2 on the --truncate shard: 2 steps, finite losses, %d sequences of T=64" % C_ROWS,
   rc == 0 and len(losses) == 2 and all(0 < l < 20 for l in losses) and ("%d sequences of T=64" % C_ROWS) in log, log[-800:])
# the same tokens as a version-1 shard (no mask: every target counts) train to another loss
h, size, toks, mask = read_shard(P("C.bin"))
raw = open(P("C.bin"), "rb").read()
ntok = h[2]
hdr1 = list(h); hdr1[1] = 1; hdr1[3] = 0; hdr1[4] = 0
with open(P("v1.bin"), "wb") as f:
    f.write(struct.pack("<256i", *hdr1) + raw[1024:1024 + 2 * ntok])
rc1, out1, err1 = train(P("v1.bin"), "-x", 1)
l1 = re.findall(r"^step +1/1 \| loss ([0-9.]+)", out1 + err1, re.M)
rcm, outm, errm = train(P("C.bin"), "-x", 1)
lm = re.findall(r"^step +1/1 \| loss ([0-9.]+)", outm + errm, re.M)
ok("the mask reaches the loss: the same tokens without the mask (version 1, llm.c's format, read as all"
   " targets) give another step-1 loss (%s vs %s)" % (lm[:1], l1[:1]),
   rc1 == 0 and rcm == 0 and l1 and lm and l1 != lm, (out1 + err1)[-300:])

def variant(name, data):
    path = P(name)
    with open(path, "wb") as f:
        f.write(data)
    return path
def hdr(**kw):
    x = list(h)
    for k, v in kw.items():
        x[{"magic": 0, "version": 1, "ntok": 2, "tb": 3, "mask": 4}[k]] = v
    return struct.pack("<256i", *x)
body = raw[1024:]
big = bytearray(raw); big[1024 + 2 * 10:1024 + 2 * 11] = struct.pack("<H", 60000)
cases = [
    ("not a shard (a JSONL file)", dolly, "bad magic"),
    ("a file shorter than the header", variant("short.bin", raw[:100]), "shorter than the 1024-byte header"),
    ("a truncated shard (last 100 bytes cut)", variant("trunc.bin", raw[:-100]), "file is truncated"),
    ("version 2 with the mask flag but no mask bytes", variant("nomask.bin", raw[:1024 + 2 * ntok]), "file is truncated"),
    ("a version-1 header on a file that carries a mask", variant("v1mask.bin", hdr(version=1, tb=0, mask=0) + body), "trailing bytes"),
    ("version 3", variant("v3.bin", hdr(version=3) + body), "unsupported token shard version 3"),
    ("a mask flag of 2", variant("flag2.bin", hdr(mask=2) + body), "bad mask flag 2"),
    ("bytes-per-token 3", variant("tb3.bin", hdr(tb=3) + body), "bad bytes-per-token 3"),
    ("a token id out of the vocabulary", variant("oov.bin", bytes(big)), "token id 60000 at position 10 is out of range"),
]
for name, path, pattern in cases:
    rc, out, err = train(path, "-x", 1)
    msg = [l for l in (out + err).splitlines() if path in l]
    ok("train_gpt refuses %s, naming the file (%s)" % (name, msg[0][:110] if msg else "-"),
       rc != 0 and msg and pattern in msg[0], (rc, (out + err)[-300:]))

sys.exit(1 if fails else 0)
EOF
rc=$?
[ $rc -eq 0 ]
