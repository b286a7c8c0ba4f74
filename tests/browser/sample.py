#!/usr/bin/env python3
"""Writes a sample review page and what the browser test should find on it.

    python3 tests/browser/sample.py OUT_DIR [--rows N] [--update-csp]

OUT_DIR/review.html is src/report/review.html filled with synthetic rows (every outcome,
multi-line and very long text, conversation history, Italian, Chinese, Arabic, emoji, and markup
that would run script if it were ever parsed as HTML); OUT_DIR/expect.json holds the counts
tests/browser/review.mjs checks. With --rows N the rows are generated (for a load test) instead of
the hand-written set.

embed() is the reference for how the data is written into the page: the Rust side must produce
the same bytes for the same document.

The page's Content-Security-Policy allows its inline script and style by hash, so an edit to
either needs new hashes: this script stops with the right ones, and --update-csp writes them in.
"""

import argparse
import base64
import hashlib
import json
import random
import re
import sys
from pathlib import Path

TOKEN = "__REVIEW_DATA__"
TEMPLATE = Path(__file__).resolve().parents[2] / "src" / "report" / "review.html"
OUTCOMES = ["swapped", "tie", "failed", "invalid", "kept"]
DEFAULT_ON = {"swapped", "tie"}
# The harness clicks this outcome's toggle, then searches for this text with the toggle still on.
TOGGLE = "kept"
SEARCH = "zebra"

PROBES = [
    '<img src=x onerror="window.__pwned=1">',
    "</script><script>window.__pwned=1</script>",
    "javascript:alert(document.domain)",
]


def embed(document):
    """The JSON text that replaces the token.

    Characters that could end the script element or start markup in it are written as JSON
    escapes; U+2028 and U+2029 too, which older JavaScript parsers took for line ends. Everything
    else is plain UTF-8. The result is still exactly the same JSON document.
    """
    text = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    for char, escape in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escape)
    return text


def csp_hashes(page):
    """The hashes the page's policy must list: (script, style)."""

    def digest(body):
        return "sha256-" + base64.b64encode(hashlib.sha256(body.encode("utf-8")).digest()).decode()

    scripts = re.findall(r"<script>(.*?)</script>", page, re.S)
    styles = re.findall(r"<style>(.*?)</style>", page, re.S)
    if len(scripts) != 1 or len(styles) != 1:
        sys.exit("sample.py: the template must have exactly one inline <script> and one <style>")
    return digest(scripts[0]), digest(styles[0])


def check_csp(template, update):
    script, style = csp_hashes(template)
    policy = re.search(r"script-src '([^']*)'; style-src '([^']*)'", template)
    if policy is None:
        sys.exit("sample.py: no script-src/style-src hashes in the template's Content-Security-Policy")
    if policy.groups() == (script, style):
        return template
    if not update:
        sys.exit(
            "sample.py: the Content-Security-Policy hashes in src/report/review.html are stale;\n"
            f"  script-src '{script}'; style-src '{style}'\n"
            "  (run with --update-csp to write them)"
        )
    fixed = template[: policy.start()] + f"script-src '{script}'; style-src '{style}'" + template[policy.end() :]
    TEMPLATE.write_text(fixed, encoding="utf-8")
    print(f"sample.py: updated the hashes in {TEMPLATE}", file=sys.stderr)
    return fixed


def row(index, outcome, prompt, chosen, rejected, **extra):
    judged = outcome not in ("failed", "invalid")
    r = {
        "index": index,
        "outcome": outcome,
        "prompt": prompt,
        "system": None,
        "history": [],
        "chosen": chosen,
        "rejected": rejected,
        "chosen_score": 4.0 if judged else None,
        "rejected_score": 2.0 if judged else None,
        "chosen_rationale": "Accurate and to the point." if judged else None,
        "rejected_rationale": "Misses part of the question." if judged else None,
        "failure_reason": None,
        "shown_first": "chosen",
        "margin": 2.0 if judged else None,
    }
    r.update(extra)
    if judged and "margin" not in extra:
        r["margin"] = round(r["chosen_score"] - r["rejected_score"], 2)
    return r


