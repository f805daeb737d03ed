#!/usr/bin/env bash
# make compare: Parley against Prosody 0.12 on loopback, under the same
# parley-load scenarios (issue #6).
#
# It installs Prosody from Debian when it is missing (and jq, which reads the
# results), builds parley and parley-load, and then, RUNS times, runs each
# scenario once against each server, alternating which goes first. Every run
# gets a freshly started server (the other one is stopped), so that RSS per
# connection starts from a clean process and the servers never compete; the
# accounts stay in each server's data directory between runs. At the end it
# prints, per scenario, min / median / max for each server and the ratio of
# the medians (Parley / Prosody), and writes every run's JSON line to a
# results file. Both servers are stopped on exit, whatever happens.
#
# The servers are configured alike (testdata/prosody/prosody.cfg.lua.in for
# Prosody): loopback ports of their own, no per-connection rate limit, open
# in-band registration without throttling, SCRAM with the same hash and
# iteration count, a self-signed ECDSA P-256 certificate, logs at warn.
#
# From the environment:
#   RUNS=3                       runs of each scenario against each server
#   SCENARIOS="login msg idle bot muc"   or a subset: SCENARIOS=muc
#   LOGIN_N=500 LOGIN_C=50       login: accounts, logins at once
#   MSG_PAIRS=100 MSG_WINDOW=10 MSG_DURATION=10s
#   IDLE_N=2000 IDLE_DURATION=30s
#   BOT_N=20 BOT_DURATION=10s
#   MUC_ROOMS=10 MUC_OCCUPANTS=20 MUC_RATE=1 MUC_DURATION=10s
#                                muc: rooms × occupants on rooms.localhost (Parley's
#                                muc host, Prosody's "muc" component), each occupant
#                                sending MUC_RATE groupchat msgs/s
#   MUC_ARCHIVE=false            or true: rooms keep an archive (XEP-0313; Parley's
#                                muc host's default, Prosody's mod_muc_mam); false
#                                turns Parley's off and leaves Prosody's out
#   MECH=SCRAM-SHA-256           or SCRAM-SHA-1: the mechanism both servers use
#   SCRAM_ITERATIONS=4096        PBKDF2 iterations of new accounts, both servers
#   PROSODY_STORAGE=internal     or memory (internal: files under data_path)
#   FEATURES=modern              or core: modern runs both servers with carbons,
#                                CSI, stream management, PEP and the message
#                                archive (Parley's defaults); core without them
#                                (archive = false; Prosody without the modules)
#   PROSODY_PLUGINS=DIR          more Prosody modules (mod_component_http for bot)
#   RESULTS=bin/compare-DATE.jsonl   where the JSON lines go
#   TIME_BUDGET=960              seconds from the start after which no run
#                                starts; each run's -timeout ends within it
# The exit code is 1 when any run failed (a login, a lost message, a timeout)
# or the budget cut runs short, 0 otherwise.
set -euo pipefail

cd "$(dirname "$0")/.."
started=$SECONDS
GO=${GO:-go}
RUNS=${RUNS:-3}
SCENARIOS=${SCENARIOS:-login msg idle bot muc}
LOGIN_N=${LOGIN_N:-500}
LOGIN_C=${LOGIN_C:-50}
MSG_PAIRS=${MSG_PAIRS:-100}
MSG_WINDOW=${MSG_WINDOW:-10}
MSG_DURATION=${MSG_DURATION:-10s}
IDLE_N=${IDLE_N:-2000}
# Held long enough for Parley's sessions to park (c2s.park_after, 10 s) and
# for the memory they free to go back to the system (see loadtest.sh).
IDLE_DURATION=${IDLE_DURATION:-30s}
BOT_N=${BOT_N:-20}
BOT_DURATION=${BOT_DURATION:-10s}
MUC_ROOMS=${MUC_ROOMS:-10}
MUC_OCCUPANTS=${MUC_OCCUPANTS:-20}
MUC_RATE=${MUC_RATE:-1}
MUC_DURATION=${MUC_DURATION:-10s}
MUC_ARCHIVE=${MUC_ARCHIVE:-false}
case $MUC_ARCHIVE in
true) prosody_muc='"muc_mam";' ;;
false) prosody_muc='' ;;
*) echo "compare: MUC_ARCHIVE=$MUC_ARCHIVE: use true or false" >&2; exit 2 ;;
esac
MECH=${MECH:-SCRAM-SHA-256}
SCRAM_ITERATIONS=${SCRAM_ITERATIONS:-4096}
PROSODY_STORAGE=${PROSODY_STORAGE:-internal}
FEATURES=${FEATURES:-modern}
case $FEATURES in
modern)
	prosody_modern='"carbons"; "csi_simple"; "smacks"; "pep"; "mam";'
	parley_archive=true
	;;
