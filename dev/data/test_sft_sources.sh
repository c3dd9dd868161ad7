#!/usr/bin/env bash
# Tests of dev/data/sft_sources.py on the real files in ../shared/data (DATA_DIR overrides):
# counts against the data README, the template format of every output line, disjoint and
# deterministic splits (oasst trees whole, duplicated dolly instructions on one side, every
# category in the stratified tests), choices files consistent with the test files, bad
# records counted (a corrupted copy of every input), missing inputs refused naming the path.
# A few seconds. Prints PASS:/FAIL: lines; exits non-zero on failure.
set -u
cd "$(dirname "$0")/../.."
REPO=$(pwd)
DATA=${DATA_DIR:-$REPO/../shared/data}
PY=${PYTHON:-python3}
S=$REPO/dev/data/sft_sources.py
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
pass() { echo "PASS: $1"; }
fail() { echo "FAIL: $1: $2"; fails=$((fails + 1)); }
check() { if [ "$2" -eq 0 ]; then pass "$1"; else fail "$1" "$3"; fi; }
# pycheck ARGS... < script: runs a Python check script that prints PASS:/FAIL: lines
pycheck() {
    local out rc
    out=$("$PY" - "$@" 2>&1); rc=$?
    echo "$out"
    fails=$((fails + $(echo "$out" | grep -c '^FAIL: ')))
    if [ $rc -ne 0 ]; then fail "python check" "exited with status $rc"; fi
}
FILES="instruct_en/oasst1_en_validation.jsonl instruct_ja/databricks_dolly_15k_ja_first3000.jsonl
hh_rlhf/helpful_base_test.jsonl hh_rlhf/harmless_base_test.jsonl livedoor/livedoor_news.jsonl
spamassassin_subset/spamassassin_subset.jsonl"
for f in $FILES; do
    if [ ! -r "$DATA/$f" ]; then echo "FAIL: data: $DATA/$f is missing (set DATA_DIR)"; exit 1; fi
done

# ---------------------------------------------------------------- full run, twice
o=$("$PY" "$S" all --data-dir "$DATA" --out "$T/a" 2>&1); rc=$?
check "all: exit 0" $rc "$o"
n=$(echo "$o" | grep -cE '^(oasst_en|dolly_ja|hh_chosen|livedoor_cls|spam_cls) +[0-9]+ +[0-9]+ +[0-9]+ +[0-9]+')
check "all: the stdout table has a row per source" $(( n != 5 )) "$o"
"$PY" "$S" all --data-dir "$DATA" --out "$T/b" >/dev/null 2>&1
na=$(ls "$T/a" | wc -l); diff -r "$T/a" "$T/b" >/dev/null
check "determinism: two runs give identical bytes ($na files)" $(( $? != 0 || na != 17 )) "$(ls "$T/a")"
left=$(ls -A "$T/a" | grep -c '\.tmp\.')
check "atomic writes: no temp files left" "$left" "$(ls -A "$T/a")"

# ---------------------------------------------------------------- content checks
pycheck "$T/a" "$DATA" <<'EOF'
import json, os, sys, collections, re
out, data = sys.argv[1], sys.argv[2]
def ok(name, cond, why=""):
    print(("PASS: %s" % name) if cond else ("FAIL: %s: %s" % (name, why)))
def lines(p):
    with open(os.path.join(out, p), encoding="utf-8") as f:
        return [json.loads(l) for l in f]
def src(p):
    with open(os.path.join(data, p), encoding="utf-8") as f:
        return [json.loads(l) for l in f]
