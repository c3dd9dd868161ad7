#!/usr/bin/env python3
"""Turn the instruction / classification data in ../shared/data into SFT JSONL files.

    python3 dev/data/sft_sources.py all                      # every source -> dev/data/sft/
    python3 dev/data/sft_sources.py oasst_en hh_chosen --out /tmp/sft --seed 7

Sources (each writes OUT/<name>_train.jsonl, OUT/<name>_test.jsonl and OUT/<name>_report.json):

  oasst_en      instruct_en/oasst1_en_validation.jsonl. Messages form trees (parent_id ->
                message_id). Every assistant message whose whole ancestor chain is in the file,
                none of the chain deleted or review_result false, becomes one multi-turn
                {"messages": [...]} example: root prompter message down to that reply (prompter ->
                "user"). --oasst-best-only keeps a reply only when it and every assistant message
                above it has rank 0 or null. Split by tree: the key is the tree's root prompt text
                (one root per tree), so a whole tree goes to one side, and two trees that start
                with the same prompt do too.
  dolly_ja      instruct_ja/databricks_dolly_15k_ja_first3000.jsonl: prompt = instruction, plus
                "\\n\\n" + input when input is non-empty; response = output. Split key: the
                normalized instruction, so the 18 instructions that occur more than once land on
                one side.
  hh_chosen     hh_rlhf/helpful_base_test.jsonl (+ harmless_base_test.jsonl with
                --hh-include-harmless: its "chosen" replies are often still harmful, see the data
                README). Each "chosen" dialogue "\\n\\nHuman: ...\\n\\nAssistant: ..." becomes
                {"messages": [...]}. Dialogues with an empty turn, text before the first turn,
                two turns of one speaker in a row (e.g. a "Human:" written inside a reply without
                the blank line) or a last turn that is not the assistant's are skipped and counted
                by reason. Split key: the first human turn.
  hh_pairs      (not in "all": preference pairs for DPO, dev/data/DPO.md) the same file(s) as
                hh_chosen, --hh-include-harmless included, as {"prompt": [messages ending with the
                user's turn], "chosen": reply, "rejected": reply}, the input form (b) of
                dev/data/dpo_prepare. The prompt is the longest common prefix of the two
                dialogues cut back to the start of the last "\n\nAssistant:" it holds whole; the
                rest of each dialogue after that marker is its reply. Turns and replies are
                stripped as in hh_chosen. Skipped by reason: identical_chosen_rejected (equal
                dialogues or equal replies), bad_turns (no "\n\nAssistant:" in the common prefix,
                or a prompt that is not Human / Assistant turns alternating from Human to Human
                with no empty turn), differs_before_last_reply (a reply that holds another turn:
                the dialogues part before their last reply or have different numbers of turns),
                empty_reply. dpo_prepare applies the same rules to the raw file (its form (c)).
                The split is hh_chosen's, exactly: the salted hash of the same key (the first
                human turn) with hh_chosen's name as the salt and the same --seed and
                --test-fraction, so every pair whose prompt starts like a test dialogue of
                hh_chosen is a test pair: SFT on hh_chosen's train split never saw a test
                pair's conversation. Its report also counts the prompts with more than one pair.
  livedoor_cls  livedoor/livedoor_news.jsonl: 9-way news-category classification in Japanese.
                prompt = LIVEDOOR_INSTRUCTION (lists the 9 labels), "タイトル: <title>",
                "本文: <first --max-chars characters of the body>" (default 200), then a last
                line "カテゴリ:"; response = the label. Labels are short Japanese names of the
                categories (LIVEDOOR_LABELS, fixed order = the slugs sorted). Whitespace runs
                (including U+3000 and newlines) in title and body become one space and control
                characters are removed before the body is cut. Titles are not cut. With 200 the
                prompt is 370 characters on average (max 475). Measured prompt + label: with an
                8,192-token byte-level BPE trained by dev/data/bpe_train on 2,000 livedoor
                articles, 216 tokens on average (p95 248, max 285; 1.8% over 256, before any
                template tokens); with GPT-2's BPE 467 on average, so a 256-token context needs
                a Japanese-aware vocabulary (or a smaller --max-chars, e.g. 120).
                Also writes livedoor_cls_test_choices.jsonl.
  spam_cls      spamassassin_subset/spamassassin_subset.jsonl (spam / ham). prompt =
                SPAM_INSTRUCTION, "Subject: <subject>" (folded lines joined, RFC 2047 words
                decoded when possible), then the first --max-chars (default 300) characters of the
                body, then "Answer:"; response = "spam" or "ham". Headers end at the first blank
                line; the body is taken as is (HTML, quoted-printable and MIME boundaries stay),
                with whitespace runs made one space and control characters removed. The test
                fraction is 0.2 (200 of 1000 emails): at 10% a 100-email test set would measure
                accuracy only to about +-5 points. Also writes spam_cls_test_choices.jsonl.

Classification splits are stratified: within each label the examples are ordered by a salted
hash of their prompt and the first round(fraction * n) go to test (at least one when n >= 2),
so every label is in test. The other sources send a group to test when the salted hash of its
key, as a number in [0, 1), is below the fraction: a record's side does not depend on the other
records. The salt is --seed (default 0) and the source name. Keys are normalized (NFKC,
whitespace removed, case folded) before hashing.

Output lines follow the template format of dev/data/sft_prepare: {"prompt", "response"} or
{"messages": [{"role", "content"}, ...]} with user / assistant alternating, starting with user
and ending with assistant; no other keys. UTF-8, ensure_ascii=False, in input order. Text is
kept as in the source except that each turn / field is stripped of surrounding whitespace
(and the classification prompts are built as above). Files are written atomically
(temp file, fsync, rename). The choices files hold, for each test line in order,
{"prompt": <the same prompt>, "choices": [all labels, fixed order], "label": <index>}.

Nothing is dropped silently. Each skipped record is counted under one reason in the report and
the table on stdout: invalid_utf8, invalid_json, not_an_object, missing_field:<f>,
bad_field:<f>, lone_surrogate, contains_nul, empty_text, duplicate_example (same
prompt and response as an earlier kept example), and per source: oasst deleted,
review_failed, not_best_rank, orphan_parent_missing, ancestor_*, cycle,
bad_role_alternation, duplicate_message_id, unknown_role (prompter messages are context,
counted as context_only); hh empty_final_assistant_turn, empty_turn, no_turns,
text_before_first_turn, wrong_alternation, does_not_start_with_human,
does_not_end_with_assistant; hh_pairs identical_chosen_rejected, bad_turns,
differs_before_last_reply, empty_reply; classification unknown_label, duplicate_prompt (same prompt,
same label as an earlier one), conflicting_label (same prompt under different labels: every
copy skipped). Blank lines are counted as blank_line. In every report
records_read = kept train + kept test + sum(skipped) (+ context_only for oasst).

Exit status: 0 on success; 1 when an input file is missing or unreadable (the message names
the path looked up; nothing is written); 2 for a bad command line. Python 3.8+, stdlib only.
"""

