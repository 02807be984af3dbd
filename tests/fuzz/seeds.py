#!/usr/bin/env python3
"""tests/fuzz/seeds.py DIR — writes the seed corpus of the fuzz targets into
DIR (made at build time, never kept in git). Input format: fuzz_image.h.

Each seed is one small patch list on one of the two base images (read-only
and read-write mount for fuzz_mount): the unpatched images, then for the
first 80 blocks of the target's block list (superblock, journal blocks,
bitmaps, inode table, tree nodes, xattr blocks, in block order) a field
set to all ones with the checksum recomputed, and a run of bytes set to
zero or the whole block zeroed, checksum left wrong."""
import os
import struct
import sys


def record(op, sel, off, data):
    return struct.pack('<BHHB', op, sel, off, len(data)) + data


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    seeds = [b'\x00', b'\x01', b'\x02', b'\x03']
    for base in (0, 1):
        for sel in range(80):
            off = (16, 104, 0, 40)[sel % 4]
            seeds.append(bytes([base]) + record(1, sel, off, b'\xff' * 8))
            seeds.append(bytes([base | 2]) + record(0 if sel % 2 else 2, sel, 40, b'\x00' * 16))
    for i, s in enumerate(seeds):
        with open(os.path.join(out, 'seed-%04d' % i), 'wb') as f:
            f.write(s)


main()