def valid(r):
    """None if r fits the sft_prepare template format, else why not."""
    if not isinstance(r, dict): return "not an object"
    if "messages" in r:
        if set(r) != {"messages"}: return "extra keys %s" % sorted(r)
        ms = r["messages"]
        if not isinstance(ms, list) or not ms: return "messages empty"
        if ms[0].get("role") == "system": ms = ms[1:]
        for i, m in enumerate(ms):
            if not isinstance(m, dict) or set(m) != {"role", "content"}: return "bad message %r" % m
            if m["role"] != ("user" if i % 2 == 0 else "assistant"): return "roles do not alternate"
            if not isinstance(m["content"], str) or not m["content"].strip(): return "empty content"
        if len(ms) < 2 or ms[-1]["role"] != "assistant": return "does not end with assistant"
        return None
    if not {"prompt", "response"} <= set(r) or not set(r) <= {"prompt", "response", "system"}:
        return "keys %s" % sorted(r)
    for k in r:
        if not isinstance(r[k], str) or not r[k].strip(): return "empty " + k
    return None
def first_user(r):
    return r["messages"][0]["content"] if "messages" in r else r["prompt"]
def prompt_of(r):
    return json.dumps(r["messages"][:-1], ensure_ascii=False) if "messages" in r else r["prompt"]

names = ["oasst_en", "dolly_ja", "hh_chosen", "livedoor_cls", "spam_cls"]
R, TR, TE = {}, {}, {}
for n in names:
    R[n] = json.load(open(os.path.join(out, n + "_report.json"), encoding="utf-8"))
    TR[n], TE[n] = lines(n + "_train.jsonl"), lines(n + "_test.jsonl")
    bad = [valid(r) for r in TR[n] + TE[n]]
    bad = [b for b in bad if b]
    ok("%s: every line fits the template format (%d lines)" % (n, len(TR[n]) + len(TE[n])), not bad and TR[n] and TE[n], bad[:3])
    r = R[n]
    ok("%s: report counts equal the file lines" % n, r["kept_train"] == len(TR[n]) and r["kept_test"] == len(TE[n]),
       (r["kept_train"], len(TR[n]), r["kept_test"], len(TE[n])))
    acc = r["kept_train"] + r["kept_test"] + r["skipped_total"] + r.get("context_only", 0)
    ok("%s: every record read is kept or skipped by a reason" % n,
       acc == r["records_read"] and sum(r["skipped"].values()) == r["skipped_total"], (acc, r["records_read"], r["skipped"]))
    trp = set(map(prompt_of, TR[n]))
    leak = [p for p in map(prompt_of, TE[n]) if p in trp]
    ok("%s: no test prompt is in train" % n, not leak, leak[:2])
    frac = len(TE[n]) / max(1, len(TE[n]) + len(TR[n]))
    want = r["test_fraction"]
    ok("%s: test share %.3f is near %.2f" % (n, frac, want), abs(frac - want) < 0.05, frac)

# oasst: README facts, the filter, whole trees
r = R["oasst_en"]
ok("oasst: 2022 messages, 1241 prompt->reply pairs, 40 deleted and 53 review_result false reported",
   r["records_read"] == 2022 and r["prompt_reply_pairs_in_file"] == 1241 and r["messages_flagged"]["deleted"] == 40
   and r["messages_flagged"]["review_result_false"] == 53, r)
msgs = src("instruct_en/oasst1_en_validation.jsonl")
by = {m["message_id"]: m for m in msgs}
good = 0
badtext = set()
for m in msgs:
    if m["deleted"] or m["review_result"] is False: badtext.add(m["text"].strip())
    if m["role"] != "assistant": continue
    c, fine = m, True
    while True:
        if c["deleted"] or c["review_result"] is False: fine = False; break
        if c["parent_id"] is None: break
        if c["parent_id"] not in by: fine = False; break
        c = by[c["parent_id"]]
    good += fine
kept = r["kept_train"] + r["kept_test"] + r["skipped"].get("duplicate_example", 0)
ok("oasst: kept examples = assistant messages with a clean, complete chain (%d)" % good, kept == good, (kept, good))
okset = {m["text"].strip() for m in msgs if not (m["deleted"] or m["review_result"] is False)}
used = [t["content"] for e in TR["oasst_en"] + TE["oasst_en"] for t in e["messages"]]
ok("oasst: no deleted / review-failed message text is used", all(u in okset or u not in badtext for u in used))
tree_of_root = collections.defaultdict(set)
for m in msgs:
    if m["parent_id"] is None: tree_of_root[m["text"].strip()].add(m["message_tree_id"])
