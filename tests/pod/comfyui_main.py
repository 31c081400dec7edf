"""ComfyUI's main.py in the test pod image: the recorded cpu-smoke exchange of a real ComfyUI.

The pinned ComfyUI cannot be fetched where the tests run, so the pod image serves what a real
ComfyUI answered to the smoke client (tests/data/comfyui-cpu-smoke.json) on the address and port
the entrypoint starts it with, until SIGTERM, and records the arguments it was given.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from comfy_cassette import load, replaying


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8188)
    args, _ = parser.parse_known_args()
    Path("/tmp/comfyui-argv.json").write_text(json.dumps(sys.argv))
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stopped.set())
    with replaying(load("comfyui-cpu-smoke.json"), args.listen, args.port):
        print(f"stand-in ComfyUI on {args.listen}:{args.port}", flush=True)
        stopped.wait()
    print("stand-in ComfyUI: stopped by SIGTERM", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
