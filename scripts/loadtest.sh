#!/usr/bin/env bash
# make loadtest: build parley and parley-load, start Parley on loopback with a
# throwaway config and data directory, run the four parley-load scenarios at
# sizes that fit a 2-core machine, print the results, and stop Parley.
#
# The sizes can be changed from the environment:
#   LOGIN_N=1000 MSG_PAIRS=200 MSG_DURATION=20s IDLE_N=10000 IDLE_DURATION=30s
#   BOT_N=50 BOT_DURATION=10s
#   MUC_ROOMS=10 MUC_OCCUPANTS=20    muc: rooms × occupants on rooms.localhost,
#   MUC_RATE=2 MUC_DURATION=$MSG_DURATION  each occupant sending MUC_RATE msgs/s
#   S2S_PAIRS=100 S2S_DURATION=$MSG_DURATION
#                                    s2s: senders on localhost to as many
#                                    receivers on peer.localhost, a second
#                                    Parley federating with the first over
#                                    loopback (static routes, dialback with
#                                    self-signed certificates); not in the
#                                    default
#   MSG_FLAGS=-sm                    more parley-load flags for msg (-sm: stream
#                                    management on, every message acknowledged)
#   SCENARIOS="login msg idle bot"   a subset (or muc, room fan-out, not in the default), in the order given (SCENARIOS=idle:
#                                    memory per idle session on a fresh server);
#                                    "slow" is msg with slow consumers beside
#                                    the pairs, once (make slowconsumers
#                                    compares runs with and without them)
#   ARCHIVE=false                    the local host without its message archive
#   MUC_ARCHIVE=false                rooms.localhost's rooms without their archive
#   TRANSPORT="tcp ws"               each scenario over each transport, in turn:
#                                    tcp (c2s, STARTTLS; the default), ws (XMPP
#                                    over WebSocket, RFC 7395, plain ws:// on
#                                    loopback) or wss (over HTTPS served by
#                                    Parley); ws and wss exclude each other (one
#                                    HTTP listener); slow runs over tcp only
# PROFILE=DIR writes 5-second CPU profiles of Parley during the msg and bot
# scenarios into DIR (go tool pprof -top DIR/bot.cpu); PROFILE_SECONDS=15
# profiles longer (keep it below the scenario's duration less 3 s).
# The exit code is 1 when any scenario failed (a login, a lost message, ...).
set -euo pipefail

cd "$(dirname "$0")/.."
GO=${GO:-go}
LOGIN_N=${LOGIN_N:-1000}
MSG_PAIRS=${MSG_PAIRS:-200}
MSG_DURATION=${MSG_DURATION:-20s}
IDLE_N=${IDLE_N:-10000}
# Held long enough for every session to park (c2s.park_after, 10 s, swept
# every 5 s) and for the parker to return what they freed to the system (the
# round after the last of them parks): memory per idle connection is
# measured as a long-idle server holds it.
IDLE_DURATION=${IDLE_DURATION:-30s}
BOT_N=${BOT_N:-50}
BOT_DURATION=${BOT_DURATION:-10s}
MUC_ROOMS=${MUC_ROOMS:-10}
MUC_OCCUPANTS=${MUC_OCCUPANTS:-20}
MUC_RATE=${MUC_RATE:-2}
MUC_DURATION=${MUC_DURATION:-$MSG_DURATION}
S2S_PAIRS=${S2S_PAIRS:-100}
S2S_DURATION=${S2S_DURATION:-$MSG_DURATION}
SCENARIOS=${SCENARIOS:-login msg idle bot}
PROFILE=${PROFILE:-}
TRANSPORT=${TRANSPORT:-tcp}

# shellcheck source=scripts/parley-lib.sh
. scripts/parley-lib.sh
parley_build
parley_tmp loadtest
c2s=$(free_port 15222)
hook=$(free_port 15280)
hang=$(free_port $((hook + 1)))
pprof_args=()
if [[ -n $PROFILE ]]; then
	mkdir -p "$PROFILE"
	pprof=$(free_port 16060)
	pprof_args=(-pprof "127.0.0.1:$pprof")
fi
http=
ws_url=
case " $TRANSPORT " in
*" ws "*" wss "* | *" wss "*" ws "*)
	echo "loadtest: TRANSPORT has ws and wss: one HTTP listener serves one of them" >&2
	exit 2
	;;
*" ws "*)
	http=$(free_port 15290)
	ws_url="ws://127.0.0.1:$http/xmpp-websocket"
	;;
*" wss "*)
	http=$(free_port 15290)
	ws_url="wss://127.0.0.1:$http/xmpp-websocket"
	export HTTP_TLS=true
	;;
esac
for t in $TRANSPORT; do
	case $t in
	tcp | ws | wss) ;;
	*)
		echo "loadtest: unknown transport $t (tcp, ws, wss)" >&2
		exit 2
		;;
	esac
