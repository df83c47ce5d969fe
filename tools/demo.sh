#!/usr/bin/env bash
# demo.sh: start valed, push traffic from pkt-gen -f tx on vale0:a to
# pkt-gen -f rx on vale0:b for a few seconds, print the rate, stop everything.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
SECS=${SECS:-5}

start_valed
echo "valed running on $VALE_SOCK"
"$VALE_BIN/pkt-gen" -i vale0:b -f rx >"$VALE_TMP/rx.out" 2>&1 &
RX=$!
VALE_PIDS+=("$RX")
wait_port vale0:b
echo "pkt-gen -f tx on vale0:a -> vale0 -> pkt-gen -f rx on vale0:b for $SECS seconds (60-byte frames)..."
timeout -s INT "$SECS" "$VALE_BIN/pkt-gen" -i vale0:a -f tx >"$VALE_TMP/tx.out" 2>&1 &
TX=$!
sleep $((SECS - 1))
echo
"$VALE_BIN/vale-ctl" -l
wait "$TX" || true
sleep 0.5
stop_pid "$RX"
echo
echo "sender:   $(rate "$VALE_TMP/tx.out")"
echo "receiver: $(rate "$VALE_TMP/rx.out")"
