"""Benchmarks of the firmware: `python3 -m bench.firmware` (see bench/firmware.py)."""
