"""voicelab's benchmarks: `python -m benchmarks` measures the shipped models, the web demo and
the evaluation harness in one run and writes `benchmarks/results.md` and `results.json`.

Speeds are given as seconds of audio per second of compute and as ratios against a reference
measured in the same run (Griffin-Lim with 32 iterations), so figures from different machines
can be compared. Memory is measured in a fresh process per setting. See `python -m benchmarks
--help` for the sections and settings.
"""
