#!/usr/bin/env bash
# bench.sh: port-to-port throughput through vale0 with pkt-gen, for minimum
# frames (-l 60: 64 bytes with the CRC) and full-size frames (-l 1514, the
# largest without the CRC), plus ping/pong round trips. Run on a quiet
# machine; each figure is the receiver's average over SECS seconds of
# unlimited sending.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
SECS=${SECS:-5}

run() { # run LEN [valed flags...]
	local len=$1
	shift
	start_valed "$@"
	local v=${VALE_PIDS[-1]}
	"$VALE_BIN/pkt-gen" -i vale0:b -f rx >"$VALE_TMP/rx.out" 2>&1 &
	local rx=$!
	wait_port vale0:b
	timeout -s INT "$SECS" "$VALE_BIN/pkt-gen" -i vale0:a -f tx -l "$len" >"$VALE_TMP/tx.out" 2>&1 || true
	sleep 0.5
	stop_pid "$rx"
	stop_pid "$v"
	printf '%-6s tx %s\n' "${len}B" "$(rate "$VALE_TMP/tx.out")"
	printf '%-6s rx %s\n' "" "$(rate "$VALE_TMP/rx.out")"
}

rtt() { # rtt [valed flags...]
	start_valed "$@"
	local v=${VALE_PIDS[-1]}
	"$VALE_BIN/pkt-gen" -i vale0:pong -f pong >/dev/null 2>&1 &
	local pong=$!
	wait_port vale0:pong
	"$VALE_BIN/pkt-gen" -i vale0:ping -f ping -n 20000 2>/dev/null | grep '^RTT'
	stop_pid "$pong"
	stop_pid "$v"
}

echo "== pkt-gen -f tx -> vale0 -> pkt-gen -f rx, $SECS s each"
run 60
run 1514
pipe() { # pipe BURST: pkt-gen on each end of a netmap pipe, 64-byte frames
	start_valed
	local v=${VALE_PIDS[-1]}
	"$VALE_BIN/pkt-gen" -i 'netmap:p}1' -f rx -b "$1" >"$VALE_TMP/rx.out" 2>&1 &
	local rx=$!
	wait_port 'netmap:p}1'
	timeout -s INT "$SECS" "$VALE_BIN/pkt-gen" -i 'netmap:p{1' -f tx -b "$1" >"$VALE_TMP/tx.out" 2>&1 || true
	sleep 0.5
	stop_pid "$rx"
	stop_pid "$v"
	printf 'batch %-4s rx %s\n' "$1" "$(rate "$VALE_TMP/rx.out")"
}

monitored() { # monitored: the VALE path with a /t copy monitor on the sender, read by pkt-gen
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
	printf '%-6s rx %s\n' "60B" "$(rate "$VALE_TMP/rx.out")"
	printf '%-6s monitor %s\n' "" "$(rate "$VALE_TMP/mon.out")"
}

echo "== the same, 60 B, with a copy monitor (vale0:a/t) read by a third pkt-gen"
monitored
echo "== netmap pipe, pkt-gen -f tx -> pkt-gen -f rx, 64 B, $SECS s each"
for b in 64 256 512; do
	pipe "$b"
done
echo "== ping/pong round trip, 20000 transactions (valed default: no polling)"
rtt
echo "== ping/pong round trip, valed -poll 50us"
rtt -poll 50us
