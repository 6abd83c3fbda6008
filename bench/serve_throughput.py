"""Throughput of 8 concurrent /sampler calls through the app on 1 vs 2 engine workers (Ray Serve), side by side in one
run: each pool is `python app.py --workers N` in its own process, driven by 8 gradio_client clients at once.

    python bench/serve_throughput.py [--calls 8] [--steps 50]

On a CPU the replicas share its cores, so two replicas gain less than 2× (on 2 shared cores, each replica's torch
gets one thread instead of two; the front end, Ray and the clients take their share too)."""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import ratio  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def calls_per_minute(workers: int, calls: int, steps: int) -> float:
    from gradio_client import Client

    port = free_port()
    server = subprocess.Popen([sys.executable, "app.py", "--workers", str(workers), "--port", str(port)], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, "PYTHONWARNINGS": "ignore"})
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 300
        while True:
            try:
                client = Client(url, verbose=False)
                break
            except Exception:  # noqa: BLE001 - not up yet
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(f"the app with {workers} workers did not start") from None
                time.sleep(1)
        prompt = "a red circle on a white background"
        client.predict(prompt=prompt, steps=2, snapshots=1, api_name="/sampler")  # every replica warm: load once
        for _ in range(workers):
            client.predict(prompt=prompt, steps=2, snapshots=1, api_name="/sampler")
        errors = []

        def one(seed: int) -> None:
            try:
                Client(url, verbose=False).predict(prompt=prompt, steps=steps, seed=seed, snapshots=1,
                                                   api_name="/sampler")
            except Exception as error:  # noqa: BLE001
                errors.append(error)

        threads = [threading.Thread(target=one, args=(seed,)) for seed in range(calls)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.monotonic() - started
        if errors:
            raise RuntimeError(f"{len(errors)} calls failed: {errors[0]}")
        print(f"{workers} worker(s): {calls} concurrent /sampler calls of {steps} steps in {seconds:.1f} s "
              f"({60 * calls / seconds:.1f} calls/min)", flush=True)
        return 60 * calls / seconds
    finally:
        server.terminate()
        server.wait(60)
        subprocess.run(["ray", "stop", "--force"], capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=8)
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()
    one = calls_per_minute(1, args.calls, args.steps)
    two = calls_per_minute(2, args.calls, args.steps)
    print(f"2 workers ÷ 1 worker, throughput: {two / one:.2f}×")
    ratio("serve", "throughput, 2 Ray Serve workers ÷ 1 (8 concurrent /sampler)", one / two,
          "below 1: two workers serve more calls a minute")


if __name__ == "__main__":
    main()
