#!/usr/bin/env bash
# Stops what deploy/native/run.sh started (its pid files in
# AGENTHELM_NATIVE_DIR, default ${TMPDIR:-/tmp}/agenthelm-native), in the
# reverse order: SIGTERM to each process's session, then SIGKILL to what is
# left after 20 s. A pid whose process is no longer the program run.sh
# started is left alone. The journal, logs and configs stay; delete the
# directory to start afresh.
set -euo pipefail

state=${AGENTHELM_NATIVE_DIR:-${TMPDIR:-/tmp}/agenthelm-native}
say() { printf 'stop.sh: %s\n' "$*" >&2; }

# ours PID PROGRAM reports whether PID still runs PROGRAM.
ours() {
	local exe
	if [[ -e "/proc/$1/exe" ]]; then
		exe=$(readlink "/proc/$1/exe" 2>/dev/null) || return 1
		[[ "${exe% (deleted)}" == "$(readlink -f "$2")" ]]
	else
		ps -p "$1" >/dev/null 2>&1
	fi
}

stopped=()
for name in grafana prometheus agenthelm jaeger email payments hotel; do
	f=$state/pids/$name.pid
	[[ -e "$f" ]] || continue
	read -r pid prog <"$f"
	was_running=false
	if kill -0 "$pid" 2>/dev/null && ours "$pid" "$prog"; then
		was_running=true
		# run.sh started it with setsid: it leads its own process group.
		kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
		stopped+=("$name:$pid")
	else
		say "$name (pid $pid) is not running"
		rm -f "$f"
	fi
	# agenthelm flushes its journal and traces before it exits: wait for it
	# before stopping the servers and the collector it talks to.
	if [[ "$name" == agenthelm ]] && $was_running; then
		for _ in $(seq 1 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.2
		done
	fi
done

for entry in "${stopped[@]}"; do
	name=${entry%%:*}
	pid=${entry##*:}
	for _ in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.2
	done
	if kill -0 "$pid" 2>/dev/null; then
		say "$name (pid $pid) did not stop in 20 s: killing it"
		kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$state/pids/$name.pid"
	say "stopped $name"
done
