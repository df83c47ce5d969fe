#!/usr/bin/env bash
# bench-vhost.sh: the vhost-user backend against DPDK's own, side by side in
# one run, with the same client: dpdk-testpmd's virtio-user driver in
# txonly mode, 64-byte frames.
#
#   vale   virtio-user txonly -> valed (vale0:vu) -> vale0 -> pkt-gen -f rx
#   dpdk   virtio-user txonly -> dpdk-testpmd --vdev net_vhost0 (rxonly, no switch)
#
# then guest-to-guest TCP throughput between two QEMU guests (TCG) on
# vale0 (go test -bench GuestToGuest ./test/). Needs root; installs
# Debian's DPDK and QEMU packages if missing. Run on a quiet machine.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
SECS=${SECS:-6}

need=()
command -v dpdk-testpmd >/dev/null || need+=(dpdk-dev librte-net-virtio23 librte-net-vhost23 librte-mempool-ring23)
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
if [ ${#need[@]} -gt 0 ]; then
	apt-get update >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" >/dev/null
fi

mpps() { awk -v v="$1" 'BEGIN {printf "%.2f Mpps", v/1e6}'; }

echo "== virtio-user txonly (dpdk-testpmd), 64 B, $SECS s each"
start_valed
v=${VALE_PIDS[-1]}
"$VALE_BIN/vale-ctl" -a vale0:vu -vhost-user "$VALE_TMP/vu.sock" >/dev/null
"$VALE_BIN/pkt-gen" -i vale0:b@conf:rx-slots=4096 -f rx >"$VALE_TMP/rx1.out" 2>&1 &
r=$!
wait_port vale0:b
testpmd "$VALE_TMP/tx1.log" 1 "net_virtio_user0,path=$VALE_TMP/vu.sock,queue_size=1024" txonly "" --rxd=1024 --txd=1024
t=$TESTPMD
taken() { port_stat vale0:vu TX_PKTS; }
sleep 1
testpmd_show "$t"
t0=$(taken)
sleep "$SECS"
t1=$(taken)
testpmd_show "$t"
testpmd_stop "$t"
stop_pid "$r"
stop_pid "$v"
ours=$(pktgen_pps "$VALE_TMP/rx1.out")
intake=$(( (t1 - t0) / SECS ))

testpmd "$VALE_TMP/rx2.log" 0 "net_vhost0,iface=$VALE_TMP/dpdk.sock,queues=1" rxonly "" --rxd=1024 --txd=1024
r=$TESTPMD
testpmd "$VALE_TMP/tx2.log" 1 "net_virtio_user0,path=$VALE_TMP/dpdk.sock,queue_size=1024" txonly "" --rxd=1024 --txd=1024
t=$TESTPMD
sleep 1
testpmd_show "$r"
testpmd_show "$t"
sleep "$SECS"
testpmd_show "$r"
testpmd_show "$t"
testpmd_stop "$t"
testpmd_stop "$r"
dpdk=$(testpmd_pps "$VALE_TMP/rx2.log" Rx)
printf '  vale   virtio-user -> valed -> vale0 -> pkt-gen -f rx   %s received (testpmd sent %s, valed took %s)\n' \
	"$(mpps "$ours")" "$(mpps "$(testpmd_pps "$VALE_TMP/tx1.log" Tx)")" "$(mpps "$intake")"
printf '  dpdk   virtio-user -> testpmd net_vhost rxonly          %s received (testpmd sent %s)\n' \
	"$(mpps "$dpdk")" "$(mpps "$(testpmd_pps "$VALE_TMP/tx2.log" Tx)")"
awk -v a="$intake" -v b="$dpdk" 'BEGIN {if (b > 0) printf "  ratio  %.2f (frames valed took / frames testpmd net_vhost took)\n", a/b}'

[ -n "${SKIP_GUESTS:-}" ] && exit 0
echo "== guest to guest over vale0 (QEMU TCG, TCP, 64 MiB)"
(cd "$(dirname "$0")/../test" && go test -count=1 -run '^$' -bench GuestToGuest -benchtime 1x . | grep -E 'Benchmark|Mbit')
