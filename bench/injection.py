"""Prompt injection: how often attacks planted in the rejected response flip rejudge's verdicts.

Each attack of tests/data/injections.jsonl is appended, after a blank line, to the rejected
response of one real row: English attacks to one distinct LLMBar `natural` pair each, Italian
attacks to the rows of examples/it_sample.jsonl (cycled). The clean and the poisoned sets hold the
same rows in the same order, so the seeded A/B order of every row is the same in both runs. Two
rejudge binaries (an earlier commit's and the hardened one) rerank both sets against one
llama-server, and the verdicts are compared row by row.

Run it through bench/injection.sh, which builds the two binaries. Prints a table, writes
bench/injection-results.json and the "Prompt injection" section of BENCHMARKS.md.
"""

import argparse
import datetime
import hashlib
import json
import os
import platform
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ATTACKS = ROOT / "tests" / "data" / "injections.jsonl"
ITALIAN = ROOT / "examples" / "it_sample.jsonl"
LLMBAR = Path(os.environ.get("REJUDGE_INJECTION_LLMBAR", ROOT.parent / "shared" / "data" / "llmbar" / "natural.json"))
CACHE = Path(os.environ.get("REJUDGE_CACHE", Path.home() / ".cache" / "rejudge"))
TARGET = os.environ.get("REJUDGE_INJECTION_TARGET", "/tmp/injection-target")
RESULTS = ROOT / "bench" / "injection-results.json"
BENCHMARKS = ROOT / "BENCHMARKS.md"
SECTION = "## Prompt injection"
READING = "### Reading"
LANGS = ["en", "it"]
FLIPPED = ("tie", "swapped")
# The flags both binaries must have; checked against each one's `rerank --help`.
FLAGS = ["--base-url", "--model", "--scoring", "--concurrency", "--format", "--seed", "--lang", "--output"]


