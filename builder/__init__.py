"""build-fw: read a PVH kernel, assemble the firmware, patch it, write image, map, manifest."""