def handwritten():
    long_answer = "\n".join(
        f"Step {i}: mix the flour, water and salt, then rest the dough for {i * 5} minutes before folding."
        for i in range(1, 121)
    )
    rows = [
        row(3, "swapped", "Why is the sky blue?\nAnswer in two sentences.",
            "Sunlight scatters off air molecules, and blue light scatters the most.\nSo the sky looks blue.",
            "Because it reflects the ocean.",
            chosen_score=4.5, rejected_score=1.5,
            chosen_rationale="Correct physics (Rayleigh scattering), short as asked.",
            rejected_rationale="A common myth; wrong.", shown_first="rejected"),
        row(7, "swapped", "Summarise this review: " + PROBES[0],
            "The reviewer liked the product. Raw markup in the text: " + PROBES[0],
            "Here is some HTML: " + PROBES[1],
            chosen_rationale="Summarises and leaves the markup as text: " + PROBES[1],
            rejected_rationale="Pastes markup instead of summarising: " + PROBES[0]),
        row(12, "swapped", "Write a bread recipe with every step.", long_answer, "Buy bread.",
            chosen_score=5.0, rejected_score=1.0, shown_first="both"),
        row(15, "swapped", "Perché il cielo è blu? Spiegalo in modo semplice.",
            "La luce del sole si diffonde nell'aria: il blu si diffonde più degli altri colori, così il cielo ci appare blu.",
            "Perché è così.", chosen_score=4.0, rejected_score=2.5),
        row(21, "swapped", "请用简单的话解释为什么天空是蓝色的。",
            "阳光穿过大气时，蓝光比其他颜色的光散射得更多，所以天空看起来是蓝色的。",
            "因为天空喜欢蓝色。 🌤️", chosen_score=4.25, rejected_score=1.75),
        row(30, "swapped", "Link me the docs.", "Here: " + PROBES[2] + "\n(that is text, not a link)",
            "Click " + PROBES[2], chosen_score=3.5, rejected_score=2.0),
        row(33, "tie", "Which is heavier, a kilo of feathers or a kilo of steel?",
            "They weigh the same: a kilogram each.", "Both are one kilogram, so neither.",
            chosen_score=4.0, rejected_score=4.0,
            chosen_rationale="Correct.", rejected_rationale="Also correct."),
        row(41, "tie", "And what did I ask first?",
            "You first asked for a haiku about autumn.", "Your first request was an autumn haiku.",
            chosen_score=4.0, rejected_score=4.0, margin=0.0,
            system="Answer briefly. <b>bold?</b>",
            history=[
                {"role": "user", "content": "Write a haiku about autumn."},
                {"role": "assistant", "content": "Red leaves drift and fall\nthe river carries them off\nquiet afternoon"},
                {"role": "<i>user</i>", "content": "Thanks! " + PROBES[1]},
            ]),
        row(44, "tie", "Translate 'hello' into Arabic.", "مرحبا", "\u202eolleh\u202c means hello",
            chosen_score=3.0, rejected_score=3.0, chosen_rationale="Right word.",
            rejected_rationale="Odd direction marks, but the meaning is fine."),
        row(48, "tie", "Spell out a long identifier.",
            "x" * 400, "https://example.invalid/" + "a/b" * 150,
            chosen_score=2.0, rejected_score=2.0),
        row(52, "tie", "Line separators\u2028inside\u2029a prompt & an ampersand",
            "One & two < three > zero", "Tom &amp; Jerry &lt;tag&gt;",
            chosen_score=3.5, rejected_score=3.5),
        row(60, "failed", "Explain quantum tunnelling.", "A particle can cross a barrier...",
            "Magic.", failure_reason="judge answer did not parse: expected a score from 1 to 5, got 'seven'",
            shown_first=None),
        row(61, "failed", "Tell me a joke.", "Why did the chicken...", "No.",
            failure_reason="request failed after 3 attempts: connection reset " + PROBES[0]),
        row(62, "failed", "Count to three.", "1, 2, 3", "one two", failure_reason="timeout after 120 s"),
        row(70, "invalid", "Say hi.", "", "Hi!", failure_reason="chosen response is empty"),
        row(71, "invalid", "What's 2+2?", "4", "[1, 2]", failure_reason="rejected is not text (found a list)"),
    ]
    for n, i in enumerate([1, 2, 4, 5, 6, 8, 9, 10]):
        rows.append(row(i, "kept", f"Name a fruit, please ({n + 1}).", "An apple.", "A chair.",
                        chosen_score=4.5, rejected_score=1.0))
    # The one row the search finds: its text sits only in a rationale, in another case.
    rows[-1]["chosen_rationale"] = "Names a fruit; the rejected one names furniture, not a ZeBra either."
    rows.sort(key=lambda r: r["index"])
    summary = {"rows": 1000, "outcomes": {"kept": 800, "swapped": 70, "tie": 70, "failed": 40, "invalid": 20}}
    return rows, summary, 0