side = {}
split_trees = set()
for s, ex in (("train", TR["oasst_en"]), ("test", TE["oasst_en"])):
    for e in ex:
        for t in tree_of_root.get(e["messages"][0]["content"], {"?"}):
            if side.setdefault(t, s) != s: split_trees.add(t)
ok("oasst: no tree is split between train and test (%d trees)" % len(side), not split_trees and "?" not in side, split_trees)
ok("oasst: multi-turn threads are kept", any(len(e["messages"]) > 2 for e in TR["oasst_en"]))

# dolly
r = R["dolly_ja"]
ok("dolly: 3000 records read", r["records_read"] == 3000, r["records_read"])
recs = src("instruct_ja/databricks_dolly_15k_ja_first3000.jsonl")
def dprompt(x): return x["instruction"].strip() + ("\n\n" + x["input"].strip() if x["input"].strip() else "")
tep = {e["prompt"] for e in TE["dolly_ja"]}
sides = collections.defaultdict(set)
for x in recs: sides[x["instruction"].strip()].add(dprompt(x) in tep)
dups = [i for i in sides if sum(1 for x in recs if x["instruction"].strip() == i) > 1]
ok("dolly: each of the %d duplicated instructions is on one side" % len(dups), dups and all(len(sides[i]) == 1 for i in dups), [i for i in dups if len(sides[i]) > 1][:2])
withinp = sum(1 for e in TR["dolly_ja"] + TE["dolly_ja"] if "\n\n" in e["prompt"])
ok("dolly: inputs are appended after a blank line (>= 935 prompts)", withinp >= 935, withinp)

# hh
r = R["hh_chosen"]
ok("hh: 2354 helpful pairs read, harmless not used by default", r["records_read"] == 2354 and r["inputs"] == ["hh_rlhf/helpful_base_test.jsonl"], r)
ok("hh: unparsable dialogues counted by reason (wrong_alternation 9, empty_turn 1)",
   r["skipped"].get("wrong_alternation") == 9 and r["skipped"].get("empty_turn") == 1, r["skipped"])
trf = {first_user(e) for e in TR["hh_chosen"]}
ok("hh: no first human turn of test is in train", not [e for e in TE["hh_chosen"] if first_user(e) in trf])

# classification
def cls(n, path, field, readme_counts, labels_map, tail):
    r = R[n]
    choices = r["choices"]
    ok("%s: %d records read, per label as in the README" % (n, sum(readme_counts.values())),
       r["records_read"] == sum(readme_counts.values()) and r[field] == readme_counts, (r["records_read"], r[field]))
    tb = r["test_by_label"]
    ok("%s: every label (%d) is in test" % (n, len(choices)), len(choices) == len(labels_map) and all(tb[c] > 0 for c in choices), tb)
    kept = collections.Counter(e["response"] for e in TR[n] + TE[n])
    strat = all(tb[c] == max(1, round(r["test_fraction"] * kept[c])) for c in choices)
    ok("%s: stratified: test per label = round(fraction x kept)" % n, strat, (tb, dict(kept)))
    ch = lines(n + "_test_choices.jsonl")
    cons = len(ch) == len(TE[n]) and all(c["prompt"] == e["prompt"] and c["choices"] == choices
                                         and c["choices"][c["label"]] == e["response"] for c, e in zip(ch, TE[n]))
    ok("%s: choices file matches the test file line by line" % n, cons, len(ch))
    ok("%s: prompts end with %r and responses are labels" % (n, tail),
       all(e["prompt"].endswith(tail) and e["response"] in choices for e in TR[n] + TE[n]))
    # labels agree with the source records: title/subject lookup
    return r
LD = {"dokujo-tsushin": 870, "it-life-hack": 870, "kaden-channel": 864, "livedoor-homme": 511, "movie-enter": 870,
      "peachy": 842, "smax": 870, "sports-watch": 900, "topic-news": 770}
