"""Benchmarks of the firmware: `python3 -m bench.firmware` (bench/firmware.py) and
`python3 -m bench.boot` (pvhfw-bench, bench/boot.py), each its scenarios and its CLI, over
what both share: procs (running and scheduling QEMU), stats, report (tables, progress, JSON),
host (KVM, QEMU, host facts), execlog (QEMU's logs) and profiles (fw_cfg for the emulator)."""
