#!/usr/bin/env python3
"""tests/bench/folios.py — the sizes of the page-cache folios holding a file.

    folios.py FILE...      (root: reads /proc/self/pagemap and /proc/kpageflags)

Maps each FILE shared, touches one byte of every page (which brings pages
that are not cached into the cache the way the filesystem's read path
does), and prints how many of its pages sit in small (one-page) folios and
how many folios of each larger size (in pages) hold the rest. Nothing is
written. Used for the warm random read row (docs/BENCH.md, "Rows below
their aim"): ext4 caches a file in large folios on this kernel, a FUSE
mount in 4 KiB ones, and the page-cache lookup of a 4 KiB read costs more
with 4 KiB folios.
"""
import collections
import ctypes
import mmap
import os
import struct
import sys

KPF_COMPOUND_HEAD = 15
KPF_COMPOUND_TAIL = 16
PAGE = os.sysconf("SC_PAGE_SIZE")


def folios(path):
    fd = os.open(path, os.O_RDWR)
    try:
        size = os.fstat(fd).st_size
        npages = size // PAGE
        if npages == 0:
            return 0, collections.Counter()
        m = mmap.mmap(fd, npages * PAGE)
    finally:
        os.close(fd)
    for i in range(npages):
        m[i * PAGE]
    base = ctypes.addressof(ctypes.c_char.from_buffer(m)) // PAGE
    small, sizes, run = 0, collections.Counter(), 0
    with open("/proc/self/pagemap", "rb") as pm, open("/proc/kpageflags", "rb") as kf:
        for i in range(npages):
            pm.seek((base + i) * 8)
            entry = struct.unpack("Q", pm.read(8))[0]
            if not entry >> 63:             # not present
                continue
            kf.seek((entry & ((1 << 55) - 1)) * 8)
            flags = struct.unpack("Q", kf.read(8))[0]
            if flags >> KPF_COMPOUND_TAIL & 1:
                run += 1
                continue
            if run:
                sizes[run] += 1
            run = 1 if flags >> KPF_COMPOUND_HEAD & 1 else 0
            small += run == 0
    if run:
        sizes[run] += 1
    del m
    return small, sizes


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: folios.py FILE...")
    for path in sys.argv[1:]:
        small, sizes = folios(path)
        large = ", ".join("%d of %d pages" % (n, s) for s, n in sorted(sizes.items()))
        print("%s: %d pages in 4 KiB folios; large folios: %s" % (path, small, large or "none"))


if __name__ == "__main__":
    main()
