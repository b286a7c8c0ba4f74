"""rejudge's benchmark suite: overhead, a peer side by side, saturation of a real server, memory,
and the in-process judge next to llama.cpp's own llama-bench. Prints one table and writes
bench/results.json. Run it through bench/run.sh, which builds and installs what it needs.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RELEASE = ROOT / "target" / "release"
WORK = Path(os.environ.get("REJUDGE_BENCH_WORK", "/tmp/rejudge-bench"))
SEED = Path(os.environ.get("REJUDGE_BENCH_SEED", ROOT / "tests" / "data" / "dpo_en_demo_40.json"))
MODEL = Path(os.environ["REJUDGE_BENCH_MODEL"])
LLAMA_BIN = Path(os.environ["REJUDGE_BENCH_LLAMA_BIN"])
PEER_PYTHON = os.environ.get("REJUDGE_BENCH_PEER_PYTHON")
# Another rejudge binary (say, an earlier commit's) to measure beside this one, interleaved, so
# the overhead table carries a ratio taken on the same machine in the same minutes.
BASELINE = os.environ.get("REJUDGE_BENCH_BASELINE")
THREADS = os.cpu_count() or 2

OVERHEAD_ROWS = int(os.environ.get("REJUDGE_BENCH_OVERHEAD_ROWS", "20000"))
PEER_ROWS = int(os.environ.get("REJUDGE_BENCH_PEER_ROWS", "2000"))
SATURATION_ROWS = int(os.environ.get("REJUDGE_BENCH_SATURATION_ROWS", "24"))
MEMORY_ROWS = [int(n) for n in os.environ.get("REJUDGE_BENCH_MEMORY_ROWS", "10000,100000,1000000").split(",")]
CONCURRENCIES = [1, 16, 64, 256]
PEER_CONCURRENCIES = [1, 16, 64, 256]


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def run_rusage(command: list) -> dict:
    """Like measured(), with resource usage read through wait4 for this child alone."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = process.stdout.read()
    err = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"{command[0]} failed:\n{err.decode()[-2000:]}")
    return {
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "rss_mb": usage.ru_maxrss / 1024,
        "stdout": out.decode(),
    }


def start_instant_judge(record: Path = None, latency_ms: int = 0) -> tuple:
    command = [str(RELEASE / "instant-judge"), "--latency-ms", str(latency_ms)]
    if record:
        command += ["--record", str(record)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE)
    port = int(process.stdout.readline())
    return process, f"http://127.0.0.1:{port}/v1"


