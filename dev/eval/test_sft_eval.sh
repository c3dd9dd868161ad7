#!/usr/bin/env bash
# dev/eval/sft_eval against an independent PyTorch computation, then its errors.
#
# A tiny random GPT-2 (dev/reference/gpt2_reference.py, GPT-2's vocabulary, maxT 128) with its
# final LayerNorm gain and its blocks' output projections scaled up, so that the next-token
# distributions are peaked and depend on the context (a freshly initialized model predicts
# nearly uniformly from the last token alone: every score would be about -log(50257) per token
# whatever the prompt, and a wrong template could pass). The Python
# side reads the checkpoint itself (gpt2_reference.load_llmc_checkpoint, float64), builds the
# templated tokens its own way (tiktoken's GPT-2 encoding of each segment), and computes every
# choice's log-likelihood and the greedy generation; sft_eval's --scores, --generations and
# --report must agree: scores within 1e-4 relative, the same generated ids, the same counts.
# Three models: the base, base + LoRA adapter (gpt2_reference's --peft lora init), base + soft
# prompt (k = 4). A negative control shows the check would catch a template error (no leading
# EOT), and one that the adapters change the scores. Then the errors: missing file, bad JSON,
# label out of range, a prompt too long for maxT, a missing field, --skip-bad counting them,
# an adapter given as the model, no usable example. Prints PASS:/FAIL: lines; exits 1 on failure.
set -u
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
EVAL=dev/eval/sft_eval
if [ ! -x "$EVAL" ]; then echo "FAIL: $EVAL is not built (make $EVAL)"; exit 1; fi
work=$(mktemp -d /tmp/test_sft_eval.XXXXXX)
trap 'rm -rf "$work"' EXIT
fails=0
pass() { echo "PASS: $1"; }
fail() { echo "FAIL: $1: $2"; fails=$((fails + 1)); }

$PY dev/reference/gpt2_reference.py --L 2 --C 32 --NH 2 --V 50257 --maxT 128 --B 1 --T 8 --steps 0 --seed 3 \
    --peft lora --out "$work/ref" > "$work/ref.out" 2>&1 || { echo "FAIL: gpt2_reference.py: $(tail -3 "$work/ref.out")"; exit 1; }

# ---------------------------------------------------------------------------------------------
# scores, generations and counts against PyTorch
$PY - "$EVAL" "$work" <<'EOF' || fails=$((fails + 1))
import json, os, struct, subprocess, sys
import numpy as np
import torch
import tiktoken
from tiktoken.load import data_gym_to_mergeable_bpe_ranks
sys.path.insert(0, "dev/reference")
import gpt2_reference as ref  # noqa: E402
import peft_reference as pr  # noqa: E402

EVAL, work = sys.argv[1], sys.argv[2]
TOL = 1e-4
failures = 0
torch.set_num_threads(1)


def check(name, ok, detail=""):
    global failures
    print(f"PASS: {name}" if ok else f"FAIL: {name}: {detail}", flush=True)
    failures += 0 if ok else 1


# --- the model files: the base scaled as said at the top, the LoRA adapter of
# gpt2_reference re-stamped with the new base's hash, and a soft prompt of 4 positions
with open(f"{work}/ref_model.bin", "rb") as f:
    header = np.frombuffer(f.read(1024), dtype=np.int32).copy()
    params = np.frombuffer(f.read(), dtype=np.float32).copy()
maxT, V, L, NH, C, Vp = (int(x) for x in header[2:8])
sizes = [Vp * C, maxT * C, L * C, L * C, L * 3 * C * C, L * 3 * C, L * C * C, L * C, L * C, L * C,
         L * 4 * C * C, L * 4 * C, L * C * 4 * C, L * C, C, C]  # checkpoint order
at = np.cumsum([0] + sizes)
for i, scale in ((6, 10.0), (12, 10.0), (14, 30.0)):  # attprojw, fcprojw: context matters; lnfw: peaked
    params[at[i]:at[i + 1]] *= scale
