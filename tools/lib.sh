# Shared by the scripts in tools/: start and stop what they run, by PID.

VALE_BIN=${VALE_BIN:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/bin}
VALE_TMP=$(mktemp -d /tmp/vale-tools.XXXXXX)
export VALE_SOCK=$VALE_TMP/valed.sock
VALE_PIDS=()

vale_cleanup() {
	local pid
	for pid in "${VALE_PIDS[@]}"; do
		kill -INT "$pid" 2>/dev/null || true
	done
	for pid in "${VALE_PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	[ -n "${KEEP:-}" ] || rm -rf "$VALE_TMP"
}
trap vale_cleanup EXIT

# start_valed [flags...]: start valed on a private socket and wait for it.
start_valed() {
	"$VALE_BIN/valed" -sock "$VALE_SOCK" -log-level warn "$@" 2>"$VALE_TMP/valed.log" &
	VALE_PIDS+=($!)
	for _ in $(seq 100); do
		[ -S "$VALE_SOCK" ] && return 0
		sleep 0.05
	done
	echo "valed did not start:" >&2
	cat "$VALE_TMP/valed.log" >&2
	return 1
}

# stop_pid PID: stop a process started here and wait for it.
stop_pid() {
	kill -INT "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

# wait_port NAME: wait until valed lists the port.
wait_port() {
	for _ in $(seq 100); do
		"$VALE_BIN/vale-ctl" -l "$1" >/dev/null 2>&1 && return 0
		sleep 0.05
	done
	echo "port $1 did not appear" >&2
	return 1
}

# rate FILE: the "Speed:" line of a pkt-gen output, without the label.
rate() {
	sed -n 's/^Speed: //p' "$1"
}