def start_llama_server(parallel: int) -> tuple:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [str(LLAMA_BIN / "llama-server"), "-m", str(MODEL), "--host", "127.0.0.1", "--port", str(port),
         "--parallel", str(parallel), "--ctx-size", str(4096 * parallel), "--threads", str(THREADS), "--no-webui"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    import urllib.request

    for _ in range(600):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as answer:
                if answer.status == 200:
                    warm_up(port)
                    return process, f"http://127.0.0.1:{port}/v1"
        except Exception:
            time.sleep(0.2)
    raise SystemExit("llama-server did not start")


def warm_up(port: int) -> None:
    """One short request, so that no measurement pays for the first touch of the weights."""
    import urllib.request

    body = json.dumps({"model": "warm-up", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 4}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", body, {"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=120).read()


def on_fresh_server(measure):
    """Runs `measure(url)` against a llama-server started for it alone, so that no run profits
    from another's prompt cache."""
    server, url = start_llama_server(4)
    try:
        return measure(url)
    finally:
        server.kill()
        server.wait()


def rejudge(input_path: Path, url: str, concurrency: int, output: Path, extra=(), binary=None) -> dict:
    subprocess.run(["rm", "-rf", str(output)], check=True)
    result = run_rusage([str(binary or RELEASE / "rejudge"), "rerank", str(input_path), "--base-url", url, "--model", "instant",
                         "--concurrency", str(concurrency), "--quiet", "--output", str(output), *extra])
    report = json.loads((output / "report.json").read_text())
    result["rows"] = report["rows"]
    result["failed"] = report["outcomes"]["failed"]
    result["rows_per_second"] = report["rows"] / result["wall"]
    return result


def overhead(rows: Path, url: str, concurrency: int, repeats: int = 3) -> tuple:
    """The best of `repeats` runs of this binary, and of the baseline's when one is given, taken
    in turn so that both see the same machine load."""
    ours, theirs = [], []
    for _ in range(repeats if BASELINE else 1):
        ours.append(rejudge(rows, url, concurrency, WORK / f"overhead-{concurrency}"))
        if BASELINE:
            theirs.append(rejudge(rows, url, concurrency, WORK / f"overhead-base-{concurrency}", binary=BASELINE))
    best = lambda runs: max(runs, key=lambda r: r["rows_per_second"]) if runs else None
    return best(ours), best(theirs)


def write_pairs(path: Path, seed: list, count: int) -> Path:
    """Writes `count` plain (prompt, chosen, rejected) rows as JSON Lines, cycling the ShareGPT
    seed rows and making every prompt unique."""
    with path.open("w") as out:
        for i in range(count):
            row = seed[i % len(seed)]
            prompt = row["conversations"][-1]["value"] + f" (#{i})"
            out.write(json.dumps({"prompt": prompt, "chosen": row["chosen"]["value"], "rejected": row["rejected"]["value"]}) + "\n")
    return path


def make_datasets() -> dict:
    WORK.mkdir(parents=True, exist_ok=True)
    paths = {}
    for rows in sorted({OVERHEAD_ROWS, *MEMORY_ROWS}):
        path = WORK / f"pairs-{rows}.parquet"
        if not path.exists():
            log(f"generating {rows} rows")
            subprocess.run([str(RELEASE / "make-dataset"), str(SEED), str(rows), str(path)], check=True)
        paths[rows] = path
    seed = json.loads(SEED.read_text())
    paths["peer"] = write_pairs(WORK / f"peer-{PEER_ROWS}.jsonl", seed, PEER_ROWS)
    short = [r for r in seed if len(json.dumps(r)) < 5000]
    paths["saturation"] = write_pairs(WORK / f"saturation-{SATURATION_ROWS}.jsonl", short, SATURATION_ROWS)
    return paths


def peer(url: str, rows: Path, concurrency: int) -> dict:
    if not PEER_PYTHON:
        return None
    result = run_rusage([PEER_PYTHON, str(ROOT / "bench" / "peer_distilabel.py"), url, str(rows), str(concurrency)])
    figures = json.loads(result["stdout"].strip().splitlines()[-1])
    figures["cpu"] = result["cpu"]
    figures["rss_mb"] = result["rss_mb"]
    return figures


SECTIONS = ["overhead", "peer", "memory", "saturation", "local", "scale"]
# Rows for the pool's spread under injected latency; at 50 ms a request, 64 in flight, ~20 s.
SPREAD_ROWS = int(os.environ.get("REJUDGE_BENCH_SPREAD_ROWS", "20000"))


def pooled(input_path: Path, urls: list, concurrency: int, output: Path, extra=()) -> dict:
    """A run against a pool of the given endpoints (--base-url repeated), with each endpoint's
    share of the requests from the report."""
    more = [argument for url in urls[1:] for argument in ("--base-url", url)]
    run = rejudge(input_path, urls[0], concurrency, output, [*more, *extra])
    endpoints = json.loads((output / "report.json").read_text()).get("endpoints", [])
    total = sum(e["requests"] for e in endpoints) or 1
    run["shares"] = [e["requests"] / total for e in endpoints]
    run["mean_latency_ms"] = [e.get("mean_latency_ms") for e in endpoints]
    return run


def scale(paths: dict, results: dict) -> None:
    """The limiter and the pool in the path: overhead against two instant judges, with limits
    off and with limits that never bind; then how a pool of two spreads requests when each
    answer takes 50 ms, and when one takes 20 ms and the other 80 ms."""
    log("scale: the pool and the limiter")
    rows = paths[OVERHEAD_ROWS]
    figures = {"overhead": [], "spread": []}
    first, first_url = start_instant_judge()
    second, second_url = start_instant_judge()
    try:
        for name, extra in [("pool of 2, limits off", []),
                            ("pool of 2, --rpm and --tpm set but never binding", ["--rpm", "100000000", "--tpm", "100000000000"])]:
            best = max((pooled(rows, [first_url, second_url], 64, WORK / "scale", extra) for _ in range(2)),
                       key=lambda r: r["rows_per_second"])
            figures["overhead"].append({"setup": name, "rows": best["rows"], "rows_per_second": best["rows_per_second"],
                                        "cpu_seconds_per_1000_rows": best["cpu"] / best["rows"] * 1000,
                                        "shares": best["shares"]})
            log(f"  {name}: {best['rows_per_second']:.0f} rows/s, shares {best['shares']}")
    finally:
        first.kill()
        second.kill()
    spread_rows = WORK / f"spread-{SPREAD_ROWS}.parquet"
    if not spread_rows.exists():
        subprocess.run([str(RELEASE / "make-dataset"), str(SEED), str(SPREAD_ROWS), str(spread_rows)], check=True)
    for latencies in [(50, 50), (20, 80)]:
        judges = [start_instant_judge(latency_ms=ms) for ms in latencies]
        try:
            run = pooled(spread_rows, [url for _, url in judges], 64, WORK / "spread")
        finally:
            for process, _ in judges:
                process.kill()
        figures["spread"].append({"latency_ms": list(latencies), "rows": run["rows"], "rows_per_second": run["rows_per_second"],
                                  "shares": run["shares"], "mean_latency_ms": run["mean_latency_ms"], "failed": run["failed"]})
        log(f"  latencies {latencies}: shares {run['shares']}, {run['rows_per_second']:.0f} rows/s")
    results["scale"] = figures


def main() -> None:
    sections = sys.argv[1:] or SECTIONS
    saved = ROOT / "bench" / "results.json"
    results = json.loads(saved.read_text()) if saved.exists() and sys.argv[1:] else {}
    results["machine"] = {"cpus": os.cpu_count()}
    paths = make_datasets()

    judge, url = start_instant_judge()
    try:
        for concurrency in CONCURRENCIES if "overhead" in sections else []:
            run, baseline = overhead(paths[OVERHEAD_ROWS], url, concurrency)
            results.setdefault("overhead", [])
            results["overhead"] = [r for r in results["overhead"] if r["concurrency"] != concurrency]
            results["overhead"].append({
                "concurrency": concurrency, "rows": run["rows"], "rows_per_second": run["rows_per_second"],
                "cpu_seconds_per_1000_rows": run["cpu"] / run["rows"] * 1000, "peak_rss_mb": run["rss_mb"],
                "baseline_rows_per_second": baseline and baseline["rows_per_second"],
                "ratio_to_baseline": baseline and run["rows_per_second"] / baseline["rows_per_second"],
            })
            results["overhead"].sort(key=lambda r: r["concurrency"])
            log(f"  overhead c={concurrency}: {run['rows_per_second']:.0f} rows/s")

        if "peer" in sections:
            results["peer"] = []
        for concurrency in PEER_CONCURRENCIES if "peer" in sections else []:
            ours = rejudge(paths["peer"], url, concurrency, WORK / f"peer-rejudge-{concurrency}")
            theirs = peer(url, paths["peer"], concurrency)
            results["peer"].append({
                "concurrency": concurrency, "rows": ours["rows"], "rejudge_rows_per_second": ours["rows_per_second"],
                "distilabel_rows_per_second": theirs and theirs["rows_per_second"],
                "distilabel_rated": theirs and theirs["rated"],
                "ratio": theirs and ours["rows_per_second"] / theirs["rows_per_second"],
            })
            log(f"  c={concurrency}: rejudge {ours['rows_per_second']:.0f} rows/s, distilabel {theirs and round(theirs['rows_per_second'], 1)} rows/s")

        if "memory" in sections:
            results["memory"] = []
        for rows in MEMORY_ROWS if "memory" in sections else []:
            run = rejudge(paths[rows], url, 64, WORK / f"memory-{rows}")
            results["memory"].append({"rows": rows, "peak_rss_mb": run["rss_mb"], "rows_per_second": run["rows_per_second"]})
            log(f"  {rows} rows: {run['rss_mb']:.0f} MB, {run['rows_per_second']:.0f} rows/s")
            subprocess.run(["rm", "-rf", str(WORK / f"memory-{rows}")], check=True)
    finally:
        judge.kill()

    if "saturation" in sections:
        saturation(paths, results)
    if "local" in sections:
        local(results)
    if "scale" in sections:
        scale(paths, results)
    saved.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))