ref.atomic_write(f"{work}/model.bin", [header.tobytes(), params.tobytes()])
base_hash = pr.hash64(params.tobytes())
h, payload = pr.read_adapter_file(f"{work}/ref_peft_init.peft")
payload = payload.copy()
alpha = struct.unpack("<f", struct.pack("<I", int(h[11])))[0]
lora_cfg = pr.PeftConfig(int(h[2]), int(h[9]), alpha, int(h[10]), int(h[12]), int(h[13]), int(h[14]))
pr.write_adapter_file(f"{work}/lora.peft", lora_cfg, L, C, NH, V, Vp, maxT, payload, base_hash, ref.atomic_write)
prompt_cfg = pr.PeftConfig("prompt", prompt_len=4)
prompt_payload = np.random.default_rng(7).normal(0.0, 0.5, size=(4, C)).astype(np.float32)
pr.write_adapter_file(f"{work}/prompt.peft", prompt_cfg, L, C, NH, V, Vp, maxT, prompt_payload, base_hash, ref.atomic_write)

model = ref.load_llmc_checkpoint(f"{work}/model.bin")  # float64, read from the file


def make_peft(cfg, flat):
    tensors, off = {}, 0
    for name, shape, _ in pr.peft_layout(cfg, L, C):
        n = int(np.prod(shape))
        tensors[name] = flat[off:off + n].reshape(shape)
        off += n
    assert off == flat.size
    return pr.Peft(cfg, L, C, tensors).double()


CONFIGS = {
    "base": (None, []),
    "lora": (make_peft(lora_cfg, payload), ["--peft-init", f"{work}/lora.peft"]),
    "prompt": (make_peft(prompt_cfg, prompt_payload), ["--peft-init", f"{work}/prompt.peft"]),
}

# --- the template, written here from its documentation (llmc/chat.h), on tiktoken's GPT-2
PAT = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
EOT = 50256
gpt2 = "../shared/data/gpt2"
enc = tiktoken.Encoding("gpt2", pat_str=PAT, special_tokens={"<|endoftext|>": EOT},
                        mergeable_ranks=data_gym_to_mergeable_bpe_ranks(f"{gpt2}/vocab.bpe", f"{gpt2}/encoder.json"))


def prompt_ids(ex, leading_eot=True):
    ids = [EOT] if leading_eot else []
    if ex.get("system"):
        ids += enc.encode_ordinary("### System:\n" + ex["system"] + "\n\n")
    return ids + enc.encode_ordinary("### User:\n" + ex["prompt"] + "\n\n### Assistant:\n")


def answer_ids(text):
    return enc.encode_ordinary(text) + [EOT]


@torch.no_grad()
def log_probs(ids, peft):
    x = torch.tensor([ids], dtype=torch.long)
    logits, _ = model(x, x, None, peft)
    return torch.log_softmax(logits[0], dim=-1)


def choice_scores(ex, peft, leading_eot=True):
    P = prompt_ids(ex, leading_eot)
    out = []
    for c in ex["choices"]:
        A = answer_ids(c)
        lp = log_probs(P + A[:-1], peft)
        out.append((len(A), sum(float(lp[len(P) - 1 + j, A[j]]) for j in range(len(A)))))
    return out


def greedy(ex, peft, G):
    P, g = prompt_ids(ex), []
    margins = []
    for _ in range(G):
        lp = log_probs(P + g, peft)[-1]
        top = torch.topk(lp, 2)
        margins.append(float(top.values[0] - top.values[1]))
        nxt = int(top.indices[0])
        if nxt == EOT:
            return g, "eot", min(margins)
        g.append(nxt)
    return g, "limit", min(margins)


