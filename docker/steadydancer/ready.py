"""Exit 0 once ComfyUI answers on its port (and lists the SteadyDancer nodes): a healthcheck.

Usage: python -m steadydancer.ready [--port 8188] [--nodes]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.request

NODES = (
    "WanVideoModelLoader",
    "WanVideoAddSteadyDancerEmbeds",
    "PoseDetectionOneToAllAnimation",
    "VHS_VideoCombine",
)
"""The nodes whose packs must have imported for SteadyDancer to run (also the smoke test's)."""


def get(port: str, path: str) -> object:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return json.loads(response.read())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", default=os.environ.get("COMFYUI_PORT", "8188"))
    parser.add_argument("--nodes", action="store_true", help="also require the SteadyDancer nodes")
    args = parser.parse_args(argv)
    try:
        get(args.port, "/system_stats")
        if args.nodes:
            info = get(args.port, "/object_info")
            missing = [node for node in NODES if not isinstance(info, dict) or node not in info]
            if missing:
                print(f"not ready: {', '.join(missing)} missing", file=sys.stderr)
                return 1
    except (OSError, ValueError) as exc:
        print(f"not ready: {exc}", file=sys.stderr)
        return 1
    print("ready")
    return 0


if __name__ == "__main__":
    sys.exit(main())