r = cls("livedoor_cls", "livedoor/livedoor_news.jsonl", "records_by_category", LD, LD, "\nカテゴリ:")
art = src("livedoor/livedoor_news.jsonl")
lab = r["labels"]
title_lab = collections.defaultdict(set)
for a in art: title_lab[re.sub(r"\s+", " ", a["title"]).strip()].add(lab[a["category"]])
wrong = [e for e in TR["livedoor_cls"] + TE["livedoor_cls"]
         if e["response"] not in title_lab.get(e["prompt"].split("\nタイトル: ", 1)[1].split("\n本文: ")[0], ())]
ok("livedoor: every label is the article's category (by title)", not wrong, wrong[:1])
body = [e["prompt"].split("\n本文: ", 1)[1].rsplit("\nカテゴリ:", 1)[0] for e in TE["livedoor_cls"]]
ok("livedoor: bodies are cut at --max-chars 200", max(map(len, body)) == 200 and r["max_chars"] == 200, max(map(len, body)))
r = cls("spam_cls", "spamassassin_subset/spamassassin_subset.jsonl", "records_by_label", {"ham": 500, "spam": 500},
        {"spam": 1, "ham": 1}, "\n\nAnswer:")
ok("spam: choices are [spam, ham]", r["choices"] == ["spam", "ham"], r["choices"])
hdr = [e for e in TR["spam_cls"] + TE["spam_cls"] if re.search(r"(?m)^(Received|Return-Path|Message-I[dD]):", e["prompt"])]
ok("spam: headers are stripped from the bodies", not hdr, hdr[:1])
EOF

# ---------------------------------------------------------------- options
"$PY" "$S" dolly_ja --data-dir "$DATA" --out "$T/s1" --seed 1 >/dev/null 2>&1
cmp -s "$T/a/dolly_ja_test.jsonl" "$T/s1/dolly_ja_test.jsonl"; same=$?
c1=$(cat "$T/s1/dolly_ja_train.jsonl" "$T/s1/dolly_ja_test.jsonl" | wc -l)
c0=$(cat "$T/a/dolly_ja_train.jsonl" "$T/a/dolly_ja_test.jsonl" | wc -l)
check "--seed 1 changes the split, not the examples" $(( same == 0 || c1 != c0 )) "c0=$c0 c1=$c1"
o=$("$PY" "$S" oasst_en --data-dir "$DATA" --out "$T/best" --oasst-best-only 2>&1); rc=$?
nb=$(cat "$T/best/oasst_en_train.jsonl" "$T/best/oasst_en_test.jsonl" 2>/dev/null | wc -l)
na=$(cat "$T/a/oasst_en_train.jsonl" "$T/a/oasst_en_test.jsonl" | wc -l)
check "--oasst-best-only keeps fewer (but some) replies ($nb of $na)" $(( rc != 0 || nb == 0 || nb >= na )) "$o"
grep -q '"not_best_rank"' "$T/best/oasst_en_report.json"
check "--oasst-best-only: non-best replies are counted as not_best_rank" $? "$(cat "$T/best/oasst_en_report.json" 2>&1)"
"$PY" "$S" hh_chosen --data-dir "$DATA" --out "$T/hh" --hh-include-harmless >/dev/null 2>&1
"$PY" -c "
import json,sys; r=json.load(open(sys.argv[1]))
sys.exit(0 if r['records_read']==2354+2312 and r['files'] and r['skipped'].get('empty_final_assistant_turn',0)>=1 else 1)" "$T/hh/hh_chosen_report.json" 2>/dev/null
check "--hh-include-harmless reads both files (4666) and counts empty final replies" $? "$(cat "$T/hh/hh_chosen_report.json" 2>&1)"
"$PY" "$S" livedoor_cls --data-dir "$DATA" --out "$T/mc" --max-chars 50 >/dev/null 2>&1
"$PY" -c "
import json,sys
b=[json.loads(l)['prompt'].split('\n本文: ',1)[1].rsplit('\nカテゴリ:',1)[0] for l in open(sys.argv[1],encoding='utf-8')]
sys.exit(0 if b and max(map(len,b))==50 else 1)" "$T/mc/livedoor_cls_train.jsonl" 2>/dev/null
check "--max-chars 50 cuts livedoor bodies at 50 characters" $? ""
for bad in "--test-fraction 1.5" "--test-fraction 0" "--max-chars 0" "--seed x"; do
    o=$("$PY" "$S" spam_cls --data-dir "$DATA" --out "$T/bad" $bad 2>&1); rc=$?
    check "'$bad' is refused" $(( rc == 0 || rc == 1 )) "rc=$rc $o"
