"""A measurement in a process of its own: `python -m benchmarks.worker MODULE.FUNCTION SPEC RESULT`.

Reads the JSON spec, sets the torch threads it names, calls `benchmarks.MODULE.FUNCTION(spec)`
and writes its result dict to RESULT with the process's peak resident memory added
(`peak_rss_mb`, and `cuda_peak_mb` on a GPU). Started by `common.in_fresh_process`, so one
setting's allocations never inflate another's figures.
"""
from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python -m benchmarks.worker MODULE.FUNCTION SPEC.json RESULT.json", file=sys.stderr)
        return 2
    target, spec_path, result_path = argv
    import torch

    from vc.errors import VoicelabError

    from .common import peak_rss_mb

    spec = json.loads(Path(spec_path).read_text())
    torch.set_num_threads(int(spec["threads"]))
    module, _, name = target.rpartition(".")
    function = getattr(importlib.import_module(f"benchmarks.{module}"), name)
    try:
        result = function(spec)
    except (VoicelabError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    if str(spec.get("device", "cpu")).startswith("cuda"):
        result["cuda_peak_mb"] = round(torch.cuda.max_memory_allocated() / 2 ** 20, 1)
    Path(result_path).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
