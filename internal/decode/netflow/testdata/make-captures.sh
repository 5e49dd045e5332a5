#!/bin/sh
# make-captures.sh remakes the real-exporter captures in this directory.
#
# It builds a pair of network namespaces joined by a veth pair (nothing is
# connected to the host's interfaces or routes), makes a little real traffic
# between them (TCP and UDP over IPv4 and IPv6, ICMP echo over both) while
# tcpdump records it into source.pcap, then feeds source.pcap to softflowd
# once per export format and records softflowd's UDP export datagrams with
# tcpdump on the namespace's own loopback. Needs root, ip, tcpdump, softflowd,
# nc (netcat-openbsd) and nping (nmap) and python3.
#
# usage: sudo ./make-captures.sh [OUTDIR]   (default: the script's directory)
set -eu

out=${1:-$(cd "$(dirname "$0")" && pwd)}
tag=pl-netflow-$$
nsa=$tag-a
nsb=$tag-b
va=nfa$$
vb=nfb$$
port=9995
tmp=$(mktemp -d)
pids=""

cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	sleep 0.2
	ip netns del "$nsa" 2>/dev/null || true
	ip netns del "$nsb" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

A="ip netns exec $nsa"
B="ip netns exec $nsb"

ip netns add "$nsa"
ip netns add "$nsb"
ip link add "$va" type veth peer name "$vb"
ip link set "$va" netns "$nsa"
ip link set "$vb" netns "$nsb"
$A ip link set lo up
$B ip link set lo up
$A ip addr add 203.0.113.1/24 dev "$va"
$B ip addr add 203.0.113.2/24 dev "$vb"
$A ip addr add 2001:db8::1/64 dev "$va" nodad
$B ip addr add 2001:db8::2/64 dev "$vb" nodad
$A sysctl -q -w net.ipv6.conf.$va.router_solicitations=0
$B sysctl -q -w net.ipv6.conf.$vb.router_solicitations=0
$A ip link set "$va" up
$B ip link set "$vb" up
sleep 1

# 1. The traffic source: a capture of real packets on the veth of namespace A.
$A tcpdump -i "$va" -s 128 -U -w "$tmp/source.pcap" 'ip or ip6' 2>"$tmp/tcpdump-src.log" &
pids="$pids $!"
tcpdump_src=$!
sleep 1.5

# "ip netns exec" execs its command, so $! is the listener itself.
$B nc -k -l 203.0.113.2 8080 >/dev/null &
pids="$pids $!"
$B nc -6 -k -l 2001:db8::2 8443 >/dev/null &
pids="$pids $!"
$B nc -u -l 203.0.113.2 5353 >/dev/null &
pids="$pids $!"
$B nc -6 -u -l 2001:db8::2 5354 >/dev/null &
pids="$pids $!"
sleep 0.5
for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
	head -c $((i * 1500)) /dev/zero | $A nc -N -p $((40100 + i)) 203.0.113.2 8080
done
for i in 1 2 3 4 5 6; do
	head -c $((i * 1000)) /dev/zero | $A nc -N -p $((40200 + i)) 2001:db8::2 8443
done
printf 'one\ntwo\nthree\n' | $A nc -u -w 1 -p 40003 203.0.113.2 5353
printf 'six\nseven\n' | $A nc -6 -u -w 1 -p 40004 2001:db8::2 5354
$A nping -q --icmp -c 3 --delay 100ms 203.0.113.2 >/dev/null
# nping cannot pick an IPv6 source inside a fresh namespace; a raw socket can.
$A python3 -c '
import socket, time
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
for seq in (1, 2):
    s.sendto(bytes([128, 0, 0, 0, 0x12, 0x34, 0, seq]) + b"padlock", ("2001:db8::2", 0))
    time.sleep(0.1)
'
# a connection attempt to a closed port: SYN answered by RST
$A nc -z -w 1 -p 40005 203.0.113.2 9 || true
sleep 1
kill "$tcpdump_src"
wait "$tcpdump_src" 2>/dev/null || true
cp "$tmp/source.pcap" "$out/source.pcap"

# 2. softflowd reads source.pcap and exports to 127.0.0.1:$port inside
# namespace A; tcpdump on that namespace's loopback records the datagrams.
export_one() { # name, softflowd args...
	name=$1
	shift
	$A nc -u -k -l 127.0.0.1 $port >/dev/null &
	nc_pid=$!
	$A tcpdump -i lo -U -w "$tmp/$name" udp port $port 2>"$tmp/tcpdump-$name.log" &
	td_pid=$!
	pids="$pids $nc_pid $td_pid"
	sleep 1.5
	$A softflowd -d -r "$tmp/source.pcap" -n 127.0.0.1:$port \
		-p "$tmp/softflowd.pid" -c "$tmp/softflowd.ctl" "$@" >"$tmp/softflowd-$name.log" 2>&1 &
	sf_pid=$!
	pids="$pids $sf_pid"
	sleep 1
	# softflowd 1.1.0 reading a file waits for a control-socket connection
	# before it reads packets; "statistics" lets it run, "shutdown" makes it
	# expire (and export) every flow, then exit.
	$A softflowctl -c "$tmp/softflowd.ctl" statistics >/dev/null
	sleep 1
	$A softflowctl -c "$tmp/softflowd.ctl" shutdown >/dev/null
	wait "$sf_pid" 2>/dev/null || true
	sleep 1
	kill "$td_pid" "$nc_pid"
	wait "$td_pid" 2>/dev/null || true
	wait "$nc_pid" 2>/dev/null || true
	cp "$tmp/$name" "$out/$name"
}

export_one softflowd-v5.pcap -v 5
export_one softflowd-v9.pcap -v 9 -6 -T ether
export_one softflowd-ipfix.pcap -v 10 -6 -T ether
export_one softflowd-v9-sampled.pcap -v 9 -6 -s 2
export_one softflowd-ipfix-milli.pcap -v 10 -6 -A milli -s 2
ls -l "$out"/*.pcap