def saturation(paths: dict, results: dict) -> None:
    log("saturation (llama-server --parallel 4)")
    bodies = WORK / "saturation-bodies.jsonl"
    recorder, record_url = start_instant_judge(bodies)
    try:
        rejudge(paths["saturation"], record_url, 4, WORK / "saturation-record", ["--order", "chosen-first"])
    finally:
        recorder.kill()
    ceiling = on_fresh_server(lambda url: json.loads(run_rusage([str(RELEASE / "load-generator"), url, str(bodies), "4"])["stdout"]))
    ours = on_fresh_server(lambda url: rejudge(paths["saturation"], url, 4, WORK / "saturation-rejudge", ["--order", "chosen-first"]))
    theirs = on_fresh_server(lambda url: peer(url, paths["saturation"], 4))
    results["saturation"] = {
        "rows": SATURATION_ROWS, "ceiling_rows_per_second": ceiling["rows_per_second"],
        "rejudge_rows_per_second": ours["rows_per_second"], "rejudge_failed": ours["failed"],
        "rejudge_share_of_ceiling": ours["rows_per_second"] / ceiling["rows_per_second"],
        "distilabel_rows_per_second": theirs and theirs["rows_per_second"],
        "distilabel_share_of_ceiling": theirs and theirs["rows_per_second"] / ceiling["rows_per_second"],
    }



