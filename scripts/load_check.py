"""Load check of the web demo: start app.py as a visitor's machine would, then N clients convert
at once through the `/convert` API.

Prints the cold start (process start until the page answers), the first conversion's latency
(the models load on first use unless warm-up finished), and the median / p95 / max latency of
the concurrent conversions, with the machine and settings, so runs can be compared. Exit status
1 if any request failed.

    python scripts/load_check.py [--clients 8] [--rounds 2] [--seconds 5] [--concurrency 2]
"""
from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]


def five_second_clip(seconds: float, folder: Path) -> Path:
    """The example source clip repeated to `seconds` (real synthetic speech, not a tone)."""
    samples, rate = sf.read(ROOT / "assets" / "examples" / "festival-ked-slow.wav", dtype="float32")
    reps = int(np.ceil(seconds * rate / len(samples)))
    path = folder / f"source-{seconds:g}s.wav"
    sf.write(path, np.tile(samples, reps)[: int(seconds * rate)], rate)
    return path


def wait_until_up(url: str, process: subprocess.Popen, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"app.py exited with status {process.returncode} before answering")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"app.py did not answer at {url} within {timeout:.0f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2, help="conversions per client")
    parser.add_argument("--seconds", type=float, default=5.0, help="source clip length")
    parser.add_argument("--concurrency", type=int, default=2, help="the app's --concurrency")
    parser.add_argument("--model", default="vqvc-small")
    args = parser.parse_args()
    from gradio_client import Client, handle_file

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/"
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(port),
                                "--concurrency", str(args.concurrency)], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_up(url, process)
        cold_start = time.monotonic() - started
        with tempfile.TemporaryDirectory() as tmp:
            source = five_second_clip(args.seconds, Path(tmp))
            reference = ROOT / "assets" / "voices" / "festival-slt-light.wav"
            client = Client(url, verbose=False)
            first_started = time.monotonic()
            client.predict(handle_file(str(source)), handle_file(str(reference)), args.model, api_name="/convert")
            first = time.monotonic() - first_started

            latencies, failures, lock = [], [], threading.Lock()

            def visitor(k: int) -> None:
                own = Client(url, verbose=False)
                for _ in range(args.rounds):
                    t0 = time.monotonic()
                    try:
                        out = own.predict(handle_file(str(source)), handle_file(str(reference)), args.model,
                                          api_name="/convert")
                        assert sf.info(out).duration > 0.5 * args.seconds, "output too short"
                        with lock:
                            latencies.append(time.monotonic() - t0)
                    except Exception as err:  # noqa: BLE001 - counted and reported
                        with lock:
                            failures.append(f"client {k}: {type(err).__name__}: {err}")

            threads = [threading.Thread(target=visitor, args=(k,)) for k in range(args.clients)]
            wall = time.monotonic()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            wall = time.monotonic() - wall
    finally:
        process.terminate()
        process.wait(timeout=30)

    ordered = sorted(latencies)
    p95 = ordered[min(len(ordered) - 1, int(np.ceil(0.95 * len(ordered))) - 1)] if ordered else float("nan")
    print(f"machine: {platform.machine()} {os.cpu_count()} CPUs, {platform.platform()}")
    print(f"settings: model {args.model} (default vocoder), app --concurrency {args.concurrency}, "
          f"{args.clients} clients x {args.rounds} conversions of a {args.seconds:g} s clip")
    print(f"cold start (process start -> page answers): {cold_start:.1f} s")
    print(f"first conversion: {first:.2f} s")
    if ordered:
        print(f"concurrent conversions: {len(ordered)} ok, {len(failures)} failed; latency median "
              f"{statistics.median(ordered):.2f} s, p95 {p95:.2f} s, max {ordered[-1]:.2f} s; "
              f"{len(ordered) * args.seconds / wall:.1f} s of audio per wall second")
    for failure in failures:
        print("FAILED", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