def generated(count, seed=7):
    rng = random.Random(seed)
    words = ("the model answer cites sources and explains each step clearly while the other one "
             "repeats the question adds filler and gets a date wrong about rivers mountains bread "
             "physics history poetry code tests").split()

    def text(lo, hi):
        out = []
        for _ in range(rng.randint(lo, hi)):
            out.append(rng.choice(words))
            if rng.random() < 0.05:
                out.append("\n")
        return " ".join(out)

    weights = {"swapped": 35, "tie": 30, "failed": 15, "invalid": 5, "kept": 15}
    rows = []
    for i in range(count):
        outcome = rng.choices(list(weights), list(weights.values()))[0]
        judged = outcome not in ("failed", "invalid")
        a, b = (round(rng.uniform(1, 5), 2) for _ in range(2))
        if outcome == "tie":
            b = a
        r = row(i * 3, outcome, text(5, 40), text(20, 4000 if i % 50 == 0 else 400), text(10, 300),
                chosen_score=max(a, b) if judged else None, rejected_score=min(a, b) if judged else None,
                chosen_rationale=text(5, 30) if judged else None,
                rejected_rationale=text(5, 30) if judged else None,
                failure_reason=text(3, 10) if not judged else None,
                shown_first=rng.choice(["chosen", "rejected"]))
        if i % 97 == 0:
            r["rejected"] += " " + rng.choice(PROBES)
        if i % 7 == 0:
            r["history"] = [{"role": "user", "content": text(5, 30)}, {"role": "assistant", "content": text(5, 30)}]
        if i % 333 == 0:
            r["prompt"] += " Zebra"
        rows.append(r)
    present = {o: sum(r["outcome"] == o for r in rows) for o in OUTCOMES}
    totals = {o: n * (4 if o != "kept" else 40) for o, n in present.items()}
    return rows, {"rows": sum(totals.values()), "outcomes": totals}, 120


def searchable(r):
    parts = [r["prompt"], r["system"]] + [t.get("content") for t in r["history"]]
    parts += [r["chosen"], r["rejected"], r["chosen_rationale"], r["rejected_rationale"], r["failure_reason"]]
    return "\0".join("" if p is None else str(p) for p in parts).lower()


def visible(rows, outcomes, query=""):
    return sum(r["outcome"] in outcomes and query.lower() in searchable(r) for r in rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--rows", type=int, help="generate this many rows instead of the hand-written set")
    parser.add_argument("--update-csp", action="store_true", help="write fresh policy hashes into the template")
    args = parser.parse_args()

    template = check_csp(TEMPLATE.read_text(encoding="utf-8"), args.update_csp)
    if template.count(TOKEN) != 1:
        sys.exit(f"sample.py: the template must hold {TOKEN} exactly once")

    rows, summary, omitted = generated(args.rows) if args.rows else handwritten()
    document = {
        "title": "Re-ranked preference pairs",
        "input": "pairs.jsonl",
        "judge": "gemma-3-270m",
        "rejudge_version": "0.2.0",
        "generated_at": "2026-11-25T10:00:00Z",
        "summary": summary,
        "rows_included": len(rows),
        "rows_omitted": omitted,
        "rows": rows,
    }
    payload = embed(document)
    assert json.loads(payload) == document
    assert not re.search(r"[<>&\u2028\u2029]", payload)

    toggled = DEFAULT_ON ^ {TOGGLE}
    expect = {
        "default_visible": visible(rows, DEFAULT_ON),
        "after_toggle": {"outcome": TOGGLE, "visible": visible(rows, toggled)},
        "search": {"text": SEARCH, "visible": visible(rows, toggled, SEARCH)},
        "rows_in_file": len(rows),
        "notices": int(omitted > 0) + int(0 < sum(r["outcome"] == "kept" for r in rows) < summary["outcomes"]["kept"]),
        "literal_texts": PROBES if not args.rows else [],
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "review.html").write_text(template.replace(TOKEN, payload), encoding="utf-8")
    (args.out_dir / "expect.json").write_text(json.dumps(expect, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(args.out_dir / "review.html")


if __name__ == "__main__":
    main()
