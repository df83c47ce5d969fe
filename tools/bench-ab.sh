#!/usr/bin/env bash
# bench-ab.sh BINDIR... : vhost-user ingress of several builds of vale,
# interleaved: testpmd virtio-user txonly (a CPU of its own, driven
# interactively) into vale0:vu of each build's valed (with pkt-gen -f rx on
# the other CPU), ROUNDS rounds (default 5) of SECS seconds (default 4),
# printing the Mpps valed took per build and round. For A/B comparisons of
# a change (build the other side with `go build -o DIR/ ./cmd/...` in a git
# worktree). DEVARGS adds virtio-user devargs (e.g. ,in_order=0); ALONE=1
# leaves pkt-gen out (vale0:vu is valed's only port).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
ROUNDS=${ROUNDS:-5}
SECS=${SECS:-4}
[ $# -gt 0 ] || { echo "usage: $0 BINDIR..." >&2; exit 2; }

taken() { "$VALE_BIN/vale-ctl" -l -json vale0:vu | grep -o '"tx_packets": [0-9]*' | head -1 | grep -o '[0-9]*$'; }

run() {
	VALE_BIN=$1
	vhost_ingress_start "${DEVARGS:-}" ${ALONE:+alone}
	sleep 1
	local t0 t1
	t0=$(taken)
	sleep "$SECS"
	t1=$(taken)
	vhost_ingress_stop
	awk -v n=$((t1 - t0)) -v s="$SECS" -v b="$1" 'BEGIN {printf "%-40s %6.2f Mpps\n", b, n / s / 1e6}'
}

for round in $(seq "$ROUNDS"); do
	for dir in "$@"; do run "$dir"; done
done