core)
	prosody_modern=''
	parley_archive=false
	;;
*) echo "compare: FEATURES=$FEATURES: use modern or core" >&2; exit 2 ;;
esac
PROSODY_PLUGINS=${PROSODY_PLUGINS:-}
# 720 s before the muc scenario; its six runs need about 240 more.
TIME_BUDGET=${TIME_BUDGET:-960}
RESULTS=${RESULTS:-bin/compare-$(date +%Y%m%d-%H%M%S).jsonl}

say() { echo "compare: $*"; }
die() {
	echo "compare: $*" >&2
	exit 1
}

case $MECH in
SCRAM-SHA-256) prosody_hash=SHA-256 ;;
SCRAM-SHA-1) prosody_hash=SHA-1 ;;
*) die "MECH=$MECH: use SCRAM-SHA-256 or SCRAM-SHA-1 (the SCRAM hashes both servers store)" ;;
esac
case $PROSODY_STORAGE in
internal | memory) ;;
*) die "PROSODY_STORAGE=$PROSODY_STORAGE: use internal or memory" ;;
esac
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS=$RUNS: a positive number"
for s in $SCENARIOS; do
	case $s in
	login | msg | idle | bot | muc) ;;
	*) die "SCENARIOS: unknown scenario $s (login, msg, idle, bot, muc)" ;;
	esac
done

# seconds turns a Go duration (10s, 1m, 500ms) into whole seconds, rounded up.
seconds() {
	local d=$1
	case $d in
	*ms) echo 1 ;;
	*m) echo $((${d%m} * 60)) ;;
	*s) echo "${d%s}" ;;
	*) die "duration $d: write it as 10s or 1m" ;;
	esac
}
for d in "$MSG_DURATION" "$IDLE_DURATION" "$BOT_DURATION" "$MUC_DURATION"; do
	[[ $(seconds "$d") =~ ^[0-9]+$ ]] || die "duration $d: write it as 10s or 1m"
done

# --- what must be installed -----------------------------------------------

