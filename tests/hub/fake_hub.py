#!/usr/bin/env python3
"""A local stand-in for the Hugging Face Hub's HTTP API, for tests that cannot reach the Hub.

    python3 tests/hub/fake_hub.py --root DIR [--host 127.0.0.1] [--port 0] [--token TOKEN]
                                  [--cdn-host localhost] [--user NAME] [--page-size N]
                                  [--lfs-threshold BYTES] [--multipart-chunk BYTES]
                                  [--lenient-commits] [--verbose]
    python3 tests/hub/fake_hub.py seed --root DIR --repo ORG/NAME --from FOLDER
                                  [--type dataset|model|space] [--branch B] [--private] [--gated]
                                  [--message TEXT]

The server prints its base URL (http://HOST:PORT, no trailing slash) as the first stdout line.
Point HF_ENDPOINT (or a client's endpoint setting) at it. Everything lives under --root, so a
seeded folder and a running server can share it, and a restarted server keeps its repos.

What it follows, as the real Hub and the huggingface_hub client implement it:
  GET  /api/{kind}s/{repo}[/revision/{rev}]        info: sha, siblings, cardData, private, gated
  GET  /api/{kind}s/{repo}/tree/{rev}[/{path}]       ?recursive=true&expand=true, Link-paginated
  POST /api/{kind}s/{repo}/paths-info/{rev}          form or JSON {"paths": [...]}
  GET  /api/{kind}s/{repo}/refs | /commits/{rev}
  POST|DELETE /api/{kind}s/{repo}/branch/{branch}    {"startingPoint": rev}; 409 if it exists
  POST|DELETE /api/{kind}s/{repo}/tag/{rev}          {"tag": name}
  GET  /api/datasets/{repo}/parquet[/{config}[/{split}[/{n}.parquet]]]   from refs/convert/parquet
  POST /api/repos/create, DELETE /api/repos/delete, PUT /api/{kind}s/{repo}/settings
  POST /api/{kind}s/{repo}/preupload/{rev}           uploadMode regular|lfs, shouldIgnore, oid
  POST /api/{kind}s/{repo}/commit/{rev}              NDJSON: header, file, lfsFile, deletedFile,
                                                     deletedFolder; ?create_pr=1 opens refs/pr/N
  POST /{prefix}{repo}.git/info/lfs/objects/batch    basic and multipart transfers (never xet)
  POST /{prefix}{repo}.git/info/lfs/objects/verify
  HEAD|GET /{prefix}{repo}/resolve/{rev}/{path}      X-Repo-Commit, ETag, Range; LFS files answer
                                                     302 with X-Linked-Etag/X-Linked-Size
  GET  /api/whoami-v2, POST /api/validate-yaml
({prefix} is "datasets/" or "spaces/", empty for models.)

Errors carry X-Error-Code (RepoNotFound, RevisionNotFound, EntryNotFound, GatedRepo) and
X-Error-Message headers and a {"error": message} body. As on the Hub, a private or missing repo
answers 401 without a token and 404 with one; a token the server does not accept answers 401
"Invalid credentials in Authorization header". Without --token every non-empty bearer token is
accepted; writes always need one.

LFS content is served from a second origin (http://localhost:PORT/_fake/cdn/...) so clients
treat it as the Hub's CDN: they must not follow that redirect on HEAD and must not send the
token there. The upload URLs handed out by the LFS batch call play the part of pre-signed
storage URLs (no token needed).

Test hooks (never logged, never failed on purpose):
  GET    /_fake/log    every other request so far: [{"method", "path", "query", "status",
                       "received", "sent", "range", "injected", "host", "authorized"}]; "path" is
                       as sent (percent-encoded), "received"/"sent" count body bytes, "range" is
                       the request's Range header, "status" is 0 for a dropped connection,
                       "host" is the Host header and "authorized" whether the request carried an
                       Authorization header (never its value), so a test can see where a token
                       went
  DELETE /_fake/log    forget the log
  POST   /_fake/fail   {"path": REGEX, "method": "PUT", "status": 500, "times": 1,
                        "when": "before"|"after", "drop": false, "truncate": BYTES}
                       The next `times` requests whose path (plus "?query" when there is one)
                       matches REGEX fail. "before" (default) fails them without any effect;
                       "after" does the work and then answers `status` (a lost response);
                       "drop" closes the connection without an answer; "truncate" sends a
                       download's headers and only its first BYTES bytes, then closes.
  GET    /_fake/fail   the rules still armed;  DELETE /_fake/fail  disarm them all

Standard library only, so any Python 3.11 runs it without installing anything.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime
import fcntl
import fnmatch
import hashlib
import json
import mimetypes
import os
import posixpath
import re
import secrets
import shutil
import socket
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KINDS = {"datasets": "dataset", "models": "model", "spaces": "space"}
PLURAL = {singular: plural for plural, singular in KINDS.items()}
SHA1_HEX = re.compile(r"^[0-9a-f]{40}$")
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
PARQUET_REF = "refs/convert/parquet"
LFS_JSON = "application/vnd.git-lfs+json"
COPY_CHUNK = 1 << 20

# New repos start with one commit holding this .gitattributes, as on the Hub; its filter=lfs
# patterns decide, with size and binary content, which files must travel through LFS.
INITIAL_GITATTRIBUTES = "".join(
    f"{pattern} filter=lfs diff=lfs merge=lfs -text\n"
    for pattern in (
        "*.7z", "*.arrow", "*.bin", "*.bz2", "*.ckpt", "*.gguf", "*.gz", "*.h5", "*.joblib",
        "*.lz4", "*.model", "*.msgpack", "*.npy", "*.npz", "*.onnx", "*.parquet", "*.pickle",
        "*.pkl", "*.pt", "*.pth", "*.rar", "*.safetensors", "*.tar", "*.tar.*", "*.tflite",
        "*.tgz", "*.wasm", "*.xz", "*.zip", "*.zst", "*tfevents*", "*.mp3", "*.wav", "*.flac",
        "*.ogg", "*.jpg", "*.jpeg", "*.png", "*.webp", "*.gif", "*.mp4",
    )
)


# ---------------------------------------------------------------------------------------------
# Small helpers


def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )


def git_blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def gitattributes_lfs_patterns(text: str) -> list[str]:
    patterns = []
    for line in text.splitlines():
        parts = line.split()
        if parts and not parts[0].startswith("#") and "filter=lfs" in parts[1:]:
            patterns.append(parts[0])
    return patterns


def matches_git_pattern(path: str, pattern: str) -> bool:
    pattern = pattern.lstrip("/") if pattern.startswith("/") else pattern
    if "/" not in pattern.rstrip("/"):
        return fnmatch.fnmatchcase(posixpath.basename(path), pattern)
    return fnmatch.fnmatchcase(path, pattern.replace("**/", "*").replace("/**", "/*"))


def gitignore_matches(path: str, gitignore: str) -> bool:
    ignored = False
    for line in gitignore.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:] if negate else line
        if pattern.endswith("/"):
            hit = path.startswith(pattern.lstrip("/")) or f"/{pattern}" in f"/{path}"
        else:
            hit = matches_git_pattern(path, pattern)
        if hit:
            ignored = not negate
    return ignored


def parse_range(value: str | None, size: int):
    """(start, end_inclusive) for a single "bytes=" range, None without one, "bad" if unsatisfiable."""
    if not value:
        return None
    match = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", value)
    if not match or (match.group(1) == "" and match.group(2) == ""):
        return None
    first, last = match.group(1), match.group(2)
    if first == "":
        length = int(last)
        if length == 0 or size == 0:
            return "bad"
        return max(0, size - length), size - 1
    start = int(first)
    end = size - 1 if last == "" else min(int(last), size - 1)
    if start >= size or end < start:
        return "bad"
    return start, end


# ---------------------------------------------------------------------------------------------
# A YAML subset, enough for README front matter (block maps and lists, flow lists, scalars,
# block scalars). The Hub parses the card for `cardData`; a card this reader cannot follow simply
# gets no cardData, which clients must tolerate anyway.


class YamlError(ValueError):
    pass


def _strip_comment(line: str) -> str:
    quote = None
    for index, char in enumerate(line):
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1] in " \t"):
            return line[:index].rstrip()
    return line.rstrip()


def _split_flow(text: str) -> list[str]:
    items, depth, quote, current = [], 0, None, ""
    for char in text:
        if quote:
            current += char
            if char == quote:
                quote = None
            continue
        if char in "'\"":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        elif char == "," and depth == 0:
            items.append(current.strip())
            current = ""
            continue
        current += char
    if current.strip():
        items.append(current.strip())
    return items


def _scalar(text: str):
    text = text.strip()
    if text == "" or text in ("~", "null", "Null", "NULL"):
        return None
    if text[0] == '"':
        if not text.endswith('"') or len(text) < 2:
            raise YamlError(f"unterminated string {text!r}")
        return json.loads(text)
    if text[0] == "'":
        if not text.endswith("'") or len(text) < 2:
            raise YamlError(f"unterminated string {text!r}")
        return text[1:-1].replace("''", "'")
    if text[0] == "[":
        if not text.endswith("]"):
            raise YamlError(f"unterminated list {text!r}")
        return [_scalar(item) for item in _split_flow(text[1:-1])]
    if text[0] == "{":
        if not text.endswith("}"):
            raise YamlError(f"unterminated map {text!r}")
        mapping = {}
        for item in _split_flow(text[1:-1]):
            key, value = _split_key(item)
            mapping[key] = _scalar(value)
        return mapping
    if text in ("true", "True", "TRUE"):
        return True
    if text in ("false", "False", "FALSE"):
        return False
    if re.fullmatch(r"[-+]?\d+", text):
        return int(text)
    if re.fullmatch(r"[-+]?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?", text):
        return float(text)
    return text


def _split_key(content: str):
    if content[:1] in "'\"":
        end = content.find(content[0], 1)
        if end < 0:
            raise YamlError(f"unterminated key {content!r}")
        key, rest = _scalar(content[: end + 1]), content[end + 1 :].lstrip()
        if not rest.startswith(":"):
            raise YamlError(f"expected ':' after key in {content!r}")
        return key, rest[1:].strip()
    match = re.search(r":(\s|$)", content)
    if not match:
        raise YamlError(f"expected 'key: value', got {content!r}")
    return content[: match.start()].strip(), content[match.end() :].strip()


def _is_item(content: str) -> bool:
    return content == "-" or content.startswith("- ")


def yaml_load(text: str):
    lines = []
    raw = text.splitlines()
    for line in raw:
        if "\t" in line[: len(line) - len(line.lstrip())]:
            raise YamlError("tabs in indentation")
        stripped = _strip_comment(line)
        lines.append([len(stripped) - len(stripped.lstrip(" ")), stripped.strip(), line])
    state = {"lines": lines, "i": 0}

    def skip_blank():
        while state["i"] < len(lines) and lines[state["i"]][1] == "":
            state["i"] += 1

    def block(indent: int):
        skip_blank()
        if state["i"] >= len(lines):
            return None
        if _is_item(lines[state["i"]][1]):
            return sequence(lines[state["i"]][0])
        return mapping(indent)

    def block_scalar(parent_indent: int, style: str) -> str:
        collected = []
        while state["i"] < len(lines):
            original = lines[state["i"]][2]
            if original.strip() and len(original) - len(original.lstrip(" ")) <= parent_indent:
                break
            collected.append(original)
            state["i"] += 1
        body = collected
        while body and not body[-1].strip():
            body.pop()
        margin = min((len(l) - len(l.lstrip(" ")) for l in body if l.strip()), default=0)
        body = [l[margin:] for l in body]
        if style.startswith(">"):
            result = " ".join(l.strip() for l in body if l.strip())
        else:
            result = "\n".join(body)
        return result if style.endswith("-") else result + "\n"

    def value_after_key(rest: str, indent: int):
        if rest in ("|", "|-", "|+", ">", ">-", ">+"):
            return block_scalar(indent, rest)
        if rest:
            return _scalar(rest)
        skip_blank()
        if state["i"] < len(lines):
            next_indent, next_content, _ = lines[state["i"]]
            if next_indent > indent or (next_indent == indent and _is_item(next_content)):
                return block(next_indent)
        return None

    def mapping(indent: int):
        result = {}
        while True:
            skip_blank()
            if state["i"] >= len(lines):
                return result
            line_indent, content, _ = lines[state["i"]]
            if line_indent < indent or _is_item(content):
                return result
            if line_indent > indent:
                raise YamlError(f"unexpected indentation at {content!r}")
            key, rest = _split_key(content)
            state["i"] += 1
            result[key] = value_after_key(rest, indent)

    def sequence(indent: int):
        result = []
        while True:
            skip_blank()
            if state["i"] >= len(lines):
                return result
            line_indent, content, _ = lines[state["i"]]
            if line_indent != indent or not _is_item(content):
                if line_indent > indent:
                    raise YamlError(f"unexpected indentation at {content!r}")
                return result
            rest = content[1:].strip()
            if rest == "":
                state["i"] += 1
                skip_blank()
                result.append(block(lines[state["i"]][0]) if state["i"] < len(lines) else None)
            elif re.search(r":(\s|$)", rest) and rest[0] not in "'\"[{":
                # "- key: value" opens a mapping whose keys sit where "key" starts.
                lines[state["i"]][0] = indent + (len(content) - len(rest))
                lines[state["i"]][1] = rest
                result.append(mapping(lines[state["i"]][0]))
            else:
                state["i"] += 1
                result.append(_scalar(rest))

    value = block(0)
    skip_blank()
    if state["i"] < len(lines):
        raise YamlError(f"could not read {lines[state['i']][1]!r}")
    return value


def card_data(readme: bytes):
    text = readme.decode("utf-8", errors="replace")
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        return None
    for end in range(1, len(lines)):
        if lines[end].strip() == "---":
            try:
                data = yaml_load("\n".join(lines[1:end]))
            except (YamlError, ValueError):
                return None
            return data if isinstance(data, dict) else ({} if data is None else None)
    return None


# ---------------------------------------------------------------------------------------------
# Storage: immutable commits (JSON) and content-addressed blobs (by SHA-256) under --root.


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, headers=None, extra=None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code
        self.headers, self.extra = headers or {}, extra or {}


class Store:
    def __init__(self, root: str, lfs_threshold: int):
        self.root = os.path.abspath(root)
        self.lfs_threshold = lfs_threshold
        self._lock = threading.RLock()
        for sub in ("blobs", "repos", "uploads", "tmp"):
            os.makedirs(os.path.join(self.root, sub), exist_ok=True)

    @contextlib.contextmanager
    def mutate(self):
        """Serialises writers, across threads and across a seeding process sharing the root."""
        with self._lock, open(os.path.join(self.root, ".lock"), "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _write_json(self, path: str, value) -> None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=os.path.join(self.root, "tmp"))
        with os.fdopen(handle, "w") as out:
            json.dump(value, out, indent=1, sort_keys=True)
        os.replace(temporary, path)

    # blobs

    def blob_path(self, sha256: str) -> str:
        return os.path.join(self.root, "blobs", sha256[:2], sha256[2:])

    def has_blob(self, sha256: str, size: int | None = None) -> bool:
        if not SHA256_HEX.match(sha256 or ""):
            return False
        path = self.blob_path(sha256)
        return os.path.isfile(path) and (size is None or os.path.getsize(path) == size)

    def put_blob(self, data: bytes) -> str:
        sha256 = hashlib.sha256(data).hexdigest()
        if not self.has_blob(sha256, len(data)):
            handle, temporary = tempfile.mkstemp(dir=os.path.join(self.root, "tmp"))
            with os.fdopen(handle, "wb") as out:
                out.write(data)
            os.makedirs(os.path.dirname(self.blob_path(sha256)), exist_ok=True)
            os.replace(temporary, self.blob_path(sha256))
        return sha256

    def put_blob_file(self, path: str) -> tuple[str, int]:
        """Moves `path` into the store (its name is its SHA-256)."""
        digest = hashlib.sha256()
        with open(path, "rb") as source:
            for chunk in iter(lambda: source.read(COPY_CHUNK), b""):
                digest.update(chunk)
        sha256, size = digest.hexdigest(), os.path.getsize(path)
        os.makedirs(os.path.dirname(self.blob_path(sha256)), exist_ok=True)
        os.replace(path, self.blob_path(sha256))
        return sha256, size

    def read_blob(self, sha256: str) -> bytes:
        with open(self.blob_path(sha256), "rb") as source:
            return source.read()

    # repos and commits

    def repo_dir(self, kind: str, repo_id: str) -> str:
        return os.path.join(self.root, "repos", PLURAL[kind], *repo_id.split("/"))

    def load_repo(self, kind: str, repo_id: str):
        try:
            with open(os.path.join(self.repo_dir(kind, repo_id), "repo.json")) as source:
                return json.load(source)
        except FileNotFoundError:
            return None

    def save_repo(self, kind: str, repo_id: str, repo: dict) -> None:
        self._write_json(os.path.join(self.repo_dir(kind, repo_id), "repo.json"), repo)

    def load_commit(self, kind: str, repo_id: str, sha: str):
        try:
            with open(os.path.join(self.repo_dir(kind, repo_id), "commits", sha + ".json")) as source:
                return json.load(source)
        except FileNotFoundError:
            return None

    def resolve(self, kind: str, repo_id: str, repo: dict, revision: str):
        """The commit SHA a branch, tag, full ref or full SHA names; None if it names nothing."""
        refs, tags = repo["refs"], repo.get("tags", {})
        for name in (revision, revision.removeprefix("refs/heads/")):
            if name in refs:
                return refs[name]
        if revision.removeprefix("refs/tags/") in tags:
            return tags[revision.removeprefix("refs/tags/")]
        if SHA1_HEX.match(revision) and self.load_commit(kind, repo_id, revision):
            return revision
        return None

    def entry_for(self, path: str, data: bytes, gitattributes: str) -> dict:
        if self.upload_mode(path, len(data), data[:512], gitattributes) == "lfs":
            return self.lfs_entry(self.put_blob(data), len(data))
        return self.regular_entry(data)

    def regular_entry(self, data: bytes) -> dict:
        return {"sha256": self.put_blob(data), "size": len(data), "lfs": False, "git_oid": git_blob_oid(data)}

    def lfs_entry(self, sha256: str, size: int) -> dict:
        pointer = lfs_pointer(sha256, size)
        return {"sha256": sha256, "size": size, "lfs": True, "git_oid": git_blob_oid(pointer),
                "pointer_size": len(pointer)}

    def upload_mode(self, path: str, size: int, sample: bytes, gitattributes: str) -> str:
        if size == 0:
            return "regular"
        if size >= self.lfs_threshold or b"\0" in sample:
            return "lfs"
        if any(matches_git_pattern(path, p) for p in gitattributes_lfs_patterns(gitattributes)):
            return "lfs"
        return "regular"

    def file_text(self, files: dict, path: str) -> str:
        entry = files.get(path)
        return self.read_blob(entry["sha256"]).decode("utf-8", "replace") if entry else ""

    def write_commit(self, kind, repo_id, parents, files, title, description="") -> str:
        body = json.dumps([parents, sorted(files.items()), title, description, time.time_ns(),
                           secrets.token_hex(8)], sort_keys=True).encode()
        sha = hashlib.sha1(body).hexdigest()
        commit = {"id": sha, "parents": parents, "title": title, "message": description,
                  "date": now_iso(), "files": files}
        self._write_json(os.path.join(self.repo_dir(kind, repo_id), "commits", sha + ".json"), commit)
        return sha

    def create_repo(self, kind, repo_id, private=False, gated=False) -> dict:
        gitattributes = INITIAL_GITATTRIBUTES.encode()
        files = {".gitattributes": self.entry_for(".gitattributes", gitattributes, "")}
        sha = self.write_commit(kind, repo_id, [], files, "initial commit")
        repo = {"private": bool(private), "gated": gated or False, "refs": {"main": sha},
                "tags": {}, "created_at": now_iso(), "pr_count": 0, "id": secrets.token_hex(12)}
        self.save_repo(kind, repo_id, repo)
        return repo

    def delete_repo(self, kind, repo_id) -> None:
        shutil.rmtree(self.repo_dir(kind, repo_id), ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# The HTTP side


class FakeHub(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, options):
        super().__init__(address, Handler)
        self.options = options
        self.store = Store(options.root, options.lfs_threshold)
        host, port = self.server_address[:2]
        self.base_url = f"http://{host}:{port}"
        self.cdn_url = f"http://{options.cdn_host}:{port}"
        self.log: list[dict] = []
        self.rules: list[dict] = []
        self.rule_count = 0
        self.hooks_lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FakeHub

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        if self.server.options.verbose:
            sys.stderr.write("fake_hub: " + (format % args) + "\n")

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = lambda self: self.dispatch()

    # -- plumbing ------------------------------------------------------------------------------

    def read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def dispatch(self) -> None:
        split = urllib.parse.urlsplit(self.path)
        self.raw_path, self.query_string = split.path, split.query
        self.query = urllib.parse.parse_qs(split.query, keep_blank_values=True)
        self.hold, self.responded, self.truncate_at = None, False, None
        self.body = self.read_body() if self.command in ("POST", "PUT", "DELETE", "PATCH") else b""
        self.sent, self.status_sent, self.injected = 0, 0, False
        if self.raw_path.startswith("/_fake/") and not self.raw_path.startswith(("/_fake/cdn/", "/_fake/lfs/")):
            return self.hooks()
        rule = self.matching_rule()
        try:
            if rule:
                self.apply_rule(rule)
            else:
                self.route()
        except HubError as error:
            self.send_error_response(error)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as error:  # a bug here must show as a 500, not as a hung client
            traceback.print_exc()
            if not self.responded:
                self.send_error_response(HubError(500, f"fake hub error: {error!r}"))
        finally:
            with self.server.hooks_lock:
                self.server.log.append({
                    "method": self.command, "path": self.raw_path, "query": self.query_string,
                    "status": self.status_sent, "received": len(self.body), "sent": self.sent,
                    "range": self.headers.get("Range"), "injected": self.injected,
                    "host": self.headers.get("Host"), "authorized": bool(self.headers.get("Authorization")),
                })

    def matching_rule(self):
        target = self.raw_path + ("?" + self.query_string if self.query_string else "")
        with self.server.hooks_lock:
            for rule in self.server.rules:
                if rule.get("method") and rule["method"].upper() != self.command:
                    continue
                if re.search(rule["path"], target):
                    rule["times"] -= 1
                    if rule["times"] <= 0:
                        self.server.rules.remove(rule)
                    return dict(rule)
        return None

    def apply_rule(self, rule) -> None:
        self.injected = True
        if rule.get("truncate") is not None:
            self.truncate_at = int(rule["truncate"])
            return self.route()
        if rule.get("when") == "after":
            # The work happens and its answer is held back, as when a response is lost on the way.
            self.hold = []
            try:
                self.route()
            finally:
                self.hold, self.responded = None, False
        if rule.get("drop"):
            return self.drop()
        raise HubError(int(rule.get("status", 500)), rule.get("message", "injected failure"))

    def drop(self) -> None:
        self.close_connection = True
        self.status_sent = 0
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def send(self, status: int, body: bytes = b"", content_type: str = "application/json; charset=utf-8",
             headers: dict | None = None) -> None:
        if self.hold is not None:
            self.hold.append(status)
            self.responded = True
            return
        self.send_response(status)
        self.status_sent = status
        for name, value in (headers or {}).items():
            self.send_header(name, str(value))
        if status != 304:
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and status != 304 and body:
            self.wfile.write(body)
            self.sent += len(body)
        self.responded = True

    def send_json(self, value, status: int = 200, headers=None, content_type="application/json; charset=utf-8"):
        self.send(status, json.dumps(value).encode(), content_type, headers)

    def send_error_response(self, error: HubError) -> None:
        headers = dict(error.headers)
        if error.code:
            headers["X-Error-Code"] = error.code
        headers["X-Error-Message"] = error.message.replace("\n", " ")[:500]
        self.hold = None
        self.send_json({"error": error.message, **error.extra}, error.status, headers)

    def send_file(self, sha256: str, size: int, headers: dict) -> None:
        headers = dict(headers)
        headers["Accept-Ranges"] = "bytes"
        wanted = parse_range(self.headers.get("Range"), size)
        if wanted == "bad":
            raise HubError(416, "Requested range not satisfiable", headers={"Content-Range": f"bytes */{size}"})
        start, end, status = 0, size - 1, 200
        if wanted:
            start, end, status = wanted[0], wanted[1], 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        length = end - start + 1 if size else 0
        if self.hold is not None:
            self.hold.append(status)
            self.responded = True
            return
        self.send_response(status)
        self.status_sent = status
        headers.setdefault("Content-Type", "application/octet-stream")
        for name, value in headers.items():
            self.send_header(name, str(value))
        self.send_header("Content-Length", str(length))
        self.end_headers()
        self.responded = True
        if self.command == "HEAD" or length == 0:
            return
        limit = self.truncate_at
        remaining = length if limit is None else min(length, limit)
        with open(self.server.store.blob_path(sha256), "rb") as source:
            source.seek(start)
            while remaining > 0:
                chunk = source.read(min(COPY_CHUNK, remaining))
                if not chunk:
                    break
                self.wfile.write(chunk)
                self.sent += len(chunk)
                remaining -= len(chunk)
        if limit is not None and limit < length:
            self.wfile.flush()
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

    # -- auth ----------------------------------------------------------------------------------

    def token(self):
        """None without a token; raises 401 for one this server does not accept."""
        header = self.headers.get("Authorization", "")
        if not header:
            return None
        scheme, _, value = header.partition(" ")
        value = value.strip()
        expected = self.server.options.token
        if scheme.lower() != "bearer" or not value or (expected is not None and value != expected):
            raise HubError(401, "Invalid credentials in Authorization header")
        return value

    def readable_repo(self, kind: str, repo_id: str) -> dict:
        token = self.token()
        repo = self.server.store.load_repo(kind, repo_id)
        if repo is None or (repo["private"] and token is None):
            raise HubError(404 if token else 401, "Repository not found", "RepoNotFound")
        if repo.get("gated") and token is None:
            raise HubError(401, f"Access to {kind} {repo_id} is restricted. You must be authenticated "
                           "to access it.", "GatedRepo")
        return repo

    def writable_repo(self, kind: str, repo_id: str) -> dict:
        if self.token() is None:
            raise HubError(401, "You must be authenticated to do this", "RepoNotFound")
        return self.readable_repo(kind, repo_id)

    def commit_at(self, kind, repo_id, repo, revision):
        sha = self.server.store.resolve(kind, repo_id, repo, revision)
        if sha is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return sha, self.server.store.load_commit(kind, repo_id, sha)

    def repo_url(self, kind, repo_id) -> str:
        prefix = "" if kind == "model" else PLURAL[kind] + "/"
        return f"{self.server.base_url}/{prefix}{repo_id}"

    # -- routing -------------------------------------------------------------------------------

    def route(self) -> None:
        segments = [urllib.parse.unquote(s) for s in self.raw_path.split("/")[1:]]
        method = self.command
        if segments[:1] == ["_fake"]:
            return self.storage(segments[1:])
        if segments[:1] == ["api"]:
            return self.api(segments[1:])
        kind = KINDS.get(segments[0]) if segments[0] in ("datasets", "spaces") else "model"
        rest = segments[1:] if kind != "model" else segments
        if len(rest) >= 2 and rest[1].endswith(".git") and rest[2:5] == ["info", "lfs", "objects"]:
            repo_id = rest[0] + "/" + rest[1][: -len(".git")]
            if rest[5:] == ["batch"] and method == "POST":
                return self.lfs_batch(kind, repo_id)
            if rest[5:] == ["verify"] and method == "POST":
                return self.lfs_verify(kind, repo_id)
        if len(rest) >= 5 and rest[2] == "resolve" and method in ("GET", "HEAD"):
            revision, path = self.split_revision(rest[3:])
            return self.resolve_file(kind, rest[0] + "/" + rest[1], revision, "/".join(path))
        raise HubError(404, "Sorry, we can't find the page you are looking for.")

    @staticmethod
    def split_revision(parts: list[str]):
        """Revisions arrive percent-encoded as one segment; tolerate refs/... sent with raw slashes."""
        if parts[0] == "refs" and len(parts) >= 3:
            return "/".join(parts[:3]), parts[3:]
        return parts[0], parts[1:]

    def api(self, parts: list[str]) -> None:
        method = self.command
        if parts == ["whoami-v2"] and method == "GET":
            return self.whoami()
        if parts == ["validate-yaml"] and method == "POST":
            return self.send_json({"errors": [], "warnings": []})
        if parts == ["repos", "create"] and method == "POST":
            return self.create_repo()
        if parts == ["repos", "delete"] and method == "DELETE":
            return self.delete_repo()
        if len(parts) >= 3 and parts[0] in KINDS:
            kind, repo_id, rest = KINDS[parts[0]], parts[1] + "/" + parts[2], parts[3:]
            action = rest[0] if rest else None
            if action is None and method == "GET":
                return self.info(kind, repo_id, "main")
            if action == "revision" and len(rest) >= 2 and method == "GET":
                return self.info(kind, repo_id, self.split_revision(rest[1:])[0])
            if action == "tree" and len(rest) >= 2 and method == "GET":
                revision, path = self.split_revision(rest[1:])
                return self.tree(kind, repo_id, revision, "/".join(path))
            if action == "paths-info" and len(rest) >= 2 and method == "POST":
                return self.paths_info(kind, repo_id, self.split_revision(rest[1:])[0])
            if action == "refs" and method == "GET":
                return self.refs(kind, repo_id)
            if action == "commits" and len(rest) >= 2 and method == "GET":
                return self.commits(kind, repo_id, self.split_revision(rest[1:])[0])
            if action == "preupload" and len(rest) >= 2 and method == "POST":
                return self.preupload(kind, repo_id, self.split_revision(rest[1:])[0])
            if action == "commit" and len(rest) >= 2 and method == "POST":
                return self.commit(kind, repo_id, self.split_revision(rest[1:])[0])
            if action == "branch" and len(rest) >= 2 and method in ("POST", "DELETE"):
                return self.branch(kind, repo_id, "/".join(rest[1:]))
            if action == "tag" and len(rest) >= 2 and method in ("POST", "DELETE"):
                return self.tag(kind, repo_id, "/".join(rest[1:]))
            if action == "settings" and method == "PUT":
                return self.settings(kind, repo_id)
            if action == "parquet" and kind == "dataset" and method == "GET":
                return self.parquet(repo_id, rest[1:])
        raise HubError(404, "Sorry, we can't find the page you are looking for.")

    def json_body(self):
        try:
            return json.loads(self.body or b"{}")
        except ValueError as error:
            raise HubError(400, f"invalid JSON body: {error}") from None

    # -- account and repos ---------------------------------------------------------------------

    def whoami(self) -> None:
        if self.token() is None:
            raise HubError(401, "Invalid credentials in Authorization header")
        user = self.server.options.user
        self.send_json({"type": "user", "id": hashlib.sha1(user.encode()).hexdigest()[:24], "name": user,
                        "fullname": user, "orgs": [], "isPro": False,
                        "auth": {"type": "access_token", "accessToken": {"displayName": "fake", "role": "write"}}})

    def repo_from_body(self, body: dict):
        kind = body.get("type") or "model"
        if kind not in PLURAL:
            raise HubError(400, f"Invalid repo type {kind!r}")
        name, owner = body.get("name") or "", body.get("organization") or self.server.options.user
        if "/" in name:
            owner, name = name.split("/", 1)
        if not NAME.match(name) or not NAME.match(owner):
            raise HubError(400, f"Invalid repo name {owner}/{name}")
        return kind, f"{owner}/{name}"

    def create_repo(self) -> None:
        if self.token() is None:
            raise HubError(401, "You must be authenticated to create a repo")
        body = self.json_body()
        kind, repo_id = self.repo_from_body(body)
        private = body.get("private") in (True, "true", "True", 1) or body.get("visibility") == "private"
        store = self.server.store
        with store.mutate():
            if store.load_repo(kind, repo_id) is not None:
                # The client reads "url" from this answer when it was asked not to mind (exist_ok).
                raise HubError(409, f"You already created this {kind} repo",
                               extra={"url": self.repo_url(kind, repo_id)})
            repo = store.create_repo(kind, repo_id, private=private)
        self.send_json({"url": self.repo_url(kind, repo_id), "name": repo_id, "id": repo["id"]})

    def delete_repo(self) -> None:
        kind, repo_id = self.repo_from_body(self.json_body())
        self.writable_repo(kind, repo_id)
        with self.server.store.mutate():
            self.server.store.delete_repo(kind, repo_id)
        self.send(200, b"", "text/plain")

    def settings(self, kind, repo_id) -> None:
        self.writable_repo(kind, repo_id)
        body = self.json_body()
        store = self.server.store
        with store.mutate():
            repo = store.load_repo(kind, repo_id)
            if "private" in body:
                repo["private"] = bool(body["private"])
            if "gated" in body:
                repo["gated"] = body["gated"]
            store.save_repo(kind, repo_id, repo)
        self.send_json({"private": repo["private"], "gated": repo["gated"]})

    # -- reading -------------------------------------------------------------------------------

    def info(self, kind, repo_id, revision) -> None:
        repo = self.readable_repo(kind, repo_id)
        sha, commit = self.commit_at(kind, repo_id, repo, revision)
        store = self.server.store
        blobs = self.query.get("blobs", [""])[0].lower() in ("1", "true")
        siblings = []
        for path, entry in sorted(commit["files"].items()):
            sibling = {"rfilename": path}
            if blobs:
                sibling.update(size=entry["size"], blobId=entry["git_oid"])
                if entry["lfs"]:
                    sibling["lfs"] = {"sha256": entry["sha256"], "size": entry["size"],
                                      "pointerSize": entry["pointer_size"]}
            siblings.append(sibling)
        info = {
            "_id": repo["id"], "id": repo_id, "author": repo_id.split("/")[0], "sha": sha,
            "lastModified": commit["date"], "createdAt": repo["created_at"], "private": repo["private"],
            "gated": repo.get("gated") or False, "disabled": False, "downloads": 0, "likes": 0,
            "tags": [], "siblings": siblings,
            "usedStorage": sum(e["size"] for e in commit["files"].values()),
        }
        if kind == "model":
            info["modelId"] = repo_id
        if "README.md" in commit["files"]:
            data = card_data(store.read_blob(commit["files"]["README.md"]["sha256"]))
            if data is not None:
                info["cardData"] = data
                if isinstance(data.get("tags"), list):
                    info["tags"] = [str(t) for t in data["tags"]]
        self.send_json(info)

    def tree_entry(self, kind, repo_id, commit, path, is_dir, expand) -> dict:
        files = commit["files"]
        if is_dir:
            below = sorted((p, e["git_oid"]) for p, e in files.items() if p.startswith(path + "/"))
            entry = {"type": "directory", "oid": hashlib.sha1(repr(below).encode()).hexdigest(),
                     "size": 0, "path": path}
        else:
            stored = files[path]
            entry = {"type": "file", "oid": stored["git_oid"], "size": stored["size"], "path": path}
            if stored["lfs"]:
                entry["lfs"] = {"oid": stored["sha256"], "size": stored["size"],
                                "pointerSize": stored["pointer_size"]}
        if expand:
            last = self.last_commit_touching(kind, repo_id, commit, path, is_dir)
            entry["lastCommit"] = {"id": last["id"], "title": last["title"], "date": last["date"]}
            if not is_dir:
                entry["securityFileStatus"] = {"status": "safe", "avScan": {"virusFound": False},
                                               "pickleImportScan": None}
        return entry

    def last_commit_touching(self, kind, repo_id, commit, path, is_dir) -> dict:
        def view(files):
            if is_dir:
                return sorted((p, e["git_oid"]) for p, e in files.items() if p.startswith(path + "/"))
            entry = files.get(path)
            return entry and entry["git_oid"]

        current, wanted = commit, view(commit["files"])
        while current["parents"]:
            parent = self.server.store.load_commit(kind, repo_id, current["parents"][0])
            if parent is None or view(parent["files"]) != wanted:
                break
            current = parent
        return current

    @staticmethod
    def directories(files: dict) -> set[str]:
        found = set()
        for path in files:
            parts = path.split("/")[:-1]
            for depth in range(1, len(parts) + 1):
                found.add("/".join(parts[:depth]))
        return found

    def tree(self, kind, repo_id, revision, path) -> None:
        repo = self.readable_repo(kind, repo_id)
        sha, commit = self.commit_at(kind, repo_id, repo, revision)
        path = path.strip("/")
        files, dirs = commit["files"], self.directories(commit["files"])
        if path and path not in dirs:
            raise HubError(404, f"{path} does not exist on \"{revision}\"", "EntryNotFound",
                           headers={"X-Repo-Commit": sha})
        recursive = self.query.get("recursive", ["false"])[0].lower() in ("1", "true")
        expand = self.query.get("expand", ["false"])[0].lower() in ("1", "true")
        prefix = path + "/" if path else ""

        def wanted(candidate):
            if not candidate.startswith(prefix):
                return False
            return recursive or "/" not in candidate[len(prefix):]

        listing = [(d, True) for d in sorted(dirs) if wanted(d)]
        listing += [(f, False) for f in sorted(files) if wanted(f)]
        page_size = self.server.options.page_size if not expand else min(50, self.server.options.page_size)
        cursor = self.query.get("cursor", [""])[0]
        try:
            start = int(base64.urlsafe_b64decode(cursor.encode()).decode()) if cursor else 0
        except ValueError:
            raise HubError(400, "Invalid cursor") from None
        page = listing[start : start + page_size]
        headers = {}
        if start + page_size < len(listing):
            query = dict((k, v[0]) for k, v in self.query.items() if k != "cursor")
            query["cursor"] = base64.urlsafe_b64encode(str(start + page_size).encode()).decode()
            headers["Link"] = f"<{self.server.base_url}{self.raw_path}?{urllib.parse.urlencode(query)}>; rel=\"next\""
        self.send_json([self.tree_entry(kind, repo_id, commit, p, d, expand) for p, d in page], headers=headers)

    def paths_info(self, kind, repo_id, revision) -> None:
        repo = self.readable_repo(kind, repo_id)
        _, commit = self.commit_at(kind, repo_id, repo, revision)
        if self.headers.get("Content-Type", "").startswith("application/json"):
            body = self.json_body()
            paths, expand = body.get("paths", []), bool(body.get("expand"))
        else:
            form = urllib.parse.parse_qs(self.body.decode(), keep_blank_values=True)
            paths, expand = form.get("paths", []), form.get("expand", ["False"])[0].lower() in ("1", "true")
        dirs, result = self.directories(commit["files"]), []
        for path in paths:
            path = path.strip("/")
            if path in commit["files"]:
                result.append(self.tree_entry(kind, repo_id, commit, path, False, expand))
            elif path in dirs:
                result.append(self.tree_entry(kind, repo_id, commit, path, True, expand))
        self.send_json(result)

    def refs(self, kind, repo_id) -> None:
        repo = self.readable_repo(kind, repo_id)
        branches, converts, prs = [], [], []
        for name, sha in sorted(repo["refs"].items()):
            if name.startswith("refs/convert/"):
                converts.append({"name": name.split("/", 2)[2], "ref": name, "targetCommit": sha})
            elif name.startswith("refs/pr/"):
                prs.append({"name": name.split("/", 2)[2], "ref": name, "targetCommit": sha})
            else:
                branches.append({"name": name, "ref": f"refs/heads/{name}", "targetCommit": sha})
        tags = [{"name": n, "ref": f"refs/tags/{n}", "targetCommit": s}
                for n, s in sorted(repo.get("tags", {}).items())]
        result = {"branches": branches, "converts": converts, "tags": tags}
        if self.query.get("include_prs", ["0"])[0] in ("1", "true"):
            result["pullRequests"] = prs
        self.send_json(result)

    def commits(self, kind, repo_id, revision) -> None:
        repo = self.readable_repo(kind, repo_id)
        sha, commit = self.commit_at(kind, repo_id, repo, revision)
        history = []
        while commit is not None:
            history.append({"id": commit["id"], "title": commit["title"], "message": commit["message"],
                            "authors": [{"user": self.server.options.user}], "date": commit["date"]})
            parent = commit["parents"][0] if commit["parents"] else None
            commit = self.server.store.load_commit(kind, repo_id, parent) if parent else None
        self.send_json(history)

    def resolve_file(self, kind, repo_id, revision, path) -> None:
        repo = self.readable_repo(kind, repo_id)
        sha, commit = self.commit_at(kind, repo_id, repo, revision)
        entry = commit["files"].get(path)
        if entry is None:
            raise HubError(404, "Entry not found", "EntryNotFound", headers={"X-Repo-Commit": sha})
        etag = f'"{entry["git_oid"]}"'
        headers = {"X-Repo-Commit": sha, "ETag": etag}
        wanted = self.headers.get("If-None-Match", "")
        candidates = {t.strip().removeprefix("W/") for t in wanted.split(",") if t.strip()}
        if entry["lfs"]:
            linked = f'"{entry["sha256"]}"'
            headers.update({"X-Linked-Etag": linked, "X-Linked-Size": entry["size"]})
            if candidates & {etag, linked}:
                return self.send(304, headers=headers)
            name = urllib.parse.urlencode({"name": path.rsplit("/", 1)[-1]})
            headers["Location"] = f"{self.server.cdn_url}/_fake/cdn/{entry['sha256']}?{name}"
            return self.send(302, b"", "text/plain; charset=utf-8", headers)
        if etag in candidates:
            return self.send(304, headers=headers)
        headers["Content-Type"] = mimetypes.guess_type(path)[0] or "application/octet-stream"
        self.send_file(entry["sha256"], entry["size"], headers)

    def parquet(self, repo_id, rest) -> None:
        repo = self.readable_repo("dataset", repo_id)
        if PARQUET_REF not in repo["refs"]:
            raise HubError(404, "No parquet conversion for this dataset", "RevisionNotFound")
        _, commit = self.commit_at("dataset", repo_id, repo, PARQUET_REF)
        shards: dict[str, dict[str, list[str]]] = {}
        for path in sorted(commit["files"]):
            parts = path.split("/")
            if len(parts) == 3 and parts[2].endswith(".parquet"):
                split = parts[1].removeprefix("partial-")
                shards.setdefault(parts[0], {}).setdefault(split, []).append(path)
        base = f"{self.server.base_url}/api/datasets/{repo_id}/parquet"

        def urls(config, split):
            return [f"{base}/{config}/{split}/{n}.parquet" for n in range(len(shards[config][split]))]

        if not rest:
            return self.send_json({c: {s: urls(c, s) for s in splits} for c, splits in shards.items()})
        if rest[0] not in shards:
            raise HubError(404, f"Config {rest[0]!r} not found", "EntryNotFound")
        config = rest[0]
        if len(rest) == 1:
            return self.send_json({s: urls(config, s) for s in shards[config]})
        if rest[1] not in shards[config]:
            raise HubError(404, f"Split {rest[1]!r} not found", "EntryNotFound")
        if len(rest) == 2:
            return self.send_json(urls(config, rest[1]))
        match = re.fullmatch(r"(\d+)\.parquet", rest[2]) if len(rest) == 3 else None
        files = shards[config][rest[1]]
        if not match or int(match.group(1)) >= len(files):
            raise HubError(404, "Shard not found", "EntryNotFound")
        target = urllib.parse.quote(files[int(match.group(1))])
        revision = urllib.parse.quote(PARQUET_REF, safe="")
        self.send(302, b"", "text/plain", {"Location": f"/datasets/{repo_id}/resolve/{revision}/{target}"})

    # -- writing -------------------------------------------------------------------------------

    def branch(self, kind, repo_id, name) -> None:
        self.writable_repo(kind, repo_id)
        store = self.server.store
        with store.mutate():
            repo = store.load_repo(kind, repo_id)
            if self.command == "DELETE":
                if name not in repo["refs"] or name == "main":
                    raise HubError(404 if name != "main" else 403, f"Cannot delete branch {name}", "RevisionNotFound")
                del repo["refs"][name]
            else:
                body = self.json_body()
                if name in repo["refs"]:
                    raise HubError(409, "Reference already exists")
                if body.get("emptyBranch"):
                    repo["refs"][name] = store.write_commit(kind, repo_id, [], {}, f"Create branch {name}")
                else:
                    start, _ = self.commit_at(kind, repo_id, repo, body.get("startingPoint") or "main")
                    repo["refs"][name] = start
            store.save_repo(kind, repo_id, repo)
        self.send_json({})

    def tag(self, kind, repo_id, revision_or_tag) -> None:
        self.writable_repo(kind, repo_id)
        store = self.server.store
        with store.mutate():
            repo = store.load_repo(kind, repo_id)
            tags = repo.setdefault("tags", {})
            if self.command == "DELETE":
                if revision_or_tag not in tags:
                    raise HubError(404, f"Tag {revision_or_tag} not found", "RevisionNotFound")
                del tags[revision_or_tag]
            else:
                name = self.json_body().get("tag") or ""
                if not name:
                    raise HubError(400, "Missing tag name")
                if name in tags:
                    raise HubError(409, "Tag already exists")
                tags[name], _ = self.commit_at(kind, repo_id, repo, revision_or_tag)
            store.save_repo(kind, repo_id, repo)
        self.send_json({})

    def preupload(self, kind, repo_id, revision) -> None:
        repo = self.writable_repo(kind, repo_id)
        sha, commit = self.commit_at(kind, repo_id, repo, revision)
        store = self.server.store
        body = self.json_body()
        files = body.get("files")
        if not isinstance(files, list):
            raise HubError(400, "Expected {\"files\": [...]}")
        gitattributes = store.file_text(commit["files"], ".gitattributes")
        gitignore = body.get("gitIgnore")
        if gitignore is None:
            gitignore = store.file_text(commit["files"], ".gitignore")
        answer = []
        for item in files:
            path = str(item.get("path", ""))
            size = int(item.get("size", 0))
            try:
                sample = base64.b64decode(item.get("sample") or "")
            except ValueError:
                raise HubError(400, f"Invalid sample for {path}") from None
            entry = {"path": path, "uploadMode": store.upload_mode(path, size, sample, gitattributes),
                     "shouldIgnore": gitignore_matches(path, gitignore)}
            existing = commit["files"].get(path)
            if existing:
                entry["oid"] = existing["sha256"] if existing["lfs"] else existing["git_oid"]
            answer.append(entry)
        self.send_json({"files": answer, "commitOid": sha})

    def commit(self, kind, repo_id, revision) -> None:
        self.writable_repo(kind, repo_id)
        store = self.server.store
        try:
            lines = [json.loads(line) for line in self.body.decode().splitlines() if line.strip()]
        except ValueError as error:
            raise HubError(400, f"Invalid NDJSON: {error}") from None
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "The first line must be the header")
        header = lines[0].get("value") or {}
        if not str(header.get("summary", "")).strip():
            raise HubError(400, "A commit summary is required")
        create_pr = self.query.get("create_pr", ["0"])[0] in ("1", "true", "True")
        strict = not self.server.options.lenient_commits
        with store.mutate():
            repo = store.load_repo(kind, repo_id)
            if revision not in repo["refs"] and revision.removeprefix("refs/heads/") not in repo["refs"]:
                if store.resolve(kind, repo_id, repo, revision):
                    raise HubError(400, f"Invalid rev id: {revision} is not a branch", "RevisionNotFound")
                raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
            branch = revision.removeprefix("refs/heads/")
            head = repo["refs"][branch]
            parent = header.get("parentCommit")
            if parent and parent != head and not create_pr:
                raise HubError(412, "A commit has happened since. Please refresh and try again.")
            base = parent if parent and create_pr else head
            files = dict(store.load_commit(kind, repo_id, base)["files"])
            for number, line in enumerate(lines[1:], start=2):
                key, value = line.get("key"), line.get("value") or {}
                path = str(value.get("path", "")).strip("/")
                if not path or ".." in path.split("/") or path.startswith(".git/"):
                    raise HubError(400, f"line {number}: invalid path {path!r}")
                if key == "file":
                    if value.get("encoding", "base64") != "base64":
                        raise HubError(400, f"line {number}: unsupported encoding")
                    try:
                        data = base64.b64decode(value.get("content", ""), validate=True)
                    except ValueError:
                        raise HubError(400, f"line {number}: content is not valid base64") from None
                    if strict and len(data) >= store.lfs_threshold:
                        raise HubError(400, f"Your push was rejected because it contains files larger than "
                                       f"{store.lfs_threshold} bytes ({path}). Please use LFS to store large files.")
                    if strict and b"\0" in data[:512]:
                        raise HubError(400, f"Your push was rejected because it contains binary files ({path}). "
                                       "Please use LFS to store binary files.")
                    files[path] = store.regular_entry(data)
                elif key == "lfsFile":
                    oid, size = str(value.get("oid", "")), value.get("size")
                    if value.get("algo", "sha256") != "sha256" or not SHA256_HEX.match(oid):
                        raise HubError(400, f"line {number}: lfsFile needs a sha256 oid")
                    if not store.has_blob(oid):
                        raise HubError(400, f"line {number}: LFS object {oid} for {path} was not uploaded")
                    actual = os.path.getsize(store.blob_path(oid))
                    if size is not None and int(size) != actual:
                        raise HubError(400, f"line {number}: LFS object {oid} has {actual} bytes, not {size}")
                    files[path] = store.lfs_entry(oid, actual)
                elif key == "deletedFile":
                    if path not in files:
                        raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                    del files[path]
                elif key == "deletedFolder":
                    doomed = [p for p in files if p.startswith(path + "/")]
                    if not doomed:
                        raise HubError(404, f"A folder with this name doesn't exist: {path}", "EntryNotFound")
                    for p in doomed:
                        del files[p]
                else:
                    raise HubError(400, f"line {number}: unknown key {key!r}")
            sha = store.write_commit(kind, repo_id, [base], files, str(header["summary"]),
                                     str(header.get("description") or ""))
            pr_url = None
            if create_pr:
                repo["pr_count"] = repo.get("pr_count", 0) + 1
                repo["refs"][f"refs/pr/{repo['pr_count']}"] = sha
                pr_url = f"{self.repo_url(kind, repo_id)}/discussions/{repo['pr_count']}"
            else:
                repo["refs"][branch] = sha
            store.save_repo(kind, repo_id, repo)
        self.send_json({"success": True, "commitOid": sha, "commitUrl": f"{self.repo_url(kind, repo_id)}/commit/{sha}",
                        "hookOutput": "", "pullRequestUrl": pr_url})

    # -- LFS -----------------------------------------------------------------------------------

    def lfs_batch(self, kind, repo_id) -> None:
        body = self.json_body()
        operation = body.get("operation")
        if operation == "upload":
            self.writable_repo(kind, repo_id)
        else:
            self.readable_repo(kind, repo_id)
        offered = body.get("transfers") or ["basic"]
        if "basic" not in offered and "multipart" not in offered:
            raise HubError(422, "None of the offered transfers is supported (basic, multipart)")
        store, base = self.server.store, self.server.base_url
        chunk = self.server.options.multipart_chunk
        transfer, objects = "basic", []
        auth = {"Authorization": self.headers["Authorization"]} if self.headers.get("Authorization") else {}
        prefix = "" if kind == "model" else PLURAL[kind] + "/"
        for item in body.get("objects") or []:
            oid, size = str(item.get("oid", "")), item.get("size")
            result = {"oid": oid, "size": size}
            if not SHA256_HEX.match(oid) or not isinstance(size, int) or size < 0:
                result["error"] = {"code": 422, "message": "Invalid object (oid must be a sha256, size an integer)"}
            elif operation == "download":
                if store.has_blob(oid, size):
                    result["actions"] = {"download": {"href": f"{self.server.cdn_url}/_fake/cdn/{oid}"}}
                else:
                    result["error"] = {"code": 404, "message": "Object does not exist"}
            elif operation != "upload":
                raise HubError(400, f"Unknown operation {operation!r}")
            elif not store.has_blob(oid, size):
                verify = {"href": f"{base}/{prefix}{repo_id}.git/info/lfs/objects/verify", "header": auth}
                if "multipart" in offered and size > chunk:
                    transfer = "multipart"
                    upload_id = secrets.token_hex(8)
                    header = {"chunk_size": str(chunk)}
                    for part in range(1, (size + chunk - 1) // chunk + 1):
                        header[f"{part:05d}"] = f"{base}/_fake/lfs/part/{oid}/{part}?upload={upload_id}"
                    upload = {"href": f"{base}/_fake/lfs/complete/{oid}?upload={upload_id}", "header": header}
                else:
                    upload = {"href": f"{base}/_fake/lfs/upload/{oid}?size={size}"}
                result.update(authenticated=True, actions={"upload": upload, "verify": verify})
            objects.append(result)
        self.send_json({"transfer": transfer, "objects": objects, "hash_algo": "sha256"}, content_type=LFS_JSON)

    def lfs_verify(self, kind, repo_id) -> None:
        self.writable_repo(kind, repo_id)
        body = self.json_body()
        if not self.server.store.has_blob(str(body.get("oid", "")), body.get("size")):
            raise HubError(404, "Object not found or size mismatch")
        self.send_json({"success": True}, content_type=LFS_JSON)

    def storage(self, parts: list[str]) -> None:
        """The CDN and the pre-signed upload URLs: no token, as with the Hub's storage."""
        store, method = self.server.store, self.command
        if parts[:1] == ["cdn"] and len(parts) == 2 and method in ("GET", "HEAD"):
            if not store.has_blob(parts[1]):
                raise HubError(404, "NoSuchKey")
            name = self.query.get("name", [""])[0]
            headers = {"ETag": f'"{parts[1]}"',
                       "Content-Type": mimetypes.guess_type(name)[0] or "application/octet-stream"}
            return self.send_file(parts[1], os.path.getsize(store.blob_path(parts[1])), headers)
        if parts[:2] == ["lfs", "upload"] and len(parts) == 3 and method == "PUT":
            if hashlib.sha256(self.body).hexdigest() != parts[2]:
                raise HubError(400, "Uploaded content does not match its oid")
            store.put_blob(self.body)
            return self.send(200, b"", "text/plain", {"ETag": f'"{hashlib.md5(self.body).hexdigest()}"'})
        upload_id = self.query.get("upload", [""])[0]
        if not re.fullmatch(r"[0-9a-f]{16}", upload_id):
            raise HubError(404, "Unknown upload")
        folder = os.path.join(store.root, "uploads", upload_id)
        if parts[:2] == ["lfs", "part"] and len(parts) == 4 and method == "PUT":
            os.makedirs(folder, exist_ok=True)
            with open(os.path.join(folder, f"{int(parts[3]):05d}"), "wb") as out:
                out.write(self.body)
            return self.send(200, b"", "text/plain", {"ETag": f'"{hashlib.md5(self.body).hexdigest()}"'})
        if parts[:2] == ["lfs", "complete"] and len(parts) == 3 and method == "POST":
            body = self.json_body()
            oid = parts[2]
            assembled = os.path.join(store.root, "tmp", f"{upload_id}.assembled")
            with open(assembled, "wb") as out:
                for part in sorted(body.get("parts", []), key=lambda p: p["partNumber"]):
                    path = os.path.join(folder, f"{int(part['partNumber']):05d}")
                    if not os.path.isfile(path):
                        raise HubError(400, f"Part {part['partNumber']} was not uploaded")
                    with open(path, "rb") as piece:
                        data = piece.read()
                    if part.get("etag", "").strip('"') != hashlib.md5(data).hexdigest():
                        raise HubError(400, f"Part {part['partNumber']} has the wrong etag")
                    out.write(data)
            digest = hashlib.sha256()
            with open(assembled, "rb") as source:
                for chunk in iter(lambda: source.read(COPY_CHUNK), b""):
                    digest.update(chunk)
            if digest.hexdigest() != oid:
                os.remove(assembled)
                raise HubError(400, "Assembled content does not match its oid")
            store.put_blob_file(assembled)
            shutil.rmtree(folder, ignore_errors=True)
            return self.send_json({"success": True})
        raise HubError(404, "Sorry, we can't find the page you are looking for.")

    # -- test hooks ----------------------------------------------------------------------------

    def hooks(self) -> None:
        path, method, server = self.raw_path, self.command, self.server
        with server.hooks_lock:
            if path == "/_fake/log" and method == "GET":
                return self.send_json(list(server.log))
            if path == "/_fake/log" and method == "DELETE":
                server.log.clear()
                return self.send_json({})
            if path == "/_fake/fail" and method == "GET":
                return self.send_json(list(server.rules))
            if path == "/_fake/fail" and method == "DELETE":
                server.rules.clear()
                return self.send_json({})
            if path == "/_fake/fail" and method == "POST":
                try:
                    rule = json.loads(self.body or b"{}")
                    re.compile(rule["path"])
                except (ValueError, KeyError, re.error) as error:
                    return self.send_json({"error": f"bad rule: {error!r}"}, 400)
                rule.setdefault("times", 1)
                rule.setdefault("status", 500)
                rule.setdefault("when", "before")
                server.rule_count += 1
                rule["id"] = server.rule_count
                server.rules.append(rule)
                return self.send_json(rule)
        self.send_json({"error": "unknown hook"}, 404)


