"""`python -m rejudge ...` runs the bundled binary, for environments without the script on PATH."""

import os
import sys

from rejudge import binary


def main() -> None:
    path = str(binary())
    os.execv(path, [path] + sys.argv[1:])


if __name__ == "__main__":
    main()
