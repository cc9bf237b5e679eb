#!/usr/bin/env bash
# startup.sh BIN DIR [RUNS]: starts `BIN serve --data DIR` RUNS times (default 1)
# and prints, for each, the time from process start to the first 200 from
# /readyz (polled every 10 ms), the process's CPU time (user+system, from
# /proc) at that moment, its peak RSS (VmHWM) then, and the load average.
# With FROM=SRC, DIR is first replaced by a copy of SRC, so that every
# run opens the same files (an open may compact). For "Opening a big
# store" in RELIABILITY.md; not part of make test.
set -euo pipefail
bin=$1 dir=$2 runs=${3:-1}
port=${PORT:-18480}
tick=$(getconf CLK_TCK)
for run in $(seq "$runs"); do
	if [[ -n ${FROM:-} ]]; then
		rm -rf "$dir" && cp -a "$FROM" "$dir" && chmod -R u+w "$dir"
	fi
	log=$(mktemp)
	t0=$(date +%s%N)
	"$bin" serve --data "$dir" --addr "127.0.0.1:$port" --admin-token startup-test-token >/dev/null 2>"$log" &
	pid=$!
	until curl -fs -o /dev/null "http://127.0.0.1:$port/readyz"; do
		if ! kill -0 "$pid" 2>/dev/null; then
			cat "$log" >&2
			exit 1
		fi
		sleep 0.01
	done
	t1=$(date +%s%N)
	read -r -a st <"/proc/$pid/stat"
	hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
	kill -TERM "$pid"
	wait "$pid" || true
	cpu=$(((st[13] + st[14]) * 1000 / tick))
	printf '%s run %d: readyz after %d ms, CPU %d ms, peak RSS %d MiB, load %s\n' \
		"$(basename "$bin")" "$run" $(((t1 - t0) / 1000000)) "$cpu" $((hwm / 1024)) \
		"$(cut -d' ' -f1-3 /proc/loadavg)"
	grep -h 'keys loaded' "$log" | sed 's/^/  /' || true
	rm -f "$log"
done