as_root() {
	if [[ $(id -u) == 0 ]]; then
		"$@"
	elif command -v sudo >/dev/null; then
		sudo "$@"
	else
		die "need root to run: $*"
	fi
}
# apt_install installs Debian packages, updating the lists once if the first
# try fails (a fresh machine has none).
apt_install() {
	say "installing $* from Debian: apt-get install -y $*"
	if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null; then
		say "apt-get install failed; apt-get update, then once more"
		as_root apt-get update -q >/dev/null
		as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null
	fi
}
missing=()
command -v prosody >/dev/null || missing+=(prosody)
command -v jq >/dev/null || missing+=(jq)
command -v openssl >/dev/null || missing+=(openssl)
if ((${#missing[@]})); then
	apt_install "${missing[@]}"
	if [[ " ${missing[*]} " == *" prosody "* ]]; then
		# The package may have started its own service (on a machine with an
		# init system that allows it): that one listens on 5222, and this
		# script's Prosody on a port of its own, so it is left alone.
		say "installed prosody $(dpkg-query -W -f '${Version}' prosody 2>/dev/null || echo '?')"
	fi
else
	say "prosody, jq and openssl are installed already"
fi
command -v prosody >/dev/null || die "prosody is still not installed"
prosody_version=$(cat /usr/lib/prosody/prosody.version 2>/dev/null || dpkg-query -W -f '${Version}' prosody 2>/dev/null || echo unknown)
[[ $prosody_version == 0.12* ]] || say "warning: Prosody $prosody_version, not 0.12: the config may not fit it"

# mod_component_http (prosody-modules) serves the bot scenario. Debian's
# prosody-modules package does not ship it; PROSODY_PLUGINS can point at a
# directory that holds it.
component_http=
plugin_paths=
for dir in $PROSODY_PLUGINS /usr/lib/prosody/modules /usr/local/lib/prosody/modules; do
	if [[ -f $dir/mod_component_http.lua || -f $dir/mod_component_http/mod_component_http.lua ]]; then
		component_http=$dir
		break
	fi
done
if [[ -n $PROSODY_PLUGINS ]]; then
	plugin_paths="\"$PROSODY_PLUGINS\""
fi

# --- build ----------------------------------------------------------------

tmp=$(mktemp -d "${TMPDIR:-/tmp}/parley-compare.XXXXXX")
pid=
pid_of=
load_pid=
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
	if [[ -n $load_pid ]]; then
		# timeout passes the signal on to parley-load, which closes its
		# connections and exits.
		kill -TERM "$load_pid" 2>/dev/null || true
		wait "$load_pid" 2>/dev/null || true
	fi
	stop_server || true
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "building parley and parley-load"
"$GO" build -o "$tmp/bin/parley" ./cmd/parley
"$GO" build -o "$tmp/bin/parley-load" ./cmd/parley-load
rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(git status --porcelain --untracked-files=no 2>/dev/null) ]]; then
	rev="$rev+changes"
fi

mkdir -p "$(dirname "$RESULTS")"
: >"$RESULTS"

# Raise the open-file limit for the servers (idle holds IDLE_N connections).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# --- the two servers ------------------------------------------------------

# port_free and free_port.
# shellcheck source=scripts/parley-lib.sh
. scripts/parley-lib.sh
parley_port=$(free_port 25222)
prosody_port=$(free_port 26222)
hook_port=$(free_port 25280)
prosody_http=$(free_port 26280)

mkdir -p "$tmp/parley" "$tmp/prosody/data" "$tmp/prosody/certs"
cat >"$tmp/parley/parley.toml" <<TOML
data_dir = "$tmp/parley/data"
log_level = "warn"

[c2s]
listen = ["127.0.0.1:$parley_port"]
direct_tls = []

[limits]
rate = 0
# Every load client comes from 127.0.0.1: no login or connection limit
# may stand in the way of a measurement.
unauthenticated_per_ip = 1000000
registrations_per_ip = 1000000
login_backoff_after = 1000000
login_spray_accounts = 1000000
login_account_failures = 1000000

[auth]
scram_iterations = $SCRAM_ITERATIONS

[[host]]
name = "localhost"
registration = "open"
archive = $parley_archive

[[host]]
name = "bots.localhost"
type = "http_component"
post_url = "http://127.0.0.1:$hook_port/"

# For the muc scenario; as Prosody's muc component: history of 20 in memory.
[[host]]
name = "rooms.localhost"
type = "muc"
history_length = 20
archive = $MUC_ARCHIVE
TOML

# Prosody's certificate: ECDSA P-256 like the one Parley generates, since the
# TLS handshake is much of a login's cost.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
	-subj /CN=localhost -addext "subjectAltName=DNS:localhost,DNS:*.localhost" \
	-keyout "$tmp/prosody/certs/localhost.key" -out "$tmp/prosody/certs/localhost.crt" 2>/dev/null
fill() {
	sed -e "s|@DIR@|$tmp/prosody|g" -e "s|@C2S_PORT@|$prosody_port|g" -e "s|@HTTP_PORT@|$prosody_http|g" \
		-e "s|@HOOK_PORT@|$hook_port|g" -e "s|@HASH@|$prosody_hash|g" -e "s|@ITERATIONS@|$SCRAM_ITERATIONS|g" \
		-e "s|@STORAGE@|$PROSODY_STORAGE|g" -e "s|@PLUGIN_PATHS@|$plugin_paths|g" \
		-e "s|@MODERN_MODULES@|$prosody_modern|g" -e "s|@MUC_MODULES@|$prosody_muc|g" \
		-e "s|@MUC_ARCHIVE@|$MUC_ARCHIVE|g" "$1"
}
fill testdata/prosody/prosody.cfg.lua.in >"$tmp/prosody/prosody.cfg.lua"
if [[ -n $component_http ]]; then
	fill testdata/prosody/component_http.cfg.lua.in >>"$tmp/prosody/prosody.cfg.lua"
fi

# start_server starts parley or prosody in the background and waits until it
# listens; pid is its process.
start_server() {
	local name=$1 port
	case $name in
	parley)
		port=$parley_port
		"$tmp/bin/parley" serve -c "$tmp/parley/parley.toml" >>"$tmp/parley/out.log" 2>&1 &
		;;
	prosody)
		port=$prosody_port
		# /usr/bin/prosody is a Lua script: env execs lua in this process,
		# so $! is Prosody itself, whose /proc CPU and RSS are measured.
		(cd "$tmp/prosody" && exec prosody --config "$tmp/prosody/prosody.cfg.lua" -F) >>"$tmp/prosody/out.log" 2>&1 &
		;;
	esac
	pid=$!
	pid_of=$name
	for _ in $(seq 150); do
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "compare: $name did not start:" >&2
			tail -n 20 "$tmp/$name/out.log" "$tmp/prosody/prosody.log" 2>/dev/null >&2 || true
			pid=
			return 1
		fi
		port_free "$port" || return 0
		sleep 0.1
	done
	echo "compare: $name does not listen on 127.0.0.1:$port after 15 s" >&2
	return 1
}

