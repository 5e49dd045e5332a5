#!/bin/sh
# Remakes the captures under internal/decode/pcapfile/testdata and
# internal/decode/sflow/testdata from real traffic between two network
# namespaces that this script creates and always deletes again (trap).
# Nothing leaves the namespaces: they are connected only to each other.
#
# Needs root and: iproute2, tcpdump, pmacct (pmacctd), softflowd, editcap,
# mergecap (wireshark-common), python3.
# Run from anywhere:  sudo sh internal/decode/pcapfile/testdata/make.sh
set -eu

here=$(cd "$(dirname "$0")" && pwd)
sflowdir=$(cd "$here/../../sflow/testdata" && pwd)
A="pl-sflowpcap-$$-a"
B="pl-sflowpcap-$$-b"
work=$(mktemp -d)
pids=""

cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	sleep 0.3
	ip netns del "$A" 2>/dev/null || true
	ip netns del "$B" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

ina() { ip netns exec "$A" "$@"; }
inb() { ip netns exec "$B" "$@"; }

ip netns add "$A"
ip netns add "$B"
ip link add veth0 netns "$A" address 02:00:00:00:00:0a type veth peer name veth0 netns "$B" address 02:00:00:00:00:0b
for ns in "$A" "$B"; do ip -n "$ns" link set lo up; done

ip -n "$A" addr add 198.51.100.1/24 dev veth0
ip -n "$B" addr add 198.51.100.2/24 dev veth0
ip -n "$A" addr add 2001:db8:1::1/64 dev veth0 nodad
ip -n "$B" addr add 2001:db8:1::2/64 dev veth0 nodad
# This kernel has no vlan/ipip/sit drivers: tagged frames are sent as crafted
# frames through an AF_PACKET socket (below), and the raw-IP link types are
# made from eth.pcap by stripping the Ethernet header (at the end).
for ns in "$A" "$B"; do ip -n "$ns" link set veth0 up; done
sleep 1

# Captures (snap length 256 keeps the files small; packets stay whole in the header).
ip netns exec "$A" tcpdump -q -U -s 256 -i veth0 -w "$work/eth.pcap" 2>/dev/null & pids="$pids $!"
ip netns exec "$A" tcpdump -q -U -s 256 -i any -y LINUX_SLL2 -w "$work/sll2.pcap" 2>/dev/null & pids="$pids $!"
ip netns exec "$A" tcpdump -q -U -s 256 -i any -y LINUX_SLL -w "$work/sll.pcap" 2>/dev/null & pids="$pids $!"
sleep 2

# Servers in B (each serves a bounded number of connections and exits).
for addr in 198.51.100.2 2001:db8:1::2; do
	(inb timeout 20 nc -l "$addr" 8080 >/dev/null </dev/null || true) & pids="$pids $!"
	(inb timeout 20 nc -u -l "$addr" 5353 >/dev/null </dev/null || true) & pids="$pids $!"
done
sleep 1

# Traffic from A: ICMP (plain, IPv4 record-route options, fragmented), TCP, UDP.
ina ping -q -c 2 -i 0.2 198.51.100.2 >/dev/null
ina ping -q -c 1 -R 198.51.100.2 >/dev/null
ina ping -q -c 1 -s 3000 198.51.100.2 >/dev/null
ina ping -q -6 -c 2 -i 0.2 2001:db8:1::2 >/dev/null
ina ping -q -6 -c 1 -s 3000 2001:db8:1::2 >/dev/null
for addr in 198.51.100.2 2001:db8:1::2; do
	echo "hello from padlock" | ina nc -N -w 2 "$addr" 8080 || true
	echo "udp hello" | ina nc -u -w 1 "$addr" 5353 || true
done
# A closed port: SYN answered by RST.
ina nc -z -w 1 198.51.100.2 9 || true
# 802.1Q (VLAN 100) and QinQ (802.1ad 300, inner 42) tagged frames, sent raw.
ina python3 - <<'PY'
import socket, struct
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("veth0", 0))
dst, src = bytes.fromhex("02000000000b"), bytes.fromhex("02000000000a")
def csum(b):
    if len(b) % 2: b += b"\0"
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while t >> 16: t = (t & 0xffff) + (t >> 16)
    return ~t & 0xffff
def ip4(proto, payload, s4="203.0.113.1", d4="203.0.113.2"):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0, 64, proto, 0, socket.inet_aton(s4), socket.inet_aton(d4))
    return h[:10] + struct.pack("!H", csum(h)) + h[12:] + payload
def ip6(nh, payload, s6="2001:db8:3::1", d6="2001:db8:3::2"):
    return struct.pack("!IHBB", 6 << 28, len(payload), nh, 64) + socket.inet_pton(socket.AF_INET6, s6) + socket.inet_pton(socket.AF_INET6, d6) + payload
