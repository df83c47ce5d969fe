#!/usr/bin/env bash
# bench-afxdp.sh: AF_XDP NIC ports against DPDK's net_af_xdp driver, side
# by side in one run, on the same veth pair (vX in a "switch" namespace,
# pX in a "wire" namespace), 64-byte frames:
#
#   switch -> wire   pkt-gen -f tx -> vale0 -> AF_XDP TX on vX
#                    vs dpdk-testpmd txonly (net_af_xdp on vX)
#                    received by dpdk-testpmd rxonly (net_af_xdp on pX)
#   wire -> switch   dpdk-testpmd txonly (net_af_xdp on pX) sends into vX
#                    -> AF_XDP RX -> vale0 -> pkt-gen -f rx
#                    vs dpdk-testpmd rxonly (net_af_xdp on vX)
#   host port        pkt-gen -f tx -> vale0 -> TAP vX^ (vale-ctl -h), and
#                    iperf3 UDP from the host stack through vX^ into vale0
#
# Both sides are bound by the same kernel path (veth has copy-mode AF_XDP
# only). Needs root; installs Debian's DPDK packages if testpmd is missing.
# Run on a quiet machine.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
KEEP=${KEEP:-}
SECS=${SECS:-6}

if ! command -v dpdk-testpmd >/dev/null; then
	apt-get update >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
		dpdk-dev librte-net-af-xdp23 librte-mempool-ring23 >/dev/null
fi
for c in ip ethtool iperf3; do
	command -v "$c" >/dev/null || { echo "bench-afxdp.sh needs $c" >&2; exit 1; }
done

SW=valebench$$-sw
WIRE=valebench$$-wire
ip netns add "$SW"
ip netns add "$WIRE"
cleanup_ns() {
	vale_cleanup
	ip netns del "$SW" 2>/dev/null || true
	ip netns del "$WIRE" 2>/dev/null || true
}
trap cleanup_ns EXIT
ip link add vX netns "$SW" type veth peer name pX netns "$WIRE"
for ns in "$SW" "$WIRE"; do
	ip -n "$ns" link set lo up
	ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
ip -n "$SW" link set vX up
ip -n "$WIRE" link set pX up

# xsk NS IFACE MODE OUT: dpdk-testpmd on an AF_XDP port of IFACE in NS;
# receivers poll on CPU 1, senders on CPU 0.
xsk() {
	local cores=0,1
	[ "$3" = txonly ] && cores=1,0
	testpmd "$4" "$cores" "net_af_xdp0,iface=$2" "$3" "$1"
}

kpps() { awk -v v="$1" 'BEGIN {printf "%.0f Kpps", v/1000}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a/b; else print "-"}'; }

# window PID...: measure SECS seconds of the testpmds given.
window() {
	local p
	sleep 1 # past the ramp-up
	for p in "$@"; do testpmd_show "$p"; done
	sleep "$SECS"
	for p in "$@"; do testpmd_show "$p"; done
}

echo "== switch -> wire, 64 B, $SECS s each (received by dpdk-testpmd rxonly on pX)"
VALE_NETNS=$SW start_valed
v=${VALE_PIDS[-1]}
"$VALE_BIN/vale-ctl" -a vale0:vX >/dev/null
xsk "$WIRE" pX rxonly "$VALE_TMP/rx1.log"
r=$TESTPMD
"$VALE_BIN/pkt-gen" -i vale0:a -f tx >"$VALE_TMP/tx1.out" 2>&1 &
g=$!
window "$r"
stop_pid "$g"
testpmd_stop "$r"
stop_pid "$v"
ours_out=$(testpmd_pps "$VALE_TMP/rx1.log" Rx)
xsk "$WIRE" pX rxonly "$VALE_TMP/rx2.log"
r=$TESTPMD
xsk "$SW" vX txonly "$VALE_TMP/tx2.log"
t=$TESTPMD
window "$r" "$t"
testpmd_stop "$t"
testpmd_stop "$r"
dpdk_out=$(testpmd_pps "$VALE_TMP/rx2.log" Rx)
printf '  vale   pkt-gen -> vale0 -> AF_XDP vX   %s (pkt-gen sent %s)\n' "$(kpps "$ours_out")" "$(kpps "$(pktgen_pps "$VALE_TMP/tx1.out")")"
printf '  dpdk   testpmd txonly net_af_xdp vX   %s (testpmd sent %s)\n' "$(kpps "$dpdk_out")" "$(kpps "$(testpmd_pps "$VALE_TMP/tx2.log" Tx)")"
printf '  ratio  %s\n' "$(ratio "$ours_out" "$dpdk_out")"

