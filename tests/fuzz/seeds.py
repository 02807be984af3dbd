#!/usr/bin/env python3
"""tests/fuzz/seeds.py DIR — writes the seed corpus of the fuzz targets into
DIR (made at build time, never kept in git). Input format: fuzz_image.h.

Each seed is one small patch list on one of the two base images: the
unpatched images, then for the first blocks of the target's block list
(superblock, bitmaps, inode table, tree nodes, xattr blocks, journal
blocks, in block order) a field set to all ones, a run of bytes set to
zero, the whole block zeroed; with and without checksum recomputation."""
import os
import struct
import sys


def record(op, sel, off, data):
    return struct.pack('<BHHB', op, sel, off, len(data)) + data


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    seeds = [b'\x00', b'\x01']
    for base in (0, 1):
        for sel in range(32):
            for off in (0, 16):
                seeds.append(bytes([base]) + record(1, sel, off, b'\xff' * 8))
            seeds.append(bytes([base]) + record(0, sel, 40, b'\x00' * 16))
            seeds.append(bytes([base]) + record(3, sel, 0, b''))
            seeds.append(bytes([base]) + record(1, sel, 4000, b'\x01\x00\x00\x00'))
    for i, s in enumerate(seeds):
        with open(os.path.join(out, 'seed-%04d' % i), 'wb') as f:
            f.write(s)


main()
