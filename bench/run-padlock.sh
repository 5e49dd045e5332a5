#!/usr/bin/env bash
# Throughput run of padlock against flowgen, on 127.0.0.1 only. Prints one JSON
# line with the same keys as run-fastnetmon.sh (see shared/bench/README.md,
# "How to add the project under test").
#
#   BENCH_DIR=../shared/bench bench/run-padlock.sh -p ipfix -r 2M -d 10
#   ../shared/bench/run-matrix.sh --peers "$PWD/bench/run-padlock.sh:PADLOCK_MODE=collectonly fastnetmon" ...
set -u -o pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-$REPO/../shared/bench}
[ -r "$BENCH_DIR/lib.sh" ] || { echo "$(basename "$0"): set BENCH_DIR to the shared/bench directory" >&2; exit 2; }
# shellcheck source=/dev/null
. "$BENCH_DIR/lib.sh"

usage() {
	cat <<EOF
usage: $(basename "$0") [options]
Starts padlock listening on 127.0.0.1, sends flowgen traffic to it, reads its
Prometheus counters, CPU time and flagged hosts, stops it by PID and prints one JSON line.
$(common_usage)
padlock-specific environment:
  PADLOCK            prebuilt binary (padlock, or collectonly in that mode; default: built
                     from this repository into a temp dir)
  PADLOCK_MODE       sensor (default: 'padlock sensor', collector + detection, flagged hosts
                     from GET /api/v1/flagged) or collectonly (bench/collectonly: the collector
                     alone with its metrics; nothing is flagged, the flagged keys are null)
  PADLOCK_METRICS_PORT (default 38080)   PADLOCK_NETFLOW_PORT (32055)   PADLOCK_SFLOW_PORT (36343)
  PADLOCK_SOCKETS    sockets per port (default: padlock's, one per CPU)
  PADLOCK_RCVBUF     receive buffer requested per socket in bytes (default: padlock's, 32 MiB)
  PADLOCK_THRESHOLD_PPS   (default: flowgen's suggested threshold at the offered rate)
EOF
}

parse_common "$@"
MODE=${PADLOCK_MODE:-sensor}
NF_PORT=${PADLOCK_NETFLOW_PORT:-32055}
SF_PORT=${PADLOCK_SFLOW_PORT:-36343}
if [ -n "$PORT" ]; then if [ "$PROTO" = sflow ]; then SF_PORT=$PORT; else NF_PORT=$PORT; fi; fi
PORT=$NF_PORT
[ "$PROTO" = sflow ] && PORT=$SF_PORT
METRICS_PORT=${PADLOCK_METRICS_PORT:-38080}

build_flowgen
OUT="${TMPDIR:-/tmp}/padlock-bench-$(id -u)"
mkdir -p "$OUT"
case "$MODE" in
sensor)
	if [ -z "${PADLOCK:-}" ]; then
		(cd "$REPO" && CGO_ENABLED=0 go build -o "$OUT/padlock" ./cmd/padlock) || die "building padlock failed"
		PADLOCK="$OUT/padlock"
	fi
	PL_CMD=("$PADLOCK" sensor)
	PL_VERSION=$("$PADLOCK" version 2>/dev/null | awk '{print $2}')
	;;
collectonly)
	if [ -z "${PADLOCK:-}" ]; then
		(cd "$REPO" && CGO_ENABLED=0 go build -o "$OUT/collectonly" ./bench/collectonly) || die "building bench/collectonly failed"
		PADLOCK="$OUT/collectonly"
	fi
	PL_CMD=("$PADLOCK")
	PL_VERSION="collectonly-$(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo dev)"
	;;
*) die "bad PADLOCK_MODE $MODE (sensor|collectonly)" ;;
esac
[ -n "$PL_VERSION" ] || PL_VERSION=dev

port_free_or_die udp "$NF_PORT"
port_free_or_die udp "$SF_PORT"
port_free_or_die tcp "$METRICS_PORT"
AT_RATE=$RATE
[ "$RATE" = 0 ] && AT_RATE=$(parse_rate "${NOMINAL_RATE:-4M}")
MODEL=$(flowgen_explain "$AT_RATE") || die "flowgen -explain failed"
THRESHOLD_PPS=${PADLOCK_THRESHOLD_PPS:-$(jget "$MODEL" suggested_threshold_pps)}
THRESHOLD_FLOWS=$(jget "$MODEL" suggested_threshold_flows_per_s)
FLOODER=$(jget "$MODEL" flooder)
SCANNER=$(jget "$MODEL" scanner)

