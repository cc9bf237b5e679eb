#!/bin/bash
# bench/cg-daemon.sh: a keygate binary's user-space instructions per request, whole daemon (fasthttp, handler,
# engine, usage log, runtime), counted by callgrind on the store and probes a TestLoad run left in DIR
# (cd bench && go test -run "^TestLoad$" . -args -load -load.out /tmp/tl -load.scale "" -load.rates "" -load.perf 0 -load.d 1s).
# usage: [DIR=/tmp/tl] [ADDR=unix] [KIND=check] [N=10000] [WARM=3000] [PORT=19020] bench/cg-daemon.sh bin OUTDIR
# The daemon runs uninstrumented through start-up and WARM requests, then callgrind counts N requests
# (loadgen -c 4, closed loop) and dumps; the daemon is then killed (callgrind trips on Go's SIGTERM
# handling). Prints instructions, decisions counted (/metrics) and their ratio; OUTDIR/cg.out.1 holds the
# profile (callgrind_annotate --inclusive=no). Under valgrind sha256 takes its fallback path (no SHA-NI).
DIR=${DIR:-/tmp/tl}; BIN=$1; W=$2; N=${N:-10000}; WARM=${WARM:-3000}; PORT=${PORT:-19020}
[ -n "$BIN" ] && [ -n "$W" ] || { sed -n 2,9p "$0"; exit 2; }
rm -rf "$W" && mkdir -p "$W" && cp -r "$DIR/kg-load" "$W/data" || exit 1
a=127.0.0.1:$PORT; [ "$ADDR" = unix ] && a=unix:$W/kg.sock
admin=127.0.0.1:$((PORT + 1))
GODEBUG=asyncpreemptoff=1 valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$W/cg.out" \
  "$BIN" serve --addr "$a" --admin-addr $admin --data "$W/data" --admin-token kga_bench_token_0123456789 \
  --trusted-proxies 127.0.0.1/32,unix > "$W/kg.log" 2>&1 &
pid=$!
for i in $(seq 600); do curl -sf http://$admin/readyz > /dev/null && break; sleep 0.2; done
decisions() { curl -s http://$admin/metrics | awk '/^keygate_decisions_total/ {s += $2} END {print s}'; }
lg() { "$DIR/loadgen" -addr "$a" -kind "${KIND:-check}" -probes "$DIR/probes.json" -c 4 -d 600s -warmup 0s -n "$1"; }
lg "$WARM" > "$W/warm.json"
d0=$(decisions)
callgrind_control -i on $pid > /dev/null 2>&1
lg "$N" > "$W/lg.json"
callgrind_control -d $pid > /dev/null 2>&1
d1=$(decisions)
kill -KILL $pid; wait $pid 2> /dev/null
ir=$(grep '^totals:' "$W/cg.out.1" | cut -d' ' -f2)
echo "$(basename "$BIN") ${ADDR:-tcp} ${KIND:-check} instructions $ir decisions $((d1 - d0)) per-request $((ir / (d1 - d0))) $(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("wrong %d err %d" % (d["wrong"], d["errors"]))' "$W/lg.json") load $(cut -d' ' -f1 /proc/loadavg)"
