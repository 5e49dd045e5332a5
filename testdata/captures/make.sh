#!/usr/bin/env bash
# make.sh — rebuild the capture corpus of the detector proof.
#
# Run as root:  testdata/captures/make.sh [OUTDIR]   (default: this directory)
#
# Builds its own network-namespace topology (names pl-evidence-<pid>-*), veth
# links only between those namespaces, addresses only from 203.0.113.0/24
# (customers), 198.51.100.0/24 and 198.18.0.0/15 (internet), 2001:db8::/32.
# Nothing is connected to the host's interfaces or routes; every namespace is
# deleted again on exit (trap), also on failure. Every scan and flood is
# bounded in count. See README.md for what each capture contains.
#
#   customers (203.0.113.0/24, 2001:db8:c::/64)        "internet"
#   scanner  .10  ─┐                                    198.51.100.0/24  (any address, local route)
#   flooder  .11  ─┤  bridge brc   router    veth       198.18.0.0/24    (any address, local route)
#   spammer  .12  ─┼──────────── [ r ] ────────────── [ x ]  198.18.2.0/25  (any address, local route)
#   spoofer  .13  ─┤ 203.0.113.1      198.19.255.1/30   rest of 198.18.0.0/15: blackhole
#   web      .20  ─┤ (captures here)                     2001:db8:e::/64 (any address)
#   crawler  .21  ─┤
#   resolver .22  ─┤
#   bulk     .23  ─┘
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:-$HERE}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
SIM="python3 $HERE/netsim.py"
P=pl-evidence-$$
R=$P-r
X=$P-x
TMP=$(mktemp -d /tmp/$P.XXXX)
declare -A HOSTS=([scanner]=10 [flooder]=11 [spammer]=12 [spoofer]=13 [web]=20 [crawler]=21 [resolver]=22 [bulk]=23)
declare -a PIDS=()

