#!/usr/bin/env bash
# make slowconsumers: do slow consumers slow the others down? It runs
# Parley as scripts/loadtest.sh does (loopback, throwaway config and data
# directory, plus a bot host hung.localhost), and alternates msg runs
# without and with slow consumers, RUNS of each (the order swaps every
# round: without-with, with-without, ...); then it prints every run, the
# median of each kind, the ratio with / without, and the server's peak RSS.
# Every run gets a freshly started Parley (the accounts stay in its data
# directory): what a run with slow consumers leaves behind (a hung bot's
# full queue, which drains slowly as its retries fail; the memory it held)
# must not weigh on the run after it.
#
# A run "with" is the same msg run plus, beside the measured pairs:
#   - STALLED clients that log in and never read their stream, with
#     STALL_SENDERS other clients sending them STALL_RATE messages a second
#     of STALL_SIZE bytes (STALL_SHAPE=body, or children: empty elements);
#   - a bot, hung@hung.localhost, whose webhook (served by parley-load)
#     accepts connections and never answers, with HANG_SENDERS clients
#     sending it HANG_RATE messages a second of HANG_SIZE bytes.
# Their senders get resource-constraint and remote-server-timeout errors
# back: that is the expected outcome, counted, not a failure. A lost message
# among the measured pairs is a failure.
#
# From the environment:
#   PAIRS=200 WINDOW=10 DURATION=20s RUNS=3   the msg runs
#   SETTLE=2                  seconds between a server's start and a run
#   STALLED=1 STALL_SENDERS=2 STALL_RATE=10 STALL_SIZE=200000 STALL_SHAPE=body
#                             (STALLED=0: no stalled client)
#   HANG_SENDERS=2 HANG_RATE=100 HANG_SIZE=2000   (HANG_RATE=0: no hung bot)
#   QUEUE_BYTES=2MiB          Parley's limits.queue_bytes (default: its own,
#                             8MiB): what a stalled session may hold
#   RESULTS=FILE              also keep every run's JSON line there
# The exit code is 1 when a run failed (a lost message, a login, ...).
set -euo pipefail

cd "$(dirname "$0")/.."
GO=${GO:-go}
PAIRS=${PAIRS:-200}
WINDOW=${WINDOW:-10}
DURATION=${DURATION:-20s}
RUNS=${RUNS:-3}
SETTLE=${SETTLE:-2}
STALLED=${STALLED:-1}
STALL_SENDERS=${STALL_SENDERS:-2}
STALL_RATE=${STALL_RATE:-10}
STALL_SIZE=${STALL_SIZE:-200000}
STALL_SHAPE=${STALL_SHAPE:-body}
HANG_SENDERS=${HANG_SENDERS:-2}
HANG_RATE=${HANG_RATE:-100}
HANG_SIZE=${HANG_SIZE:-2000}
QUEUE_BYTES=${QUEUE_BYTES:-}
RESULTS=${RESULTS:-}

if ! command -v jq >/dev/null; then
	echo "slowconsumers: needs jq to read the results (apt-get install jq)" >&2
	exit 1
fi

# shellcheck source=scripts/parley-lib.sh
. scripts/parley-lib.sh
parley_build
parley_tmp slowconsumers
c2s=$(free_port 15222)
hang=$(free_port 15281)
parley_config "$c2s" "" "$hang"
if [[ -n $QUEUE_BYTES ]]; then
	sed -i "s/^\[limits\]\$/[limits]\nqueue_bytes = \"$QUEUE_BYTES\"/" "$tmp/parley.toml"
fi

slow_args=()
if ((STALLED > 0)); then
	slow_args+=(-stalled "$STALLED" -stall-senders "$STALL_SENDERS" -stall-rate "$STALL_RATE"
		-stall-size "$STALL_SIZE" -stall-shape "$STALL_SHAPE")
fi
if [[ $HANG_RATE != 0 ]]; then
	slow_args+=(-hang-domain hung.localhost -hang-addr "127.0.0.1:$hang"
		-hang-senders "$HANG_SENDERS" -hang-rate "$HANG_RATE" -hang-size "$HANG_SIZE")
