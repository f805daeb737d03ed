#!/usr/bin/env bash
# scripts/latency.sh: message latency below saturation. It starts Parley as
# scripts/loadtest.sh does (loopback, throwaway config and data directory),
# measures the peak with an unpaced msg run, then runs msg paced at a
# fraction of that peak (half by default) RUNS times and prints each run's
# latency and the min/median/max of p99.
#
# From the environment:
#   PAIRS=100 WINDOW=10       the msg scenario's -pairs and -window
#   PEAK_DURATION=10s         the unpaced run that finds the peak
#   DURATION=10s RUNS=3       the paced runs
#   FRACTION=0.5              of the peak
#   RATE=N                    skip the peak run and pace at N msgs/s
#   PROFILE=DIR               5-second CPU profiles of Parley during each
#                             paced run (DIR/paced-1.cpu, ...)
#   GCTRACE=1                 run Parley with GODEBUG=gctrace=1; its GC
#                             lines are printed after each run
#   PIN=1                     Parley on CPU 1 with GOMAXPROCS=1, parley-load
#                             on CPU 0 (taskset): neither takes the other's
#                             core
# The exit code is 1 when a run failed (a lost message, ...).
set -euo pipefail

cd "$(dirname "$0")/.."
GO=${GO:-go}
PAIRS=${PAIRS:-100}
WINDOW=${WINDOW:-10}
PEAK_DURATION=${PEAK_DURATION:-10s}
DURATION=${DURATION:-10s}
RUNS=${RUNS:-3}
FRACTION=${FRACTION:-0.5}
RATE=${RATE:-}
PROFILE=${PROFILE:-}
GCTRACE=${GCTRACE:-}
PIN=${PIN:-}

# shellcheck source=scripts/parley-lib.sh
. scripts/parley-lib.sh
parley_build
parley_tmp latency
c2s=$(free_port 15222)
pprof_args=()
if [[ -n $PROFILE ]]; then
	mkdir -p "$PROFILE"
	pprof=$(free_port 16060)
	pprof_args=(-pprof "127.0.0.1:$pprof")
fi
# The config of scripts/loadtest.sh, without the bot host.
parley_config "$c2s"

tool_wrap=()
if [[ -n $PIN ]]; then
	if ! command -v taskset >/dev/null || (($(nproc) < 2)); then
		echo "latency: PIN=1 needs taskset and two CPUs" >&2
		exit 1
	fi
	# env and taskset exec what they run: $pid stays Parley's.
	parley_wrap=(taskset -c 1 env GOMAXPROCS=1)
	tool_wrap=(taskset -c 0)
fi

godebug=${GODEBUG:-}
if [[ -n $GCTRACE ]]; then
	godebug=${godebug:+$godebug,}gctrace=1
fi
GODEBUG=$godebug parley_serve latency "$c2s" ${pprof_args[@]+"${pprof_args[@]}"}

status=0
# msg runs the msg scenario with the extra flags; its JSON line goes to
# $tmp/last.json.
msg() {
	local log_lines
	log_lines=$(wc -l <"$tmp/parley.log")
	echo "   load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
	local stall0 t0
	stall0=$(cpu_stall)
	t0=$(date +%s%N)
	if ! ${tool_wrap[@]+"${tool_wrap[@]}"} bin/parley-load msg -addr "127.0.0.1:$c2s" -domain localhost -pid "$pid" -create -timeout 5m \
		-pairs "$PAIRS" -window "$WINDOW" "$@" 2>/dev/null | tee "$tmp/out"; then
		status=1
	fi
	tail -n 1 "$tmp/out" >"$tmp/last.json"
	if [[ -n $stall0 ]]; then
		# Time some task (any process's: this run's own two, or others on a
		# shared machine) waited for a CPU, as a share of the run.
		awk -v a="$stall0" -v b="$(cpu_stall)" -v t="$(($(date +%s%N) - t0))" \
			'BEGIN { printf "   CPU pressure over the run: %.0f%% (some task waiting for a CPU; /proc/pressure/cpu)\n", 100 * (b - a) * 1000 / t }'
	fi
	if [[ -n $GCTRACE ]]; then
		# The GC cycles of this run: their count and the longest pauses.
		tail -n +"$((log_lines + 1))" "$tmp/parley.log" | grep '^gc ' >"$tmp/gc" || true
		echo "   GC: $(wc -l <"$tmp/gc") cycles; the last 3:"
		tail -n 3 "$tmp/gc" | sed 's/^/     /'
	fi
}
# cpu_stall prints the total µs some task waited for a CPU (Linux PSI), or
# nothing without /proc/pressure/cpu.
cpu_stall() { sed -n 's/^some .*total=\([0-9]*\).*/\1/p' /proc/pressure/cpu 2>/dev/null || true; }
field() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p" "$tmp/last.json"; }

if [[ -z $RATE ]]; then
	echo
	echo "== peak: unpaced, $PAIRS pairs, window $WINDOW, $PEAK_DURATION"
	msg -duration "$PEAK_DURATION"
	peak=$(field msgs_per_s)
	RATE=$(awk -v p="${peak:-0}" -v f="$FRACTION" 'BEGIN { printf "%d", p * f }')
	echo "   peak ${peak:-none} msgs/s; pacing at $FRACTION of it: $RATE msgs/s"
fi
if ((RATE < 1)); then
	# -rate 0 would mean unpaced: the runs would measure saturation.
	echo "latency: no rate to pace at (the peak run failed, or RATE < 1)" >&2
	exit 1
fi

p99s=()
for i in $(seq "$RUNS"); do
	echo
	echo "== paced run $i/$RUNS: $RATE msgs/s, $PAIRS pairs, window $WINDOW, $DURATION"
	prof=
	if [[ -n $PROFILE ]]; then
		(sleep 3 && curl -s -o "$PROFILE/paced-$i.cpu" "http://127.0.0.1:$pprof/debug/pprof/profile?seconds=5") &
		prof=$!
		prof_pid=$prof
	fi
	msg -duration "$DURATION" -rate "$RATE"
	if [[ -n $prof ]]; then
		wait "$prof" || true
	fi
	if grep -q '"ok":true' "$tmp/last.json"; then
		p99s+=("$(field p99_us)")
	fi
done
if ((${#p99s[@]} == 0)); then
	echo "latency: no paced run succeeded" >&2
	exit 1
fi

echo
sorted=$(printf '%s\n' "${p99s[@]}" | sort -n)
echo "== p99 at $RATE msgs/s over $RUNS runs (µs): $(echo "$sorted" | tr '\n' ' ')"
echo "$sorted" | awk '{ v[NR] = $1 } END {
	med = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
	printf "   min %d, median %g, max %d µs\n", v[1], med, v[NR] }'
if grep -qv '^gc ' "$tmp/parley.log" 2>/dev/null; then
	echo
	echo "== parley's warnings and errors (the last 20)"
	grep -v '^gc ' "$tmp/parley.log" | tail -n 20
fi
exit "$status"
