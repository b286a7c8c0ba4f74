#!/usr/bin/env python3
"""Runs OpenAI Batch input files against any OpenAI-compatible server, one request at a time.

    python3 scripts/batch-replay.py --base-url http://127.0.0.1:8080/v1 \\
        [--api-key-env VAR] [--concurrency N] --output OUT.jsonl IN.jsonl [IN2.jsonl ...]

Input lines are OpenAI Batch request lines ({"custom_id", "method": "POST", "url", "body"}), such
as `rejudge --batch-export` writes. Each body is POSTed to the base URL plus the line's url with
its leading /v1 dropped, since the base URL already ends in /v1: "/v1/chat/completions" goes to
{base-url}/chat/completions.

Output lines have the shape of OpenAI's batch output and error files, so `rejudge --batch-import`
reads them the same way:
    {"id": "batch_req_...", "custom_id": ..., "response": {"status_code", "request_id", "body"},
     "error": null}
A non-2xx answer is kept as it came (its status code and JSON body under "response"); a request
that got no usable answer (connection refused, timeout, a body that is not JSON) has
"response": null and "error": {"code", "message"}.

Output order is completion order, not input order: match lines by custom_id. With
--error-output, lines that are not 2xx go there instead, as OpenAI splits them.

Every input line is checked before anything is sent (JSON, custom_id present and unique across
all inputs, method POST, url under /v1), so a malformed file costs no requests.
Exit status: 0 when every line got an output line (whatever its status), 1 when some could not
be written, 2 for bad arguments or input.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import http.client
import json
import os
import secrets
import sys
import threading
import time
import urllib.error
import urllib.request


def fail(message: str) -> None:
    print(f"batch-replay: {message}", file=sys.stderr)
    sys.exit(2)


def read_requests(paths: list[str]):
    """Yields (path, line number, request) for every non-blank line."""
    for path in paths:
        with open(path, encoding="utf-8") as source:
            for number, raw in enumerate(source, start=1):
                if raw.strip():
                    yield path, number, raw


def validate(paths: list[str]) -> int:
    seen: set[str] = set()
    problems: list[str] = []
    count = 0
    for path, number, raw in read_requests(paths):
        where = f"{path}:{number}"
        try:
            request = json.loads(raw)
        except json.JSONDecodeError as problem:
            problems.append(f"{where}: not JSON ({problem.msg})")
            continue
        if not isinstance(request, dict):
            problems.append(f"{where}: not a JSON object")
            continue
        custom_id = request.get("custom_id")
        if not isinstance(custom_id, str) or not custom_id:
            problems.append(f"{where}: no custom_id")
        elif custom_id in seen:
            problems.append(f"{where}: custom_id {custom_id!r} appears more than once")
        else:
            seen.add(custom_id)
        if request.get("method", "POST") != "POST":
            problems.append(f"{where}: method {request.get('method')!r} is not POST")
        url = request.get("url")
        if not isinstance(url, str) or not url.startswith("/v1/"):
            problems.append(f"{where}: url {url!r} does not start with /v1/")
        if not isinstance(request.get("body"), dict):
            problems.append(f"{where}: body is not a JSON object")
        count += 1
        if len(problems) >= 20:
            break
    if problems:
        fail("the input is not a valid batch file:\n  " + "\n  ".join(problems))
    return count


def send(base_url: str, api_key: str | None, timeout: float, request: dict) -> dict:
    record = {"id": "batch_req_" + secrets.token_hex(12), "custom_id": request["custom_id"],
              "response": None, "error": None}
    target = base_url.rstrip("/") + request["url"][len("/v1"):]
    call = urllib.request.Request(
        target,
        data=json.dumps(request["body"]).encode(),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
        method="POST",
    )
    if api_key:
        call.add_header("Authorization", f"Bearer {api_key}")
    try:
        with urllib.request.urlopen(call, timeout=timeout) as reply:
            status, headers, raw = reply.status, reply.headers, reply.read()
    except urllib.error.HTTPError as reply:
        status, headers, raw = reply.code, reply.headers, reply.read()
    except (urllib.error.URLError, OSError, http.client.HTTPException) as problem:
        reason = getattr(problem, "reason", problem)
        code = "request_timeout" if isinstance(reason, TimeoutError) else "connection_error"
        record["error"] = {"code": code, "message": f"POST {target}: {reason}"}
        return record
    try:
        body = json.loads(raw)
        if not isinstance(body, dict):
            raise ValueError("not an object")
    except (ValueError, UnicodeDecodeError):
        excerpt = raw[:500].decode("utf-8", "replace")
        if 200 <= status < 300:
            record["error"] = {"code": "invalid_response",
                               "message": f"HTTP {status} with a body that is not a JSON object: {excerpt}"}
            return record
        # An error page from a proxy still says what went wrong; keep it in OpenAI's error shape.
        body = {"error": {"message": excerpt, "type": "upstream_error", "param": None,
                          "code": None}}
    request_id = headers.get("x-request-id") or "req_" + secrets.token_hex(12)
    record["response"] = {"status_code": status, "request_id": request_id, "body": body}
    return record


def release_after(callback, future, window: threading.BoundedSemaphore) -> None:
    try:
        callback(future)
    finally:
        window.release()


def send_safely(base_url: str, api_key: str | None, timeout: float, request: dict) -> dict:
    try:
        return send(base_url, api_key, timeout, request)
    except Exception as problem:  # one odd answer must not lose the line
        return {"id": "batch_req_" + secrets.token_hex(12), "custom_id": request["custom_id"],
                "response": None, "error": {"code": "client_error", "message": repr(problem)}}


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Replay OpenAI Batch input files against an OpenAI-compatible server.")
    parser.add_argument("--base-url", required=True, help="server base URL ending in /v1")
    parser.add_argument("--api-key-env", metavar="VAR",
                        help="environment variable holding a bearer key for the server")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight (4)")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="seconds to wait for one answer (600)")
    parser.add_argument("--output", required=True, help="output JSONL (overwritten)")
    parser.add_argument("--error-output", help="put lines that are not 2xx here instead")
    parser.add_argument("inputs", nargs="+", metavar="IN.jsonl")
    options = parser.parse_args()

    if not options.base_url.rstrip("/").endswith("/v1"):
        fail("--base-url must end in /v1")
    if options.concurrency < 1:
        fail("--concurrency must be at least 1")
    api_key = None
    if options.api_key_env:
        api_key = os.environ.get(options.api_key_env)
        if not api_key:
            fail(f"the environment variable {options.api_key_env} is not set or empty")
    for path in options.inputs:
        if not os.path.isfile(path):
            fail(f"no such input file: {path}")
    total = validate(options.inputs)

    lock = threading.Lock()
    tally = {"ok": 0, "http_error": 0, "no_response": 0, "written": 0}
    output = open(options.output, "w", encoding="utf-8")
    errors = open(options.error_output, "w", encoding="utf-8") if options.error_output else output
    last_report = [time.monotonic()]

    def finished(future: concurrent.futures.Future) -> None:
        record = future.result()
        response = record["response"]
        good = response is not None and 200 <= response["status_code"] < 300
        kind = "ok" if good else ("http_error" if response is not None else "no_response")
        text = json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
        with lock:
            # Written as each answer arrives, so an interrupted replay keeps what it paid for.
            (output if good else errors).write(text)
            (output if good else errors).flush()
            tally[kind] += 1
            tally["written"] += 1
            now = time.monotonic()
            if now - last_report[0] >= 5 or tally["written"] == total:
                last_report[0] = now
                print(f"batch-replay: {tally['written']}/{total} answered", file=sys.stderr)

    try:
        with concurrent.futures.ThreadPoolExecutor(options.concurrency) as pool:
            # A bounded window keeps memory flat on a 50,000-line file.
            window = threading.BoundedSemaphore(options.concurrency * 4)
            for _, _, raw in read_requests(options.inputs):
                window.acquire()
                future = pool.submit(send_safely, options.base_url, api_key, options.timeout,
                                     json.loads(raw))
                future.add_done_callback(lambda f: release_after(finished, f, window))
    finally:
        output.close()
        if errors is not output:
            errors.close()
    print(f"batch-replay: {tally['ok']} ok, {tally['http_error']} non-2xx, "
          f"{tally['no_response']} without a response, to {options.output}", file=sys.stderr)
    return 0 if tally["written"] == total else 1


if __name__ == "__main__":
    sys.exit(main())