done

# ---------------------------------------------------------------- missing inputs
mkdir -p "$T/empty"
o=$("$PY" "$S" oasst_en --data-dir "$T/empty" --out "$T/m1" 2>&1); rc=$?
echo "$o" | grep -qF "$T/empty/instruct_en/oasst1_en_validation.jsonl"
check "missing input: exit 1 naming the path looked up" $(( rc != 1 || $? != 0 )) "rc=$rc $o"
mkdir -p "$T/partial"
for d in instruct_en instruct_ja hh_rlhf livedoor; do ln -s "$DATA/$d" "$T/partial/$d"; done
o=$("$PY" "$S" all --data-dir "$T/partial" --out "$T/m2" 2>&1); rc=$?
echo "$o" | grep -qF "spamassassin_subset/spamassassin_subset.jsonl"
ok1=$?
nm=$(ls "$T/m2" 2>/dev/null | wc -l)
check "all with one input missing: exit 1 naming it, nothing written" $(( rc != 1 || ok1 != 0 || nm != 0 )) "rc=$rc files=$nm $o"
mkdir -p "$T/dirin/livedoor/livedoor_news.jsonl"
o=$("$PY" "$S" livedoor_cls --data-dir "$T/dirin" --out "$T/m3" 2>&1); rc=$?
echo "$o" | grep -q "livedoor_news.jsonl"
check "a folder in place of the input: exit 1 naming it" $(( rc != 1 || $? != 0 )) "rc=$rc $o"

# ---------------------------------------------------------------- corrupted copies
for f in $FILES; do
    mkdir -p "$T/bad/$(dirname "$f")"
    cp "$DATA/$f" "$T/bad/$f"
    chmod u+w "$T/bad/$f"
    { printf '{"broken json\n'; printf '\xff\xfe not utf-8\n'; printf '[1, 2]\n'; printf '{"unrelated": 1}\n'; printf '\n'; } >> "$T/bad/$f"
done
printf '%s\n' '{"message_id": "t-orphan", "parent_id": "t-nowhere", "role": "assistant", "text": "hi", "deleted": false, "review_result": true, "rank": 0, "message_tree_id": "t"}' >> "$T/bad/instruct_en/oasst1_en_validation.jsonl"
printf '%s\n' '{"chosen": "\n\nHuman: hello\n\nAssistant:", "rejected": "x"}' >> "$T/bad/hh_rlhf/helpful_base_test.jsonl"
o=$("$PY" "$S" all --data-dir "$T/bad" --out "$T/c" 2>&1); rc=$?
check "corrupted inputs: no crash, exit 0" $rc "$o"
same=0
for f in $(cd "$T/a" && ls *.jsonl); do cmp -s "$T/a/$f" "$T/c/$f" || same=1; done
check "corrupted inputs: bad lines change no output line" $same "$(cd "$T/c" 2>/dev/null && ls)"
pycheck "$T/c" <<'EOF'
import json, sys, os
for n in ["oasst_en", "dolly_ja", "hh_chosen", "livedoor_cls", "spam_cls"]:
    r = json.load(open(os.path.join(sys.argv[1], n + "_report.json"), encoding="utf-8"))
    s = r["skipped"]
    want = {"invalid_json": 1, "invalid_utf8": 1, "not_an_object": 1, "blank_line": 1}
    miss = sum(v for k, v in s.items() if k.startswith("missing_field:"))
    good = all(s.get(k) == v for k, v in want.items()) and miss == 1
    if n == "oasst_en": good = good and s.get("orphan_parent_missing") == 1
    if n == "hh_chosen": good = good and s.get("empty_final_assistant_turn") == 1
    acc = r["kept_train"] + r["kept_test"] + r["skipped_total"] + r.get("context_only", 0)
    good = good and acc == r["records_read"]
    print(("PASS: corrupted %s: bad lines counted by reason" % n) if good else ("FAIL: corrupted %s: %s" % (n, s)))