import argparse
import hashlib
import json
import os
import re
import sys
import tempfile
import unicodedata

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_DATA_DIR = os.path.join(os.path.dirname(REPO_ROOT), "shared", "data")
DEFAULT_OUT = os.path.join(REPO_ROOT, "dev", "data", "sft")

SOURCES = ["oasst_en", "dolly_ja", "hh_chosen", "livedoor_cls", "spam_cls"]  # "all"
PAIR_SOURCES = ["hh_pairs"]  # preference pairs for DPO: named explicitly, not part of "all"
INPUTS = {
    "oasst_en": ["instruct_en/oasst1_en_validation.jsonl"],
    "dolly_ja": ["instruct_ja/databricks_dolly_15k_ja_first3000.jsonl"],
    "hh_chosen": ["hh_rlhf/helpful_base_test.jsonl"],
    "hh_pairs": ["hh_rlhf/helpful_base_test.jsonl"],
    "hh_harmless": ["hh_rlhf/harmless_base_test.jsonl"],
    "livedoor_cls": ["livedoor/livedoor_news.jsonl"],
    "spam_cls": ["spamassassin_subset/spamassassin_subset.jsonl"],
}
DEFAULT_TEST_FRACTION = {"oasst_en": 0.1, "dolly_ja": 0.1, "hh_chosen": 0.1,
                         "livedoor_cls": 0.1, "spam_cls": 0.2}
DEFAULT_TEST_FRACTION["hh_pairs"] = DEFAULT_TEST_FRACTION["hh_chosen"]
# the salt of a source's split hash is its name, except where a source must split exactly as
# another: a test prompt of hh_chosen is a test prompt of hh_pairs (same key, same salt)
SPLIT_SALT = {"hh_pairs": "hh_chosen"}
DEFAULT_MAX_CHARS = {"livedoor_cls": 200, "spam_cls": 300}

