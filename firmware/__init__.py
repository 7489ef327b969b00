"""The firmware: assembly sources (asm/) assembled with Keystone into a -bios image."""
