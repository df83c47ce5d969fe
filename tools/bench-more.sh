#!/usr/bin/env bash
# bench-more.sh: the figures that have no DPDK peer to run beside them:
# full-size frames and a copy monitor on the VALE path, ping/pong round
# trips, a host port to and from the host stack, and TCP between two QEMU
# guests. Each figure is one run of SECS seconds (default 5). Needs root
# for the host port (a namespace and a veth) and QEMU for the guests.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
SECS=${SECS:-5}

kpps() { awk -v v="$1" 'BEGIN {printf "%.0f Kpps", v/1000}'; }

run() { # run LEN: pkt-gen -> vale0 -> pkt-gen with LEN-byte frames
	start_valed
	local v=${VALE_PIDS[-1]}
	"$VALE_BIN/pkt-gen" -i vale0:b -f rx >"$VALE_TMP/rx.out" 2>&1 &
	local rx=$!
	wait_port vale0:b
	timeout -s INT "$SECS" "$VALE_BIN/pkt-gen" -i vale0:a -f tx -l "$1" >"$VALE_TMP/tx.out" 2>&1 || true
	sleep 0.5
	stop_pid "$rx"
	stop_pid "$v"
	printf '  %-6s tx %s\n' "${1}B" "$(rate "$VALE_TMP/tx.out")"
	printf '  %-6s rx %s\n' "" "$(rate "$VALE_TMP/rx.out")"
}

monitored() { # the VALE path with a /t copy monitor on the sender, read by pkt-gen
	start_valed
	local v=${VALE_PIDS[-1]}
	"$VALE_BIN/pkt-gen" -i vale0:b -f rx >"$VALE_TMP/rx.out" 2>&1 &
	local rx=$!
	wait_port vale0:b
	timeout -s INT "$SECS" "$VALE_BIN/pkt-gen" -i vale0:a -f tx >"$VALE_TMP/tx.out" 2>&1 &
	local tx=$!
	wait_port vale0:a
	"$VALE_BIN/pkt-gen" -i vale0:a/t -f rx >"$VALE_TMP/mon.out" 2>&1 &
	local mon=$!
	wait "$tx" || true
	sleep 0.5
	stop_pid "$mon"
	stop_pid "$rx"
	stop_pid "$v"
	printf '  %-6s rx %s\n' "60B" "$(rate "$VALE_TMP/rx.out")"
	printf '  %-6s monitor %s\n' "" "$(rate "$VALE_TMP/mon.out")"
}

rtt() { # rtt [valed flags...]
	start_valed "$@"
	local v=${VALE_PIDS[-1]}
	"$VALE_BIN/pkt-gen" -i vale0:pong -f pong >/dev/null 2>&1 &
	local pong=$!
	wait_port vale0:pong
	"$VALE_BIN/pkt-gen" -i vale0:ping -f ping -n 20000 2>/dev/null | grep '^RTT' | sed 's/^/  /'
	stop_pid "$pong"
	stop_pid "$v"
}

hostport() { # vale-ctl -h on a veth: pkt-gen into the host stack, iperf3 out of it
	local sw=valebench$$-sw wire=valebench$$-wire
	ip netns add "$sw"
	ip netns add "$wire"
	ip link add vH netns "$sw" type veth peer name pH netns "$wire"
	ip -n "$sw" link set lo up
	ip -n "$wire" link set lo up
	ip -n "$sw" link set vH up
	ip -n "$wire" link set pH up
	VALE_NETNS=$sw start_valed
	local v=${VALE_PIDS[-1]}
	"$VALE_BIN/vale-ctl" -h vale0:vH >/dev/null
	ip -n "$sw" addr add 10.98.0.9/24 dev 'vH^'
	ip -n "$wire" addr add 10.98.0.1/24 dev pH
	local before after
	before=$(ip -n "$sw" -s link show dev 'vH^' | awk '/RX:/ {getline; print $2}')
	timeout -s INT "$SECS" "$VALE_BIN/pkt-gen" -i vale0:a -f tx -d 10.98.0.9 \
		-D "$(ip -n "$sw" link show dev 'vH^' | awk '/ether/ {print $2}')" >"$VALE_TMP/tx.out" 2>&1 || true
	after=$(ip -n "$sw" -s link show dev 'vH^' | awk '/RX:/ {getline; print $2}')
	ip netns exec "$wire" iperf3 -s -1 >/dev/null 2>&1 &
	local s=$!
	sleep 0.5
	"$VALE_BIN/vale-ctl" -l 'vale0:vH^' >"$VALE_TMP/h1"
	ip netns exec "$sw" iperf3 -c 10.98.0.1 -u -b 0 -l 18 -t "$SECS" >/dev/null 2>&1 || true
	"$VALE_BIN/vale-ctl" -l 'vale0:vH^' >"$VALE_TMP/h2"
	wait "$s" 2>/dev/null || true
	local from=$(( ($(port_stat 'vale0:vH^' TX_PKTS "$VALE_TMP/h2") - $(port_stat 'vale0:vH^' TX_PKTS "$VALE_TMP/h1")) / SECS ))
	stop_pid "$v"
	ip netns del "$sw"
	ip netns del "$wire"
	printf '  switch -> host stack   %s (pkt-gen -> vale0 -> TAP write, counted by the TAP)\n' "$(kpps $(( (after - before) / SECS )))"
	printf '  host stack -> switch   %s (iperf3 -u -l 18 -> TAP read -> vale0)\n' "$(kpps "$from")"
}

echo "== pkt-gen -f tx -> vale0 -> pkt-gen -f rx, $SECS s each"
run 60
run 1514
echo "== the same, 60 B, with a copy monitor (vale0:a/t) read by a third pkt-gen"
monitored
echo "== ping/pong round trip, 20000 transactions (valed default: no polling)"
rtt
echo "== ping/pong round trip, valed -poll 50us"
rtt -poll 50us
echo "== host port (vale-ctl -h, TAP vH^), 64 B"
hostport
[ -n "${SKIP_GUESTS:-}" ] && exit 0
echo "== guest to guest over vale0 (QEMU TCG, TCP, 64 MiB)"
(cd "$(dirname "$0")/../test" && go test -count=1 -run '^$' -bench GuestToGuest -benchtime 1x . | grep -E 'Benchmark|Mbit')