EOF
if echo "$o" | grep -q "invalid_json 1"; then pass "corrupted inputs: the stdout table shows the reasons"; else fail "corrupted inputs: the stdout table shows the reasons" "$o"; fi

# --brief-instruction: livedoor prompts without the list of labels (same examples, same split),
# and the report says which prompt was built
bo=$(mktemp -d /tmp/sft_brief.XXXXXX)
if $PY dev/data/sft_sources.py livedoor_cls --brief-instruction --max-chars 60 --out "$bo" > /dev/null 2>&1 &&
   $PY - "$bo" <<'EOF'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1] + "/livedoor_cls_train.jsonl", encoding="utf-8")]
rep = json.load(open(sys.argv[1] + "/livedoor_cls_report.json", encoding="utf-8"))
ok = rep.get("brief_instruction") is True and len(lines) > 1000
ok = ok and all(l["prompt"].startswith("ニュース記事のカテゴリを答えてください。\n\nタイトル: ") and l["prompt"].endswith("カテゴリ:") for l in lines)
sys.exit(0 if ok else 1)
EOF
then pass "--brief-instruction: no label list in the prompts, recorded in the report"
else fail "--brief-instruction" "prompts or report not as expected in $bo"; fi
rm -rf "$bo"

# ---------------------------------------------------------------- hh_pairs: DPO pairs with hh_chosen's split
ls "$T/a" | grep -q hh_pairs
check "all does not write the DPO source hh_pairs" $(( $? == 0 )) "$(ls "$T/a")"
o=$("$PY" "$S" hh_chosen hh_pairs --data-dir "$DATA" --out "$T/p" 2>&1); rc=$?
check "hh_chosen hh_pairs: exit 0" $rc "$o"
"$PY" "$S" hh_chosen hh_pairs --data-dir "$DATA" --out "$T/p3" --seed 3 --test-fraction 0.3 >/dev/null 2>&1
"$PY" "$S" hh_pairs --data-dir "$DATA" --out "$T/p3b" --seed 3 --test-fraction 0.3 >/dev/null 2>&1
cmp -s "$T/p3/hh_pairs_train.jsonl" "$T/p3b/hh_pairs_train.jsonl" && cmp -s "$T/p3/hh_pairs_test.jsonl" "$T/p3b/hh_pairs_test.jsonl"
check "hh_pairs: the same bytes whether run alone or with hh_chosen (--seed 3 --test-fraction 0.3)" $? ""
pycheck "$T/p" "$T/p3" <<'EOF2'
import json, os, sys
def ok(name, cond, why=""):
    print(("PASS: %s" % name) if cond else ("FAIL: %s: %s" % (name, str(why)[:400])))
def lines(d, f):
    with open(os.path.join(d, f), encoding="utf-8") as fh:
        return [json.loads(l) for l in fh]
def form_b(e):
    """None if e is dpo_prepare's form (b) as hh_pairs promises it, else why not."""
    if set(e) != {"prompt", "chosen", "rejected"}: return "keys %s" % sorted(e)
    p = e["prompt"]
    if not isinstance(p, list) or len(p) % 2 != 1: return "prompt not an odd-length list"
    for i, m in enumerate(p):
        if set(m) != {"role", "content"} or m["role"] != ("user" if i % 2 == 0 else "assistant"): return "bad message %r" % m
        if not m["content"] or m["content"] != m["content"].strip(): return "empty or unstripped content"
    for k in ("chosen", "rejected"):
        if not isinstance(e[k], str) or not e[k] or e[k] != e[k].strip(): return "bad " + k
    return "identical replies" if e["chosen"] == e["rejected"] else None