fi
if ((${#slow_args[@]} == 0)); then
	echo "slowconsumers: STALLED=0 and HANG_RATE=0 leave nothing to compare" >&2
	exit 2
fi
with=()
if ((STALLED > 0)); then
	with+=("$STALLED stalled client(s) sent $STALL_RATE msgs/s of $STALL_SIZE bytes ($STALL_SHAPE)")
fi
if [[ $HANG_RATE != 0 ]]; then
	with+=("a hung bot sent $HANG_RATE msgs/s of $HANG_SIZE bytes")
fi
echo "slowconsumers: $PAIRS pairs, window $WINDOW, $DURATION a run, $RUNS runs each way, queue_bytes ${QUEUE_BYTES:-default};" \
	"with: $(IFS=';' && echo "${with[*]}" | sed 's/;/, /g')"

# cpu_stall prints the total µs some task waited for a CPU (Linux PSI), or
# nothing without /proc/pressure/cpu.
cpu_stall() { sed -n 's/^some .*total=\([0-9]*\).*/\1/p' /proc/pressure/cpu 2>/dev/null || true; }

status=0
: >"$tmp/runs.jsonl"
# run KIND N runs msg once, with the slow consumers when KIND is "with";
# its JSON line, tagged with the kind and the load average before it, goes
# to $tmp/runs.jsonl.
run() {
	local kind=$1 n=$2 extra=()
	if [[ $kind == with ]]; then
		extra=("${slow_args[@]}")
	fi
	local stall0 t0
	echo
	echo "== run $n $kind slow consumers"
	parley_serve slowconsumers "$c2s"
	sleep "$SETTLE"
	local load
	load=$(cut -d' ' -f1-3 /proc/loadavg)
	echo "   load average before: $load"
	stall0=$(cpu_stall)
	t0=$(date +%s%N)
	if ! bin/parley-load msg -addr "127.0.0.1:$c2s" -domain localhost -pid "$pid" -create -timeout 5m \
		-pairs "$PAIRS" -window "$WINDOW" -duration "$DURATION" ${extra[@]+"${extra[@]}"} 2>/dev/null |
		tee "$tmp/out"; then
		status=1
	fi
	# The share of the run some task (this run's two processes, or others
	# on a shared machine) waited for a CPU: Linux PSI, -1 without it.
	local wait=-1
	if [[ -n $stall0 ]]; then
		wait=$(awk -v a="$stall0" -v b="$(cpu_stall)" -v t="$(($(date +%s%N) - t0))" 'BEGIN { printf "%.0f", 100 * (b - a) * 1000 / t }')
	fi
	tail -n 1 "$tmp/out" | jq -c --arg kind "$kind" --arg load "$load" --argjson wait "$wait" \
		'. + {kind: $kind, loadavg: $load, cpu_wait_pct: $wait}' >>"$tmp/runs.jsonl" || status=1
	parley_stop
	cat "$tmp/parley.log" >>"$tmp/parley-all.log"
}

for i in $(seq "$RUNS"); do
	if ((i % 2)); then
		run without "$i"
		run with "$i"
	else
		run with "$i"
		run without "$i"
	fi
done
if [[ -n $RESULTS ]]; then
	cp "$tmp/runs.jsonl" "$RESULTS"
fi

echo
echo "== runs in order (msgs/s and msgs per server CPU-second of the measured pairs; server RSS)"
jq -r 'def errs: if . == null then "-" else
		(.errors | to_entries | map("\(.key) \(.value)") | join(", ") | if . == "" then "no errors" else . end) + " of \(.sent) sent"
	end;
	[.kind, (.msgs_per_s | floor), ((.msgs_per_server_cpu_s // 0) | floor), .lost,
	(.rss_start_kib // 0), (.rss_peak_kib // 0), .loadavg, .cpu_wait_pct,
	(.stall | errs), (.hang | errs),
	(if .ok then "ok" else "FAILED: \(.error)" end)] | @tsv' "$tmp/runs.jsonl" |
	awk -F'\t' 'BEGIN { printf "%-8s %9s %12s %5s %10s %10s  %-15s %8s  %s\n", "kind", "msgs/s", "msgs/CPU-s", "lost", "RSS start", "RSS peak", "load before", "CPU wait", "errors back: stalled client | hung bot" }
		{ printf "%-8s %9d %12d %5d %6.1f MiB %6.1f MiB  %-15s %7s%%  %s | %s  %s\n", $1, $2, $3, $4, $5 / 1024, $6 / 1024, $7, $8, $9, $10, $11 }'

echo
jq -rs '
	def median: sort | if length == 0 then null elif length % 2 == 1 then .[(length - 1) / 2] else (.[length / 2 - 1] + .[length / 2]) / 2 end;
	def of(k): map(select(.kind == k and .ok));
	(of("without") | map(.msgs_per_s) | median) as $wo |
	(of("with") | map(.msgs_per_s) | median) as $w |
	(of("without") | map(.msgs_per_server_cpu_s // 0) | median) as $woc |
	(of("with") | map(.msgs_per_server_cpu_s // 0) | median) as $wc |
	(of("without") | map(.rss_peak_kib // 0) | max) as $worss |
	(of("with") | map(.rss_peak_kib // 0) | max) as $wrss |
	(of("with") | map((.rss_peak_kib // 0) - (.rss_start_kib // 0)) | max) as $wgrow |
	if $wo == null or $w == null then "== no successful run of one kind: no ratio"
	else
	"== medians of the measured pairs (\(of("without") | length) runs without, \(of("with") | length) with)",
	"   delivered msgs/s:           without \($wo | floor), with \($w | floor): ratio \($w / $wo * 1000 | round / 1000)" +
	" (ranges \(of("without") | map(.msgs_per_s) | "\(min | floor)-\(max | floor)") and \(of("with") | map(.msgs_per_s) | "\(min | floor)-\(max | floor)"))",
	"   msgs per server CPU-second: without \($woc | floor), with \($wc | floor): ratio \(if $woc > 0 then ($wc / $woc * 1000 | round / 1000) else "-" end)" +
	" (ranges \(of("without") | map(.msgs_per_server_cpu_s // 0) | "\(min | floor)-\(max | floor)") and \(of("with") | map(.msgs_per_server_cpu_s // 0) | "\(min | floor)-\(max | floor)"))",
	"   with within 5% of without: msgs/s \(if $w >= 0.95 * $wo then "yes" else "no" end), per CPU-second \(if $wc >= 0.95 * $woc then "yes" else "no" end)" +
	" (on a shared machine the ranges say more than the verdict)",
	"== server peak RSS: \($worss / 1024 * 10 | round / 10) MiB over the runs without, \($wrss / 1024 * 10 | round / 10) MiB with" +
	" (at most +\($wgrow / 1024 * 10 | round / 10) MiB over a run with slow consumers)"
	end' "$tmp/runs.jsonl"

if [[ -s $tmp/parley-all.log ]]; then
	# Most are the expected ones: the full queues, the webhook's timeouts.
	echo
	echo "== parley's warnings and errors over the runs, by message"
	sed -n 's/.* msg="\([^"]*\)".*/\1/p' "$tmp/parley-all.log" | sort | uniq -c | sort -rn | head -n 10
fi
exit "$status"
