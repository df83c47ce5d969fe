#!/usr/bin/env bash
# bench-ab.sh BINDIR... : vhost-user ingress of several builds of vale,
# interleaved: testpmd virtio-user txonly (a CPU of its own, driven
# interactively) into vale0:vu of each build's valed (with pkt-gen -f rx on
# the other CPU), ROUNDS rounds (default 5) of SECS seconds (default 4),
# printing the Mpps valed took per build and round. For A/B comparisons of
# a change (build the other side with `go build -o DIR/ ./cmd/...` in a git
# worktree). DEVARGS adds virtio-user devargs (e.g. ,in_order=0).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
ROUNDS=${ROUNDS:-5}
SECS=${SECS:-4}
[ $# -gt 0 ] || { echo "usage: $0 BINDIR..." >&2; exit 2; }

taken() { "$VALE_BIN/vale-ctl" -l -json vale0:vu | grep -o '"tx_packets": [0-9]*' | head -1 | grep -o '[0-9]*$'; }

run() {
	VALE_BIN=$1
	VALE_CPU=0 start_valed
	local v=${VALE_PIDS[-1]}
	"$VALE_BIN/vale-ctl" -a vale0:vu -vhost-user "$VALE_TMP/vu.sock" >/dev/null
	taskset -c 0 "$VALE_BIN/pkt-gen" -i vale0:b -f rx >"$VALE_TMP/rx.out" 2>&1 &
	local rx=$!
	wait_port vale0:b
	testpmd "$VALE_TMP/tx.log" 1 "net_virtio_user0,path=$VALE_TMP/vu.sock,queue_size=1024${DEVARGS:-}" txonly "" --rxd=1024 --txd=1024
	local t=$TESTPMD
	sleep 1
	local t0 t1
	t0=$(taken)
	sleep "$SECS"
	t1=$(taken)
	testpmd_stop "$t"
	stop_pid "$rx"
	stop_pid "$v"
	awk -v n=$((t1 - t0)) -v s="$SECS" -v b="$1" 'BEGIN {printf "%-40s %6.2f Mpps\n", b, n / s / 1e6}'
}

for round in $(seq "$ROUNDS"); do
	for dir in "$@"; do run "$dir"; done
done
