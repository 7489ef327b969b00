"""pvhfw: a minimal firmware for stock QEMU that boots a Linux kernel through its PVH entry.

The distribution's one import namespace. Its subpackages are the repository's top-level
directories (the design card's layout), linked here so that the checkout and an installed
wheel import the same names:

- ``pvhfw.firmware``: the layout and ABI constants, the Keystone assembler, the patch table;
- ``pvhfw.builder``: reading kernels, validation, the image, map and manifest, ``build-fw``;
- ``pvhfw/asm``: the firmware's assembly sources, package data (read with importlib.resources).
"""

__version__ = "0.1.0"  # the distribution's version (pyproject reads it), and the firmware's
