"""Import each named module and fail, naming every one that does not import.

Usage: import_check.py MODULE...

Used at the end of build layers, so a broken install fails the build there
rather than at the first workflow run. Standard library only.
"""

from __future__ import annotations

import importlib
import sys

HINTS = {
    "mmcv._ext": "mmcv was built without its compiled ops: build it with MMCV_WITH_OPS=1, "
    "FORCE_CUDA=1 and --no-build-isolation",
    "pkg_resources": "setuptools 82 and later removed pkg_resources: install setuptools<82",
}


def check(name: str) -> str | None:
    """Import one module; return a one-line failure, or None when it imports."""
    try:
        module = importlib.import_module(name)
    except Exception as exc:  # any import-time failure is what this check reports
        line = f"{name}: {type(exc).__name__}: {exc}"
        hint = next((text for key, text in HINTS.items() if key in str(exc)), None)
        return f"{line}\n    hint: {hint}" if hint else line
    version = getattr(module, "__version__", "")
    print(f"import ok: {name} {version}".rstrip(), flush=True)
    return None


def main(argv: list[str] | None = None) -> int:
    names = sys.argv[1:] if argv is None else argv
    if not names:
        print("usage: import_check.py MODULE...", file=sys.stderr)
        return 2
    failures = [failure for name in names if (failure := check(name))]
    if failures:
        print(f"{len(failures)} of {len(names)} imports failed:", file=sys.stderr)
        for failure in failures:
            print(f"  {failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