def local(results: dict) -> None:
    log("in-process judge vs llama-bench")
    local = json.loads(run_rusage([str(RELEASE / "local-bench"), str(MODEL), str(SEED), str(THREADS)])["stdout"])
    bench = json.loads(run_rusage([str(LLAMA_BIN / "llama-bench"), "-m", str(MODEL), "-p", str(local["prefill_tokens"]),
                                   "-n", "128", "-t", str(THREADS), "-o", "json"])["stdout"])
    prefill = next(r["avg_ts"] for r in bench if r["n_prompt"] > 0)
    generation = next(r["avg_ts"] for r in bench if r["n_gen"] > 0)
    local.update({"llama_bench_prefill_tokens_per_second": prefill, "llama_bench_generation_tokens_per_second": generation,
                  "prefill_share_of_llama_bench": local["prefill_tokens_per_second"] / prefill})
    results["local"] = local


def table(results: dict) -> str:
    lines = ["", "== overhead: rejudge against an instant judge (%d rows, Parquet in and out, journal on)" % OVERHEAD_ROWS,
             f"{'concurrency':>11} {'rows/s':>10} {'CPU s/1k rows':>14} {'peak RSS MB':>12} {'baseline rows/s':>16} {'ratio':>7}"]
    for row in results["overhead"]:
        base, ratio = row.get("baseline_rows_per_second"), row.get("ratio_to_baseline")
        lines.append(f"{row['concurrency']:>11} {row['rows_per_second']:>10.0f} {row['cpu_seconds_per_1000_rows']:>14.3f} {row['peak_rss_mb']:>12.1f}"
                     f" {base or float('nan'):>16.0f} {ratio or float('nan'):>7.2f}")
    lines += ["", "== peer: same rows (%d), same instant judge, same concurrency" % PEER_ROWS,
              f"{'concurrency':>11} {'rejudge rows/s':>15} {'distilabel rows/s':>18} {'ratio':>8}"]
    for row in results["peer"]:
        theirs = row["distilabel_rows_per_second"]
        lines.append(f"{row['concurrency']:>11} {row['rejudge_rows_per_second']:>15.0f} {theirs or float('nan'):>18.1f} {row['ratio'] or float('nan'):>7.1f}x")
    s = results.get("saturation")
    lines += [] if not s else ["", "== saturation: llama-server --parallel 4, gemma-3-270m, %d rows, concurrency 4" % s["rows"],
              f"  ceiling (bare load generator): {s['ceiling_rows_per_second']:.3f} rows/s",
              f"  rejudge:    {s['rejudge_rows_per_second']:.3f} rows/s = {100 * s['rejudge_share_of_ceiling']:.1f}% of the ceiling",
              f"  distilabel: {s['distilabel_rows_per_second'] or float('nan'):.3f} rows/s = {100 * (s['distilabel_share_of_ceiling'] or float('nan')):.1f}% of the ceiling"]
    lines += ["", "== memory: peak RSS against the instant judge, concurrency 64", f"{'rows':>10} {'peak RSS MB':>12} {'rows/s':>10}"]
    for row in results["memory"]:
        lines.append(f"{row['rows']:>10} {row['peak_rss_mb']:>12.1f} {row['rows_per_second']:>10.0f}")
    c = results.get("scale")
    if c:
        lines += ["", "== the pool and the limiter: two instant judges, concurrency 64, %d rows" % OVERHEAD_ROWS]
        for row in c["overhead"]:
            shares = " / ".join(f"{100 * x:.1f}%" for x in row["shares"])
            lines.append(f"  {row['setup']}: {row['rows_per_second']:.0f} rows/s, {row['cpu_seconds_per_1000_rows']:.3f} CPU s per 1k rows, requests {shares}")
        for row in c["spread"]:
            shares = " / ".join(f"{100 * x:.1f}%" for x in row["shares"])
            lines.append(f"  latency {row['latency_ms'][0]} ms and {row['latency_ms'][1]} ms: requests {shares}, {row['rows_per_second']:.0f} rows/s, {row['failed']} failed")
    l = results["local"]
    lines += ["", "== in-process judge (llama-cpp-2) vs llama-bench, same model and threads",
              f"  prefill ({l['prefill_tokens']} tokens): rejudge {l['prefill_tokens_per_second']:.0f} tok/s, llama-bench {l['llama_bench_prefill_tokens_per_second']:.0f} tok/s ({100 * l['prefill_share_of_llama_bench']:.0f}%)",
              f"  generation: rejudge {l['generation_tokens_per_second']:.1f} tok/s (JSON grammar on), llama-bench {l['llama_bench_generation_tokens_per_second']:.1f} tok/s (no grammar)",
              f"  rows/s over {l['rows']} real rows: batching off {l['rows_per_second_batching_off']:.3f}, on (4 sequences) {l['rows_per_second_batching_on']:.3f}"]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
