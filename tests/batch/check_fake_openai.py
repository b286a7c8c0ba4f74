#!/usr/bin/env python3
"""Holds fake_openai.py to the real `openai` Python package: whatever this client accepts, a
Rust client written against OpenAI's reference should accept too.

    python3 tests/batch/check_fake_openai.py

Installs `openai` with pip when it is missing, starts its own fake servers (and a tiny upstream
stub) on loopback, and exits 0 when every check passes.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
FAKE = HERE / "fake_openai.py"
KEY = "sk-check-0123456789"
STATUS_ORDER = ["validating", "in_progress", "finalizing", "completed"]


def load_openai():
    try:
        return importlib.import_module("openai")
    except ImportError:
        print("check: installing the openai package", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "openai"], check=True)
        return importlib.import_module("openai")


openai = load_openai()


class Fake:
    """One fake server process; stopped by its own pid only."""

    def __init__(self, *args: str):
        self.process = subprocess.Popen(
            [sys.executable, str(FAKE), "--port", "0", *args],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.base = self.process.stdout.readline().strip()
        if not self.base.endswith("/v1"):
            self.stop()
            raise RuntimeError(f"fake server printed {self.base!r} instead of its base URL")
        self.root = self.base[: -len("/v1")]

    def client(self, key: str = KEY):
        return openai.OpenAI(base_url=self.base, api_key=key, max_retries=0, timeout=30)

    def hook(self, name: str):
        with urllib.request.urlopen(f"{self.root}/_fake/{name}", timeout=10) as reply:
            return json.load(reply)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Upstream(BaseHTTPRequestHandler):
    """Answers /v1/chat/completions like a small server would: 400 when the prompt says "reject",
    200 with a completion otherwise."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        text = json.dumps(body.get("messages"))
        if self.path != "/v1/chat/completions":
            status, reply = 404, {"error": {"message": f"no route {self.path}", "type": "x"}}
        elif "reject" in text:
            status, reply = 400, {"error": {"message": "rejected by upstream", "type": "invalid_request_error", "param": None, "code": None}}
        else:
            status, reply = 200, {
                "id": "chatcmpl-upstream", "object": "chat.completion", "created": 1,
                "model": body.get("model"),
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": "upstream says hi"}}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6},
            }
        data = json.dumps(reply).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", "req_upstream")
        self.end_headers()
        self.wfile.write(data)


def line(custom_id: str, content: str = "Which answer is better?", **extra) -> dict:
    body = {"model": "judge-model", "messages": [{"role": "user", "content": content}],
            "max_tokens": 200, **extra}
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}


def write_jsonl(folder: Path, name: str, records) -> Path:
    path = folder / name
    with path.open("w", encoding="utf-8") as out:
        for record in records:
            out.write((record if isinstance(record, str) else json.dumps(record)) + "\n")
    return path


def wait(client, batch_id: str, until=("failed", "completed", "expired", "cancelled"), limit=60):
    """Polls like a real client and returns (final batch, statuses seen, counts seen)."""
    seen, counts = [], []
    deadline = time.time() + limit
    while time.time() < deadline:
        batch = client.batches.retrieve(batch_id)
        if not seen or seen[-1] != batch.status:
            seen.append(batch.status)
        if batch.request_counts is not None:
            counts.append((batch.request_counts.completed, batch.request_counts.failed))
        if batch.status in until:
            return batch, seen, counts
        time.sleep(0.05)
    raise AssertionError(f"batch {batch_id} still {seen[-1]} after {limit}s")


def read_lines(client, file_id: str) -> list[dict]:
    text = client.files.content(file_id).text
    assert text.endswith("\n"), "a JSONL file ends with a newline"
    return [json.loads(raw) for raw in text.splitlines()]


def check_record_shape(record: dict) -> None:
    assert set(record) == {"id", "custom_id", "response", "error"}, record.keys()
    assert record["id"].startswith("batch_req_"), record["id"]
    assert isinstance(record["custom_id"], str)
    if record["response"] is not None:
        assert set(record["response"]) == {"status_code", "request_id", "body"}, record["response"]
        assert isinstance(record["response"]["status_code"], int)
        assert isinstance(record["response"]["request_id"], str)
        assert isinstance(record["response"]["body"], dict)
    if record["error"] is not None:
        assert set(record["error"]) == {"code", "message"}, record["error"]


# --- checks ---------------------------------------------------------------------------------------