for d, seed, frac in ((sys.argv[1], 0, 0.1), (sys.argv[2], 3, 0.3)):
    R = json.load(open(os.path.join(d, "hh_pairs_report.json"), encoding="utf-8"))
    tr, te = lines(d, "hh_pairs_train.jsonl"), lines(d, "hh_pairs_test.jsonl")
    ctr, cte = lines(d, "hh_chosen_train.jsonl"), lines(d, "hh_chosen_test.jsonl")
    tag = "hh_pairs seed %d fraction %.1f" % (seed, frac)
    if seed == 0:
        ok("hh_pairs: 2354 read, 2333 kept, skipped by reason as dpo_prepare counts them (bad_turns 7, "
           "differs_before_last_reply 9, empty_reply 3, identical_chosen_rejected 2)",
           R["records_read"] == 2354 and R["kept_train"] + R["kept_test"] == 2333 and R["skipped"] ==
           {"bad_turns": 7, "differs_before_last_reply": 9, "empty_reply": 3, "identical_chosen_rejected": 2}
           and R["split_salt"] == "hh_chosen", R)
        bad = [w for w in map(form_b, tr + te) if w]
        ok("hh_pairs: every line is form (b): user/assistant turns ending with the user's, stripped, two different replies",
           not bad, bad[:3])
        ok("hh_pairs: multi-turn prompts kept (%d)" % R["multi_turn_prompts"], R["multi_turn_prompts"] > 1000)
    ok("%s: report counts equal the file lines, test share %.3f near %.1f" % (tag, len(te) / (len(tr) + len(te)), frac),
       R["kept_train"] == len(tr) and R["kept_test"] == len(te) and abs(len(te) / (len(tr) + len(te)) - frac) < 0.05)
    # the recipe: SFT on hh_chosen train, DPO held out on hh_pairs test: no test pair's conversation
    # (its prompt, or its prompt and chosen reply) may start an SFT train example
    turns = lambda msgs: tuple((m["role"], m["content"]) for m in msgs)
    sft_train_prefixes = set()
    for e in ctr:
        t = turns(e["messages"])
        for k in range(1, len(t) + 1): sft_train_prefixes.add(t[:k])
    leak = [e for e in te if turns(e["prompt"]) in sft_train_prefixes]
    ok("%s: no test pair's prompt starts an hh_chosen train dialogue (%d test pairs)" % (tag, len(te)), not leak and te, leak[:1])
    first_c = {e["messages"][0]["content"]: s for s, ex in (("train", ctr), ("test", cte)) for e in ex}
    side = [(first_c.get(e["prompt"][0]["content"]), s) for s, ex in (("train", tr), ("test", te)) for e in ex]
    same = sum(1 for c, s in side if c == s)
    ok("%s: every pair whose first human turn is in hh_chosen is on hh_chosen's side (%d of %d pairs)" % (tag, same, len(side)),
       same == sum(1 for c, s in side if c is not None) and same > 2250, [x for x in side if x[0] and x[0] != x[1]][:3])
EOF2
"$PY" "$S" hh_pairs --data-dir "$DATA" --out "$T/ph" --hh-include-harmless >/dev/null 2>&1
"$PY" -c "
import json,sys; r=json.load(open(sys.argv[1]))
sys.exit(0 if r['records_read']==4666 and r['kept_train']+r['kept_test']==4632 and r['prompts_with_several_pairs']==2 else 1)" "$T/ph/hh_pairs_report.json" 2>/dev/null
check "hh_pairs --hh-include-harmless: 4666 read, 4632 kept, the 2 repeated harmless prompts counted" $? "$(cat "$T/ph/hh_pairs_report.json" 2>&1)"

[ "$fails" -eq 0 ]
