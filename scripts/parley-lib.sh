# shellcheck shell=bash
# scripts/parley-lib.sh: what scripts/loadtest.sh and scripts/latency.sh share:
# a throwaway directory removed at exit, free loopback ports, the load-test
# config and a Parley started on it. Source it from the repository root with
# GO set.

# parley_build builds bin/parley and bin/parley-load.
parley_build() {
	"$GO" build -o bin/parley ./cmd/parley
	"$GO" build -o bin/parley-load ./cmd/parley-load
}

# parley_tmp NAME makes $tmp, and at exit stops $pid (Parley, when set),
# $peer_pid (a second Parley, when set) and $prof_pid (a profile being
# fetched, when set) and removes $tmp.
parley_tmp() {
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/parley-$1.XXXXXX")
	pid=
	peer_pid=
	prof_pid=
	trap parley_cleanup EXIT
	trap 'exit 130' INT TERM
}

parley_cleanup() {
	if [[ -n $prof_pid ]]; then
		kill "$prof_pid" 2>/dev/null || true
	fi
	parley_stop
	parley_stop_pid "$peer_pid"
	peer_pid=
	rm -rf "$tmp"
}

# parley_stop stops Parley ($pid, when set and running) and waits for it.
parley_stop() {
	parley_stop_pid "$pid"
	pid=
}

# parley_stop_pid PID stops that Parley (when PID is set and running) and
# waits for it: it shuts down within 10 s; past 15 it is killed.
parley_stop_pid() {
	local p=$1
	if [[ -n $p ]] && kill -0 "$p" 2>/dev/null; then
		kill -TERM "$p" 2>/dev/null || true
		for _ in $(seq 150); do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	fi
}

# port_free reports whether nothing listens on 127.0.0.1:$1.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_port prints the first free port from $1 up.
free_port() {
	local p=$1
	while ! port_free "$p"; do p=$((p + 1)); done
	echo "$p"
}

# parley_config C2S [HOOK [HANG]] writes $tmp/parley.toml: no per-connection
# rate limit and no limit per address (every client comes from 127.0.0.1),
# open registration for -create,
# the RFC 7677 minimum of SCRAM iterations (as parleytest uses), and, with
# HOOK, a bot host whose webhook parley-load serves on that port; with HANG,
# a second bot host, hung.localhost, whose webhook is parley-load's hanging
# one on that port (msg -hang-domain), with the default timeout, retries and
# queue of a bot host. It always has a muc host, rooms.localhost, for the
# muc scenario (idle until a client joins a room). With HTTP, the HTTP
# listener serves XMPP over WebSocket on that port, over HTTPS when
# HTTP_TLS=true (the host's generated certificate).
parley_config() {
	cat >"$tmp/parley.toml" <<TOML
data_dir = "$tmp/data"
log_level = "warn"

[c2s]
listen = ["127.0.0.1:$1"]
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
scram_iterations = 4096

[[host]]
name = "localhost"
registration = "open"
TOML
	# ARCHIVE=false measures the server without its message archive
	# (XEP-0313), which is on by default.
	if [[ -n ${ARCHIVE:-} ]]; then
		echo "archive = $ARCHIVE" >>"$tmp/parley.toml"
	fi
	cat >>"$tmp/parley.toml" <<TOML

[[host]]
name = "rooms.localhost"
type = "muc"
TOML
	# MUC_ARCHIVE=false measures rooms without their archive (XEP-0313 on
	# the room), which new rooms keep by default.
	if [[ -n ${MUC_ARCHIVE:-} ]]; then
		echo "archive = $MUC_ARCHIVE" >>"$tmp/parley.toml"
	fi
	if [[ -n ${2:-} ]]; then
		cat >>"$tmp/parley.toml" <<TOML

[[host]]
name = "bots.localhost"
type = "http_component"
post_url = "http://127.0.0.1:$2/"
TOML
	fi
	if [[ -n ${3:-} ]]; then
		cat >>"$tmp/parley.toml" <<TOML

[[host]]
name = "hung.localhost"
type = "http_component"
post_url = "http://127.0.0.1:$3/"
TOML
	fi
	if [[ -n ${4:-} ]]; then
		cat >>"$tmp/parley.toml" <<TOML

[http]
listen = ["127.0.0.1:$4"]
tls = ${HTTP_TLS:-false}
TOML
	fi
}

# parley_serve NAME C2S [ARGS...] starts bin/parley on $tmp/parley.toml with
# ARGS, sets $pid, and returns once it listens on 127.0.0.1:C2S; it exits
# the script when Parley does not start within 10 s. The array parley_wrap,
# when set, is the command Parley runs under (taskset, say); it must exec
# Parley, so that $pid is Parley's.
parley_serve() {
	local name=$1 port=$2
	shift 2
	${parley_wrap[@]+"${parley_wrap[@]}"} bin/parley serve -c "$tmp/parley.toml" "$@" 2>"$tmp/parley.log" &
	pid=$!
	parley_wait_listen "$name" "$pid" "$port" "$tmp/parley.log"
	echo "$name: parley (pid $pid) on 127.0.0.1:$port; $(nproc) cores, $(uname -sr), $("$GO" env GOVERSION)"
}

# parley_serve_peer NAME C2S sets $peer_pid to a second Parley on
# $tmp/peer.toml, logging to $tmp/peer.log, once it listens on C2S (the
# s2s scenario's receiving server).
parley_serve_peer() {
	local name=$1 port=$2
	bin/parley serve -c "$tmp/peer.toml" 2>"$tmp/peer.log" &
	peer_pid=$!
	parley_wait_listen "$name" "$peer_pid" "$port" "$tmp/peer.log"
	echo "$name: peer parley (pid $peer_pid) on 127.0.0.1:$port"
}

# parley_wait_listen NAME PID PORT LOG returns once process PID listens on
# 127.0.0.1:PORT; it exits the script, with LOG, when the process ends
# first or does not listen within 10 s.
parley_wait_listen() {
	local name=$1 p=$2 port=$3 log=$4
	for _ in $(seq 100); do
		if ! kill -0 "$p" 2>/dev/null; then
			echo "$name: parley did not start:" >&2
			cat "$log" >&2
			exit 1
		fi
		port_free "$port" || break
		sleep 0.1
	done
	if port_free "$port"; then
		echo "$name: parley does not listen on 127.0.0.1:$port after 10 s" >&2
		exit 1
	fi
}