# livedoor category slug -> label (the order here is the order of "choices")
LIVEDOOR_LABELS = [
    ("dokujo-tsushin", "独女通信"),
    ("it-life-hack", "ITライフハック"),
    ("kaden-channel", "家電チャンネル"),
    ("livedoor-homme", "livedoor HOMME"),
    ("movie-enter", "映画"),
    ("peachy", "Peachy"),
    ("smax", "エスマックス"),
    ("sports-watch", "スポーツ"),
    ("topic-news", "トピックニュース"),
]
LIVEDOOR_INSTRUCTION = ("以下のニュース記事のカテゴリを選択肢から1つ選び、カテゴリ名だけを答えてください。\n"
                        "選択肢: " + "、".join(label for _, label in LIVEDOOR_LABELS))
# --brief-instruction: no list of choices, for small contexts (the labels are learned in training)
LIVEDOOR_INSTRUCTION_BRIEF = "ニュース記事のカテゴリを答えてください。"
SPAM_LABELS = ["spam", "ham"]
SPAM_INSTRUCTION = "Is the following email spam or ham? Answer with one word."


class InputError(Exception):
    pass


# ------------------------------------------------------------------ helpers

_WS = re.compile(r"\s+")
_CTRL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def norm_key(s):
    """Key for grouping / hashing: NFKC, no whitespace, case folded."""
    return _WS.sub("", unicodedata.normalize("NFKC", s)).casefold()


def squash(s):
    """Control characters removed, whitespace runs (incl. U+3000, newlines) -> one space."""
    return _WS.sub(" ", _CTRL.sub(" ", s)).strip()


def unit_hash(seed, source, key):
    """Deterministic number in [0, 1) from the salt and a key."""
    h = hashlib.sha256(("%s\x00%s\x00%s" % (seed, source, key)).encode("utf-8")).digest()
    return int.from_bytes(h[:8], "big") / 2.0 ** 64


def text_problem(*texts):
    """Reason a set of strings cannot be written, or None."""
    for t in texts:
        if _SURROGATE.search(t):
            return "lone_surrogate"
        if "\x00" in t:
            return "contains_nul"
    return None


class Counter(dict):
    def add(self, reason, n=1):
        self[reason] = self.get(reason, 0) + n


def check_input(data_dir, rel):
    path = os.path.join(data_dir, rel)
    if not os.path.exists(path):
        raise InputError("input file not found: %s (looked up under --data-dir %s)" % (path, data_dir))
    if not os.path.isfile(path):
        raise InputError("input is not a regular file: %s" % path)
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as e:
        raise InputError("cannot read input file %s: %s" % (path, e.strerror or e))
    return path


