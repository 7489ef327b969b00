"""PVH test kernels built from source at test time (see build.py and README.md)."""