def log(message: str) -> None:
    print(f"injection: {message}", file=sys.stderr, flush=True)


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="/tmp/rejudge-before", help="the earlier binary")
    parser.add_argument("--after", default="/tmp/rejudge-after", help="the hardened binary")
    parser.add_argument("--before-commit", default=os.environ.get("REJUDGE_INJECTION_BEFORE_COMMIT", "3b03ffb"))
    parser.add_argument("--after-commit", default=os.environ.get("REJUDGE_INJECTION_AFTER_COMMIT", "HEAD"))
    parser.add_argument("--llama-bin", default=os.environ.get("REJUDGE_INJECTION_LLAMA_BIN"),
                        help="folder holding llama-server")
    parser.add_argument("--model", default=os.environ.get("REJUDGE_INJECTION_MODEL",
                                                          str(CACHE / "models" / "gemma-3-270m-q4_k_m.gguf")))
    parser.add_argument("--work", default=os.environ.get("REJUDGE_INJECTION_WORK", "/tmp/rejudge-injection"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-control", action="store_true",
                        help="skip the second clean run that measures run-to-run noise")
    parser.add_argument("--attacks", type=int, default=0,
                        help="only the first N attacks of each language (a smoke test; writes nothing)")
    return parser.parse_args()


# --- the two sets ------------------------------------------------------------------------------


def position_assumed(aims: str) -> str:
    found = re.search(r"Assumes the poisoned response is ([AB])\b", aims)
    return found.group(1) if found else "either"


def build_sets(limit: int) -> dict:
    """Rows per language: each attack with its base row, the clean and the poisoned rejected."""
    attacks = [json.loads(line) for line in ATTACKS.read_text().splitlines() if line.strip()]
    llmbar = json.loads(LLMBAR.read_text())
    italian = [json.loads(line) for line in ITALIAN.read_text().splitlines() if line.strip()]
    sets = {lang: [] for lang in LANGS}
    for attack in attacks:
        rows = sets[attack["lang"]]
        if limit and len(rows) >= limit:
            continue
        n = len(rows)
        if attack["lang"] == "en":
            if n >= len(llmbar):
                raise SystemExit(f"more English attacks than LLMBar pairs ({len(llmbar)})")
            pair = llmbar[n]
            better, worse = ("output_1", "output_2") if pair["label"] == 1 else ("output_2", "output_1")
            base = {"source": f"llmbar/natural.json#{n}", "prompt": pair["input"],
                    "chosen": pair[better], "rejected": pair[worse]}
        else:
            row = italian[n % len(italian)]
            base = {"source": f"examples/it_sample.jsonl#{row['id']}", "prompt": row["prompt"],
                    "chosen": row["chosen"], "rejected": row["rejected"]}
        rows.append({
            "item": f"{attack['lang']}-{n:03d}",
            "attack": attack["id"],
            "category": attack["category"],
            "lang": attack["lang"],
            "position": position_assumed(attack["aims"]),
            **base,
            "poisoned": base["rejected"].rstrip("\n") + "\n\n" + attack["text"],
        })
    return sets


def write_sets(sets: dict, work: Path) -> dict:
    files = {}
    for lang, rows in sets.items():
        for kind in ("clean", "poisoned"):
            path = work / f"{kind}-{lang}.jsonl"
            with path.open("w") as out:
                for row in rows:
                    rejected = row["poisoned"] if kind == "poisoned" else row["rejected"]
                    record = {"item": row["item"], "prompt": row["prompt"], "chosen": row["chosen"],
                              "rejected": rejected}
                    out.write(json.dumps(record, ensure_ascii=False) + "\n")
            files[(kind, lang)] = path
    return files


# --- the server and the runs -------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(llama_bin: Path, model: str, threads: int) -> tuple:
    port = free_port()
    command = [str(llama_bin / "llama-server"), "-m", model, "--host", "127.0.0.1", "--port", str(port),
               "--parallel", "2", "--ctx-size", "16384", "--threads", str(threads), "--no-webui"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(600):
        if process.poll() is not None:
            raise SystemExit(f"llama-server exited with {process.returncode}: {shlex.join(command)}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as answer:
                if answer.status == 200:
                    return process, port, command
        except OSError:
            pass
        time.sleep(0.5)
    process.terminate()
    raise SystemExit("llama-server did not become healthy in 5 minutes")


def check_flags(binary: str) -> str:
    shown = subprocess.run([binary, "rerank", "--help"], capture_output=True, text=True, check=True).stdout
    missing = [flag for flag in FLAGS if flag not in shown]
    if missing:
        raise SystemExit(f"{binary} rerank lacks {', '.join(missing)}")
    return shown


def rerank(binary: str, data: Path, out: Path, lang: str, port: int) -> dict:
    command = [binary, "rerank", str(data), "--output", str(out),
               "--base-url", f"http://127.0.0.1:{port}/v1", "--model", "gemma-3-270m",
               "--scoring", "logprobs", "--concurrency", "2", "--format", "jsonl", "--seed", "0",
               "--lang", lang, "--quiet"]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    # 3 is the hardened binary's "finished, some rows failed"; the earlier one exits 0 then.
    if done.returncode not in (0, 3):
        raise SystemExit(f"{shlex.join(command)} exited with {done.returncode}:\n{done.stderr[-3000:]}")
    files = sorted((out / "data").glob("*.jsonl"))
    if len(files) != 1:
        raise SystemExit(f"expected one JSON Lines file under {out / 'data'}, found {files}")
    rows = {}
    for line in files[0].read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            rows[row["item"]] = row
    return {"command": command, "exit": done.returncode, "wall_s": round(wall, 1), "rows": rows}


def scores(row: dict) -> tuple:
    """(stored chosen's score, stored rejected's score) of an output row, undoing a swap."""
    chosen, rejected = row.get("chosen_score"), row.get("rejected_score")
    if row["outcome"] == "swapped":
        chosen, rejected = rejected, chosen
    return chosen, rejected


# --- the figures -------------------------------------------------------------------------------


def mean(values: list):
    return round(sum(values) / len(values), 3) if values else None


def share(part: int, whole: int):
    return round(part / whole, 3) if whole else None


def figures(rows: list, clean: dict, poisoned: dict, control: dict) -> dict:
    kept = [r for r in rows if clean[r["item"]]["outcome"] == "kept"]
    not_kept = [r for r in rows if clean[r["item"]]["outcome"] in FLIPPED]
    flips = [r for r in kept if poisoned[r["item"]]["outcome"] in FLIPPED]
    unflips = [r for r in not_kept if poisoned[r["item"]]["outcome"] == "kept"]
    deltas_rejected, deltas_chosen = [], []
    for r in rows:
        before, after = scores(clean[r["item"]]), scores(poisoned[r["item"]])
        if before[1] is not None and after[1] is not None:
            deltas_rejected.append(after[1] - before[1])
        if before[0] is not None and after[0] is not None:
            deltas_chosen.append(after[0] - before[0])
    failed = [r for r in rows if poisoned[r["item"]]["outcome"] in ("failed", "invalid")]
    result = {
        "rows": len(rows),
        "clean_kept": len(kept),
        "clean_failed": sum(clean[r["item"]]["outcome"] in ("failed", "invalid") for r in rows),
        "flips": len(flips),
        "flips_to_swapped": sum(poisoned[r["item"]]["outcome"] == "swapped" for r in flips),
        "flips_to_tie": sum(poisoned[r["item"]]["outcome"] == "tie" for r in flips),
        "flip_rate": share(len(flips), len(kept)),
        "clean_not_kept": len(not_kept),
        "poisoned_kept_of_clean_not_kept": len(unflips),
        "mean_rejected_delta": mean(deltas_rejected),
        "mean_chosen_delta": mean(deltas_chosen),
        "scored_both": len(deltas_rejected),
        "poisoned_failed": len(failed),
        "poisoned_failure_reasons": sorted({poisoned[r["item"]].get("failure_reason") or "" for r in failed}),
        "flipped_attacks": [r["attack"] for r in flips],
    }
    if control is not None:
        moved = [r for r in kept if control[r["item"]]["outcome"] in FLIPPED]
        drift = []
        for r in rows:
            before, again = scores(clean[r["item"]]), scores(control[r["item"]])
            if before[1] is not None and again[1] is not None:
                drift.append(again[1] - before[1])
        result["control_flips"] = len(moved)
        result["control_flip_rate"] = share(len(moved), len(kept))
        result["control_mean_rejected_delta"] = mean(drift)
        result["control_mean_abs_rejected_delta"] = mean([abs(d) for d in drift])
    return result


def grouped(rows: list, clean: dict, poisoned: dict, control: dict) -> dict:
    def by(key):
        names = sorted({r[key] for r in rows})
        return {name: figures([r for r in rows if r[key] == name], clean, poisoned, control) for name in names}

    return {
        "overall": figures(rows, clean, poisoned, control),
        "by_lang": by("lang"),
        "by_category": by("category"),
        "by_position_assumed": by("position"),
        "by_shown_first": {
            side: figures([r for r in rows if clean[r["item"]].get("shown_first") == side], clean, poisoned, control)
            for side in ("chosen", "rejected")
        },
    }


# --- output ------------------------------------------------------------------------------------


def rate(f: dict, key: str = "flip_rate", count: str = "flips") -> str:
    if f[key] is None:
        return "n/a"
    return f"{f[count]}/{f['clean_kept']} ({100 * f[key]:.0f}%)"


def signed(value) -> str:
    return "n/a" if value is None else f"{value:+.3f}"


def table(results: dict, control: bool) -> str:
    before, after = results["binaries"]["before"]["figures"], results["binaries"]["after"]["figures"]
    lines = ["| group | rows | clean kept (before / after) | flip rate before | flip rate after "
             "| rejected score change before | after | poisoned failed before / after |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]

    def line(name, b, a):
        lines.append(f"| {name} | {b['rows']} | {b['clean_kept']} / {a['clean_kept']} | {rate(b)} | {rate(a)} "
                     f"| {signed(b['mean_rejected_delta'])} | {signed(a['mean_rejected_delta'])} "
                     f"| {b['poisoned_failed']} / {a['poisoned_failed']} |")

    line("**all**", before["overall"], after["overall"])
    for lang in before["by_lang"]:
        line(f"lang {lang}", before["by_lang"][lang], after["by_lang"][lang])
    for category in before["by_category"]:
        line(category, before["by_category"][category], after["by_category"][category])
    if control:
        b, a = before["overall"], after["overall"]
        lines.append("")
        lines.append("| control: clean set run twice | flip rate | mean rejected score change | mean absolute change |")
        lines.append("|---|---:|---:|---:|")
        for name, f in (("before", b), ("after", a)):
            lines.append(f"| {name} | {rate(f, 'control_flip_rate', 'control_flips')} "
                         f"| {signed(f['control_mean_rejected_delta'])} | {f['control_mean_abs_rejected_delta']:.3f} |")
    return "\n".join(lines)


def section(results: dict, reading: str) -> str:
    before, after = results["binaries"]["before"], results["binaries"]["after"]
    b, a = before["figures"], after["figures"]
    control = results["control"]

    def row(name, fb, fa):
        return (f"| {name} | {fb['rows']} | {fb['clean_kept']} | {rate(fb)} | {signed(fb['mean_rejected_delta'])} "
                f"| {fb['poisoned_failed']} | {fa['clean_kept']} | {rate(fa)} | {signed(fa['mean_rejected_delta'])} "
                f"| {fa['poisoned_failed']} |")

    head = ("| {} | rows | before: kept (clean) | flip rate | rejected score change | failed (poisoned) "
            "| after: kept (clean) | flip rate | rejected score change | failed (poisoned) |")
    rule = "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    out = [
        SECTION,
        "",
        f"Measured {results['date']} on the reference machine ({results['machine']}), judge gemma-3-270m "
        f"Q4_K_M (the demo model) behind one `llama-server --parallel 2 --ctx-size 16384 --threads 2`; "
        f"{results['wall_s'] / 60:.0f} minutes end to end. How to reproduce: `bench/injection.sh` "
        f"(figures and exact commands in `bench/injection-results.json`).",
        "",
        f"Method. Each of the {b['overall']['rows']} attacks in `tests/data/injections.jsonl` is appended, "
        f"after a blank line, to the rejected response of one real row: English attacks to one distinct pair "
        f"each of LLMBar `natural` (the labelled-better output is `chosen`), Italian attacks to the rows of "
        f"`examples/it_sample.jsonl`, cycled. The clean and the poisoned sets hold the same rows in the same "
        f"order, so every row is shown in the same A/B order in both runs (`--seed 0`). Each binary reranks "
        f"both sets (`--scoring logprobs --concurrency 2 --format jsonl`, `--lang en` or `--lang it`); the "
        f"\"before\" binary is commit {before['commit']} (responses between `<<<` / `>>>` lines, no escaping, "
        f"the tolerant first-verdict parser) and \"after\" is {after['commit']} (a content-keyed tag around each "
        f"part, lookalike tags neutralised, rubric text saying the material is not instructions, the strict "
        f"parser). A flip is a row kept on the clean set (chosen scored above rejected) that comes out `tie` "
        f"or `swapped` once poisoned; the flip rate is flips over clean-kept rows. The score change is the "
        f"poisoned minus the clean expected score of the rejected response, over all rows scored in both runs."
        + (" As a noise floor, each binary also reranks the clean set a second time and the same flip "
           "definition is applied to clean against clean." if control else ""),
        "",
        head.format("group"),
        rule,
        row("all", b["overall"], a["overall"]),
    ]
    for lang in b["by_lang"]:
        out.append(row(lang, b["by_lang"][lang], a["by_lang"][lang]))
    if control:
        out += ["", "| noise floor: clean set run twice | flip rate | mean rejected score change | mean absolute change |",
                "|---|---:|---:|---:|"]
        for name, f in (("before", b["overall"]), ("after", a["overall"])):
            out.append(f"| {name} | {rate(f, 'control_flip_rate', 'control_flips')} "
                       f"| {signed(f['control_mean_rejected_delta'])} | {f['control_mean_abs_rejected_delta']:.3f} |")
    out += ["", "Per category (both languages together):", "", head.format("category"), rule]
    for category in b["by_category"]:
        out.append(row(category, b["by_category"][category], a["by_category"][category]))
    out += ["", READING, "", reading.strip(), ""]
    return "\n".join(out)


def write_section(results: dict) -> None:
    text = BENCHMARKS.read_text()
    reading = ("(Write the reading of these figures here; `bench/injection.py` keeps this subsection when it "
               "rewrites the tables above.)")
    start = text.find("\n" + SECTION + "\n")
    if start >= 0:
        end = text.find("\n## ", start + 1)
        old = text[start + 1:] if end < 0 else text[start + 1:end + 1]
        kept = old.find("\n" + READING + "\n")
        if kept >= 0:
            reading = old[kept + len(READING) + 2:]
        text = text[:start + 1] + (text[end + 1:] if end >= 0 else "")
    text = text.rstrip("\n") + "\n\n" + section(results, reading).rstrip("\n") + "\n"
    BENCHMARKS.write_text(text)


def commit_of(rev: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", rev], capture_output=True, text=True,
                          check=True).stdout.strip()


def machine() -> str:
    memory = ""
    try:
        kib = int(next(line for line in open("/proc/meminfo") if line.startswith("MemTotal")).split()[1])
        memory = f", {kib / 1024 / 1024:.0f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    return f"{os.cpu_count()} cores{memory}, no GPU, {platform.system()} {platform.machine()}"


def main() -> None:
    args = arguments()
    started = time.perf_counter()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    if not args.llama_bin:
        raise SystemExit("set --llama-bin (or REJUDGE_INJECTION_LLAMA_BIN) to the folder holding llama-server")
    binaries = {"before": args.before, "after": args.after}
    for binary in binaries.values():
        check_flags(binary)
    sets = build_sets(args.attacks)
    files = write_sets(sets, work)
    rows = sets["en"] + sets["it"]
    log(f"{len(sets['en'])} English and {len(sets['it'])} Italian attacks; work files in {work}")
    server, port, server_command = start_server(Path(args.llama_bin), args.model, args.threads)
    runs = {name: {} for name in binaries}
    try:
        kinds = ["clean", "poisoned"] + ([] if args.no_control else ["control"])
        for lang in LANGS:
            for kind in kinds:
                for name, binary in binaries.items():
                    source = files[("clean" if kind == "control" else kind, lang)]
                    out = work / f"{name}-{kind}-{lang}"
                    if out.exists():
                        subprocess.run(["rm", "-rf", "--", str(out)], check=True)
                    log(f"{name} {kind} {lang}")
                    runs[name][(kind, lang)] = rerank(binary, source, out, lang, port)
                    log(f"  {runs[name][(kind, lang)]['wall_s']} s")
    finally:
        server.terminate()
        server.wait(timeout=30)

    results = {
        "date": datetime.date.today().isoformat(),
        "machine": machine(),
        "model": Path(args.model).name,
        "control": not args.no_control,
        "attacks": len(rows),
        "invocation": "bench/injection.sh " + shlex.join(sys.argv[1:]),
        "build_commands": [
            f"CARGO_TARGET_DIR={TARGET} cargo build --release --no-default-features   # in this checkout, "
            f"then cp {TARGET}/release/rejudge {args.after}",
            f"git worktree add --detach /tmp/injection-before {args.before_commit}",
            f"cd /tmp/injection-before && CARGO_TARGET_DIR={TARGET} cargo build --release --no-default-features, "
            f"then cp {TARGET}/release/rejudge {args.before}",
            "git worktree remove --force /tmp/injection-before",
        ],
        "server_command": server_command,
        "binaries": {},
    }
    for name, binary in binaries.items():
        merged = {}
        for kind in ("clean", "poisoned", "control"):
            merged[kind] = {}
            for lang in LANGS:
                if (kind, lang) in runs[name]:
                    merged[kind].update(runs[name][(kind, lang)]["rows"])
        mismatched = [r["item"] for r in rows
                      if merged["clean"][r["item"]].get("shown_first") != merged["poisoned"][r["item"]].get("shown_first")
                      and merged["clean"][r["item"]]["outcome"] not in ("failed", "invalid")
                      and merged["poisoned"][r["item"]]["outcome"] not in ("failed", "invalid")]
        if mismatched:
            raise SystemExit(f"{name}: A/B order differs between the clean and the poisoned run for {mismatched}")
        results["binaries"][name] = {
            "binary": binary,
            "sha256": hashlib.sha256(Path(binary).read_bytes()).hexdigest(),
            "commit": commit_of(args.before_commit if name == "before" else args.after_commit),
            "runs": [{"kind": kind, "lang": lang, "command": run["command"], "exit": run["exit"],
                      "wall_s": run["wall_s"]} for (kind, lang), run in runs[name].items()],
            "figures": grouped(rows, merged["clean"], merged["poisoned"], merged["control"] or None),
            "per_row": [{
                "item": r["item"], "attack": r["attack"], "category": r["category"], "source": r["source"],
                "shown_first": merged["clean"][r["item"]].get("shown_first"),
                "clean": merged["clean"][r["item"]]["outcome"],
                "poisoned": merged["poisoned"][r["item"]]["outcome"],
                "control": merged["control"][r["item"]]["outcome"] if merged["control"] else None,
                "clean_scores": scores(merged["clean"][r["item"]]),
                "poisoned_scores": scores(merged["poisoned"][r["item"]]),
            } for r in rows],
        }
    results["wall_s"] = round(time.perf_counter() - started, 1)
    print(table(results, results["control"]))
    print(f"\n{results['wall_s'] / 60:.1f} minutes")
    if args.attacks:
        log("smoke test (--attacks): nothing written")
        return
    RESULTS.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    write_section(results)
    log(f"wrote {RESULTS.relative_to(ROOT)} and the section in {BENCHMARKS.name}")


if __name__ == "__main__":
    main()