def expected_forwards(ex, g, stop, rows):
    """sft_eval's forward count: the choices' forwards, plus one per greedy step whose context
    (the tokens generated so far) is not a prefix of some choice's answer row."""
    answers = [answer_ids(c) for c in ex["choices"]]
    n = -(-len(answers) // rows)
    steps = len(g) + (1 if stop == "eot" else 0)
    for j in range(steps):
        if not any(j < len(A) and A[:j] == g[:j] for A in answers):
            n += 1
    return n


EXAMPLES = [
    {"prompt": "Is the following email spam or ham? Answer with one word.\n\nSubject: cheap meds, act now\n\nAnswer:",
     "choices": ["spam", "ham"], "label": 0},
    {"system": "You are a careful classifier.", "prompt": "Subject: meeting moved to 3pm\n\nAnswer:",
     "choices": ["spam", "ham"], "label": 1},
    {"prompt": "ニュース記事のカテゴリを答えてください。\n\nタイトル: 新しいスマートフォンが発売 \U0001F600\nカテゴリ:",
     "choices": ["独女通信", "ITライフハック", "家電チャンネル", "livedoor HOMME", "映画"], "label": 1},
    {"prompt": "Say the end token: <|endoftext|> (as text).", "system": None,
     "choices": ["<|endoftext|>", "no", "a much longer answer, with several tokens in it"], "label": 2, "id": 17},
]
GREEDY_PROMPTS = ["Continue the story: the quick brown fox", "Once upon a time", "The capital of France is",
                  "Hello", "Count: 1, 2, 3,", "Write a word.", "Tell me a joke."]
M = 3  # tokens of the greedy-made choice


def write_task(path, examples):
    with open(path, "w", encoding="utf-8") as f:
        for i, ex in enumerate(examples):
            f.write(json.dumps(ex, ensure_ascii=(i % 2 == 0)) + "\n")
            if i == 1:
                f.write("\n")  # a blank line: skipped and counted


def line_numbers(examples):
    return [i + 1 + (1 if i >= 2 else 0) for i in range(len(examples))]


def run_eval(args):
    p = subprocess.run([EVAL, "-q"] + args, capture_output=True, text=True)
    if p.returncode != 0:
        check("sft_eval " + " ".join(args[:6]), False, p.stdout + p.stderr)
        return None
    return p


def read_tsv(path):
    rows = {}
    with open(path) as f:
        head = f.readline().rstrip("\n").split("\t")
        for line in f:
            d = dict(zip(head, line.rstrip("\n").split("\t")))
            rows[(int(d["line"]), int(d["choice"]))] = d
    return head, rows


base_scores = None
for name, (peft, flags) in CONFIGS.items():
    # the greedy-made example: its second choice is what this model generates (M tokens), so
    # that greedy generation with --gen-tokens M must be correct and cost no extra forward
    # (a random model may generate bytes that are not UTF-8 text: the first prompt that gives text)
    made, g, canonical = None, None, False
    for start in GREEDY_PROMPTS:
        base_ex = {"prompt": start, "choices": ["zebra crossing"], "label": 0}
        g, _, _ = greedy(base_ex, peft, M)
        try:
            made_text = enc.decode_bytes(g).decode("utf-8")
        except UnicodeDecodeError:
            continue
        if made_text.strip() and made_text != "zebra crossing":
            made = {**base_ex, "choices": ["zebra crossing", made_text], "label": 1}
            canonical = enc.encode_ordinary(made_text) == g
            break
    if made is None:
        check(f"{name}: greedy-made choice", False, f"no prompt of {GREEDY_PROMPTS} gives {M} tokens of text")
        continue
    examples = EXAMPLES + [made]
    task = f"{work}/{name}.jsonl"
    write_task(task, examples)
    lines = line_numbers(examples)

    # (a) scores, default generation length, all choices in one forward
    out = [f"--report", f"{work}/{name}.json", "--scores", f"{work}/{name}.tsv", "--generations", f"{work}/{name}.gen.jsonl"]
    p = run_eval(["-e", f"{work}/model.bin", "--task", task] + flags + out)
    if p is None:
        continue
    head, rows = read_tsv(f"{work}/{name}.tsv")
    check(f"{name}: scores TSV header", head == ["line", "choice", "is_label", "tokens", "logprob", "logprob_per_token"], str(head))
    worst, worst_at, nrows, tok_ok, label_ok = 0.0, None, 0, True, True
    want_all, pred_ll, pred_norm = [], [], []
    for ex, ln in zip(examples, lines):
        want = choice_scores(ex, peft)
        want_all.append(want)
        pred_ll.append(max(range(len(want)), key=lambda c: (want[c][1], -c)))
        pred_norm.append(max(range(len(want)), key=lambda c: (want[c][1] / want[c][0], -c)))
        for c, (ntok, s) in enumerate(want):
            d = rows.get((ln, c))
            if d is None:
                worst, worst_at = float("inf"), f"line {ln} choice {c} missing"
                continue
            nrows += 1
            tok_ok &= int(d["tokens"]) == ntok
            label_ok &= int(d["is_label"]) == int(c == ex["label"])
            for col, ref_v in (("logprob", s), ("logprob_per_token", s / ntok)):
                e = abs(float(d[col]) - ref_v) / abs(ref_v)
                if not e <= worst:
                    worst, worst_at = e, f"line {ln} choice {c} {col}: ours {d[col]} torch {ref_v:.10g}"
    total = sum(len(ex["choices"]) for ex in examples)
    check(f"{name}: log-likelihood of every choice vs PyTorch ({total} choices)",
          worst <= TOL and nrows == total == len(rows), f"worst relative error {worst:.2e} ({worst_at}), tolerance {TOL}; {nrows} rows of {total}")
    print(f"   ({name}: worst relative error {worst:.2e}; scores span {min(s for w in want_all for _, s in w):.2f} .. "
          f"{max(s for w in want_all for _, s in w):.2f})")
    check(f"{name}: token counts (answer + EOT) and is_label", tok_ok and label_ok, f"tokens ok {tok_ok}, is_label ok {label_ok}")

    # the check has teeth: a template without the leading EOT gives scores far outside the tolerance
    if name == "base":
        base_scores = want_all
        off = min(abs(a[1] - b[1]) / abs(b[1]) for ex, w in zip(examples, want_all)
                  for a, b in zip(choice_scores(ex, peft, leading_eot=False), w))
        check("negative control: a template without the leading EOT is caught", off > 100 * TOL,
              f"smallest relative change {off:.2e}")
        print(f"   (without the leading EOT every score moves by {off:.2e} relative or more)")
    else:
        change = min(abs(a[1] - b[1]) / abs(b[1]) for w, wb in zip(want_all, base_scores) for a, b in zip(w, wb))
        check(f"{name}: the adapter changes every score", change > 10 * TOL, f"smallest relative change {change:.2e}")
        print(f"   ({name}: every score moves by {change:.2e} relative or more from the base's)")

    # greedy generation (default length: the longest answer, EOT included) vs PyTorch
    gens = [json.loads(l) for l in open(f"{work}/{name}.gen.jsonl")]
    gen_ok, detail, min_margin = len(gens) == len(examples), "", float("inf")
    n_greedy = n_choice = 0
    exp_fw = 0
    for ex, ln, gj in zip(examples, lines, gens):
        G = max(len(answer_ids(c)) for c in ex["choices"])
        want_g, stop, margin = greedy(ex, peft, G)
        min_margin = min(min_margin, margin)
        text = enc.decode_bytes(want_g)
        is_choice = [c.encode() for c in ex["choices"]].count(text) > 0
        correct = text == ex["choices"][ex["label"]].encode()
        n_greedy += correct
        n_choice += is_choice
        exp_fw += expected_forwards(ex, want_g, stop, 16)
        if gj["line"] != ln or gj["generated_ids"] != want_g or gj["stop"] != stop or gj["greedy_correct"] != correct:
            gen_ok, detail = False, f"line {ln}: ours {gj} torch ids {want_g} stop {stop}"
    check(f"{name}: greedy generations vs PyTorch (ids, stop reason)", gen_ok, detail + f" (smallest top-2 margin {min_margin:.3g})")

    # the report's counts, from the PyTorch numbers
    rep = json.load(open(f"{work}/{name}.json"))
    n = len(examples)
    want_rep = {
        "n": n, "correct_ll": sum(p == ex["label"] for p, ex in zip(pred_ll, examples)),
        "correct_ll_norm": sum(p == ex["label"] for p, ex in zip(pred_norm, examples)),
        "correct_greedy": n_greedy, "greedy_choice_count": n_choice, "blank_lines": 1, "lines": n + 1,
        "skipped_bad": 0, "forwards": exp_fw, "peft_method": {"base": "none"}.get(name, name),
        "soft_prompt_len": 4 if name == "prompt" else 0,
    }
    got_rep = {k: rep.get(k) for k in want_rep}
    acc_ok = abs(rep["accuracy_ll"] - want_rep["correct_ll"] / n) < 1e-6 and abs(rep["accuracy_greedy"] - n_greedy / n) < 1e-6
    check(f"{name}: report counts and accuracies", got_rep == want_rep and acc_ok, f"ours {got_rep} want {want_rep}")
    per = {d["label"]: d for d in rep["per_label"]}
    per_ok = all(per.get(ex["choices"][ex["label"]], {}).get("n") == sum(e2["choices"][e2["label"]] == ex["choices"][ex["label"]] for e2 in examples)
                 for ex in examples)
    check(f"{name}: per-label counts", per_ok and sum(d["n"] for d in rep["per_label"]) == n, json.dumps(rep["per_label"])[:300])

    # (b) --gen-tokens M: the greedy-made choice is generated exactly, from the choices' rows alone
    p = run_eval(["-e", f"{work}/model.bin", "--task", task, "--gen-tokens", str(M), "--generations",
                  f"{work}/{name}.gen2.jsonl", "--report", f"{work}/{name}.2.json"] + flags)
    if p is not None:
        last = [json.loads(l) for l in open(f"{work}/{name}.gen2.jsonl")][-1]
        check(f"{name}: greedy text equal to the label is correct (--gen-tokens {M})",
              last["greedy_correct"] is True and last["greedy_choice"] == 1 and last["stop"] == "limit", str(last))
        exp = without_reuse = 0
        for ex in examples:
            want_g, stop, _ = greedy(ex, peft, M)
            exp += expected_forwards(ex, want_g, stop, 16)
            without_reuse += 1 + len(want_g) + (stop == "eot")
        rep2 = json.load(open(f"{work}/{name}.2.json"))
        check(f"{name}: greedy reuses the choices' rows (forwards counted)", rep2["forwards"] == exp < without_reuse,
              f"ours {rep2['forwards']} want {exp}, {without_reuse} without reuse (canonical tokens: {canonical})")

    # (c) --batch 2: the 5 choices in 3 forwards, the same scores
    if name == "lora":
        p = run_eval(["-e", f"{work}/model.bin", "--task", task, "--batch", "2", "--scores", f"{work}/{name}.b2.tsv"] + flags)
        if p is not None:
            _, rows2 = read_tsv(f"{work}/{name}.b2.tsv")
            e = max(abs(float(rows2[k]["logprob"]) - float(rows[k]["logprob"])) / abs(float(rows[k]["logprob"])) for k in rows)
            check("lora: --batch 2 (choices split over forwards) gives the same scores", rows2.keys() == rows.keys() and e <= 1e-6,
                  f"worst relative difference {e:.2e}")

    # (d) --max-examples
    if name == "base":
        p = run_eval(["-e", f"{work}/model.bin", "--task", task, "--max-examples", "2", "--report", f"{work}/max.json"])
        if p is not None:
            r = json.load(open(f"{work}/max.json"))
            check("--max-examples 2", r["n"] == 2 and r["stopped_at_max_examples"] is True, f"n {r['n']}")

sys.exit(1 if failures else 0)
EOF

# ---------------------------------------------------------------------------------------------
# errors: each one message naming the file (and line), a non-zero exit, no report written
M="$work/model.bin"
good='{"prompt": "Is it spam?", "choices": ["spam", "ham"], "label": 0}'
expect_error() {  # name, pattern the message must contain, sft_eval arguments...
    local name=$1 pat=$2; shift 2
    rm -f "$work/err.json"
    "$EVAL" -q "$@" --report "$work/err.json" > "$work/err.out" 2>&1
    local rc=$?
    if [ $rc -ne 0 ] && grep -qF -- "$pat" "$work/err.out" && [ ! -e "$work/err.json" ]; then pass "error: $name"
    else fail "error: $name" "exit $rc, report $([ -e "$work/err.json" ] && echo written || echo absent), output: $(head -c 400 "$work/err.out")"; fi
}
expect_error "missing task file" "$work/nope.jsonl" -e "$M" --task "$work/nope.jsonl"
printf '%s\n%s\n%s\n' "$good" "$good" '{"prompt": "x", "choices": ["a", "b"], "label": 0' > "$work/badjson.jsonl"
expect_error "bad JSON names file:line" "$work/badjson.jsonl:3:" -e "$M" --task "$work/badjson.jsonl"
printf '%s\n%s\n' "$good" '{"prompt": "x", "choices": ["a", "b"], "label": 2}' > "$work/badlabel.jsonl"
expect_error "label out of range" "$work/badlabel.jsonl:2: \"label\" is 2, outside 0..1" -e "$M" --task "$work/badlabel.jsonl"
printf '%s\n' '{"prompt": "x", "choices": ["a", "b"], "label": 1.0}' > "$work/floatlabel.jsonl"
expect_error "non-integer label" "floatlabel.jsonl:1: \"label\" is 1.0, not an integer" -e "$M" --task "$work/floatlabel.jsonl"
long=$(printf 'word %.0s' $(seq 150))
printf '%s\n{"prompt": "%s", "choices": ["a"], "label": 0}\n' "$good" "$long" > "$work/long.jsonl"
expect_error "prompt too long for maxT" "$work/long.jsonl:2: the templated prompt" -e "$M" --task "$work/long.jsonl"
expect_error "too long with the soft prompt counted" "minus the soft prompt's 4" -e "$M" --peft-init "$work/prompt.peft" --task "$work/long.jsonl"
printf '%s\n' '{"prompt": "x", "label": 0}' > "$work/nochoices.jsonl"
expect_error "missing field" "nochoices.jsonl:1: no \"choices\"" -e "$M" --task "$work/nochoices.jsonl"
printf '%s\n' '{"prompt": "x", "choices": ["a", ""], "label": 0}' > "$work/emptychoice.jsonl"
expect_error "empty choice" "emptychoice.jsonl:1: choices[1] is empty" -e "$M" --task "$work/emptychoice.jsonl"
printf '\n\n' > "$work/blank.jsonl"
expect_error "no usable example" "no usable example" -e "$M" --task "$work/blank.jsonl"
expect_error "adapter given as the model" "is a PEFT adapter file" -e "$work/lora.peft" --task "$work/badlabel.jsonl"
expect_error "adapter for another base" "$work/ref_peft_init.peft" -e "$M" --peft-init "$work/ref_peft_init.peft" --task "$work/badlabel.jsonl"
expect_error "missing model" "$work/none.bin" -e "$work/none.bin" --task "$work/badlabel.jsonl"

# --skip-bad: the same bad lines are counted by reason, with their line numbers, and skipped
cat "$work/badjson.jsonl" "$work/badlabel.jsonl" "$work/long.jsonl" "$work/nochoices.jsonl" > "$work/mixed.jsonl"
if "$EVAL" -q -e "$M" --task "$work/mixed.jsonl" --skip-bad --report "$work/mixed.json" > "$work/mixed.out" 2>&1 &&
   $PY - "$work/mixed.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
b = r["bad"]
ok = (r["n"] == 4 and r["skipped_bad"] == 4 and b["invalid_json"]["first_lines"] == [3] and
      b["label_out_of_range"]["first_lines"] == [5] and b["too_long"]["first_lines"] == [7] and b["bad_field"]["first_lines"] == [8])
sys.exit(0 if ok else 1)
EOF
then pass "--skip-bad counts each bad line under its reason and evaluates the rest"
else fail "--skip-bad" "$(tail -c 600 "$work/mixed.out"; head -c 600 "$work/mixed.json" 2>/dev/null)"; fi

exit $((fails > 0))
