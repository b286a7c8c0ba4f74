#!/usr/bin/env python3
"""Checks tests/hub/fake_hub.py against the real Python clients, huggingface_hub and datasets.

    python3 tests/hub/check_fake_hub.py [--keep]

Starts the fake on a free port with a temporary root, seeds a dataset, points HF_ENDPOINT at the
fake and drives the clients the way a user would. Prints one line per check and exits 0 when all
of them pass. Installs huggingface_hub and datasets with pip when they are missing.

The clients upload through Xet when hf_xet is installed; the fake speaks the LFS protocol only
(as the Hub still does for clients without Xet), so HF_HUB_DISABLE_XET=1 is set here.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import traceback
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
FAKE = HERE / "fake_hub.py"
TOKEN = "hf_fake_check_token"
REPO = "rejudge-test/prefs"
CARD = """---
license: mit
pretty_name: Tiny preference pairs
tags:
- dpo
configs:
- config_name: default
  default: true
  data_files:
  - split: train
    path: data/train-*.jsonl
  - split: test
    path: data/test-*.jsonl
- config_name: train_only
  data_files: data/train-*.jsonl
---
# Tiny preference pairs

Three rows, two splits.
"""
TRAIN_ROWS = [
    {"prompt": "2+2?", "chosen": "4", "rejected": "5"},
    {"prompt": "Capital of France?", "chosen": "Paris", "rejected": "Lyon"},
]
TEST_ROWS = [{"prompt": "Largest planet?", "chosen": "Jupiter", "rejected": "Mars"}]
WEIGHTS = bytes(range(256)) * 4096  # 1 MiB, binary: stored through LFS


def ensure_packages() -> None:
    missing = [name for name in ("huggingface_hub", "datasets", "pyarrow") if importlib.util.find_spec(name) is None]
    if missing:
        print(f"installing {' '.join(missing)} ...", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", *missing], check=True)


def jsonl(rows) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


def write_tree(folder: Path, files: dict[str, bytes | str]) -> Path:
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return folder


def seed(root: Path, folder: Path, *extra: str) -> dict:
    out = subprocess.run([sys.executable, str(FAKE), "seed", "--root", str(root), "--repo", REPO,
                          "--from", str(folder), *extra], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def http(base: str, method: str, path: str, body: bytes | None = None, token: str | None = None):
    request = urllib.request.Request(base + path, data=body, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if body is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def main() -> int:
    keep = "--keep" in sys.argv
    ensure_packages()
    work = Path(tempfile.mkdtemp(prefix="fake-hub-check-"))
    root = work / "root"

    # Seed before the server starts: main with a card and two splits, a branch, a Parquet conversion.
    main_files = write_tree(work / "seed-main", {
        "README.md": CARD,
        "data/train-00000-of-00001.jsonl": jsonl(TRAIN_ROWS),
        "data/test-00000-of-00001.jsonl": jsonl(TEST_ROWS),
        "weights/model.bin": WEIGHTS,
    })
    seeded = seed(root, main_files, "--message", "Add tiny preference pairs")
    v2 = write_tree(work / "seed-v2", {
        "README.md": CARD,
        "data/train-00000-of-00001.jsonl": jsonl(TRAIN_ROWS[:1]),
        "data/test-00000-of-00001.jsonl": jsonl(TEST_ROWS),
    })
    seeded_v2 = seed(root, v2, "--branch", "v2")
    import pyarrow as pa
    import pyarrow.parquet as pq

    conversion = work / "seed-parquet"
    for split, rows in (("train", TRAIN_ROWS), ("test", TEST_ROWS)):
        (conversion / "default" / split).mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(rows), conversion / "default" / split / "0000.parquet")
    seed(root, conversion, "--branch", "refs/convert/parquet", "--message", "Update parquet files")

    server = subprocess.Popen([sys.executable, str(FAKE), "--root", str(root), "--token", TOKEN,
                               "--page-size", "2"], stdout=subprocess.PIPE, text=True)
    base = server.stdout.readline().strip()
    print(f"fake hub at {base}, root {root}")

    hf_home = work / "hf-home"
    os.environ.update({
        "HF_ENDPOINT": base, "HF_HOME": str(hf_home), "HF_TOKEN": TOKEN, "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "HF_DATASETS_CACHE": str(work / "datasets-cache"), "HF_HUB_ETAG_TIMEOUT": "30",
    })
    os.environ.pop("HF_HUB_CACHE", None)
    os.environ.pop("HF_HUB_OFFLINE", None)

    import huggingface_hub
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    api = HfApi(endpoint=base, token=TOKEN)
    results: list[tuple[str, bool, str]] = []

    def check(name):
        def run(function):
            try:
                detail = function() or ""
                results.append((name, True, detail))
                print(f"PASS {name}{': ' + detail if detail else ''}", flush=True)
            except Exception as error:  # every check reports, whatever breaks
                results.append((name, False, repr(error)))
                print(f"FAIL {name}: {error!r}", flush=True)
                traceback.print_exc()
            return function
        return run

    def log():
        return json.loads(http(base, "GET", "/_fake/log")[2])

    def clear_log():
        http(base, "DELETE", "/_fake/log")

    try:
        @check("dataset_info: sha, siblings, cardData.configs")
        def _():
            info = api.dataset_info(REPO)
            assert info.sha == seeded["commit"], (info.sha, seeded["commit"])
            names = sorted(s.rfilename for s in info.siblings)
            assert names == [".gitattributes", "README.md", "data/test-00000-of-00001.jsonl",
                             "data/train-00000-of-00001.jsonl", "weights/model.bin"], names
            lfs = {s.rfilename: s.lfs for s in api.dataset_info(REPO, files_metadata=True).siblings}
            assert lfs["weights/model.bin"].sha256 == hashlib.sha256(WEIGHTS).hexdigest() and lfs["README.md"] is None
            assert [c["config_name"] for c in info.card_data["configs"]] == ["default", "train_only"]
            assert api.dataset_info(REPO, revision="v2").sha == seeded_v2["commit"]
            return f"sha {info.sha[:12]}, {len(names)} files"

        @check("snapshot_download(repo_type='dataset') into the standard cache")
        def _():
            path = Path(huggingface_hub.snapshot_download(REPO, repo_type="dataset"))
            cache = hf_home / "hub" / "datasets--rejudge-test--prefs"
            assert path == cache / "snapshots" / seeded["commit"], path
            assert (cache / "refs" / "main").read_text() == seeded["commit"]
            assert (path / "data/train-00000-of-00001.jsonl").read_text() == jsonl(TRAIN_ROWS)
            assert (path / "README.md").is_symlink() and (cache / "blobs").is_dir()
            assert (path / "weights/model.bin").read_bytes() == WEIGHTS
            return f"{sum(1 for p in path.rglob('*') if p.is_file())} files under {path.relative_to(hf_home)}"

        @check("hf_hub_download with a branch and with a commit sha")
        def _():
            file = "data/train-00000-of-00001.jsonl"
            on_branch = huggingface_hub.hf_hub_download(REPO, file, repo_type="dataset", revision="v2")
            assert Path(on_branch).read_text() == jsonl(TRAIN_ROWS[:1])
            on_sha = huggingface_hub.hf_hub_download(REPO, file, repo_type="dataset", revision=seeded["commit"])
            assert Path(on_sha).read_text() == jsonl(TRAIN_ROWS)
            assert (hf_home / "hub/datasets--rejudge-test--prefs/refs/v2").read_text() == seeded_v2["commit"]
            return f"v2 -> {seeded_v2['commit'][:12]}"

        @check("HF_HUB_OFFLINE=1 serves cached files without a request")
        def _():
            clear_log()
            code = ("import huggingface_hub, sys; p = huggingface_hub.hf_hub_download("
                    f"{REPO!r}, 'README.md', repo_type='dataset'); print(open(p).read()[:3])")
            out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "HF_HUB_OFFLINE": "1"},
                                 capture_output=True, text=True)
            assert out.returncode == 0 and out.stdout.startswith("---"), out.stderr[-500:]
            assert log() == [], log()
            return "no request reached the server"

        @check("an interrupted LFS download completes on retry; the CDN answers Range requests")
        def _():
            resume_cache = work / "resume-cache"
            clear_log()
            http(base, "POST", "/_fake/fail", json.dumps({"path": "^/_fake/cdn/", "truncate": 300_000}).encode())
            try:
                huggingface_hub.hf_hub_download(REPO, "weights/model.bin", repo_type="dataset", cache_dir=resume_cache)
            except Exception:
                pass  # the client may give up at once or retry by itself; either way a rerun must finish
            path = huggingface_hub.hf_hub_download(REPO, "weights/model.bin", repo_type="dataset",
                                                   cache_dir=resume_cache)
            assert Path(path).read_bytes() == WEIGHTS
            downloads = [e for e in log() if e["path"].startswith("/_fake/cdn/") and e["method"] == "GET"]
            assert downloads[0]["sent"] == 300_000 and downloads[0]["injected"], downloads
            # huggingface_hub reads 10 MB chunks, so a break this early leaves it nothing to resume
            # from; the Range answer itself is checked directly.
            cdn = base.replace("127.0.0.1", "localhost") + downloads[0]["path"]
            request = urllib.request.Request(cdn, headers={"Range": "bytes=300000-"})
            with urllib.request.urlopen(request) as response:
                assert response.status == 206, response.status
                assert response.headers["Content-Range"] == f"bytes 300000-{len(WEIGHTS) - 1}/{len(WEIGHTS)}"
                assert response.read() == WEIGHTS[300_000:]
            return f"{len(downloads)} GETs on the CDN; Range bytes=300000- answered 206"

        @check("list_repo_files / list_repo_tree across Link-paginated pages")
        def _():
            clear_log()
            files = api.list_repo_files(REPO, repo_type="dataset")
            assert sorted(files) == [".gitattributes", "README.md", "data/test-00000-of-00001.jsonl",
                                     "data/train-00000-of-00001.jsonl", "weights/model.bin"], files
            pages = [e for e in log() if "/tree/" in e["path"]]
            assert len(pages) >= 2, pages
            tree = list(api.list_repo_tree(REPO, repo_type="dataset", path_in_repo="data", expand=True))
            assert sorted(e.path for e in tree) == ["data/test-00000-of-00001.jsonl", "data/train-00000-of-00001.jsonl"]
            assert all(e.last_commit is not None for e in tree)
            return f"{len(files)} files over {len(pages)} pages"

        @check("list_repo_refs shows branches and the Parquet conversion")
        def _():
            refs = api.list_repo_refs(REPO, repo_type="dataset")
            assert sorted(b.name for b in refs.branches) == ["main", "v2"], refs
            assert [c.ref for c in refs.converts] == ["refs/convert/parquet"], refs

        @check("Parquet conversion listing and shard redirect")
        def _():
            status, _, body = http(base, "GET", f"/api/datasets/{REPO}/parquet", token=TOKEN)
            listing = json.loads(body)
            assert status == 200 and sorted(listing["default"]) == ["test", "train"], listing
            status, _, body = http(base, "GET", f"/api/datasets/{REPO}/parquet/default/train", token=TOKEN)
            urls = json.loads(body)
            assert urls == [f"{base}/api/datasets/{REPO}/parquet/default/train/0.parquet"], urls
            request = urllib.request.Request(urls[0], headers={"Authorization": f"Bearer {TOKEN}"})
            with urllib.request.urlopen(request) as response:
                data = response.read()
            assert data[:4] == b"PAR1", data[:8]
            converted = huggingface_hub.hf_hub_download(REPO, "default/test/0000.parquet", repo_type="dataset",
                                                        revision="refs/convert/parquet")
            assert pq.read_table(converted).to_pylist() == TEST_ROWS
            return f"{len(data)} bytes of Parquet"

        @check("DatasetCard.load reads the card's configs")
        def _():
            from huggingface_hub import DatasetCard

            card = DatasetCard.load(REPO)
            configs = card.data.to_dict()["configs"]
            assert configs[0]["data_files"][1] == {"split": "test", "path": "data/test-*.jsonl"}, configs
            return f"{len(configs)} configs"

        @check("datasets.load_dataset through the fake (configs from the card)")
        def _():
            import datasets

            train = datasets.load_dataset(REPO, split="train")
            test = datasets.load_dataset(REPO, split="test")
            only = datasets.load_dataset(REPO, "train_only", split="train")
            older = datasets.load_dataset(REPO, split="train", revision="v2")
            assert train.to_list() == TRAIN_ROWS and test.to_list() == TEST_ROWS, (train, test)
            assert only.num_rows == 2 and older.to_list() == TRAIN_ROWS[:1]
            return f"train {train.num_rows} rows, test {test.num_rows}, v2 train {older.num_rows}"

        target = "rejudge-test/published"

        @check("create_repo(repo_type='dataset', private=True), 409 and exist_ok")
        def _():
            url = api.create_repo(target, repo_type="dataset", private=True)
            assert url == f"{base}/datasets/{target}", url
            try:
                api.create_repo(target, repo_type="dataset")
                raise AssertionError("a second create_repo did not fail")
            except HfHubHTTPError as error:
                assert error.response.status_code == 409, error
            api.create_repo(target, repo_type="dataset", exist_ok=True)
            assert api.dataset_info(target).private is True
            return str(url)

        @check("private repo: 401 without a token, 404 for a missing repo with one")
        def _():
            anonymous = HfApi(endpoint=base, token=False)
            try:
                anonymous.dataset_info(target)
                raise AssertionError("anonymous read of a private repo succeeded")
            except RepositoryNotFoundError as error:
                assert error.response.status_code == 401, error.response.status_code
            status, headers, _ = http(base, "GET", "/api/datasets/rejudge-test/missing", token=TOKEN)
            assert status == 404 and headers.get("X-Error-Code") == "RepoNotFound", (status, headers)
            status, headers, _ = http(base, "GET", f"/api/datasets/{target}", token="hf_wrong")
            assert status == 401 and "Invalid credentials" in headers.get("X-Error-Message", ""), headers
            return "401 / 404 / 401 invalid credentials"

        big = os.urandom(10 * 1024 * 1024 + 4321)
        png = b"\x89PNG\r\n\x1a\n" + os.urandom(2000)
        upload = write_tree(work / "upload", {
            "README.md": "---\nlicense: mit\nconfigs:\n- config_name: default\n  data_files:\n"
                         "  - split: train\n    path: data/train-*.jsonl\n---\n# Published\n",
            "data/train-00000-of-00001.jsonl": jsonl(TRAIN_ROWS),
            "report.json": json.dumps({"rows": 2}),
            "rejudge.toml": "judge = 'fake'\n",
            "plots/big.bin": big,
            "plots/loss.png": png,
        })

        @check("upload_folder: small and LFS files in one commit; a rerun after a failed commit re-sends no LFS")
        def _():
            before = len(api.list_repo_commits(target, repo_type="dataset"))
            clear_log()
            rule = {"path": f"/api/datasets/{target}/commit/", "status": 500}
            http(base, "POST", "/_fake/fail", json.dumps(rule).encode())
            try:
                api.upload_folder(repo_id=target, repo_type="dataset", folder_path=upload, commit_message="Publish")
                raise AssertionError("the injected commit failure did not surface")
            except HfHubHTTPError as error:
                assert error.response.status_code == 500, error
            first = log()
            uploaded = sum(e["received"] for e in first if e["path"].startswith("/_fake/lfs/") and e["method"] == "PUT")
            assert uploaded == len(big) + len(png), (uploaded, len(big), len(png))
            assert len(api.list_repo_commits(target, repo_type="dataset")) == before
            clear_log()
            info = api.upload_folder(repo_id=target, repo_type="dataset", folder_path=upload, commit_message="Publish")
            second = log()
            resent = [e for e in second if e["path"].startswith("/_fake/lfs/")]
            assert resent == [], resent
            commits = api.list_repo_commits(target, repo_type="dataset")
            assert len(commits) == before + 1 and commits[0].commit_id == info.oid, commits
            tree = {e.path: e for e in api.list_repo_tree(target, repo_type="dataset", recursive=True)
                    if hasattr(e, "size")}
            assert tree["plots/big.bin"].lfs.sha256 == hashlib.sha256(big).hexdigest()
            assert tree["report.json"].lfs is None and tree["plots/loss.png"].lfs is not None
            fetched = huggingface_hub.hf_hub_download(target, "plots/big.bin", repo_type="dataset")
            assert hashlib.sha256(Path(fetched).read_bytes()).digest() == hashlib.sha256(big).digest()
            parts = sum(1 for e in first if "/_fake/lfs/part/" in e["path"])
            single = sum(1 for e in first if "/_fake/lfs/upload/" in e["path"])
            return (f"{uploaded} LFS bytes ({parts} multipart parts, {single} single PUT) on the first try, "
                    f"0 on the rerun; commit {info.oid[:12]}")

        @check("upload_folder again with nothing changed makes no commit")
        def _():
            before = api.list_repo_commits(target, repo_type="dataset")
            api.upload_folder(repo_id=target, repo_type="dataset", folder_path=upload, commit_message="Again")
            assert len(api.list_repo_commits(target, repo_type="dataset")) == len(before)
            return "preupload oids matched every file"

        @check("a commit whose response is lost: the rerun finds nothing to do")
        def _():
            (upload / "report.json").write_text(json.dumps({"rows": 3}))
            before = len(api.list_repo_commits(target, repo_type="dataset"))
            http(base, "POST", "/_fake/fail", json.dumps({"path": f"/api/datasets/{target}/commit/",
                                                          "status": 502, "when": "after"}).encode())
            try:
                api.upload_folder(repo_id=target, repo_type="dataset", folder_path=upload, commit_message="Update")
                raise AssertionError("the injected 502 did not surface")
            except HfHubHTTPError as error:
                assert error.response.status_code == 502, error
            assert len(api.list_repo_commits(target, repo_type="dataset")) == before + 1
            api.upload_folder(repo_id=target, repo_type="dataset", folder_path=upload, commit_message="Update")
            assert len(api.list_repo_commits(target, repo_type="dataset")) == before + 1
            return "one commit in all"

        @check("create_branch and a commit on it; deletions")
        def _():
            api.create_branch(target, repo_type="dataset", branch="draft")
            api.create_branch(target, repo_type="dataset", branch="draft", exist_ok=True)
            from huggingface_hub import CommitOperationAdd, CommitOperationDelete

            info = api.create_commit(target, repo_type="dataset", revision="draft", commit_message="Draft",
                                     operations=[CommitOperationAdd("notes.txt", b"draft\n"),
                                                 CommitOperationDelete("rejudge.toml")])
            on_draft = api.list_repo_files(target, repo_type="dataset", revision="draft")
            on_main = api.list_repo_files(target, repo_type="dataset")
            assert "notes.txt" in on_draft and "rejudge.toml" not in on_draft
            assert "notes.txt" not in on_main and "rejudge.toml" in on_main
            return f"draft at {info.oid[:12]}"
    finally:
        server.terminate()
        server.wait(timeout=10)
        if not keep:
            import shutil

            shutil.rmtree(work, ignore_errors=True)

    passed = sum(1 for _, ok, _ in results if ok)
    print(f"{passed} passed, {len(results) - passed} failed")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