done
parley_config "$c2s" "$hook" "$hang" "$http"
if [[ " $SCENARIOS " == *" s2s "* ]]; then
	if [[ -n $http ]]; then
		echo "loadtest: the s2s scenario runs over tcp only (its peer would take the same HTTP port)" >&2
		exit 2
	fi
	# The s2s scenario's receiving server: peer.localhost, in a process of
	# its own, with the same limits; each server has a static route to
	# the other's s2s listener, and they authenticate by dialback (their
	# certificates are self-signed).
	s2s=$(free_port 15269)
	peer_c2s=$(free_port $((c2s + 1)))
	peer_s2s=$(free_port $((s2s + 1)))
	sed -e "s|^data_dir = .*|data_dir = \"$tmp/peer-data\"|" \
		-e "s|^listen = \[\"127.0.0.1:$c2s\"\]|listen = [\"127.0.0.1:$peer_c2s\"]|" \
		-e "s|^name = \"\([a-z]*\.\)\{0,1\}localhost\"|name = \"\1peer.localhost\"|" \
		"$tmp/parley.toml" >"$tmp/peer.toml"
	cat >>"$tmp/parley.toml" <<TOML

[s2s]
listen = ["127.0.0.1:$s2s"]
static_routes = { "peer.localhost" = "127.0.0.1:$peer_s2s" }
TOML
	cat >>"$tmp/peer.toml" <<TOML

[s2s]
listen = ["127.0.0.1:$peer_s2s"]
static_routes = { "localhost" = "127.0.0.1:$s2s" }
TOML
fi
parley_serve loadtest "$c2s" ${pprof_args[@]+"${pprof_args[@]}"}
if [[ -n ${peer_c2s:-} ]]; then
	parley_serve_peer loadtest "$peer_c2s"
fi
status=0
# load runs one scenario; its last line, the JSON, goes to results.jsonl.
load() { load_as "$1" "$@"; }
# load_as NAME SCENARIO [FLAGS...] is load under another name.
load_as() {
	local name=$1 scenario=$2
	shift 2
	echo
	echo "== $name"
	local prof=
	if [[ -n $PROFILE ]]; then
		case $name in
		msg | msg-* | bot | bot-* | slow | muc | muc-* | s2s)
			# The profile covers the scenario's measured window after the logins.
			(sleep 3 && curl -s -o "$PROFILE/$name.cpu" "http://127.0.0.1:$pprof/debug/pprof/profile?seconds=${PROFILE_SECONDS:-5}") &
			prof=$!
			prof_pid=$prof
			;;
		esac
	fi
	if ! bin/parley-load "$scenario" -addr "127.0.0.1:$c2s" -domain localhost -pid "$pid" -create -timeout 5m \
		${transport_args[@]+"${transport_args[@]}"} "$@" |
		tee "$tmp/$name.out"; then
		status=1
	fi
	tail -n 1 "$tmp/$name.out" >>"$tmp/results.jsonl"
	if [[ -n $prof ]]; then
		wait "$prof" || true
	fi
}
for scenario in $SCENARIOS; do
	for transport in $TRANSPORT; do
		# load_as names a run by its scenario, and -ws or -wss after it.
		name=$scenario
		transport_args=()
		if [[ $transport != tcp ]]; then
			name=$scenario-$transport
			transport_args=(-transport ws -ws-url "$ws_url")
			if [[ $scenario == slow ]]; then
				echo "loadtest: slow runs over tcp only (a stalled client is a TCP socket); skipped over $transport" >&2
				continue
			fi
		fi
		case $scenario in
		login) load_as "$name" login -n "$LOGIN_N" -c 50 ;;
		msg) load_as "$name" msg -pairs "$MSG_PAIRS" -window 10 -duration "$MSG_DURATION" ${MSG_FLAGS:-} ;;
		idle) load_as "$name" idle -n "$IDLE_N" -c 50 -duration "$IDLE_DURATION" ;;
		bot) load_as "$name" bot -n "$BOT_N" -duration "$BOT_DURATION" -bot-domain bots.localhost -webhook-addr "127.0.0.1:$hook" ;;
		muc)
			load_as "$name" muc -rooms "$MUC_ROOMS" -occupants "$MUC_OCCUPANTS" -occupant-rate "$MUC_RATE" -window 10 \
				-duration "$MUC_DURATION" -muc-domain rooms.localhost
			;;
		s2s)
			load_as "$name" s2s -pairs "$S2S_PAIRS" -window 10 -duration "$S2S_DURATION" \
				-peer-addr "127.0.0.1:$peer_c2s" -peer-domain peer.localhost -peer-pid "$peer_pid"
			;;
		slow)
			# The defaults of scripts/slowconsumers.sh.
			load_as slow msg -pairs "$MSG_PAIRS" -window 10 -duration "$MSG_DURATION" \
				-stalled 1 -stall-rate 10 -stall-size 200000 \
				-hang-domain hung.localhost -hang-addr "127.0.0.1:$hang" -hang-rate 100 -hang-size 2000
			;;
		*)
			echo "loadtest: unknown scenario $scenario (login, msg, idle, bot, slow, muc, s2s)" >&2
			status=1
			;;
		esac
	done
done

echo
echo "== results (JSON)"
cat "$tmp/results.jsonl"
if [[ -s $tmp/parley.log ]]; then
	echo
	echo "== parley's warnings and errors ($(wc -l <"$tmp/parley.log") lines; the last 20)"
	tail -n 20 "$tmp/parley.log"
fi
if [[ -s $tmp/peer.log ]]; then
	echo
	echo "== the peer's warnings and errors ($(wc -l <"$tmp/peer.log") lines; the last 20)"
	tail -n 20 "$tmp/peer.log"
fi
exit "$status"
