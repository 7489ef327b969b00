"""Unicorn test bench for the firmware: a QEMU fw_cfg model (fwcfg) and a pc-like machine."""
