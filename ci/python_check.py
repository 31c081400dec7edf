"""Refuse a Python other than the project's before a venv is made from it.

The README's first command runs this with whatever `python3` is: numpy 1.26.4 and the
image's other pins have wheels for the project's Python (.python-version) and not for
every newer one, where pip would fail much later with a compiler error. Written for any
Python 3.6 or later, so an old interpreter reads it too.

Usage: python3 -m ci.python_check
"""

import sys
from pathlib import Path

WANTED = Path(__file__).resolve().parents[1].joinpath(".python-version").read_text().strip()


def main(argv: "list[str] | None" = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv:
        print("error: unrecognized arguments: " + " ".join(argv), file=sys.stderr)
        return 2
    running = f"{sys.version_info[0]}.{sys.version_info[1]}"
    if running != WANTED:
        print(
            f"error: this is Python {running} ({sys.executable}); the project needs Python "
            f"{WANTED}. Run the command with python{WANTED} in place of python3 (Debian and "
            f"Ubuntu: apt install python{WANTED}-venv; or uv python install {WANTED})",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