T=$(mktemp -d "${TMPDIR:-/tmp}/bench-padlock.XXXXXX")
PL_PID=
cleanup() {
	stop_pid "$PL_PID"
	PL_PID=
	if [ -n "$KEEP" ]; then log "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ARGS=(--netflow-listen "127.0.0.1:$NF_PORT" --sflow-listen "127.0.0.1:$SF_PORT" --metrics-listen "127.0.0.1:$METRICS_PORT")
[ -n "${PADLOCK_SOCKETS:-}" ] && ARGS+=(--sockets "$PADLOCK_SOCKETS")
[ -n "${PADLOCK_RCVBUF:-}" ] && ARGS+=(--receive-buffer "$PADLOCK_RCVBUF")
if [ "$MODE" = sensor ]; then
	# Thresholds (flags) from flowgen's model at the offered rate; the
	# customers are flowgen's prefix; state goes to the scratch dir.
	printf 'data: "%s"\ncustomers: ["%s"]\n' "$T/data" "$HOSTS" >"$T/padlock.yaml"
	ARGS+=(--config "$T/padlock.yaml" --threshold-pps "$THRESHOLD_PPS" --scan-destinations-per-s "$THRESHOLD_FLOWS")
fi
"${PL_CMD[@]}" "${ARGS[@]}" >"$T/padlock.log" 2>&1 &
PL_PID=$!
log "padlock ($MODE) $PL_VERSION started, PID $PL_PID, $PROTO on 127.0.0.1:$PORT, threshold_pps=$THRESHOLD_PPS"
wait_for 20 udp_listening "$PORT" || die "padlock did not listen on UDP $PORT: $(tail -5 "$T/padlock.log")"
wait_for 20 tcp_listening "$METRICS_PORT" || die "padlock metrics endpoint did not come up on $METRICS_PORT: $(tail -5 "$T/padlock.log")"
RCVBUF=$(sock_rcvbuf "$PORT")

PROM="http://127.0.0.1:$METRICS_PORT/metrics"
processed() { prom_sum "$PROM" '^padlock_flow_records_decoded_total[{].*proto="'"$PROTO"'"'; }
dropped() { prom_sum "$PROM" '^padlock_datagrams_dropped_total[{].*reason="'"$1"'"'; }
decode_errors() { prom_sum "$PROM" '^padlock_decode_errors_total'; }
template_misses() { prom_sum "$PROM" '^padlock_flow_template_misses_total'; }

P0=$(processed) E0=$(decode_errors) M0=$(template_misses) C0=$(cpu_ticks "$PL_PID") D0=$(udp_drops "$PORT") S0=$(dropped socket_buffer)
FG=$(run_flowgen "$PORT") || die "flowgen failed: $FG"
P_END=$(processed)
P1=$(wait_stable processed)
E1=$(decode_errors) M1=$(template_misses) C1=$(cpu_ticks "$PL_PID") D1=$(udp_drops "$PORT") S1=$(dropped socket_buffer)
kill -0 "$PL_PID" 2>/dev/null || log "warning: padlock died during the run: $(tail -3 "$T/padlock.log")"
RSS_KB=$(awk '/^VmHWM:/ {print $2}' "/proc/$PL_PID/status" 2>/dev/null || echo 0)

BANNED_JSON=null FLOOD_B=null SCAN_B=null OTHERS=null
if [ "$MODE" = sensor ]; then
	FLAGGED=$(curl -s --max-time 5 "http://127.0.0.1:$METRICS_PORT/api/v1/flagged" || true)
	BANNED=$(printf '%s' "$FLAGGED" | jq -r '[.[].host] | unique | join(",")' 2>/dev/null || true)
	flagged_as() { printf '%s' "$FLAGGED" | jq -e --arg h "$1" --arg r "$2" 'any(.[]; .host == $h and .rule == $r)' >/dev/null 2>&1 && echo true || echo false; }
	FLOOD_B=$(flagged_as "$FLOODER" flood)
	SCAN_B=$(flagged_as "$SCANNER" netscan)
	OTHERS=$(printf '%s' "$BANNED" | tr ',' '\n' | grep -v -x -e "$FLOODER" -e "$SCANNER" | grep -c . || true)
	BANNED_JSON="\"$BANNED\""
fi
stop_pid "$PL_PID"
PL_PID=

SENT=$(jget "$FG" records_sent)
SECS=$(jget "$FG" seconds)
PROCESSED=$((P1 - P0))
printf '{"peer":"padlock","version":"%s","mode":"%s","proto":"%s","offered_rate":%s,"duration_s":%s,"sampling":%s,"records_sent":%s,"datagrams_sent":%s,"sent_rate":%s,"send_seconds":%s,"processed_records":%s,"processed_rate":%s,"processed_at_send_end":%s,"loss_pct":%s,"kernel_drops_datagrams":%s,"padlock_socket_drops_datagrams":%s,"socket_rcvbuf_bytes":%s,"decode_errors":%s,"template_misses":%s,"cpu_s":%s,"records_per_cpu_s":%s,"flowgen_cpu_s":%s,"peak_rss_mb":%s,"threshold_pps":%s,"flooder":"%s","flooder_banned":%s,"scanner":"%s","scanner_banned":%s,"other_hosts_banned":%s,"banned_hosts":%s}\n' \
	"$PL_VERSION" "$MODE" "$PROTO" "$RATE" "$DURATION" "$SAMPLING" "$SENT" "$(jget "$FG" datagrams_sent)" \
	"$(jget "$FG" records_per_s)" "$SECS" \
	"$PROCESSED" "$(calc "int($PROCESSED / $SECS)")" "$((P_END - P0))" \
	"$(calc "$SENT > 0 ? 100 * ($SENT - $PROCESSED) / $SENT : 0")" "$((D1 - D0))" "$((S1 - S0))" "$RCVBUF" "$((E1 - E0))" "$((M1 - M0))" \
	"$(calc "($C1 - $C0) / $CLK_TCK")" "$(calc "($C1 - $C0) > 0 ? int($PROCESSED / (($C1 - $C0) / $CLK_TCK)) : 0")" \
	"$(jget "$FG" cpu_s)" "$((RSS_KB / 1024))" "$THRESHOLD_PPS" "$FLOODER" "$FLOOD_B" "$SCANNER" "$SCAN_B" "$OTHERS" "$BANNED_JSON"
