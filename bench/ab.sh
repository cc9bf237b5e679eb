#!/bin/bash
# bench/ab.sh: servers side by side on the store and probes a TestLoad run left in DIR
# (cd bench && go test -run "^TestLoad$" . -args -load -load.out /tmp/tl -load.scale "" -load.rates "" -load.perf 0 -load.d 1s).
# usage: [DIR=/tmp/tl] [ADDR=unix] [D=5s] [KIND=check] [LG=DIR/loadgen] bench/ab.sh RATE ROUNDS bin1 bin2 ...
# Each bin (a keygate binary, or a floor: "floor" is DIR/noop-floor, "evfloor" DIR/evloop-floor,
# "evyfloor" DIR/evloop-floor -lock=false -yield, "evpfloor" ... -lock=false -park, "gnetfloor" ... -gnet) on core 0 with GOMAXPROCS=1 on its own fresh copy of kg-load;
# loadgen on core 1. RATE 0 = closed loop (64 conns). Give binaries as absolute paths. A keygate binary
# takes keygate serve's flags (bench/cmd/keygate-evloop does too). Each round starts with `uptime`.
DIR=${DIR:-/tmp/tl}; cd "$DIR" || exit 1
RATE=$1; ROUNDS=$2; shift 2
isfloor() { case "$1" in floor|evfloor|evyfloor|evpfloor|gnetfloor) return 0;; esac; return 1; }
for r in $(seq 1 $ROUNDS); do
  echo "round $r: $(uptime)"
  for b in "$@"; do
    extra=""
    if isfloor "$b"; then
      rm -f $DIR/fl.sock
      case "$b" in floor) fl="$DIR/noop-floor";; evfloor) fl="$DIR/evloop-floor";; evyfloor) fl="$DIR/evloop-floor -lock=false -yield";; evpfloor) fl="$DIR/evloop-floor -lock=false -park";; gnetfloor) fl="$DIR/evloop-floor -gnet";; esac
      taskset -c 0 env GOMAXPROCS=1 $fl -addr 127.0.0.1:19010 -unix $DIR/fl.sock > $DIR/fl.log 2>&1 &
      pid=$!; extra="-verify=false"; sleep 0.5; sock=$DIR/fl.sock
    else
      rm -rf $DIR/kgab && cp -r kg-load $DIR/kgab
      a=127.0.0.1:19010; [ "$ADDR" = unix ] && a=unix:$DIR/kg.sock
      taskset -c 0 env GOMAXPROCS=1 $b serve --addr $a --admin-addr 127.0.0.1:19011 --data $DIR/kgab --admin-token kga_bench_token_0123456789 --trusted-proxies 127.0.0.1/32,unix > $DIR/kgab.log 2>&1 &
      pid=$!
      for i in $(seq 100); do curl -sf http://127.0.0.1:19011/readyz >/dev/null && break; sleep 0.1; done
      sock=$DIR/kg.sock
    fi
    target=127.0.0.1:19010; [ "$ADDR" = unix ] && target=unix:$sock
    la=$(cut -d' ' -f1 /proc/loadavg)
    out=$(taskset -c 1 env GOMAXPROCS=1 ${LG:-$DIR/loadgen} -addr $target -kind ${KIND:-check} -probes probes.json -rate $RATE -d ${D:-5s} -warmup 1s -pid $pid $extra)
    echo "$r $(basename $b) ${ADDR:-tcp} rate=$RATE $(echo $out | python3 -c 'import json,sys; d=json.load(sys.stdin); print("rps %.0f p50 %.0f p99 %.0f p999 %.0f max %.0f cpu %.2f us/req %.2f user %.2f sys %.2f wrong %d err %d" % (d["rps"],d["p50_us"],d["p99_us"],d["p999_us"],d["max_us"],d["server_cpu"],d["server_cpu_us"],d.get("server_user_us",0),d.get("server_sys_us",0),d["wrong"],d["errors"]))') load $la"
    if ! isfloor "$b"; then curl -s -H 'Authorization: Bearer kga_bench_token_0123456789' http://127.0.0.1:19011/metrics 2>/dev/null | grep -E '^keygate_usage_log_(dropped|written|queue)' | tr '\n' ' '; echo; fi
    kill $pid; wait $pid 2>/dev/null
  done
done
