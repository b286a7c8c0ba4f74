#!/usr/bin/env python3
"""A local stand-in for OpenAI's Files and Batches endpoints, for tests that cannot reach OpenAI.

    python3 tests/batch/fake_openai.py [--port 0] [--api-key KEY] [--upstream URL/v1]
                                       [--delay SECONDS_PER_REQUEST] [--fail-every N]

The first line on stdout is the base URL (ending in /v1); clients append /files, /batches, ...

It follows OpenAI's API reference for the shapes that a batch client depends on: the file and
batch objects, cursor-paginated lists, the status order validating -> in_progress -> finalizing
-> completed (or failed, cancelling -> cancelled, expired), request_counts that move while the
batch runs, and output/error files whose lines are {"id", "custom_id", "response", "error"}.
Each request line is answered by `--upstream` (any OpenAI-compatible server) or, without one,
by a canned chat completion that holds a valid judgment.

Test hooks, outside /v1 and never logged or authenticated:
    GET /_fake/log    every /v1 request so far: [{"method", "path", "query", "status"}]
    GET /_fake/state  {"files": [...], "batches": [...]} (file objects and batch objects)

Standard library only, so any Python 3.11 runs it without installing anything.
"""

from __future__ import annotations

import argparse
import email.message
import json
import re
import secrets
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BATCH_REQUESTS = 50_000
MAX_BATCH_FILE_BYTES = 200 * 1024 * 1024
MAX_UPLOAD_BYTES = 512 * 1024 * 1024
BATCH_FILE_TTL = 30 * 24 * 3600
ENDPOINTS = (
    "/v1/responses",
    "/v1/chat/completions",
    "/v1/embeddings",
    "/v1/completions",
    "/v1/moderations",
)
FILE_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
TERMINAL = ("failed", "completed", "expired", "cancelled")


def new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(12)


def error_body(message: str, kind: str = "invalid_request_error", param=None, code=None) -> dict:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


class ApiError(Exception):
    def __init__(self, status: int, message: str, kind="invalid_request_error", param=None, code=None):
        super().__init__(message)
        self.status = status
        self.body = error_body(message, kind, param, code)


class Store:
    """Everything the server knows; one lock guards all of it because handlers and batch workers
    run on different threads and a test may read /_fake/state at any moment."""

    def __init__(self, options: argparse.Namespace):
        self.options = options
        self.lock = threading.Lock()
        self.files: dict[str, dict] = {}
        self.contents: dict[str, bytes] = {}
        self.batches: dict[str, dict] = {}
        self.log: list[dict] = []
        # --fail-every counts requests across the whole server, not per batch, so that a test
        # with several small batches still sees failures.
        self.executed = 0

    def add_file(self, filename: str, purpose: str, data: bytes) -> dict:
        now = int(time.time())
        meta = {
            "id": new_id("file-"),
            "object": "file",
            "bytes": len(data),
            "created_at": now,
            "expires_at": now + BATCH_FILE_TTL if purpose in ("batch", "batch_output") else None,
            "filename": filename,
            "purpose": purpose,
            "status": "processed",
            "status_details": None,
        }
        with self.lock:
            self.files[meta["id"]] = meta
            self.contents[meta["id"]] = data
        return meta

    def file(self, file_id: str) -> dict:
        with self.lock:
            meta = self.files.get(file_id)
            if meta is None:
                raise ApiError(404, f"No such File object: {file_id}", param="id")
            return dict(meta)

    def batch(self, batch_id: str) -> dict:
        with self.lock:
            batch = self.batches.get(batch_id)
            if batch is None:
                raise ApiError(404, f"No batch found with id '{batch_id}'.", param="batch_id")
            return json.loads(json.dumps(batch))

    def update(self, batch_id: str, **fields) -> dict:
        with self.lock:
            batch = self.batches[batch_id]
            batch.update(fields)
            return batch


def page(items: list[dict], query: dict, default_limit: int, max_limit: int) -> dict:
    """OpenAI's cursor page: `after` names the last id the caller saw."""
    try:
        limit = int(query.get("limit", [default_limit])[0])
    except ValueError:
        raise ApiError(400, "Invalid 'limit': expected an integer.", param="limit")
    if not 1 <= limit <= max_limit:
        raise ApiError(400, f"Invalid 'limit': must be between 1 and {max_limit}.", param="limit")
    after = query.get("after", [None])[0]
    if after is not None:
        ids = [item["id"] for item in items]
        if after not in ids:
            raise ApiError(400, f"Invalid 'after': no object with id '{after}'.", param="after")
        items = items[ids.index(after) + 1 :]
    chosen = items[:limit]
    return {
        "object": "list",
        "data": chosen,
        "first_id": chosen[0]["id"] if chosen else None,
        "last_id": chosen[-1]["id"] if chosen else None,
        "has_more": len(items) > limit,
    }


def parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """Splits a multipart/form-data body by hand: the stdlib's email parser rewrites line endings,
    and an uploaded JSONL file must come back byte for byte."""
    header = email.message.Message()
    header["content-type"] = content_type
    boundary = header.get_param("boundary")
    if header.get_content_type() != "multipart/form-data" or not boundary:
        raise ApiError(400, "Expected a multipart/form-data body with a boundary.")
    fields: dict[str, tuple[str | None, bytes]] = {}
    delimiter = b"--" + str(boundary).encode("latin-1")
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        chunk = chunk[2:] if chunk.startswith(b"\r\n") else chunk
        head, sep, data = chunk.partition(b"\r\n\r\n")
        if not sep:
            continue
        if data.endswith(b"\r\n"):
            data = data[:-2]
        part = email.message.Message()
        for line in head.decode("utf-8", "replace").split("\r\n"):
            name, colon, value = line.partition(":")
            if colon:
                part[name.strip()] = value.strip()
        name = part.get_param("name", header="content-disposition")
        if name:
            fields[str(name)] = (part.get_filename(), data)
    return fields


def validate_input(data: bytes, endpoint: str) -> tuple[list[dict], list[dict]]:
    """Checks a batch input file the way the validating stage does; returns (requests, errors)."""
    errors: list[dict] = []
    requests: list[dict] = []
    seen: set[str] = set()
    models: set[str] = set()

    def fail(line: int, code: str, message: str, param=None):
        # Only the first few problems are reported, as a long list helps nobody.
        if len(errors) < 20:
            errors.append({"code": code, "message": message, "param": param, "line": line})

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        fail(None, "invalid_file_format", "The input file is not valid UTF-8.")
        return [], errors
    for number, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except json.JSONDecodeError as problem:
            fail(number, "invalid_json_line", f"Line {number} is not valid JSON: {problem.msg}.")
            continue
        if not isinstance(line, dict):
            fail(number, "invalid_json_line", f"Line {number} is not a JSON object.")
            continue
        custom_id = line.get("custom_id")
        if not isinstance(custom_id, str) or not custom_id:
            fail(number, "missing_required_parameter", "Missing 'custom_id'.", "custom_id")
            continue
        if custom_id in seen:
            fail(
                number,
                "duplicate_custom_id",
                f"The custom_id '{custom_id}' is used more than once; each must be unique.",
                "custom_id",
            )
        seen.add(custom_id)
        if line.get("method") != "POST":
            fail(number, "invalid_method", "Only the POST method is supported.", "method")
        if line.get("url") != endpoint:
            fail(
                number,
                "invalid_url",
                f"The url '{line.get('url')}' does not match the batch endpoint '{endpoint}'.",
                "url",
            )
        body = line.get("body")
        if not isinstance(body, dict):
            fail(number, "missing_required_parameter", "Missing or invalid 'body'.", "body")
            continue
        if body.get("stream"):
            fail(number, "invalid_value", "Streaming is not supported in a batch.", "body.stream")
        model = body.get("model")
        if isinstance(model, str):
            models.add(model)
        requests.append(line)
    if len(models) > 1:
        fail(
            None,
            "mismatched_model",
            "Every request in a batch must use the same model; found " + ", ".join(sorted(models)),
            "body.model",
        )
    if len(seen) > MAX_BATCH_REQUESTS:
        fail(None, "too_many_requests", f"A batch holds at most {MAX_BATCH_REQUESTS} requests.")
    if not seen and not errors:
        fail(None, "empty_file", "The input file holds no requests.")
    return requests, errors


JUDGMENT_A = "Answers the question directly and stays accurate."
JUDGMENT_B = "Drifts from the question and misses a key detail."


