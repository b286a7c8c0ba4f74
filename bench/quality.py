"""Judge quality by protocol: `rejudge eval` over LLMBar's 885 human-labelled pairs with one judge
(a real llama-server and a GGUF model), under each protocol, then the in-process judge's rows/s
for the rating and the one-token pairwise protocol. Prints two tables and writes
bench/quality-results.json. Run it through bench/quality.sh, which builds what it needs.

Protocols that share requests share a journal, so the rating protocols cost the requests of
both orders once, and the decision-only variants (FastChat's tie rule, a calibrated margin)
cost no requests at all. Token counts per row count every answer a protocol uses, reused or
not, so they compare what each protocol would cost on its own.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REJUDGE = Path(os.environ.get("REJUDGE_QUALITY_BINARY", ROOT / "target" / "release" / "rejudge"))
WORK = Path(os.environ.get("REJUDGE_QUALITY_WORK", "/tmp/rejudge-quality"))
DATA = Path(os.environ.get("REJUDGE_QUALITY_DATA", ROOT / "tests" / "data" / "llmbar" / "llmbar.jsonl"))
MODEL = Path(os.environ["REJUDGE_BENCH_MODEL"])
LLAMA_BIN = Path(os.environ["REJUDGE_BENCH_LLAMA_BIN"])
THREADS = os.cpu_count() or 2
PARALLEL = int(os.environ.get("REJUDGE_QUALITY_PARALLEL", "4"))
SPEED_ROWS = int(os.environ.get("REJUDGE_QUALITY_SPEED_ROWS", "40"))
SECTIONS = sys.argv[1:] or ["protocols", "speed"]
# The first N pairs of each of LLMBar's eight categories instead of all 885, for a run that fits
# in well under an hour on 2 cores; 0 means every pair.
PER_CATEGORY = int(os.environ.get("REJUDGE_QUALITY_PER_CATEGORY", "0"))

PAIRWISE = ["--mode", "pairwise", "--scoring", "logprobs", "--max-tokens", "1"]
# (name, flags, journal): runs sharing a journal reuse each other's answers. The first run of
# each journal asks for everything its later runs need.
PROTOCOLS = [
    ("pairwise, logprobs, both orders merged", PAIRWISE + ["--order", "both"], "pairwise"),
    ("pairwise, logprobs, chosen first", PAIRWISE + ["--order", "chosen-first"], "pairwise"),
    ("pairwise, logprobs, random order", PAIRWISE + ["--order", "random"], "pairwise"),
    ("pairwise, logprobs, both orders, FastChat ties", PAIRWISE + ["--order", "both", "--on-inconsistent", "tie"], "pairwise"),
    ("rating, written scores, chosen first (the seed's)", ["--order", "chosen-first"], "written"),
    ("rating, logprobs, both orders merged", ["--scoring", "logprobs", "--order", "both"], "rating"),
    ("rating, logprobs, chosen first", ["--scoring", "logprobs", "--order", "chosen-first"], "rating"),
    ("rating, logprobs, random order", ["--scoring", "logprobs", "--order", "random"], "rating"),
    ("rating, logprobs, both orders, FastChat ties", ["--scoring", "logprobs", "--order", "both", "--on-inconsistent", "tie"], "rating"),
]
TARGET = "0.7"


def log(message: str) -> None:
    print(f"quality: {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server() -> tuple:
    port = free_port()
    command = [str(LLAMA_BIN / "llama-server"), "-m", str(MODEL), "--host", "127.0.0.1",
               "--port", str(port), "--parallel", str(PARALLEL), "--ctx-size", str(16384 * PARALLEL),
               "--threads", str(THREADS), "--no-webui"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(600):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as answer:
                if answer.status == 200:
                    return process, f"http://127.0.0.1:{port}/v1"
        except OSError:
            pass
        time.sleep(0.5)
    process.kill()
    raise SystemExit("llama-server did not become healthy")


def eval_run(name: str, flags: list, journal: str, url: str, index: int) -> dict:
    output = WORK / f"protocol-{index}"
    shutil.rmtree(output, ignore_errors=True)
    command = [str(REJUDGE), "eval", str(sample(DATA)), "--output", str(output), "--quiet",
               "--base-url", url, "--model", MODEL.stem, "--concurrency", str(PARALLEL),
               "--journal", str(WORK / f"{journal}.sqlite"), "--target-agreement", TARGET] + flags
    log(f"{name}: {' '.join(command[1:])}")
    started = time.perf_counter()
    finished = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if finished.returncode not in (0, 3):
        raise SystemExit(f"{name} failed:\n{finished.stderr[-3000:]}")
    figures = json.loads((output / "eval.json").read_text())
    rows = figures["rows"]
    calibration = figures.get("calibration") or {}
    return {
        "protocol": name,
        "flags": flags,
        "command": " ".join(command),
        "rows": rows,
        "judged": figures["judged"],
        "agreement": figures["agreement"],
        "agreement_decided": figures["agreement_decided"],
        "coverage": figures["coverage"],
        "kappa": figures["kappa"],
        "kappa_ci": figures["kappa_ci"],
        "position_consistency": (figures.get("position_consistency") or {}).get("value"),
        "first_position_win_rate": (figures.get("first_position_win_rate") or {}).get("value"),
        "length_bias_judge": (figures["length_bias"].get("judge") or {}).get("value"),
        "length_bias_gold": (figures["length_bias"].get("gold") or {}).get("value"),
        "prompt_tokens_per_row": figures["tokens"]["prompt"] / rows,
        "completion_tokens_per_row": figures["tokens"]["completion"] / rows,
        "requests_sent": figures["requests"]["sent"],
        "calibrated_margin": calibration.get("margin"),
        "calibrated_coverage": calibration.get("coverage"),
        "wall_seconds": wall,
        "categories": figures["categories"],
    }


def sample(path: Path) -> Path:
    """`path` itself, or its first PER_CATEGORY pairs of each category, in the file's order."""
    if PER_CATEGORY <= 0:
        return path
    taken: dict = {}
    subset = WORK / f"llmbar-{PER_CATEGORY}-per-category.jsonl"
    with path.open() as source, subset.open("w") as target:
        for line in source:
            category = json.loads(line).get("category")
            if taken.get(category, 0) < PER_CATEGORY:
                taken[category] = taken.get(category, 0) + 1
                target.write(line)
    return subset