# ---------------------------------------------------------------------------------------------
# Seeding


def seed(options) -> None:
    store = Store(options.root, options.lfs_threshold)
    kind, repo_id = options.type, options.repo
    if repo_id.count("/") != 1 or not all(NAME.match(p) for p in repo_id.split("/")):
        sys.exit(f"seed: --repo must be ORG/NAME, got {repo_id!r}")
    source = os.path.abspath(options.source)
    if not os.path.isdir(source):
        sys.exit(f"seed: {source} is not a folder")
    contents = {}
    for folder, subfolders, names in os.walk(source):
        subfolders[:] = sorted(d for d in subfolders if d != ".git")
        for name in sorted(names):
            full = os.path.join(folder, name)
            with open(full, "rb") as handle:
                contents[os.path.relpath(full, source).replace(os.sep, "/")] = handle.read()
    with store.mutate():
        repo = store.load_repo(kind, repo_id)
        if repo is None:
            repo = store.create_repo(kind, repo_id, private=options.private, gated="auto" if options.gated else False)
        else:
            repo["private"] = repo["private"] or options.private
            repo["gated"] = "auto" if options.gated else repo.get("gated", False)
        branch = options.branch
        parent = repo["refs"].get(branch) or repo["refs"]["main"]
        parent_files = store.load_commit(kind, repo_id, parent)["files"]
        if ".gitattributes" not in contents and ".gitattributes" in parent_files:
            contents[".gitattributes"] = store.read_blob(parent_files[".gitattributes"]["sha256"])
        gitattributes = contents.get(".gitattributes", b"").decode("utf-8", "replace")
        files = {path: store.entry_for(path, data, gitattributes) for path, data in contents.items()}
        sha = store.write_commit(kind, repo_id, [parent], files, options.message)
        repo["refs"][branch] = sha
        store.save_repo(kind, repo_id, repo)
    print(json.dumps({"repo": repo_id, "type": kind, "branch": branch, "commit": sha,
                      "files": {p: {"size": e["size"], "lfs": e["lfs"]} for p, e in sorted(files.items())}}))