def read_jsonl(path, skipped):
    """(lines read, [(line_number, object)]) for the JSON-object lines; the others are counted in
    skipped."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise InputError("cannot read input file %s: %s" % (path, e.strerror or e))
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    objs = []
    for i, raw in enumerate(lines):
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            skipped.add("invalid_utf8")
            continue
        if i == 0 and line.startswith("\ufeff"):
            line = line[1:]
        if not line.strip():
            skipped.add("blank_line")
            continue
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError):
            skipped.add("invalid_json")
            continue
        if not isinstance(obj, dict):
            skipped.add("not_an_object")
            continue
        objs.append((i + 1, obj))
    return len(lines), objs


def get_str(obj, field, required=True):
    """(value, reason): a string field, or the reason it is unusable."""
    if field not in obj or (obj[field] is None and required):
        return None, ("missing_field:" + field) if required else None
    v = obj[field]
    if v is None:
        return None, None
    if not isinstance(v, str):
        return None, "bad_field:" + field
    return v, None


# ------------------------------------------------------------------ sources
# Each builder returns (examples, stats) where an example is
# {"record": <the output object>, "key": <split key>, "label": <label or None>}
# and stats has records_read and skipped (a Counter), plus source-specific info.

def build_oasst(paths, opts):
    skipped = Counter()
    msgs = {}
    order = []
    n_read = 0
    for path in paths:
        n_lines, objs = read_jsonl(path, skipped)
        for _, o in objs:
            mid, why = get_str(o, "message_id")
            if why is None and not mid:
                why = "missing_field:message_id"
            if why is None:
                if "parent_id" not in o:
                    why = "missing_field:parent_id"
                elif o["parent_id"] is not None and not isinstance(o["parent_id"], str):
                    why = "bad_field:parent_id"
            role = text = None
            if why is None:
                role, why = get_str(o, "role")
            if why is None and role not in ("prompter", "assistant"):
                why = "unknown_role"
            if why is None:
                text, why = get_str(o, "text")
            if why is None:
                for f, ok in (("deleted", lambda v: isinstance(v, bool)),
                              ("review_result", lambda v: v is None or isinstance(v, bool)),
                              ("rank", lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool)))):
                    if f in o and not ok(o[f]):
                        why = "bad_field:" + f
                        break
            if why is None and mid in msgs:
                why = "duplicate_message_id"
            if why is not None:
                skipped.add(why)
                continue
            msgs[mid] = {"id": mid, "parent": o["parent_id"], "role": role, "text": text.strip(),
                         "deleted": o.get("deleted", False) is True,
                         "review_false": o.get("review_result") is False,
                         "rank": o.get("rank"), "bad_text": text_problem(text)}
            order.append(mid)
        n_read += n_lines

    flagged = {"deleted": sum(m["deleted"] for m in msgs.values()),
               "review_result_false": sum(m["review_false"] for m in msgs.values()),
               "deleted_and_review_result_false": sum(m["deleted"] and m["review_false"] for m in msgs.values()),
               "parent_missing": sum(1 for m in msgs.values() if m["parent"] is not None and m["parent"] not in msgs)}
    pairs = sum(1 for m in msgs.values() if m["role"] == "assistant" and m["parent"] in msgs)
    best_only = opts.oasst_best_only

    def own_problem(m, as_ancestor):
        pre = "ancestor_" if as_ancestor else ""
        if m["deleted"]:
            return pre + "deleted"
        if m["review_false"]:
            return pre + "review_failed"
        if m["bad_text"]:
            return pre + m["bad_text"]
        if not m["text"]:
            return pre + "empty_text"
        if best_only and m["role"] == "assistant" and m["rank"] not in (None, 0):
            return pre + "not_best_rank"
        return None

    examples = []
    context_only = 0
    for mid in order:
        m = msgs[mid]
        if m["role"] != "assistant":
            context_only += 1
            continue
        why = own_problem(m, False)
        chain = [m]
        seen = {mid}
        cur = m
        while why is None and cur["parent"] is not None:
            pid = cur["parent"]
            if pid not in msgs:
                why = "orphan_parent_missing"
                break
            if pid in seen:
                why = "cycle"
                break
            seen.add(pid)
            cur = msgs[pid]
            why = own_problem(cur, True)
            chain.append(cur)
        if why is None:
            chain.reverse()
            roles = [c["role"] for c in chain]
            if any(r != ("prompter" if i % 2 == 0 else "assistant") for i, r in enumerate(roles)):
                why = "bad_role_alternation"
        if why is not None:
            skipped.add(why)
            continue
        rec = {"messages": [{"role": "user" if c["role"] == "prompter" else "assistant",
                             "content": c["text"]} for c in chain]}
        examples.append({"record": rec, "key": norm_key(chain[0]["text"]), "label": None})
    stats = {"records_read": n_read, "skipped": skipped, "context_only": context_only,
             "messages": len(msgs), "prompt_reply_pairs_in_file": pairs,
             "messages_flagged": flagged, "best_only": best_only}
    return examples, stats


def build_dolly(paths, opts):
    skipped = Counter()
    examples = []
    n_read = 0
    for path in paths:
        n_lines, objs = read_jsonl(path, skipped)
        for _, o in objs:
            ins, why = get_str(o, "instruction")
            inp = out = None
            if why is None:
                inp, why = get_str(o, "input", required=False)
            if why is None:
                out, why = get_str(o, "output")
            if why is None:
                why = text_problem(ins, inp or "", out)
            if why is None:
                ins, inp, out = ins.strip(), (inp or "").strip(), out.strip()
                if not ins or not out:
                    why = "empty_text"
            if why is not None:
                skipped.add(why)
                continue
            prompt = ins + ("\n\n" + inp if inp else "")
            examples.append({"record": {"prompt": prompt, "response": out},
                             "key": norm_key(ins), "label": None})
        n_read += n_lines
    return examples, {"records_read": n_read, "skipped": skipped}


_HH_TURN = re.compile(r"\n\n(Human|Assistant):")


def parse_hh(s):
    """(messages, None) or (None, reason) for an HH-RLHF dialogue string."""
    parts = _HH_TURN.split(s)
    if len(parts) < 3:
        return None, "no_turns"
    if parts[0].strip():
        return None, "text_before_first_turn"
    speakers = parts[1::2]
    texts = [t.strip() for t in parts[2::2]]
    if speakers[0] != "Human":
        return None, "does_not_start_with_human"
    if any(speakers[i] == speakers[i + 1] for i in range(len(speakers) - 1)):
        return None, "wrong_alternation"
    if speakers[-1] != "Assistant":
        return None, "does_not_end_with_assistant"
    if not texts[-1]:
        return None, "empty_final_assistant_turn"
    if not all(texts):
        return None, "empty_turn"
    return [{"role": "user" if sp == "Human" else "assistant", "content": t}
            for sp, t in zip(speakers, texts)], None


def build_hh(paths, opts):
    skipped = Counter()
    examples = []
    n_read = 0
    per_file = {}
    for path in paths:
        before = len(examples)
        n_lines, objs = read_jsonl(path, skipped)
        for _, o in objs:
            chosen, why = get_str(o, "chosen")
            if why is None:
                why = text_problem(chosen)
            msgs = None
            if why is None:
                msgs, why = parse_hh(chosen)
            if why is not None:
                skipped.add(why)
                continue
            examples.append({"record": {"messages": msgs}, "key": norm_key(msgs[0]["content"]),
                             "label": None})
        n_read += n_lines
        per_file[os.path.basename(path)] = {"records": n_lines,
                                            "parsed": len(examples) - before}
    return examples, {"records_read": n_read, "skipped": skipped, "files": per_file,
                      "include_harmless": opts.hh_include_harmless}


_HH_ASSISTANT = "\n\nAssistant:"


def split_hh_pair(chosen, rejected):
    """(prompt messages, chosen reply, rejected reply) and None, or None and the reason the pair
    is unusable. The same rules as dev/data/dpo_prepare.c's form (c), in the same order."""
    if chosen == rejected:
        return None, "identical_chosen_rejected"
    n = 0
    m = min(len(chosen), len(rejected))
    while n < m and chosen[n] == rejected[n]:
        n += 1
    p = chosen.rfind(_HH_ASSISTANT, 0, n)  # the last marker that lies whole in the common prefix
    if p < 0:
        return None, "bad_turns"
    rc, rr = chosen[p + len(_HH_ASSISTANT):], rejected[p + len(_HH_ASSISTANT):]
    if _HH_TURN.search(rc) or _HH_TURN.search(rr):
        return None, "differs_before_last_reply"
    parts = _HH_TURN.split(chosen[:p])
    speakers, texts = parts[1::2], [t.strip() for t in parts[2::2]]
    if (len(parts) < 3 or parts[0].strip() or speakers[-1] != "Human" or not all(texts)
            or any(sp != ("Human" if i % 2 == 0 else "Assistant") for i, sp in enumerate(speakers))):
        return None, "bad_turns"
    rc, rr = rc.strip(), rr.strip()
    if not rc or not rr:
        return None, "empty_reply"
    if rc == rr:
        return None, "identical_chosen_rejected"
    msgs = [{"role": "user" if sp == "Human" else "assistant", "content": t} for sp, t in zip(speakers, texts)]
    return (msgs, rc, rr), None