def protocols() -> list:
    server, url = start_server()
    try:
        return [eval_run(name, flags, journal, url, index)
                for index, (name, flags, journal) in enumerate(PROTOCOLS)]
    finally:
        server.terminate()
        server.wait()


def speed() -> list:
    """Rows per second of the in-process judge on the first SPEED_ROWS pairs, each protocol with
    a fresh journal and one order, so both do the same number of requests."""
    subset = WORK / "speed.jsonl"
    with DATA.open() as source, subset.open("w") as target:
        for _, line in zip(range(SPEED_ROWS), source):
            target.write(line)
    results = []
    for name, flags in [("rating, logprobs", ["--scoring", "logprobs"]), ("pairwise, logprobs, 1 token", PAIRWISE)]:
        output = WORK / f"speed-{len(results)}"
        shutil.rmtree(output, ignore_errors=True)
        command = [str(REJUDGE), "eval", str(subset), "--output", str(output), "--quiet",
                   "--model-file", str(MODEL), "--order", "chosen-first", "--concurrency", "4"] + flags
        log(f"speed {name}: {' '.join(command[1:])}")
        started = time.perf_counter()
        finished = subprocess.run(command, capture_output=True, text=True)
        wall = time.perf_counter() - started
        if finished.returncode not in (0, 3):
            raise SystemExit(f"{name} failed:\n{finished.stderr[-3000:]}")
        report = json.loads((output / "report.json").read_text())
        figures = json.loads((output / "eval.json").read_text())
        results.append({"protocol": name, "rows": report["rows"], "wall_seconds": wall,
                        "rows_per_second": report["rows_per_second"],
                        "agreement": figures["agreement"], "command": " ".join(command)})
    return results


def percent(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def table(rows: list, speeds: list) -> str:
    lines = ["| protocol | agreement | decided agreement | coverage | kappa (95% CI) | position consistency | first position wins | prompt tok/row | completion tok/row |",
             "|---|---:|---:|---:|---|---:|---:|---:|---:|"]
    for r in rows:
        kappa = "n/a" if r["kappa"] is None else f"{r['kappa']:.3f}"
        if r["kappa_ci"]:
            kappa += f" ({r['kappa_ci'][0]:.3f} to {r['kappa_ci'][1]:.3f})"
        lines.append(f"| {r['protocol']} | {percent(r['agreement'])} | {percent(r['agreement_decided'])} | "
                     f"{percent(r['coverage'])} | {kappa} | {percent(r['position_consistency'])} | "
                     f"{percent(r['first_position_win_rate'])} | {r['prompt_tokens_per_row']:.0f} | "
                     f"{r['completion_tokens_per_row']:.1f} |")
    if speeds:
        lines += ["", "| in-process protocol | rows | rows/s | agreement |", "|---|---:|---:|---:|"]
        for s in speeds:
            lines.append(f"| {s['protocol']} | {s['rows']} | {s['rows_per_second']:.3f} | {percent(s['agreement'])} |")
        if len(speeds) == 2 and speeds[0]["rows_per_second"] > 0:
            lines.append(f"\npairwise / rating rows/s: {speeds[1]['rows_per_second'] / speeds[0]['rows_per_second']:.1f}x")
    return "\n".join(lines)


def main() -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    results_path = ROOT / "bench" / "quality-results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    results["machine"] = {"cpus": THREADS, "model": MODEL.name, "data": str(DATA.relative_to(ROOT)),
                          "per_category": PER_CATEGORY or "all", "date": time.strftime("%Y-%m-%d")}
    if "protocols" in SECTIONS:
        results["protocols"] = protocols()
    if "speed" in SECTIONS:
        results["speed"] = speed()
    results_path.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results.get("protocols", []), results.get("speed", [])))


if __name__ == "__main__":
    main()