echo "== wire -> switch, 64 B, $SECS s each (sent by dpdk-testpmd txonly on pX)"
VALE_NETNS=$SW start_valed
v=${VALE_PIDS[-1]}
"$VALE_BIN/vale-ctl" -a vale0:vX >/dev/null
"$VALE_BIN/pkt-gen" -i vale0:b -f rx >"$VALE_TMP/rx3.out" 2>&1 &
r=$!
wait_port vale0:b
xsk "$WIRE" pX txonly "$VALE_TMP/tx3.log"
t=$TESTPMD
window "$t"
testpmd_stop "$t"
stop_pid "$r"
stop_pid "$v"
ours_in=$(pktgen_pps "$VALE_TMP/rx3.out")
xsk "$SW" vX rxonly "$VALE_TMP/rx4.log"
r=$TESTPMD
xsk "$WIRE" pX txonly "$VALE_TMP/tx4.log"
t=$TESTPMD
window "$r" "$t"
testpmd_stop "$t"
testpmd_stop "$r"
dpdk_in=$(testpmd_pps "$VALE_TMP/rx4.log" Rx)
printf '  vale   AF_XDP vX -> vale0 -> pkt-gen   %s (testpmd sent %s)\n' "$(kpps "$ours_in")" "$(kpps "$(testpmd_pps "$VALE_TMP/tx3.log" Tx)")"
printf '  dpdk   testpmd rxonly net_af_xdp vX   %s (testpmd sent %s)\n' "$(kpps "$dpdk_in")" "$(kpps "$(testpmd_pps "$VALE_TMP/tx4.log" Tx)")"
printf '  ratio  %s\n' "$(ratio "$ours_in" "$dpdk_in")"

echo "== host port (vale-ctl -h vale0:vX, TAP vX^), $SECS s each"
VALE_NETNS=$SW start_valed
v=${VALE_PIDS[-1]}
"$VALE_BIN/vale-ctl" -h vale0:vX >/dev/null
ip -n "$SW" addr add 10.98.0.9/24 dev 'vX^'
ip -n "$WIRE" addr add 10.98.0.1/24 dev pX
rxp() { ip -n "$SW" -s link show dev 'vX^' | awk '/RX:/ {getline; print $2}'; }
before=$(rxp)
timeout -s INT "$SECS" "$VALE_BIN/pkt-gen" -i vale0:a -f tx -d 10.98.0.9 -D "$(ip -n "$SW" link show dev 'vX^' | awk '/ether/ {print $2}')" \
	>"$VALE_TMP/tx5.out" 2>&1 || true
after=$(rxp)
to_host=$(( (after - before) / SECS ))
ip netns exec "$WIRE" iperf3 -s -1 >/dev/null 2>&1 &
s=$!
sleep 0.5
"$VALE_BIN/vale-ctl" -l vale0:vX^ >"$VALE_TMP/h1"
ip netns exec "$SW" iperf3 -c 10.98.0.1 -u -b 0 -l 18 -t "$SECS" >"$VALE_TMP/iperf.out" 2>&1 || true
"$VALE_BIN/vale-ctl" -l vale0:vX^ >"$VALE_TMP/h2"
wait "$s" 2>/dev/null || true
txh() { port_stat 'vale0:vX^' TX_PKTS "$1"; }
from_host=$(( ($(txh "$VALE_TMP/h2") - $(txh "$VALE_TMP/h1")) / SECS ))
stop_pid "$v"
printf '  switch -> host stack   %s (pkt-gen -> vale0 -> TAP write, counted by the TAP)\n' "$(kpps "$to_host")"
printf '  host stack -> switch   %s (iperf3 -u -l 18 -> TAP read -> vale0)\n' "$(kpps "$from_host")"