def build_hh_pairs(paths, opts):
    skipped = Counter()
    examples = []
    n_read = 0
    per_file = {}
    for path in paths:
        before = len(examples)
        n_lines, objs = read_jsonl(path, skipped)
        for _, o in objs:
            chosen, why = get_str(o, "chosen")
            rejected = None
            if why is None:
                rejected, why = get_str(o, "rejected")
            if why is None:
                why = text_problem(chosen, rejected)
            pair = None
            if why is None:
                pair, why = split_hh_pair(chosen, rejected)
            if why is not None:
                skipped.add(why)
                continue
            msgs, rc, rr = pair
            examples.append({"record": {"prompt": msgs, "chosen": rc, "rejected": rr},
                             "key": norm_key(msgs[0]["content"]), "label": None})
        n_read += n_lines
        per_file[os.path.basename(path)] = {"records": n_lines, "parsed": len(examples) - before}
    prompts = Counter()
    for e in examples:
        prompts.add(json.dumps(e["record"]["prompt"], ensure_ascii=False))
    return examples, {"records_read": n_read, "skipped": skipped, "records_per_file": per_file,
                      "include_harmless": opts.hh_include_harmless, "split_salt": "hh_chosen",
                      "prompts_with_several_pairs": sum(1 for v in prompts.values() if v > 1),
                      "multi_turn_prompts": sum(1 for e in examples if len(e["record"]["prompt"]) > 1)}


