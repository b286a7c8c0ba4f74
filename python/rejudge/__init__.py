"""Re-rank preference datasets with an LLM judge, from Python.

The wheel carries the ``rejudge`` binary; these functions run it with the options you give as
keyword arguments (``tie_margin=0.5`` becomes ``--tie-margin 0.5``) and hand back its output::

    import rejudge

    ds = rejudge.rerank("pairs.jsonl", "rejudged")        # in-process default judge
    ds = rejudge.rerank(
        "hf://datasets/ORG/NAME", "rejudged",
        base_url="http://localhost:8000/v1", model="Qwen/Qwen2.5-72B-Instruct",
        concurrency=64, order="both",
    )

``rerank`` returns a ``datasets.Dataset`` when ``datasets`` is installed (``pip install
rejudge[datasets]``), else the output folder as a ``pathlib.Path``. Every option of
``rejudge rerank --help`` is accepted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import threading
import warnings
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

__all__ = ["RejudgeError", "binary", "evaluate", "rerank", "run"]

PathLike = Union[str, "os.PathLike[str]"]

# The binary's exit status for a run that finished with rows the judge could not score: the
# output is complete (those rows are marked) and rerunning retries just them.
FAILED_ROWS = 3


class RejudgeError(RuntimeError):
    """The rejudge binary stopped with an error; ``returncode`` and ``stderr`` say why."""

    def __init__(self, arguments: Sequence[str], returncode: int, stderr: str) -> None:
        self.arguments = list(arguments)
        self.returncode = returncode
        self.stderr = stderr
        message = stderr.strip().splitlines()
        detail = "\n".join(message[-20:]) if message else "(no message)"
        super().__init__(f"rejudge exited with status {returncode}:\n{detail}")


def binary() -> Path:
    """The path of the rejudge binary this package runs."""
    name = "rejudge.exe" if sys.platform == "win32" else "rejudge"
    here = Path(__file__).resolve().parent
    candidates = [
        # Where maturin puts a binary that ships its own shared libraries.
        here.parent / "rejudge.scripts" / name,
        Path(sysconfig.get_path("scripts")) / name,
        Path(sysconfig.get_path("scripts", f"{os.name}_user")) / name,
    ]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError(
        "the rejudge binary is not installed beside this package (looked in: "
        + ", ".join(str(c) for c in candidates)
        + "); reinstall with `pip install --force-reinstall rejudge`"
    )


def options(values: Mapping[str, Any]) -> list:
    """Command-line flags for keyword arguments: ``True`` is a bare flag, ``None`` and ``False``
    are left out, a list or tuple repeats the flag (``base_url=[a, b]``)."""
    flags = []
    for key, value in values.items():
        flag = "--" + key.replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            flags.append(flag)
        elif isinstance(value, (list, tuple)):
            for item in value:
                flags.extend([flag, os.fspath(item) if isinstance(item, os.PathLike) else str(item)])
        else:
            flags.extend([flag, os.fspath(value) if isinstance(value, os.PathLike) else str(value)])
    return flags


def run(arguments: Iterable[Any], *, quiet: bool = False) -> subprocess.CompletedProcess:
    """Runs ``rejudge ARGUMENTS...``. Its messages and summary are passed on to ``sys.stderr`` and
    ``sys.stdout`` as they come (so they show in a notebook), unless ``quiet``. Raises
    RejudgeError on failure; a run that finished with rows the judge could not score (exit
    status 3) returns with a warning, since its output is complete."""
    command = [str(binary())] + [os.fspath(a) if isinstance(a, os.PathLike) else str(a) for a in arguments]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace"
    )
    out: list = []
    reader = threading.Thread(target=_pass_on, args=(process.stdout, sys.stdout, out, quiet))
    reader.start()
    err: list = []
    _pass_on(process.stderr, sys.stderr, err, quiet)
    reader.join()
    returncode = process.wait()
    done = subprocess.CompletedProcess(command, returncode, "".join(out), "".join(err))
    if returncode == FAILED_ROWS:
        warnings.warn(
            "rejudge finished with rows the judge could not score; they are marked in the "
            "output, and running the same call again retries just them",
            RuntimeWarning,
            stacklevel=3,
        )
    elif returncode != 0:
        raise RejudgeError(command[1:], returncode, done.stderr)
    return done


def _pass_on(source, sink, kept: list, quiet: bool) -> None:
    for line in source:
        kept.append(line)
        if not quiet:
            sink.write(line)
            sink.flush()


def rerank(
    input: PathLike,
    output: Optional[PathLike] = None,
    *,
    as_dataset: Optional[bool] = None,
    quiet: bool = False,
    **flags: Any,
):
    """Re-ranks INPUT (a file, a folder or ``hf://datasets/ORG/NAME``) into OUTPUT.

    Keyword arguments are ``rejudge rerank`` flags (``model_file=``, ``base_url=``,
    ``concurrency=``, ``order="both"``, ``push_to_hub=``...). OUTPUT defaults to the binary's
    own default (the input's name + "-rejudged"). Returns a ``datasets.Dataset`` of the output when ``datasets`` is installed
    (``as_dataset=False`` returns the folder instead), else the output folder.
    """
    folder = Path(output) if output is not None else _default_output(input)
    arguments = ["rerank", os.fspath(input), "--output", os.fspath(folder)] + options(flags)
    run(arguments, quiet=quiet)
    if as_dataset is False or flags.get("dry_run"):
        return folder
    try:
        import datasets  # noqa: F401
    except ImportError:
        if as_dataset:
            raise
        return folder
    return _load(folder)


def evaluate(input: PathLike, output: PathLike, *, quiet: bool = False, **flags: Any) -> dict:
    """Runs ``rejudge eval INPUT -o OUTPUT`` with the given flags and returns ``eval.json``."""
    run(["eval", os.fspath(input), "--output", os.fspath(output)] + options(flags), quiet=quiet)
    return json.loads((Path(output) / "eval.json").read_text(encoding="utf-8"))


def _default_output(input: PathLike) -> Path:
    """The binary's own default: the input's stem (a Hub dataset's name) + "-rejudged"."""
    text = os.fspath(input).rstrip("/")
    if text.startswith("hf://datasets/"):
        text = text.split("@")[0]
    return Path(f"{Path(text).stem or 'dataset'}-rejudged")


def _load(folder: Path):
    import datasets

    data = folder / "data"
    files = sorted(p for p in data.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise FileNotFoundError(f"{data} holds no data file")
    suffix = files[0].suffix
    builder = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".csv": "csv"}[suffix]
    return datasets.load_dataset(
        builder, data_files=[str(p) for p in files if p.suffix == suffix], split="train"
    )