cleanup() {
	set +e
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
	for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
	for h in "${!HOSTS[@]}"; do ip netns del "$P-$h" 2>/dev/null; done
	ip netns del "$X" 2>/dev/null
	ip netns del "$R" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
bg() { local ns=$1; shift; ip netns exec "$ns" "$@" & PIDS+=($!); }

# With EXPORTS_ONLY=1 only the flow renditions are rebuilt from the pcaps
# already in OUTDIR (in a single namespace of their own).
ip netns add "$R"
nsx "$R" ip link set lo up
if [[ -z ${EXPORTS_ONLY:-} ]]; then
# --- topology -------------------------------------------------------------
ip netns add "$X"
nsx "$X" ip link set lo up
nsx "$R" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
	net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
nsx "$R" ip link add brc type bridge
nsx "$R" ip link set brc up
nsx "$R" ip addr add 203.0.113.1/24 dev brc
nsx "$R" ip addr add 2001:db8:c::1/64 dev brc nodad
# Uplink r <-> x.
nsx "$R" ip link add uplink type veth peer name eth0 netns "$X"
nsx "$R" ip link set uplink up
nsx "$R" ip addr add 198.19.255.1/30 dev uplink
nsx "$R" ip addr add 2001:db8:ffff::1/64 dev uplink nodad
nsx "$R" ip route add default via 198.19.255.2
nsx "$R" ip -6 route add default via 2001:db8:ffff::2
nsx "$X" ip link set eth0 up
nsx "$X" ip addr add 198.19.255.2/30 dev eth0
nsx "$X" ip addr add 2001:db8:ffff::2/64 dev eth0 nodad
nsx "$X" ip route add 203.0.113.0/24 via 198.19.255.1
nsx "$X" ip -6 route add 2001:db8:c::/64 via 2001:db8:ffff::1
nsx "$X" ip route add local 198.51.100.0/24 dev lo
nsx "$X" ip route add local 198.18.0.0/24 dev lo
nsx "$X" ip route add local 198.18.2.0/25 dev lo
nsx "$X" ip route add blackhole 198.18.0.0/15
nsx "$X" ip -6 route add local 2001:db8:e::/64 dev lo
nsx "$X" sysctl -qw net.ipv4.ip_nonlocal_bind=1 net.ipv6.ip_nonlocal_bind=1 \
	net.ipv4.tcp_syncookies=1 net.core.somaxconn=1024
# Customer hosts.
for h in "${!HOSTS[@]}"; do
	ns=$P-$h
	n=${HOSTS[$h]}
	ip netns add "$ns"
	nsx "$ns" ip link set lo up
	nsx "$R" ip link add "c$n" type veth peer name eth0 netns "$ns"
	nsx "$R" ip link set "c$n" master brc up
	nsx "$ns" ip link set eth0 up
	nsx "$ns" ip addr add "203.0.113.$n/24" dev eth0
	nsx "$ns" ip addr add "2001:db8:c::$n/64" dev eth0 nodad
	nsx "$ns" ip route add default via 203.0.113.1
	nsx "$ns" ip -6 route add default via 2001:db8:c::1
done
R_MAC=$(nsx "$R" cat /sys/class/net/brc/address)
S_MAC=$(nsx "$P-scanner" cat /sys/class/net/eth0/address)

# --- responders on the "internet" side -------------------------------------
ssh_listen=()
for i in 1 2 3 4 5; do ssh_listen+=("ssh@198.18.0.$i:22"); done
bg "$X" $SIM serve --body 600 http@0.0.0.0:80 "http@[::]:80" smtp@0.0.0.0:25 dns@198.51.100.1-254:53 dns@198.18.0.1-50:53 "${ssh_listen[@]}"
bg "$X" iperf3 -s -B 198.51.100.200 -p 5201
bg "$P-web" $SIM serve --body 300 http@0.0.0.0:80
sleep 1.5

# capture NAME CMD...: record on the router's customer-facing bridge while
# CMD runs in the scenario's namespace(s).
capture() {
	local name=$1; shift
	local f=$TMP/$name.pcap
	ip netns exec "$R" tcpdump -Z root -i brc -s 128 -U -n -w "$f" 'ip or (ip6 and ip6[6] != 0)' \
		</dev/null >/dev/null 2>"$TMP/$name.log" &
	local tp=$!
	PIDS+=("$tp")
	sleep 1
	# hping3 exits non-zero when it received no replies; that is no failure.
	"$@" || echo "$name: command exited with status $?"
	sleep 1
	kill -INT "$tp"
	wait "$tp" || true
	cp "$f" "$OUT/$name.pcap"
	echo "$name: $(stat -c %s "$OUT/$name.pcap") bytes, $(tail -n 3 "$TMP/$name.log" | tr '\n' ' ')"
}

seq_hosts() { # seq_hosts PREFIX FIRST LAST -> one address per line
	local p=$1 i
	for ((i = $2; i <= $3; i++)); do echo "$p.$i"; done
}

# --- scans ---------------------------------------------------------------
seq_hosts 198.18.0 0 255 >"$TMP/targets300"
seq_hosts 198.18.1 0 43 >>"$TMP/targets300"
capture scan-nmap-syn nsx "$P-scanner" nmap -sS -Pn -n -p22 --max-retries 0 -T4 --max-rate 2000 \
	-iL "$TMP/targets300" -oN /dev/null
capture scan-nmap-vertical nsx "$P-scanner" nmap -sS -Pn -n -p1-1000 --max-retries 0 -T4 \
	--max-rate 2000 198.18.0.5 -oN /dev/null
capture scan-nmap-vertical-ipv6 nsx "$P-scanner" nmap -6 -sS -Pn -n -p1-300 --max-retries 0 -T4 \
	--max-rate 2000 2001:db8:e::5 -oN /dev/null
capture scan-masscan nsx "$P-scanner" masscan 198.18.2.0/24 -p80,443 --rate 2000 --wait 2 \
	--adapter eth0 --adapter-ip 203.0.113.10 --adapter-mac "$S_MAC" --router-mac "$R_MAC"

# --- floods --------------------------------------------------------------
capture flood-syn nsx "$P-flooder" hping3 -q -S -p 81 -c 2000 --faster 198.51.100.80
capture flood-udp nsx "$P-flooder" hping3 -q --udp -s 40000 -p 9999 -d 512 -c 1500 --faster 198.51.100.81
# Inbound: an external source floods the web customer (the victim, direction IN).
capture flood-udp-inbound nsx "$X" hping3 -q --udp -a 198.51.100.90 -s 41000 -p 9999 -d 512 -c 1500 --faster 203.0.113.20
# Spoofed sources: the spoofer sends with addresses no customer owns, plus a
# few packets from its own address.
spoof() {
	nsx "$P-spoofer" hping3 -q -1 -c 3 -i u200000 198.51.100.1 || true
	nsx "$P-spoofer" hping3 -q -S -a 198.51.100.66 -p 80 -c 300 -i u2000 198.18.0.10 || true
	nsx "$P-spoofer" hping3 -q --udp -a 198.18.77.77 -s 42000 -p 9999 -c 200 -i u2000 198.51.100.82 || true
}
capture spoof spoof

# --- spam ----------------------------------------------------------------
capture spam-smtp nsx "$P-spammer" $SIM smtp 198.51.100.1-150

# --- benign traps ----------------------------------------------------------
capture benign-web nsx "$X" $SIM web-clients --server 203.0.113.20 198.51.100.1-198.51.100.254,198.18.0.1-20
capture benign-crawler nsx "$P-crawler" $SIM crawl 198.51.100.1-198.51.100.254,198.18.0.1-20
capture benign-dns nsx "$P-resolver" $SIM dns 198.51.100.1-198.51.100.254,198.18.0.1-50
bulk() {
	nsx "$P-bulk" iperf3 -c 198.51.100.200 -p 5201 -n 4M -M 1400 >/dev/null
}
capture benign-iperf bulk

fi # EXPORTS_ONLY

# --- flow renditions: softflowd (NetFlow v9, IPFIX) and pmacctd sfprobe (sFlow)
# read each capture and export to the router namespace's loopback, where
# tcpdump records the export datagrams.
# sFlow is sampled: 1 in 1 for the scans (every probe is a sample), 1 in 10
# for the floods (as an edge router would sample; packets and bytes scale).
sfprobe_conf() { # sfprobe_conf RATE -> path of a pmacctd config
	cat >"$TMP/sfprobe-$1.conf" <<CONF
daemonize: false
plugins: sfprobe
sfprobe_receiver: 127.0.0.1:6343
sfprobe_agentip: 127.0.0.1
sfprobe_ifspeed: 10000000000
sampling_rate: $1
CONF
	echo "$TMP/sfprobe-$1.conf"
}
export_capture() { # export_capture OUT PORT CMD...
	local name=$1 port=$2; shift 2
	local f=$TMP/$name
	ip netns exec "$R" tcpdump -Z root -i lo -s 0 -U -n -w "$f" "udp port $port" </dev/null >/dev/null 2>&1 &
	local tp=$!
	PIDS+=("$tp")
	sleep 1
	# setsid: pmacctd signals its whole process group when the file ends.
	# pmacctd sometimes exits non-zero after exporting everything (its core
	# loses the plugin at end of file); what counts is what was exported.
	nsx "$R" setsid -w "$@" </dev/null >"$f.log" 2>&1 || echo "$name: exporter exited with status $?"
	sleep 1
	kill -INT "$tp"
	wait "$tp" || true
	local n
	n=$(tcpdump -r "$f" 2>/dev/null | wc -l)
	if ((n == 0)); then
		cat "$f.log"
		echo "$name: nothing exported" >&2
		return 1
	fi
	cp "$f" "$OUT/$name"
	echo "$name: $(stat -c %s "$OUT/$name") bytes, $n datagrams"
}
for c in scan-nmap-syn scan-masscan flood-syn flood-udp; do
	rate=1
	[[ $c == flood-* ]] && rate=10
	export_capture "$c.netflow9.pcap" 2055 softflowd -d -r "$OUT/$c.pcap" -n 127.0.0.1:2055 -v 9 -T full
	export_capture "$c.ipfix.pcap" 4739 softflowd -d -r "$OUT/$c.pcap" -n 127.0.0.1:4739 -v 10 -T full
	export_capture "$c.sflow.pcap" 6343 pmacctd -f "$(sfprobe_conf $rate)" -I "$OUT/$c.pcap"
done
echo done