def build_livedoor(paths, opts):
    skipped = Counter()
    slug_to_label = dict(LIVEDOOR_LABELS)
    examples = []
    n_read = 0
    read_by_label = {}
    max_chars = opts.max_chars or DEFAULT_MAX_CHARS["livedoor_cls"]
    for path in paths:
        n_lines, objs = read_jsonl(path, skipped)
        for _, o in objs:
            cat, why = get_str(o, "category")
            title = body = None
            if why is None:
                title, why = get_str(o, "title")
            if why is None:
                body, why = get_str(o, "text")
            if why is None and cat not in slug_to_label:
                why = "unknown_label"
            if why is None:
                why = text_problem(title, body)
            if why is None:
                title, body = squash(title), squash(body)[:max_chars].strip()
                if not title and not body:
                    why = "empty_text"
            if why is not None:
                skipped.add(why)
                continue
            label = slug_to_label[cat]
            read_by_label[cat] = read_by_label.get(cat, 0) + 1
            instruction = LIVEDOOR_INSTRUCTION_BRIEF if opts.brief_instruction else LIVEDOOR_INSTRUCTION
            prompt = "%s\n\nタイトル: %s\n本文: %s\nカテゴリ:" % (instruction, title, body)
            examples.append({"record": {"prompt": prompt, "response": label},
                             "key": prompt, "label": label})
        n_read += n_lines
    return examples, {"records_read": n_read, "skipped": skipped, "max_chars": max_chars, "brief_instruction": bool(opts.brief_instruction),
                      "records_by_category": dict(sorted(read_by_label.items())),
                      "labels": {slug: label for slug, label in LIVEDOOR_LABELS}}


_SUBJECT = re.compile(r"^Subject:[ \t]*(.*(?:\n[ \t].*)*)", re.M | re.I)


def decode_subject(raw):
    raw = re.sub(r"\n[ \t]+", " ", raw)
    if "=?" in raw:
        try:
            import email.header
            parts = []
            for chunk, cs in email.header.decode_header(raw):
                if isinstance(chunk, bytes):
                    chunk = chunk.decode(cs or "ascii", errors="replace")
                parts.append(chunk)
            dec = "".join(parts)
            if dec.strip():
                raw = dec
        except Exception:  # a malformed encoded word: keep the raw text
            pass
    return squash(raw)


def build_spam(paths, opts):
    skipped = Counter()
    examples = []
    n_read = 0
    read_by_label = {}
    no_sep = 0
    max_chars = opts.max_chars or DEFAULT_MAX_CHARS["spam_cls"]
    for path in paths:
        n_lines, objs = read_jsonl(path, skipped)
        for _, o in objs:
            label, why = get_str(o, "label")
            text = None
            if why is None:
                text, why = get_str(o, "text")
            if why is None and label not in SPAM_LABELS:
                why = "unknown_label"
            if why is None:
                why = text_problem(text)
            if why is None:
                t = text.replace("\r\n", "\n")
                m = re.search(r"\n[ \t]*\n", t)
                if m:
                    head, body = t[:m.start()], t[m.end():]
                else:
                    head, body = t, ""
                    no_sep += 1
                sm = _SUBJECT.search(head)
                subject = decode_subject(sm.group(1)) if sm else ""
                body = squash(body)[:max_chars].strip()
                if not subject and not body:
                    why = "empty_text"
            if why is not None:
                skipped.add(why)
                continue
            read_by_label[label] = read_by_label.get(label, 0) + 1
            prompt = "%s\n\nSubject: %s\n\n%s\n\nAnswer:" % (SPAM_INSTRUCTION, subject or "(no subject)", body)
            examples.append({"record": {"prompt": prompt, "response": label},
                             "key": prompt, "label": label})
        n_read += n_lines
    return examples, {"records_read": n_read, "skipped": skipped, "max_chars": max_chars,
                      "records_by_label": dict(sorted(read_by_label.items())),
                      "emails_without_blank_line": no_sep}


