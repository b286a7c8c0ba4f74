"""Adds llama.cpp's CPU kernel modules to a rejudge wheel that maturin built.

    python3 scripts/wheel-modules.py WHEEL MODULES_FOLDER OUT_FOLDER

The binary loads one `libggml-cpu-LEVEL.so` at start-up (src/judge/cpu_variants.rs) from
`rejudge.libs/`, where maturin grafted the shared libraries the binary links (libllama, libggml,
libggml-base) under hashed names. Each module needs libggml-base, so its dependency is renamed to
the grafted file and its run path set to its own folder; then the wheel is packed again (with a
fresh RECORD) into OUT_FOLDER, whose path is printed.

The AMX level (sapphirerapids) is left out: ggml's AMX kernels crash under some hypervisors on
Xeons that report AMX, the reason the native build is made without them too. Such CPUs get the
AVX-512 VNNI/BF16 module instead.
"""

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

LEFT_OUT = {"libggml-cpu-sapphirerapids.so"}
GRAFTED = re.compile(r"^(?P<stem>lib[\w.+-]*?)-[0-9a-f]{8}(?P<rest>\.so.*)$")


def run(*command: str) -> str:
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip()


def grafted_names(libs: Path) -> dict:
    """Original library stem (libggml-base) -> grafted file name (libggml-base-0a1b2c3d.so)."""
    names = {}
    for path in libs.iterdir():
        match = GRAFTED.match(path.name)
        if match:
            names[match["stem"]] = path.name
    return names


def stem(needed: str) -> str:
    return needed.split(".so")[0]


def main() -> None:
    wheel, modules, out = (Path(a) for a in sys.argv[1:4])
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        run(sys.executable, "-m", "wheel", "unpack", str(wheel), "-d", str(scratch))
        (tree,) = scratch.iterdir()
        libs = tree / "rejudge.libs"
        if not libs.is_dir():
            sys.exit(f"{wheel} has no rejudge.libs/: maturin did not graft llama.cpp's libraries")
        grafted = grafted_names(libs)
        added = []
        for module in sorted(modules.glob("libggml-cpu-*.so")):
            if module.name in LEFT_OUT:
                continue
            target = libs / module.name
            shutil.copy2(module, target)
            run("strip", "--strip-unneeded", str(target))
            for needed in run("patchelf", "--print-needed", str(target)).split():
                if stem(needed) in grafted:
                    run("patchelf", "--replace-needed", needed, grafted[stem(needed)], str(target))
            run("patchelf", "--set-rpath", "$ORIGIN", str(target))
            added.append(module.name)
        if not added:
            sys.exit(f"no libggml-cpu-*.so module in {modules}")
        print(f"rejudge: added {len(added)} CPU modules: {', '.join(added)}", file=sys.stderr)
        out.mkdir(parents=True, exist_ok=True)
        for old in out.glob("rejudge-*.whl"):
            old.unlink()
        run(sys.executable, "-m", "wheel", "pack", str(tree), "-d", str(out))
    (packed,) = out.glob("rejudge-*.whl")
    print(packed)


if __name__ == "__main__":
    main()
