#!/usr/bin/env python3
"""tests/fuzz/seeds.py DIR — writes the seed corpus of the fuzz targets into
DIR (made at build time, never kept in git). Input format: fuzz_image.h.

Each seed is one small patch list on one of the two base images (read-only
and read-write mount for fuzz_mount): the unpatched images, then for the
first 80 blocks of the target's block list (superblock, journal blocks,
bitmaps, inode table, tree nodes, xattr blocks, in block order) a field
set to all ones with the checksum recomputed, and a run of bytes set to
zero or the whole block zeroed, checksum left wrong; then, for the first
16 blocks of the inode table, a damaged in-inode xattr area (docs/FORMAT.md
§6: lengths past the area, a repeated name, an empty name, an unknown
index, junk after the end, a name the chain holds too) written into all 16
records of the block with the checksums recomputed, so that the record's
checksum passes and the area's own checks are what stands between the
bytes and the parsers."""
import os
import struct
import sys


# First inode table block of the 16 MiB base image (mkfs's geometry); the
# seeds below address its blocks by number (op bit 2).
INODE_TABLE = 1036


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
    bad_areas = (b'\x01\x03\x3c', b'\x01\x01\x01ab\x01\x01\x01ac', b'\x07\x00\x01x',
                 b'\x09\x01\x01ab', b'\x01\x01\x36a\x00\x00\x00\x01\x01',
                 b'\x01\x0b\x01attribute-5v')   # a name the base keeps in a block
    for base in (0, 1):
        for blk in range(INODE_TABLE, INODE_TABLE + 16):
            for area in bad_areas:
                seeds.append(bytes([base | 2]) + b''.join(
                    record(5, blk, 192 + 256 * r, area.ljust(60, b"\x00")) for r in range(16)))
    for i, s in enumerate(seeds):
        with open(os.path.join(out, 'seed-%04d' % i), 'wb') as f:
            f.write(s)


main()