def check_round_trip(fake: Fake, folder: Path) -> None:
    """Upload, create, poll, download: 7 requests with every third failing (--fail-every 3)."""
    client = fake.client()
    records = [line(f"pair-{i}", logprobs=True, top_logprobs=2) if i % 2 else line(f"pair-{i}")
               for i in range(7)]
    path = write_jsonl(folder, "round_trip.jsonl", records)
    with path.open("rb") as handle:
        uploaded = client.files.create(file=handle, purpose="batch")
    assert uploaded.object == "file" and uploaded.purpose == "batch"
    assert uploaded.id.startswith("file-") and uploaded.filename == "round_trip.jsonl"
    assert uploaded.bytes == path.stat().st_size and uploaded.expires_at is not None
    assert client.files.retrieve(uploaded.id).id == uploaded.id
    assert client.files.content(uploaded.id).content == path.read_bytes(), "upload is byte-exact"
    assert uploaded.id in [f.id for f in client.files.list(purpose="batch")]

    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                  completion_window="24h", metadata={"rejudge_run": "check"})
    assert batch.object == "batch" and batch.status == "validating"
    assert batch.id.startswith("batch_") and batch.metadata == {"rejudge_run": "check"}
    assert batch.output_file_id is None and batch.error_file_id is None
    assert batch.expires_at - batch.created_at == 24 * 3600

    final, seen, counts = wait(client, batch.id)
    assert final.status == "completed", final
    assert [s for s in STATUS_ORDER if s in seen] == seen, f"statuses out of order: {seen}"
    assert "validating" in seen and "completed" in seen
    assert counts == sorted(counts), f"request_counts went backwards: {counts}"
    assert final.request_counts.total == 7
    assert (final.request_counts.completed, final.request_counts.failed) == (5, 2)
    for stamp in ("in_progress_at", "finalizing_at", "completed_at"):
        assert getattr(final, stamp) is not None, stamp
    assert final.failed_at is None and final.cancelled_at is None

    outputs = read_lines(client, final.output_file_id)
    errors = read_lines(client, final.error_file_id)
    assert len(outputs) == 5 and len(errors) == 2
    ids = [r["custom_id"] for r in outputs + errors]
    assert sorted(ids) == sorted(r["custom_id"] for r in records) and len(set(ids)) == 7
    for record in outputs:
        check_record_shape(record)
        assert record["error"] is None and record["response"]["status_code"] == 200
        body = record["response"]["body"]
        assert body["object"] == "chat.completion" and body["model"] == "judge-model"
        judgment = json.loads(body["choices"][0]["message"]["content"])
        assert judgment["response_a"]["score"] == 4 and judgment["response_b"]["score"] == 2
        assert isinstance(judgment["response_a"]["rationale"], str)
        logprobs = body["choices"][0]["logprobs"]
        asked = int(record["custom_id"].split("-")[1]) % 2 == 1
        if asked:
            tokens = logprobs["content"]
            assert "".join(t["token"] for t in tokens) == body["choices"][0]["message"]["content"]
            digit = next(t for t in tokens if t["token"] == "4")
            assert 0 < len(digit["top_logprobs"]) <= 2
        else:
            assert logprobs is None
    for record in errors:
        check_record_shape(record)
        assert record["response"]["status_code"] == 500
        assert record["response"]["body"]["error"]["type"] == "server_error"
    assert final.output_file_id in [f.id for f in client.files.list(purpose="batch_output")]

    # The hooks: exactly one creation, and the state agrees with the API.
    creations = [e for e in fake.hook("log") if e["method"] == "POST" and e["path"] == "/v1/batches"]
    assert len(creations) == 1 and creations[0]["status"] == 200, creations
    state = fake.hook("state")
    assert [b["id"] for b in state["batches"]] == [batch.id]
    assert {f["id"] for f in state["files"]} >= {uploaded.id, final.output_file_id}

    # Pagination: a second batch, then pages of one.
    second = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                   completion_window="24h")
    first_page = client.batches.list(limit=1)
    assert first_page.has_more and [b.id for b in first_page.data] == [second.id], "newest first"
    assert [b.id for b in client.batches.list(limit=1)] == [second.id, batch.id]
    wait(client, second.id)

    deleted = client.files.delete(uploaded.id)
    assert deleted.deleted and deleted.id == uploaded.id
    try:
        client.files.retrieve(uploaded.id)
        raise AssertionError("a deleted file is gone")
    except openai.NotFoundError as problem:
        assert problem.status_code == 404