udp = struct.pack("!HHHH", 40001, 53, 8 + 5, 0) + b"vlan!"
syn = struct.pack("!HHIIBBHHH", 40002, 443, 1, 0, 5 << 4, 0x02, 1024, 0, 0)
tag = lambda tpid, vid, et: struct.pack("!HHH", tpid, vid | (5 << 13), et)
s.send(dst + src + tag(0x8100, 100, 0x0800) + ip4(17, udp))
s.send(dst + src + tag(0x8100, 100, 0x86dd) + ip6(6, syn))
s.send(dst + src + tag(0x88a8, 300, 0x8100) + struct.pack("!HH", 42, 0x0800) + ip4(6, syn, "198.18.0.1", "198.18.0.2"))
PY
sleep 2
for p in $pids; do kill "$p" 2>/dev/null || true; done
wait 2>/dev/null || true
pids=""

cp "$work/eth.pcap" "$here/eth.pcap"
cp "$work/sll.pcap" "$here/sll.pcap"
cp "$work/sll2.pcap" "$here/sll2.pcap"
editcap -F pcapng "$here/eth.pcap" "$here/eth.pcapng"
gzip -9 -n -c "$here/eth.pcap" >"$here/eth-gzip.pcap" # gzip inside, plain name: detected by magic
gzip -9 -n -c "$here/eth.pcapng" >"$here/eth.pcapng.gz"
# Truncated: the eth capture cut in the middle of its 21st packet record.
python3 - "$here/eth.pcap" "$here/truncated.pcap" <<'EOF'
import struct, sys
b = open(sys.argv[1], 'rb').read()
off = 24
for i in range(20):
    caplen = struct.unpack('<I', b[off+8:off+12])[0]
    off += 16 + caplen
open(sys.argv[2], 'wb').write(b[:off + 16 + 10])
EOF
# Raw-IP link types 101 (RAW), 228 (IPv4), 229 (IPv6) and 0 (BSD loopback):
# the untagged IP packets of eth.pcap with their Ethernet header stripped.
python3 - "$here/eth.pcap" "$here" <<'EOF'
import struct, sys, os
b = open(sys.argv[1], 'rb').read()
hdr, recs, off = b[:24], [], 24
while off + 16 <= len(b):
    ts, us, cl, ol = struct.unpack('<IIII', b[off:off+16])
    d = b[off+16:off+16+cl]; off += 16 + cl
    if d[12:14] in (b'\x08\x00', b'\x86\xdd'):
        recs.append((ts, us, ol - 14, d[14:]))
def write(name, link, pick, prefix):
    with open(os.path.join(sys.argv[2], name), 'wb') as f:
        f.write(hdr[:20] + struct.pack('<I', link))
        for ts, us, ol, d in recs:
            if not pick(d): continue
            p = prefix(d)
            f.write(struct.pack('<IIII', ts, us, len(p) + len(d), ol + len(p)) + p + d)
write('raw.pcap', 101, lambda d: True, lambda d: b'')
write('ipv4.pcap', 228, lambda d: d[0] >> 4 == 4, lambda d: b'')
write('ipv6.pcap', 229, lambda d: d[0] >> 4 == 6, lambda d: b'')
write('null.pcap', 0, lambda d: True, lambda d: struct.pack('<I', 2 if d[0] >> 4 == 4 else 30))
EOF

# Flow exports made by real exporters reading eth.pcap, captured on the
# loopback interface of namespace A with tcpdump.
ina ip link set lo up
ip netns exec "$A" tcpdump -q -U -i lo -w "$work/exports.pcap" udp 2>/dev/null & tpid=$!
pids="$tpid"
sleep 2
cat >"$work/pmacctd.conf" <<EOF
daemonize: false
pcap_savefile: $here/eth.pcap
pmacctd_ext_sampling_rate: 10
plugins: sfprobe
sfprobe_receiver: 127.0.0.1:6343
sfprobe_agentip: 127.0.0.1
sfprobe_agentsubid: 7
EOF
ina timeout 20 pmacctd -f "$work/pmacctd.conf" >/dev/null 2>&1 || true
sleep 1
# softflowd: NetFlow v5 to 2055, v9 to 9995, IPFIX to 4739.
ina timeout 20 softflowd -r "$here/eth.pcap" -n 127.0.0.1:2055 -v 5 >/dev/null 2>&1 || true
ina timeout 20 softflowd -r "$here/eth.pcap" -n 127.0.0.1:9995 -v 9 >/dev/null 2>&1 || true
ina timeout 20 softflowd -r "$here/eth.pcap" -n 127.0.0.1:4739 -v 10 >/dev/null 2>&1 || true
sleep 2
kill "$tpid" 2>/dev/null || true
wait "$tpid" 2>/dev/null || true
pids=""

tcpdump -r "$work/exports.pcap" -w "$sflowdir/pmacct-sfprobe.pcap" udp port 6343 2>/dev/null
cp "$sflowdir/pmacct-sfprobe.pcap" "$here/sflow-export.pcap"
tcpdump -r "$work/exports.pcap" -w "$here/netflow-export.pcap" udp port 2055 or udp port 9995 or udp port 4739 2>/dev/null
editcap -F pcapng "$here/sflow-export.pcap" "$here/sflow-export.pcapng"
ls -l "$here" "$sflowdir"