BUILDERS = {"oasst_en": build_oasst, "dolly_ja": build_dolly, "hh_chosen": build_hh, "hh_pairs": build_hh_pairs,
            "livedoor_cls": build_livedoor, "spam_cls": build_spam}
CHOICES = {"livedoor_cls": [label for _, label in LIVEDOOR_LABELS], "spam_cls": SPAM_LABELS}


# ------------------------------------------------------------------ dedup and split

def dedup(examples, skipped, classification):
    out = []
    if classification:
        labels_of = {}
        for e in examples:
            labels_of.setdefault(e["record"]["prompt"], set()).add(e["label"])
        seen = set()
        for e in examples:
            p = e["record"]["prompt"]
            if len(labels_of[p]) > 1:
                skipped.add("conflicting_label")
            elif p in seen:
                skipped.add("duplicate_prompt")
            else:
                seen.add(p)
                out.append(e)
        return out
    seen = set()
    for e in examples:
        k = json.dumps(e["record"], ensure_ascii=False, sort_keys=True)
        if k in seen:
            skipped.add("duplicate_example")
        else:
            seen.add(k)
            out.append(e)
    return out


def split(name, examples, frac, seed, classification):
    """Mark each example e["test"] = True/False."""
    if classification:
        by_label = {}
        for i, e in enumerate(examples):
            by_label.setdefault(e["label"], []).append(i)
        for label, idx in by_label.items():
            n = len(idx)
            k = int(round(frac * n))
            if n >= 2:
                k = min(max(k, 1), n - 1)
            ranked = sorted(idx, key=lambda i: (unit_hash(seed, name, examples[i]["key"]), i))
            test = set(ranked[:k])
            for i in idx:
                examples[i]["test"] = i in test
    else:
        for e in examples:
            e["test"] = unit_hash(seed, name, e["key"]) < frac


# ------------------------------------------------------------------ output