# stop_server stops the server started last: SIGTERM, then SIGKILL past 15 s.
stop_server() {
	[[ -n $pid ]] || return 0
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 150); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			echo "compare: $pid_of did not stop within 15 s: killed" >&2
			kill -KILL "$pid" 2>/dev/null || true
		fi
	else
		echo "compare: $pid_of (pid $pid) had exited before the end of its run" >&2
		failed=1
	fi
	wait "$pid" 2>/dev/null || true
	pid=
}

# --- the runs -------------------------------------------------------------

failed=0
cut_short=0

# scenario_args prints the parley-load flags of a scenario.
scenario_args() {
	case $1 in
	login) echo "-n $LOGIN_N -c $LOGIN_C" ;;
	msg) echo "-pairs $MSG_PAIRS -window $MSG_WINDOW -duration $MSG_DURATION" ;;
	idle) echo "-n $IDLE_N -c 50 -duration $IDLE_DURATION" ;;
	bot) echo "-n $BOT_N -duration $BOT_DURATION -bot-domain bots.localhost -webhook-addr 127.0.0.1:$hook_port" ;;
	muc) echo "-rooms $MUC_ROOMS -occupants $MUC_OCCUPANTS -occupant-rate $MUC_RATE -window 10 -duration $MUC_DURATION -muc-domain rooms.localhost" ;;
	esac
}
# scenario_need is a generous guess of a run's seconds, to decide whether it
# still fits the budget.
scenario_need() {
	case $1 in
	login) echo 40 ;;
	msg) echo $(($(seconds "$MSG_DURATION") + 40)) ;;
	idle) echo $(($(seconds "$IDLE_DURATION") + 60)) ;;
	bot) echo $(($(seconds "$BOT_DURATION") + 30)) ;;
	muc) echo $(($(seconds "$MUC_DURATION") + 30)) ;;
	esac
}

# run_one runs scenario $2 against server $1 (run $3) on a fresh server.
run_one() {
	local name=$1 scenario=$2 run=$3 port left limit out rc=0
	if [[ $name == prosody && $scenario == bot && -z $component_http ]]; then
		return 0
	fi
	left=$((TIME_BUDGET - (SECONDS - started)))
	# Once a run does not fit, none starts after it: the results stay a
	# prefix of the plan.
	if ((cut_short || left < $(scenario_need "$scenario"))); then
		cut_short=1
		return 0
	fi
	limit=$((left - 20))
	port=$parley_port
	[[ $name == prosody ]] && port=$prosody_port
	echo
	echo "== $scenario, run $run of $RUNS: $name"
	if ! start_server "$name"; then
		failed=1
		return 0
	fi
	out="$tmp/$name-$scenario-$run.out"
	# shellcheck disable=SC2046 # the flags are words
	# In the background and waited for, so that a signal to this script
	# stops the run at once (the EXIT trap ends it and the server).
	timeout -k 10 $((limit + 30)) "$tmp/bin/parley-load" "$scenario" -addr "127.0.0.1:$port" -domain localhost \
		-pid "$pid" -create -mech "$MECH" -timeout "${limit}s" $(scenario_args "$scenario") \
		>"$out" 2>"$out.err" &
	load_pid=$!
	wait "$load_pid" || rc=$?
	load_pid=
	stop_server
	# The human summary, then the JSON line into the results.
	head -n -1 "$out" | sed 's/^/  /'
	if ((rc != 0)); then
		failed=1
		echo "  (exit code $rc; the load tool's last messages:)"
		tail -n 5 "$out.err" | sed 's/^/    /'
	fi
	if tail -n 1 "$out" | jq -e . >/dev/null 2>&1; then
		tail -n 1 "$out" | jq -c --arg t "$name" --argjson r "$run" '{target: $t, run: $r} + .' >>"$RESULTS"
	else
		echo "  (no JSON line from parley-load)"
	fi
}