def check_failed_validation(fake: Fake, folder: Path) -> None:
    client = fake.client()
    records = [
        line("ok-1"),
        line("ok-1"),
        "{not json",
        {**line("bad-url"), "url": "/v1/embeddings"},
        {**line("bad-method"), "method": "GET"},
    ]
    path = write_jsonl(folder, "invalid.jsonl", records)
    with path.open("rb") as handle:
        uploaded = client.files.create(file=handle, purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                  completion_window="24h")
    final, seen, _ = wait(client, batch.id)
    assert final.status == "failed" and seen[0] == "validating", seen
    assert "in_progress" not in seen
    assert final.failed_at is not None and final.output_file_id is None
    assert final.error_file_id is None
    assert final.errors is not None and final.errors.object == "list"
    by_code = {e.code: e.line for e in final.errors.data}
    assert by_code == {"duplicate_custom_id": 2, "invalid_json_line": 3, "invalid_url": 4,
                       "invalid_method": 5}, by_code
    assert all(e.message for e in final.errors.data)

    mixed = write_jsonl(folder, "mixed.jsonl", [line("m-1"), {**line("m-2"),
                        "body": {**line("m-2")["body"], "model": "other-model"}}])
    with mixed.open("rb") as handle:
        uploaded = client.files.create(file=handle, purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                  completion_window="24h")
    final, _, _ = wait(client, batch.id)
    assert final.status == "failed" and final.errors.data[0].code == "mismatched_model"

    # Requests the API refuses outright, before any batch exists.
    for call, error in [
        (lambda: client.batches.create(input_file_id=uploaded.id, endpoint="/v1/nope",
                                       completion_window="24h"), openai.BadRequestError),
        (lambda: client.batches.create(input_file_id=uploaded.id,
                                       endpoint="/v1/chat/completions",
                                       completion_window="48h"), openai.BadRequestError),
        (lambda: client.batches.create(input_file_id="file-missing",
                                       endpoint="/v1/chat/completions",
                                       completion_window="24h"), openai.NotFoundError),
        (lambda: client.files.create(file=("notes.txt", b"{}\n"), purpose="batch"),
         openai.BadRequestError),
        (lambda: client.batches.retrieve("batch_missing"), openai.NotFoundError),
    ]:
        try:
            call()
            raise AssertionError(f"expected {error.__name__}")
        except error as problem:
            assert isinstance(problem.body, dict) and problem.body.get("message"), problem.body


def check_cancel(fake: Fake, folder: Path) -> None:
    """--delay 0.3 keeps the batch running long enough to cancel it halfway."""
    client = fake.client()
    records = [line(f"slow-{i}") for i in range(12)]
    path = write_jsonl(folder, "slow.jsonl", records)
    with path.open("rb") as handle:
        uploaded = client.files.create(file=handle, purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                  completion_window="24h")
    deadline = time.time() + 30
    while True:
        current = client.batches.retrieve(batch.id)
        if current.status == "in_progress" and current.request_counts.completed >= 2:
            break
        assert time.time() < deadline, current
        time.sleep(0.05)
    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status == "cancelling" and cancelling.cancelling_at is not None
    final, seen, _ = wait(client, batch.id)
    assert final.status == "cancelled" and final.cancelled_at is not None, seen
    assert final.completed_at is None
    done = final.request_counts.completed
    assert 2 <= done < 12, final.request_counts
    outputs = read_lines(client, final.output_file_id)
    skipped = read_lines(client, final.error_file_id)
    assert len(outputs) == done and len(outputs) + len(skipped) == 12
    for record in skipped:
        check_record_shape(record)
        assert record["response"] is None and record["error"]["code"] == "batch_cancelled"
    # A finished batch cannot be cancelled; cancelling a cancelled one changes nothing.
    assert client.batches.cancel(batch.id).status == "cancelled"
    small = write_jsonl(folder, "one.jsonl", [line("one")])
    with small.open("rb") as handle:
        one = client.files.create(file=handle, purpose="batch")
    finished = client.batches.create(input_file_id=one.id, endpoint="/v1/chat/completions",
                                     completion_window="24h")
    assert wait(client, finished.id)[0].status == "completed"
    try:
        client.batches.cancel(finished.id)
        raise AssertionError("cancelling a completed batch must fail")
    except openai.BadRequestError:
        pass


def check_expiry(fake: Fake, folder: Path) -> None:
    """--expire-after 1 with --delay 0.4: the window closes with requests still queued."""
    client = fake.client()
    path = write_jsonl(folder, "late.jsonl", [line(f"late-{i}") for i in range(8)])
    with path.open("rb") as handle:
        uploaded = client.files.create(file=handle, purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                  completion_window="24h")
    final, _, _ = wait(client, batch.id)
    assert final.status == "expired" and final.expired_at is not None
    expired = read_lines(client, final.error_file_id)
    assert expired and all(r["error"]["code"] == "batch_expired" for r in expired)
    outputs = read_lines(client, final.output_file_id) if final.output_file_id else []
    assert len(outputs) + len(expired) == 8