# ---------------------------------------------------------------------------------------------


def main(argv: list[str]) -> None:
    if argv[:1] == ["seed"]:
        parser = argparse.ArgumentParser(prog="fake_hub.py seed",
                                         description="Import a local folder as one commit of a repo.")
        parser.add_argument("--root", required=True)
        parser.add_argument("--repo", required=True, help="ORG/NAME")
        parser.add_argument("--from", dest="source", required=True, help="the folder whose files become the tree")
        parser.add_argument("--type", default="dataset", choices=sorted(PLURAL))
        parser.add_argument("--branch", default="main", help="created from main when new (e.g. refs/convert/parquet)")
        parser.add_argument("--private", action="store_true")
        parser.add_argument("--gated", action="store_true")
        parser.add_argument("--message", default="Import files")
        parser.add_argument("--lfs-threshold", type=int, default=10 * 1024 * 1024)
        return seed(parser.parse_args(argv[1:]))

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", required=True, help="where repos and blobs live")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--cdn-host", default="localhost",
                        help="host name in LFS download URLs; must differ from --host so clients see another origin")
    parser.add_argument("--token", help="the only accepted token (default: any non-empty token)")
    parser.add_argument("--user", default="fake-user", help="the account a token belongs to")
    parser.add_argument("--page-size", type=int, default=1000, help="tree listing page size (the Hub's is 1000)")
    parser.add_argument("--lfs-threshold", type=int, default=10 * 1024 * 1024,
                        help="files this large (bytes) must go through LFS")
    parser.add_argument("--multipart-chunk", type=int, default=8 * 1024 * 1024,
                        help="LFS uploads larger than this use multipart when the client offers it")
    parser.add_argument("--lenient-commits", action="store_true",
                        help="accept large or binary files inline in a commit (the Hub rejects them)")
    parser.add_argument("--verbose", action="store_true")
    options = parser.parse_args(argv)
    server = FakeHub((options.host, options.port), options)
    print(server.base_url, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main(sys.argv[1:])