def canned_completion(body: dict) -> dict:
    """A chat completion whose content is a judgment that rejudge's schema accepts; with
    `logprobs`, each score digit is its own token carrying top_logprobs, as real servers do."""
    pieces = [
        ('{"response_a": {"rationale": ' + json.dumps(JUDGMENT_A) + ', "score": ', None),
        ("4", [("4", -0.105), ("5", -2.4), ("3", -3.9)]),
        ('}, "response_b": {"rationale": ' + json.dumps(JUDGMENT_B) + ', "score": ', None),
        ("2", [("2", -0.223), ("3", -1.9), ("1", -3.2)]),
        ("}}", None),
    ]
    content = "".join(text for text, _ in pieces)
    choice = {
        "index": 0,
        "message": {"role": "assistant", "content": content, "refusal": None, "annotations": []},
        "logprobs": None,
        "finish_reason": "stop",
    }
    if body.get("logprobs"):
        wanted = int(body.get("top_logprobs") or 0)

        def entry(token: str, logprob: float) -> dict:
            return {"token": token, "logprob": logprob, "bytes": list(token.encode())}

        tokens = []
        for text, alternatives in pieces:
            alternatives = alternatives or [(text, -0.001)]
            top = [entry(t, lp) for t, lp in alternatives[:wanted]]
            tokens.append({**entry(text, alternatives[0][1]), "top_logprobs": top})
        choice["logprobs"] = {"content": tokens, "refusal": None}
    prompt_chars = len(json.dumps(body.get("messages", [])))
    prompt_tokens = max(1, prompt_chars // 4)
    completion_tokens = max(1, len(content) // 4)
    return {
        "id": new_id("chatcmpl-"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "fake-judge"),
        "choices": [choice],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
        "service_tier": "default",
        "system_fingerprint": "fp_fake",
    }


class Worker(threading.Thread):
    """Runs one batch through its statuses; the HTTP side only ever reads what this writes."""

    def __init__(self, store: Store, batch_id: str):
        super().__init__(daemon=True, name=f"batch-{batch_id}")
        self.store = store
        self.batch_id = batch_id
        self.options = store.options

    def status(self) -> str:
        with self.store.lock:
            return self.store.batches[self.batch_id]["status"]

    def run(self) -> None:
        try:
            self.work()
        except Exception as problem:  # a bug here must show as a failed batch, not a hang
            now = int(time.time())
            self.store.update(
                self.batch_id,
                status="failed",
                failed_at=now,
                errors={"object": "list", "data": [
                    {"code": "server_error", "message": repr(problem), "param": None, "line": None}
                ]},
            )
            raise

    def work(self) -> None:
        batch = self.store.batch(self.batch_id)
        time.sleep(self.options.stage_seconds)
        with self.store.lock:
            data = self.store.contents.get(batch["input_file_id"], b"")
        requests, errors = validate_input(data, batch["endpoint"])
        if self.status() == "cancelling":
            self.finish(batch, [], [], cancelled=True)
            return
        if errors:
            self.store.update(
                self.batch_id,
                status="failed",
                failed_at=int(time.time()),
                errors={"object": "list", "data": errors},
            )
            return
        self.store.update(
            self.batch_id,
            status="in_progress",
            in_progress_at=int(time.time()),
            request_counts={"total": len(requests), "completed": 0, "failed": 0},
        )
        outputs: list[dict] = []
        failures: list[dict] = []
        stopped_by = None
        for index, line in enumerate(requests):
            if self.status() == "cancelling":
                stopped_by = "cancelled"
            elif time.time() >= batch["expires_at"]:
                stopped_by = "expired"
            if stopped_by:
                for rest in requests[index:]:
                    failures.append(self.unexecuted(rest, stopped_by))
                break
            if self.options.delay > 0:
                time.sleep(self.options.delay)
            result, ok = self.execute(line)
            (outputs if ok else failures).append(result)
            with self.store.lock:
                counts = self.store.batches[self.batch_id]["request_counts"]
                counts["completed" if ok else "failed"] += 1
        self.finish(batch, outputs, failures, cancelled=stopped_by == "cancelled",
                    expired=stopped_by == "expired")

    def unexecuted(self, line: dict, why: str) -> dict:
        message = {
            "cancelled": "This request was not executed because the batch was cancelled.",
            "expired": "This request could not be executed before the completion window expired.",
        }[why]
        return {
            "id": new_id("batch_req_"),
            "custom_id": line["custom_id"],
            "response": None,
            "error": {"code": f"batch_{why}", "message": message},
        }

    def execute(self, line: dict) -> tuple[dict, bool]:
        with self.store.lock:
            self.store.executed += 1
            injected = self.options.fail_every and self.store.executed % self.options.fail_every == 0
        record = {"id": new_id("batch_req_"), "custom_id": line["custom_id"], "response": None,
                  "error": None}
        if injected:
            if self.options.fail_kind == "error":
                record["error"] = {"code": "request_timeout",
                                   "message": "The request timed out (injected by --fail-every)."}
            else:
                record["response"] = {
                    "status_code": 500,
                    "request_id": new_id("req_"),
                    "body": error_body("The server had an error processing the request "
                                       "(injected by --fail-every).", "server_error"),
                }
            return record, False
        if not self.options.upstream:
            record["response"] = {"status_code": 200, "request_id": new_id("req_"),
                                  "body": canned_completion(line["body"])}
            return record, True
        status, request_id, body, problem = self.forward(line)
        if problem is not None:
            record["error"] = {"code": "server_error", "message": problem}
            return record, False
        record["response"] = {"status_code": status, "request_id": request_id, "body": body}
        return record, 200 <= status < 300

    def forward(self, line: dict):
        """Posts the line's body to the upstream server; the line's url names the endpoint under
        /v1, and the upstream base URL already ends in /v1."""
        path = line["url"][len("/v1"):] if line["url"].startswith("/v1/") else line["url"]
        target = self.options.upstream.rstrip("/") + path
        request = urllib.request.Request(
            target,
            data=json.dumps(line["body"]).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        if self.options.upstream_api_key:
            request.add_header("Authorization", f"Bearer {self.options.upstream_api_key}")
        try:
            with urllib.request.urlopen(request, timeout=self.options.upstream_timeout) as reply:
                status, headers, raw = reply.status, reply.headers, reply.read()
        except urllib.error.HTTPError as reply:
            status, headers, raw = reply.code, reply.headers, reply.read()
        except (urllib.error.URLError, OSError, TimeoutError) as problem:
            return None, None, None, f"Upstream request failed: {problem}"
        request_id = headers.get("x-request-id") or new_id("req_")
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            if 200 <= status < 300:
                return None, None, None, "Upstream answered with a body that is not JSON."
            body = error_body(raw.decode("utf-8", "replace")[:2000], "upstream_error")
        return status, request_id, body, None

    def finish(self, batch: dict, outputs: list[dict], failures: list[dict], cancelled=False,
               expired=False) -> None:
        if not cancelled and not expired:
            self.store.update(self.batch_id, status="finalizing", finalizing_at=int(time.time()))
            time.sleep(self.options.stage_seconds)
        output_id = error_id = None
        if outputs:
            output_id = self.store.add_file(
                f"batch_{self.batch_id}_output.jsonl", "batch_output", to_jsonl(outputs))["id"]
        if failures:
            error_id = self.store.add_file(
                f"batch_{self.batch_id}_error.jsonl", "batch_output", to_jsonl(failures))["id"]
        now = int(time.time())
        final = {"output_file_id": output_id, "error_file_id": error_id}
        if cancelled:
            final.update(status="cancelled", cancelled_at=now)
        elif expired:
            final.update(status="expired", expired_at=now)
        else:
            final.update(status="completed", completed_at=now)
        self.store.update(self.batch_id, **final)


def to_jsonl(records: list[dict]) -> bytes:
    return "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records).encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-openai/1"
    store: Store  # set on the subclass made in main()

    # --- plumbing -------------------------------------------------------------------------------

    def log_message(self, format, *args):  # noqa: A002 - the stdlib's name
        if self.store.options.verbose:
            sys.stderr.write("fake-openai: " + (format % args) + "\n")

    def read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(parts)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_UPLOAD_BYTES:
            raise ApiError(413, "The request body is larger than 512 MB.")
        return self.rfile.read(length) if length else b""

    def send(self, status: int, payload, content_type="application/json") -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", new_id("req_"))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        self.sent_status = status

    def json_body(self) -> dict:
        raw = self.read_body()
        try:
            value = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            raise ApiError(400, "We could not parse the JSON body of your request.")
        if not isinstance(value, dict):
            raise ApiError(400, "The request body must be a JSON object.")
        return value

    def dispatch(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        path, query = url.path, urllib.parse.parse_qs(url.query)
        if path.startswith("/_fake/"):
            self.hooks(path)
            return
        self.sent_status = None
        try:
            self.authenticate()
            self.route(path, query)
        except ApiError as problem:
            self.send(problem.status, problem.body)
        except Exception as problem:
            self.send(500, error_body(f"Internal error: {problem!r}", "server_error"))
        finally:
            with self.store.lock:
                self.store.log.append({"method": self.command, "path": path, "query": url.query,
                                       "status": self.sent_status})

    do_GET = do_POST = do_DELETE = dispatch

    def authenticate(self) -> None:
        key = self.store.options.api_key
        if not key:
            return
        given = self.headers.get("Authorization", "")
        if not given.startswith("Bearer ") or not given[len("Bearer "):].strip():
            raise ApiError(
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            )
        token = given[len("Bearer "):].strip()
        if not secrets.compare_digest(token, key):
            shown = token[:3] + "*" * max(0, len(token) - 7) + token[-4:] if len(token) > 7 else "***"
            raise ApiError(401, f"Incorrect API key provided: {shown}.", code="invalid_api_key")

    def hooks(self, path: str) -> None:
        if self.command != "GET":
            self.send(405, error_body("Only GET is served under /_fake/."))
        elif path == "/_fake/log":
            with self.store.lock:
                self.send(200, list(self.store.log))
        elif path == "/_fake/state":
            with self.store.lock:
                state = {"files": list(self.store.files.values()),
                         "batches": list(self.store.batches.values())}
                self.send(200, json.loads(json.dumps(state)))
        else:
            self.send(404, error_body(f"Unknown hook {path}."))

    # --- routes ---------------------------------------------------------------------------------

    def route(self, path: str, query: dict) -> None:
        method = self.command
        if path == "/v1/files":
            if method == "POST":
                return self.create_file()
            if method == "GET":
                return self.list_files(query)
        if match := re.fullmatch(r"/v1/files/([^/]+)", path):
            if method == "GET":
                return self.send(200, self.store.file(match[1]))
            if method == "DELETE":
                return self.delete_file(match[1])
        if match := re.fullmatch(r"/v1/files/([^/]+)/content", path):
            if method == "GET":
                self.store.file(match[1])
                with self.store.lock:
                    data = self.store.contents[match[1]]
                return self.send(200, data, "application/octet-stream")
        if path == "/v1/batches":
            if method == "POST":
                return self.create_batch()
            if method == "GET":
                # Newest first, as OpenAI lists them; dicts keep creation order.
                with self.store.lock:
                    batches = json.loads(json.dumps(list(reversed(self.store.batches.values()))))
                return self.send(200, page(batches, query, 20, 100))
        if match := re.fullmatch(r"/v1/batches/([^/]+)", path):
            if method == "GET":
                return self.send(200, self.store.batch(match[1]))
        if match := re.fullmatch(r"/v1/batches/([^/]+)/cancel", path):
            if method == "POST":
                return self.cancel_batch(match[1])
        raise ApiError(404, f"Invalid URL ({method} {path})")

    def create_file(self) -> None:
        fields = parse_multipart(self.headers.get("Content-Type", ""), self.read_body())
        if "file" not in fields:
            raise ApiError(400, "Missing required parameter: 'file'.", param="file")
        if "purpose" not in fields:
            raise ApiError(400, "Missing required parameter: 'purpose'.", param="purpose")
        filename, data = fields["file"]
        purpose = fields["purpose"][1].decode("utf-8", "replace").strip()
        if purpose not in FILE_PURPOSES:
            raise ApiError(400, f"Invalid value for 'purpose': '{purpose}'.", param="purpose")
        filename = filename or "upload"
        if purpose == "batch":
            if not filename.endswith(".jsonl"):
                raise ApiError(400, "Invalid file format for Batch API. Must be .jsonl",
                               param="file")
            if len(data) > MAX_BATCH_FILE_BYTES:
                raise ApiError(400, "A Batch API input file can be at most 200 MB.", param="file")
        self.send(200, self.store.add_file(filename, purpose, data))

    def list_files(self, query: dict) -> None:
        purpose = query.get("purpose", [None])[0]
        order = query.get("order", ["desc"])[0]
        if order not in ("asc", "desc"):
            raise ApiError(400, "Invalid 'order': expected 'asc' or 'desc'.", param="order")
        with self.store.lock:
            files = [dict(f) for f in self.store.files.values()
                     if purpose is None or f["purpose"] == purpose]
        # Insertion order is creation order; created_at alone ties within a second.
        if order == "desc":
            files.reverse()
        self.send(200, page(files, query, 10_000, 10_000))

    def delete_file(self, file_id: str) -> None:
        self.store.file(file_id)
        with self.store.lock:
            del self.store.files[file_id]
            del self.store.contents[file_id]
        self.send(200, {"id": file_id, "object": "file", "deleted": True})

    def create_batch(self) -> None:
        body = self.json_body()
        for name in ("input_file_id", "endpoint", "completion_window"):
            if name not in body:
                raise ApiError(400, f"Missing required parameter: '{name}'.", param=name)
        if body["endpoint"] not in ENDPOINTS:
            raise ApiError(400, f"Invalid value for 'endpoint': '{body['endpoint']}'. Supported "
                           "values are: " + ", ".join(ENDPOINTS) + ".", param="endpoint")
        if body["completion_window"] != "24h":
            raise ApiError(400, "Invalid value for 'completion_window': only '24h' is supported.",
                           param="completion_window")
        metadata = body.get("metadata")
        if metadata is not None:
            if (not isinstance(metadata, dict) or len(metadata) > 16
                    or any(not isinstance(k, str) or len(k) > 64 for k in metadata)
                    or any(not isinstance(v, str) or len(v) > 512 for v in metadata.values())):
                raise ApiError(400, "Invalid 'metadata': at most 16 string pairs, keys up to 64 "
                               "and values up to 512 characters.", param="metadata")
        source = self.store.file(body["input_file_id"])
        if source["purpose"] != "batch":
            raise ApiError(400, f"File {source['id']} was not uploaded with purpose 'batch'.",
                           param="input_file_id")
        now = int(time.time())
        batch = {
            "id": new_id("batch_"),
            "object": "batch",
            "endpoint": body["endpoint"],
            "model": None,
            "errors": None,
            "input_file_id": source["id"],
            "completion_window": "24h",
            "status": "validating",
            "output_file_id": None,
            "error_file_id": None,
            "created_at": now,
            "in_progress_at": None,
            "expires_at": now + self.store.options.expire_after,
            "finalizing_at": None,
            "completed_at": None,
            "failed_at": None,
            "expired_at": None,
            "cancelling_at": None,
            "cancelled_at": None,
            "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "usage": None,
            "metadata": metadata,
        }
        with self.store.lock:
            self.store.batches[batch["id"]] = batch
            reply = json.loads(json.dumps(batch))
        Worker(self.store, batch["id"]).start()
        self.send(200, reply)

    def cancel_batch(self, batch_id: str) -> None:
        with self.store.lock:
            batch = self.store.batches.get(batch_id)
            if batch is None:
                raise ApiError(404, f"No batch found with id '{batch_id}'.", param="batch_id")
            if batch["status"] in ("validating", "in_progress"):
                batch["status"] = "cancelling"
                batch["cancelling_at"] = int(time.time())
            elif batch["status"] not in ("cancelling", "cancelled"):
                # 400 rather than 409: SDKs retry a 409, and retrying cannot help here.
                raise ApiError(400, f"Cannot cancel a batch with status '{batch['status']}'.")
            reply = json.loads(json.dumps(batch))
        self.send(200, reply)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--api-key", help="require 'Authorization: Bearer KEY' on /v1")
    parser.add_argument("--upstream", help="OpenAI-compatible base URL ending in /v1 that "
                        "answers each request; without it answers are canned")
    parser.add_argument("--upstream-api-key", help="bearer key sent to --upstream")
    parser.add_argument("--upstream-timeout", type=float, default=600.0)
    parser.add_argument("--delay", type=float, default=0.0,
                        help="seconds spent on each request before it is executed")
    parser.add_argument("--fail-every", type=int, default=0,
                        help="make every Nth executed request fail (counted server-wide)")
    parser.add_argument("--fail-kind", choices=("status", "error"), default="status",
                        help="an injected failure is a 500 response (status) or a request "
                        "that got no response at all (error)")
    parser.add_argument("--stage-seconds", type=float, default=0.2,
                        help="time spent validating and finalizing, so pollers see both")
    parser.add_argument("--expire-after", type=int, default=24 * 3600,
                        help="seconds until a batch expires (its completion window)")
    parser.add_argument("--verbose", action="store_true", help="log each request to stderr")
    options = parser.parse_args()
    if options.upstream and not options.upstream.rstrip("/").endswith("/v1"):
        parser.error("--upstream must end in /v1")
    if options.fail_every < 0:
        parser.error("--fail-every must be 0 or more")

    store = Store(options)
    handler = type("BoundHandler", (Handler,), {"store": store})
    server = ThreadingHTTPServer((options.host, options.port), handler)
    server.daemon_threads = True
    host, port = server.server_address[:2]
    print(f"http://{host}:{port}/v1", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
