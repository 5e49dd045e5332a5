#!/usr/bin/env python3
"""Makes the mixed capture for the analyze benchmark (see
docs/performance.md): the records of a capture of full-size packets
(bench/bulk-pcap.sh) and of the small-packet capture (bench/small-pcap.py)
interleaved, one full-size record then SMALL small ones, each input read
again from its start when it ends, until the output holds SIZE bytes. Both
inputs must be little-endian classic pcap with the same link type; the
output has the full-size capture's header (its snap length covers both).

    bench/mix-pcap.py BULK.pcap SMALL.pcap OUT.pcap [SIZE] [SMALL]
    (defaults: 1000000000 bytes, 3 small records to each full-size one)
"""
import struct
import sys

bulk_path, small_path, out_path = sys.argv[1:4]
size = int(sys.argv[4]) if len(sys.argv) > 4 else 1_000_000_000
per = int(sys.argv[5]) if len(sys.argv) > 5 else 3


def records(path):
    """Yields the records (16-byte header and data) of path, forever."""
    with open(path, "rb") as f:
        header = f.read(24)
        if header[:4] != b"\xd4\xc3\xb2\xa1":
            sys.exit(f"{path}: not a little-endian classic pcap file")
        while True:
            h = f.read(16)
            if len(h) < 16:
                f.seek(24)
                continue
            (caplen,) = struct.unpack("<I", h[8:12])
            yield h + f.read(caplen)


with open(bulk_path, "rb") as f:
    header = f.read(24)
with open(small_path, "rb") as f:
    if f.read(24)[20:24] != header[20:24]:
        sys.exit("the two captures have different link types")
big, small = records(bulk_path), records(small_path)
n, count = 24, 0
with open(out_path, "wb") as out:
    out.write(header)
    while n < size:
        for r in [next(big)] + [next(small) for _ in range(per)]:
            out.write(r)
            n += len(r)
            count += 1
print(f"{out_path}: {count} records, {n} bytes, {n / count:.0f} bytes a record")
