"""The web demo under load: start `app.py` as a visitor's machine would, then N clients convert
at once through its `/convert` API (`gradio_client`).

Measured: the cold start (process start until the page answers HTTP 200; the default models
load in the background meanwhile), the first conversion's latency, and the median / p95 / max
latency of `clients` x `rounds` concurrent conversions of a real-speech clip, plus the seconds
of audio converted per wall second. A failed request is counted and its error kept.
"""
from __future__ import annotations

import math
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

from .common import REPO, BenchmarkError, Settings, Speech, child_env

START_TIMEOUT = 300.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchmarkError(f"app.py exited with status {process.returncode} before answering; "
                                 "run `python3 app.py` to see why")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise BenchmarkError(f"app.py did not answer at {url} within {timeout:.0f} s")


def percentile(ordered: list[float], q: float) -> float:
    """The nearest-rank percentile of sorted values."""
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))] if ordered else float("nan")


def run(settings: Settings, speech: Speech, reference: dict, progress) -> dict:
    try:
        from gradio_client import Client, handle_file
    except ImportError:
        raise BenchmarkError("the web section needs gradio_client (pip install gradio); "
                             "or leave it out with --skip web") from None
    import soundfile as sf

    from vc.registry import ModelRegistry

    model = ModelRegistry.from_file(settings.registry).default_converter
    source = speech.clip(settings.web_seconds)
    reference = max(speech.references(), key=lambda p: sf.info(p).duration)
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    progress("web: cold start")
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, str(REPO / "app.py"), "--port", str(port), "--registry",
                                str(settings.registry), "--concurrency", str(settings.concurrency)],
                               cwd=REPO, env=child_env(settings.threads, "cpu"),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_up(url, process)
        cold_start = time.monotonic() - started
        progress("web: first conversion")
        client = Client(url, verbose=False)
        first_started = time.monotonic()
        client.predict(handle_file(str(source)), handle_file(str(reference)), model, api_name="/convert")
        first = time.monotonic() - first_started

        progress(f"web: {settings.clients} clients")
        latencies, failures, lock = [], [], threading.Lock()

        def visitor(k: int) -> None:
            own = Client(url, verbose=False)
            for _ in range(settings.rounds):
                t0 = time.monotonic()
                try:
                    out = own.predict(handle_file(str(source)), handle_file(str(reference)), model,
                                      api_name="/convert")
                    if sf.info(out).duration < 0.5 * settings.web_seconds:
                        raise RuntimeError(f"output too short ({sf.info(out).duration:.2f} s)")
                    with lock:
                        latencies.append(time.monotonic() - t0)
                except Exception as err:  # noqa: BLE001 - counted and reported
                    with lock:
                        failures.append(f"client {k}: {type(err).__name__}: {err}")

        threads = [threading.Thread(target=visitor, args=(k,)) for k in range(settings.clients)]
        wall = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.monotonic() - wall
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
    ordered = sorted(latencies)
    return {"model": model, "vocoder": "the registry's default", "clip_seconds": settings.web_seconds,
            "device": "cpu (app.py has no device setting)",
            "clients": settings.clients, "rounds": settings.rounds, "app_concurrency": settings.concurrency,
            "cold_start_seconds": cold_start, "first_conversion_seconds": first,
            "ok": len(ordered), "failed": len(failures), "failures": failures[:10],
            "median_seconds": statistics.median(ordered) if ordered else None,
            "p95_seconds": percentile(ordered, 0.95) if ordered else None,
            "max_seconds": ordered[-1] if ordered else None,
            "audio_seconds_per_wall_second": len(ordered) * settings.web_seconds / wall if wall > 0 else None}