def atomic_write(path, lines):
    d = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".tmp.", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            for line in lines:
                f.write(line.encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:
        dfd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def jline(obj):
    return json.dumps(obj, ensure_ascii=False) + "\n"


def run_source(name, opts, data_dir, out_dir):
    rels = list(INPUTS[name])
    if name in ("hh_chosen", "hh_pairs") and opts.hh_include_harmless:
        rels += INPUTS["hh_harmless"]
    paths = [os.path.join(data_dir, r) for r in rels]
    classification = name in CHOICES
    examples, stats = BUILDERS[name](paths, opts)
    skipped = stats["skipped"]
    examples = dedup(examples, skipped, classification)
    frac = opts.test_fraction if opts.test_fraction is not None else DEFAULT_TEST_FRACTION[name]
    split(SPLIT_SALT.get(name, name), examples, frac, opts.seed, classification)
    train = [e for e in examples if not e["test"]]
    test = [e for e in examples if e["test"]]

    files = {"train": name + "_train.jsonl", "test": name + "_test.jsonl"}
    atomic_write(os.path.join(out_dir, files["train"]), (jline(e["record"]) for e in train))
    atomic_write(os.path.join(out_dir, files["test"]), (jline(e["record"]) for e in test))
    if classification:
        choices = CHOICES[name]
        files["test_choices"] = name + "_test_choices.jsonl"
        atomic_write(os.path.join(out_dir, files["test_choices"]),
                     (jline({"prompt": e["record"]["prompt"], "choices": choices,
                             "label": choices.index(e["label"])}) for e in test))

    report = {"source": name, "inputs": rels, "seed": opts.seed, "test_fraction": frac,
              "split": "stratified by label, hash-ranked" if classification else "salted hash of the group key",
              "records_read": stats["records_read"],
              "kept_train": len(train), "kept_test": len(test),
              "skipped": dict(sorted(skipped.items())), "skipped_total": sum(skipped.values())}
    for k, v in stats.items():
        if k not in ("records_read", "skipped"):
            report[k] = v
    if classification:
        report["choices"] = CHOICES[name]
        for side, exs in (("train", train), ("test", test)):
            cnt = {}
            for e in exs:
                cnt[e["label"]] = cnt.get(e["label"], 0) + 1
            report["%s_by_label" % side] = {c: cnt.get(c, 0) for c in CHOICES[name]}
        plen = [len(e["record"]["prompt"]) for e in examples]
        report["prompt_chars"] = {"max": max(plen) if plen else 0,
                                  "mean": round(sum(plen) / len(plen), 1) if plen else 0}
    report["files"] = files
    atomic_write(os.path.join(out_dir, name + "_report.json"),
                 [json.dumps(report, ensure_ascii=False, indent=1) + "\n"])
    return report


def print_table(reports):
    print("%-13s %7s %7s %6s %7s  %s" % ("source", "read", "train", "test", "skipped", "skipped by reason"))
    for r in reports:
        reasons = ", ".join("%s %d" % kv for kv in r["skipped"].items()) or "-"
        extra = ""
        if "context_only" in r:
            extra = " (%d prompter messages used as context)" % r["context_only"]
        print("%-13s %7d %7d %6d %7d  %s%s" % (r["source"], r["records_read"], r["kept_train"],
                                               r["kept_test"], r["skipped_total"], reasons, extra))
    for r in reports:
        if "messages_flagged" in r:
            f = r["messages_flagged"]
            print("oasst_en messages: %d deleted, %d review_result false (%d both), %d with a missing "
                  "parent; %d prompt->reply pairs in the file"
                  % (f["deleted"], f["review_result_false"], f["deleted_and_review_result_false"],
                     f["parent_missing"], r["prompt_reply_pairs_in_file"]))


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="sft_sources.py",
        description="Convert ../shared/data instruction / classification sets into SFT JSONL "
                    "with deterministic train/test splits (see the module docstring).")
    ap.add_argument("sources", nargs="+", choices=SOURCES + PAIR_SOURCES + ["all"], metavar="SOURCE",
                    help="one or more of: %s, or all (these five); the DPO pairs: %s"
                         % (", ".join(SOURCES), ", ".join(PAIR_SOURCES)))
    ap.add_argument("--data-dir", default=DEFAULT_DATA_DIR,
                    help="the shared data folder (default: ../shared/data from the repo root)")
    ap.add_argument("--out", default=DEFAULT_OUT, help="output folder (default: dev/data/sft)")
    ap.add_argument("--seed", type=int, default=0, help="salt of the split hash (default 0)")
    ap.add_argument("--test-fraction", type=float, default=None,
                    help="test share for every source chosen (default 0.1, spam_cls 0.2)")
    ap.add_argument("--max-chars", type=int, default=None,
                    help="body characters in the classification prompts "
                         "(default 200 for livedoor_cls, 300 for spam_cls)")
    ap.add_argument("--brief-instruction", action="store_true",
                    help="livedoor_cls: a one-line instruction without the list of the 9 labels "
                         "(for short contexts; the labels are then learned from the training split)")
    ap.add_argument("--oasst-best-only", action="store_true",
                    help="oasst_en: keep only rank-0 (or unranked) replies, along the whole thread")
    ap.add_argument("--hh-include-harmless", action="store_true",
                    help="hh_chosen, hh_pairs: also use harmless_base_test.jsonl (often harmful 'chosen' replies)")
    opts = ap.parse_args(argv)
    if opts.test_fraction is not None and not (0.0 < opts.test_fraction < 1.0):
        ap.error("--test-fraction must be between 0 and 1 (exclusive), got %r" % opts.test_fraction)
    if opts.max_chars is not None and opts.max_chars <= 0:
        ap.error("--max-chars must be a positive integer, got %d" % opts.max_chars)

    names = SOURCES if "all" in opts.sources else [s for s in SOURCES if s in opts.sources]
    names += [s for s in PAIR_SOURCES if s in opts.sources]
    data_dir = opts.data_dir
    try:
        for name in names:  # every input is checked before anything is written
            rels = INPUTS[name] + (INPUTS["hh_harmless"] if name in ("hh_chosen", "hh_pairs") and opts.hh_include_harmless else [])
            for rel in rels:
                check_input(data_dir, rel)
        out_dir = opts.out
        try:
            os.makedirs(out_dir, exist_ok=True)
        except OSError as e:
            print("sft_sources.py: error: cannot create output folder %s: %s" % (out_dir, e.strerror or e),
                  file=sys.stderr)
            return 1
        reports = [run_source(name, opts, data_dir, out_dir) for name in names]
    except InputError as e:
        print("sft_sources.py: error: %s" % e, file=sys.stderr)
        return 1
    print_table(reports)
    print("wrote %s/<source>_{train,test}.jsonl and _report.json" % out_dir.rstrip("/"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