load_avg() { cut -d' ' -f1-3 /proc/loadavg; }
say "Parley $rev on 127.0.0.1:$parley_port; Prosody $prosody_version on 127.0.0.1:$prosody_port (storage $PROSODY_STORAGE, features $FEATURES)"
load_before=$(load_avg)
say "$(nproc) cores, $(uname -sr), $("$GO" env GOVERSION), load average $load_before before the runs"
if [[ -z $component_http ]]; then
	say "no mod_component_http for Prosody (not in Debian's prosody, nor in bookworm's prosody-modules): bot runs against Parley only"
fi

for run in $(seq "$RUNS"); do
	for scenario in $SCENARIOS; do
		# Alternate which server goes first, so that drift in the machine's
		# load does not always favour the same one.
		if ((run % 2)); then order="parley prosody"; else order="prosody parley"; fi
		for name in $order; do
			run_one "$name" "$scenario" "$run"
		done
	done
done
load_after=$(load_avg)

# --- the tables -----------------------------------------------------------

# Each metric: scenario, JSON path (jq), label, and whether higher or lower
# is better. Only runs that succeeded (ok) count.
read -r -d '' report <<'JQ' || true
def commas: if length <= 3 then . else (.[:-3] | commas) + "," + .[-3:] end;
def fmt:
	if . == null then "–"
	elif (. | fabs) >= 100 then (round | tostring | if startswith("-") then "-" + (.[1:] | commas) else commas end)
	elif (. | fabs) >= 10 then ((. * 10 | round) / 10 | tostring)
	else ((. * 100 | round) / 100 | tostring) end;
def median: sort | length as $n |
	if $n == 0 then null elif $n % 2 == 1 then .[($n - 1) / 2] else (.[$n / 2 - 1] + .[$n / 2]) / 2 end;
def ratio: (. * 100 | round) as $c
	| "\($c / 100 | floor).\($c % 100 | tostring | if length == 1 then "0" + . else . end)×";
def stats: if length == 0 then "–" else "\(min | fmt) / \(median | fmt) / \(max | fmt)" end;
def metrics: {
	login: [
		["logins/s", ["logins_per_s"], 1, "higher"],
		["logins per server CPU-second", ["logins_per_server_cpu_s"], 1, "higher"],
		["connect to bound p50, ms", ["connect_to_bound", "p50_us"], 1000, "lower"],
		["connect to bound p99, ms", ["connect_to_bound", "p99_us"], 1000, "lower"],
		["server CPU, s", ["server_cpu_s"], 1, "lower"]],
	msg: [
		["msgs per server CPU-second", ["msgs_per_server_cpu_s"], 1, "higher"],
		["msgs/s", ["msgs_per_s"], 1, "higher"],
		["latency p50, ms", ["latency", "p50_us"], 1000, "lower"],
		["latency p99, ms", ["latency", "p99_us"], 1000, "lower"],
		["server CPU, s", ["server_cpu_s"], 1, "lower"]],
	idle: [
		["RSS per idle connection, KiB", ["rss_per_conn_kib"], 1, "lower"],
		["RSS at the end, MiB", ["rss_after_kib"], 1024, "lower"],
		["logins/s (opening them)", ["logins_per_s"], 1, "higher"],
		["server CPU while idle, s", ["server_cpu_s"], 1, "lower"]],
	bot: [
		["round trips per server CPU-second", ["round_trips_per_server_cpu_s"], 1, "higher"],
		["round trips/s", ["round_trips_per_s"], 1, "higher"],
		["round trip p50, ms", ["latency", "p50_us"], 1000, "lower"],
		["round trip p99, ms", ["latency", "p99_us"], 1000, "lower"]],
	muc: [
		["deliveries per server CPU-second (goal: Parley ≥ 10× Prosody)", ["deliveries_per_server_cpu_s"], 1, "higher"],
		["deliveries/s", ["deliveries_per_s"], 1, "higher"],
		["latency p50, ms", ["latency", "p50_us"], 1000, "lower"],
		["latency p99, ms", ["latency", "p99_us"], 1000, "lower"],
		["server CPU, s", ["server_cpu_s"], 1, "lower"]]
};
def metric($path; $div): map(getpath($path) | select(. != null) | . / $div);
. as $all
| metrics | to_entries[]
| .key as $s | .value as $m
| ($all | map(select(.scenario == $s))) as $runs
| select($runs | length > 0)
| ($runs | map(select(.target == "parley"))) as $pa
| ($runs | map(select(.target == "prosody"))) as $pr
| ($pa | map(select(.ok))) as $pa_ok
| ($pr | map(select(.ok))) as $pr_ok
| "### \($s)\n",
  "| \($s) | Parley min / median / max | Prosody min / median / max | Parley / Prosody (medians) |",
  "| --- | --- | --- | --- |",
  ($m[] | . as [$what, $path, $div, $better]
    | ($pa_ok | metric($path; $div)) as $a
    | ($pr_ok | metric($path; $div)) as $b
    | (if ($a | length) > 0 and ($b | length) > 0 and ($b | median) != 0
       then ($a | median) / ($b | median) | ratio else "–" end) as $ratio
    | "| \($what) (\($better) is better) | \($a | stats) | \($b | stats) | \($ratio) |"),
  "",
  "Runs that succeeded: Parley \($pa_ok | length) of \($pa | length), Prosody \($pr_ok | length) of \($pr | length)\(
    if $s == "bot" and ($pr | length) == 0 then " (no bot component for Prosody)" else "" end).",
  (select($s == "muc") | "Deliveries lost + duplicated over all runs (must be 0): Parley \($pa | map((.lost // 0) + (.duplicated // 0)) | add // 0), Prosody \($pr | map((.lost // 0) + (.duplicated // 0)) | add // 0)."),
  ""
