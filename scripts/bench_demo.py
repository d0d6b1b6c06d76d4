#!/usr/bin/env python
"""Time the demo's `/render` endpoint the way a user meets it: a real `python demo/app.py` server on a local port,
called through gradio_client (HTTP, queue, PNG encoding and download included).

    python scripts/bench_demo.py [--calls 20] [--image-size 256] [--face-model PATH]

Prints, per call kind, the median and 90th-percentile round trip beside the time the server spent rendering it
(`render_seconds` in the labels) and the 1-second target of the issue:
- "new expression": same identity, new AU intensities (re-rig + render; the identity's mesh and texture are cached);
- "new identity": a new seed (identity shape, texture and the neutral render are built first).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
AUS = ("AU4", "AU6", "AU7", "AU9", "AU10", "AU43", "AU12", "AU20", "AU25", "AU26")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(args, scratch: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [sys.executable, str(REPO / "demo" / "app.py"), "--port", str(port), "--image-size", str(args.image_size)]
    if args.face_model:
        command += ["--face-model", args.face_model]
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_TEMP_DIR": str(scratch / "gradio")}
    log = open(scratch / "app.log", "w")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 300
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            return process, url
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                sys.exit(f"the demo did not start:\n{(scratch / 'app.log').read_text()[-3000:]}")
            time.sleep(0.5)


def summary(name: str, round_trips: list[float], server: list[float]) -> str:
    p90 = float(np.percentile(round_trips, 90))
    return (
        f"| {name} | {len(round_trips)} | {statistics.median(round_trips):.3f} | {p90:.3f} | "
        f"{statistics.median(server):.3f} | {'yes' if statistics.median(round_trips) <= 1.0 else 'no'} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20, help="calls per kind (default 20)")
    parser.add_argument("--identities", type=int, default=5, help="new-identity calls (default 5)")
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--face-model", help="ICT-FaceKit archive or folder (default: $PAIN3D_FACE_MODEL, the cache)")
    args = parser.parse_args()

    from gradio_client import Client

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="bench-demo-") as tmp:
        scratch = Path(tmp)
        started = time.perf_counter()
        process, url = start_server(args, scratch)
        print(f"server up in {time.perf_counter() - started:.1f} s ({url})")
        try:
            client = Client(url, download_files=str(scratch / "downloads"), verbose=False)

            def call(seed: int, aus: dict) -> tuple[float, float]:
                values = {name: aus.get(name, 0) for name in AUS}
                t0 = time.perf_counter()
                out = client.predict(**values, age=50, gender="female", ethnicity="Hispanic/Latino", seed=seed,
                                     view="frontal", landmarks=False, api_name="/render")  # fmt: skip
                return time.perf_counter() - t0, out[4]["render_seconds"]

            call(0, {})  # warm-up: first identity, first connection
            expression, identity = ([], []), ([], [])
            for _ in range(args.calls):
                aus = {"AU4": rng.integers(0, 6), "AU6": rng.integers(0, 6), "AU7": rng.integers(0, 6),
                       "AU9": rng.integers(0, 6), "AU10": rng.integers(0, 6), "AU43": rng.integers(0, 2)}  # fmt: skip
                for bucket, value in zip(expression, call(0, {k: int(v) for k, v in aus.items()})):
                    bucket.append(value)
            for seed in range(1, args.identities + 1):
                for bucket, value in zip(identity, call(seed, {"AU4": 3, "AU7": 2})):
                    bucket.append(value)
        finally:
            process.terminate()
            process.wait(timeout=30)
    print(f"\n/render at {args.image_size} px, one server process, seconds per call")
    print("| call | calls | round trip (median) | round trip (p90) | server render (median) | within 1 s |")
    print("| --- | --- | --- | --- | --- | --- |")
    print(summary("new expression, cached identity", *expression))
    print(summary("new identity (shape, texture, neutral)", *identity))


if __name__ == "__main__":
    main()