def check_upstream(fake: Fake, folder: Path) -> None:
    """Forwarding: 200s land in the output file, an upstream 400 in the error file as is."""
    client = fake.client()
    records = [line("up-1"), line("up-2", "please reject this"), line("up-3")]
    path = write_jsonl(folder, "upstream.jsonl", records)
    with path.open("rb") as handle:
        uploaded = client.files.create(file=handle, purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                  completion_window="24h")
    final, _, _ = wait(client, batch.id)
    assert final.status == "completed"
    assert (final.request_counts.completed, final.request_counts.failed) == (2, 1)
    outputs = read_lines(client, final.output_file_id)
    errors = read_lines(client, final.error_file_id)
    assert sorted(r["custom_id"] for r in outputs) == ["up-1", "up-3"]
    assert all(r["response"]["body"]["choices"][0]["message"]["content"] == "upstream says hi"
               and r["response"]["request_id"] == "req_upstream" for r in outputs)
    [rejected] = errors
    check_record_shape(rejected)
    assert rejected["custom_id"] == "up-2" and rejected["response"]["status_code"] == 400
    assert rejected["response"]["body"]["error"]["message"] == "rejected by upstream"
    assert rejected["error"] is None


def check_unreachable_upstream(fake: Fake, folder: Path) -> None:
    client = fake.client()
    path = write_jsonl(folder, "down.jsonl", [line("down-1")])
    with path.open("rb") as handle:
        uploaded = client.files.create(file=handle, purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                  completion_window="24h")
    final, _, _ = wait(client, batch.id)
    assert final.status == "completed" and final.output_file_id is None
    [record] = read_lines(client, final.error_file_id)
    assert record["response"] is None and record["error"]["code"] == "server_error"


def check_auth(fake: Fake, folder: Path) -> None:
    wrong = fake.client("sk-wrong-key-000000")
    try:
        wrong.batches.list()
        raise AssertionError("a wrong key must be refused")
    except openai.AuthenticationError as problem:
        assert problem.status_code == 401
        assert problem.body["code"] == "invalid_api_key" and problem.body["type"] == "invalid_request_error"
        assert "sk-wrong-key-000000" not in problem.body["message"], "the key is masked"
    request = urllib.request.Request(f"{fake.base}/files")
    try:
        urllib.request.urlopen(request, timeout=10)
        raise AssertionError("no key must be refused")
    except urllib.error.HTTPError as problem:
        assert problem.code == 401
        body = json.load(problem)
        assert set(body["error"]) == {"message", "type", "param", "code"}
    refused = [e for e in fake.hook("log") if e["status"] == 401]
    assert len(refused) == 2, refused
    # The hooks stay open without a key: tests read them, clients never do.
    assert isinstance(fake.hook("state")["files"], list)


def main() -> int:
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    up_base = f"http://127.0.0.1:{upstream.server_address[1]}/v1"
    # A port that was free a moment ago stands in for a server that is down.
    probe = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    down_base = f"http://127.0.0.1:{probe.server_address[1]}/v1"
    probe.server_close()

    fakes: dict[str, Fake] = {}
    passed = failed = 0
    try:
        fakes["fast"] = Fake("--api-key", KEY, "--fail-every", "3")
        fakes["plain"] = Fake("--api-key", KEY)
        fakes["slow"] = Fake("--api-key", KEY, "--delay", "0.3")
        fakes["late"] = Fake("--api-key", KEY, "--delay", "0.4", "--expire-after", "1")
        fakes["up"] = Fake("--api-key", KEY, "--upstream", up_base)
        fakes["down"] = Fake("--api-key", KEY, "--upstream", down_base, "--upstream-timeout", "5")
        plan = [
            (check_round_trip, "fast"),
            (check_failed_validation, "plain"),
            (check_cancel, "slow"),
            (check_expiry, "late"),
            (check_upstream, "up"),
            (check_unreachable_upstream, "down"),
            (check_auth, "plain"),
        ]
        with tempfile.TemporaryDirectory() as folder:
            for check, name in plan:
                started = time.time()
                try:
                    check(fakes[name], Path(folder))
                    passed += 1
                    print(f"ok    {check.__name__} ({time.time() - started:.1f}s)")
                except Exception:
                    failed += 1
                    print(f"FAIL  {check.__name__}")
                    traceback.print_exc()
    finally:
        for fake in fakes.values():
            fake.stop()
        upstream.shutdown()
        upstream.server_close()
    print(f"openai {openai.__version__}: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