JQ

echo
echo "== Parley / Prosody"
echo
if [[ $PROSODY_STORAGE == internal ]]; then
	prosody_disk="a file per user and store, written to a temporary file and renamed, no fsync"
else
	prosody_disk="nothing on disk"
fi
echo "Parley $rev ($("$GO" env GOVERSION)) and Prosody $prosody_version (Debian package"
echo "$(dpkg-query -W -f '${Version}' prosody 2>/dev/null || echo '?')), on $(nproc) cores, $(uname -sr); load average $load_before"
echo "before the runs, $load_after after them. Both: $MECH with $SCRAM_ITERATIONS iterations, no"
echo "per-connection rate limit, open registration, an ECDSA P-256 certificate, log level warn,"
echo "STARTTLS on loopback; each run on a freshly started server, the other one stopped."
echo "Storage: Parley SQLite (WAL, synchronous=FULL); Prosody \"$PROSODY_STORAGE\""
echo "($prosody_disk)."
echo "Runs of each scenario on each server: $RUNS, alternating which server goes first. Sizes: login"
echo "$LOGIN_N accounts, $LOGIN_C at a time; msg $MSG_PAIRS pairs, window $MSG_WINDOW, $MSG_DURATION; idle $IDLE_N"
echo "connections held $IDLE_DURATION; bot $BOT_N clients, $BOT_DURATION; muc $MUC_ROOMS rooms × $MUC_OCCUPANTS"
echo "occupants, $MUC_RATE groupchat msgs/s each, window 10, $MUC_DURATION (a delivery is one message to one"
echo "occupant, the sender's reflection included)."
echo
jq -rs "$report" "$RESULTS"
say "raw results (one JSON line per run, with target and run added): $RESULTS"
if [[ -z $component_http && " $SCENARIOS " == *" bot "* ]]; then
	say "bot: Parley only: Prosody has no mod_component_http here (prosody-modules; not in Debian bookworm's packages; PROSODY_PLUGINS=DIR adds it)"
fi
# What the servers logged at warn and above, less their own notes that
# they were asked to stop.
for name in parley prosody; do
	log=$tmp/$name/out.log
	[[ $name == prosody ]] && log=$tmp/prosody/prosody.log
	[[ -f $log ]] || continue
	grep -v 'Received SIGTERM' "$log" >"$log.rest" || true
	if [[ -s $log.rest ]]; then
		say "$name's warnings and errors: $(wc -l <"$log.rest") lines; the last 10:"
		tail -n 10 "$log.rest" | sed 's/^/  /'
	fi
done
if ((cut_short)); then
	say "TIME_BUDGET=${TIME_BUDGET}s ran out: some runs did not start (see the counts under each table)"
	failed=1
fi
say "done in $((SECONDS - started)) s"
exit "$failed"
