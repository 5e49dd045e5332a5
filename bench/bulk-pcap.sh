#!/usr/bin/env bash
# Makes a capture of full-size packets for the analyze benchmark (see
# docs/performance.md): an iperf3 bulk TCP transfer and a UDP stream between
# two network namespaces that this script creates and deletes, captured
# whole (snap length 0) with segmentation offloads off, so that every packet
# is at most one MTU as on a real wire. Traffic never leaves the namespaces.
#
#   bench/bulk-pcap.sh OUT.pcap [SECONDS]      (root; iperf3, tcpdump, ethtool)
set -eu -o pipefail
OUT=${1:?usage: bulk-pcap.sh OUT.pcap [SECONDS]}
SECS=${2:-4}
A=plbulk-a-$$ B=plbulk-b-$$
cleanup() {
	ip netns pids "$A" 2>/dev/null | xargs -r kill 2>/dev/null || true
	ip netns pids "$B" 2>/dev/null | xargs -r kill 2>/dev/null || true
	ip netns del "$A" 2>/dev/null || true
	ip netns del "$B" 2>/dev/null || true
}
trap cleanup EXIT
ip netns add "$A"
ip netns add "$B"
ip link add va netns "$A" type veth peer name vb netns "$B"
ip -n "$A" addr add 203.0.113.10/24 dev va
ip -n "$B" addr add 203.0.113.20/24 dev vb
for ns in "$A" "$B"; do
	ip -n "$ns" link set lo up
done
ip -n "$A" link set va up
ip -n "$B" link set vb up
ip netns exec "$A" ethtool -K va tso off gso off gro off >/dev/null
ip netns exec "$B" ethtool -K vb tso off gso off gro off >/dev/null
ip netns exec "$B" iperf3 -s -D -1 -B 203.0.113.20
ip netns exec "$B" iperf3 -s -D -p 5202 -1 -B 203.0.113.20
sleep 0.5
ip netns exec "$A" tcpdump -i va -s 0 -w "$OUT" -U -q 2>/dev/null &
TD=$!
sleep 1
ip netns exec "$A" iperf3 -c 203.0.113.20 -t "$SECS" >/dev/null
ip netns exec "$A" iperf3 -c 203.0.113.20 -p 5202 -u -b 200M -t 1 >/dev/null
sleep 0.5
kill "$TD"
wait "$TD" 2>/dev/null || true
ls -l "$OUT"
