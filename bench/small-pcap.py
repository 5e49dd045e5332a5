#!/usr/bin/env python3
"""Makes the worst-case capture for the analyze benchmark (see
docs/performance.md): the raw-packet captures of testdata/captures (every
file without an export format in its name; snap length 128, so about 93
bytes per record) concatenated COPIES times behind one classic pcap header.

    bench/small-pcap.py OUT.pcap [COPIES]     (default 508: about 1 GB)
"""
import glob
import os
import sys

out = sys.argv[1]
copies = int(sys.argv[2]) if len(sys.argv) > 2 else 508
here = os.path.dirname(os.path.abspath(__file__))
names = sorted(
    p for p in glob.glob(os.path.join(here, "..", "testdata", "captures", "*.pcap"))
    if not any(k in os.path.basename(p) for k in (".ipfix.", ".netflow9.", ".sflow."))
)
header, bodies = None, []
for p in names:
    with open(p, "rb") as f:
        data = f.read()
    if header is None:
        header = data[:24]
    elif data[:24] != header:
        sys.exit(f"{p}: pcap header differs from {names[0]}")
    bodies.append(data[24:])
body = b"".join(bodies)
with open(out, "wb") as f:
    f.write(header)
    for _ in range(copies):
        f.write(body)
print(f"{out}: {len(names)} captures x {copies}, {24 + len(body) * copies} bytes")
