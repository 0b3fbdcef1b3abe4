#!/usr/bin/env bash
# shellcheck disable=SC2317 # cleanup and forward run from traps
# deploy/local/with-infra.sh CMD ARGS...
#
# Starts the local real stack (deploy/local/infra.sh up), exports its addresses
# (infra.sh env) and runs CMD. When CMD ends — success, failure, Ctrl-C or SIGTERM — it
# stops exactly the servers this call started (servers that were already running stay
# up) and exits with CMD's status.
#
# INFRA_COMPONENTS="kafka mariadb" limits the stack to those components (default: all).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
INFRA_SH=$HERE/infra.sh

if [ $# -eq 0 ]; then
	echo "usage: $0 CMD [ARGS...]" >&2
	exit 2
fi

read -r -a components <<<"${INFRA_COMPONENTS:-}"
started_file=$(mktemp "${TMPDIR:-/tmp}/with-infra.XXXXXX")
child=

cleanup() {
	local rc=$?
	trap - EXIT INT TERM HUP
	if [ -n "$child" ] && kill -0 "$child" 2>/dev/null; then
		kill -TERM "$child" 2>/dev/null || true
		wait "$child" 2>/dev/null || true
	fi
	local started=()
	if [ -s "$started_file" ]; then
		mapfile -t started < <(sort -u "$started_file")
	fi
	rm -f "$started_file"
	if [ ${#started[@]} -gt 0 ]; then
		echo "with-infra: stopping what this run started: ${started[*]}" >&2
		"$INFRA_SH" down "${started[@]}" >&2 || echo "with-infra: infra.sh down failed" >&2
	else
		echo "with-infra: every server was already running; leaving them up" >&2
	fi
	exit "$rc"
}
trap cleanup EXIT
# A signal before CMD runs: exit (the EXIT trap stops what was started).
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# Servers this call starts begin from empty Kafka data (tests make their own topics).
INFRA_FRESH_DATA=${INFRA_FRESH_DATA-kafka} "$INFRA_SH" up --record "$started_file" "${components[@]}" >&2
eval "$("$INFRA_SH" env)"

# CMD runs in the background so that a SIGTERM to this script is handled at once (bash
# runs traps only between commands). Without job control bash starts background commands
# with SIGINT and SIGQUIT ignored and stdin from /dev/null: `env --default-signal` and
# `<&0` undo both, so Ctrl-C reaches CMD as usual. A signal sent to this script alone is
# passed on to CMD; the script then waits for CMD to end.
forward() { kill -s "$1" "$child" 2>/dev/null || true; }
if { true <&0; } 2>/dev/null; then
	env --default-signal=INT,QUIT "$@" <&0 &
else # no stdin at all (closed)
	env --default-signal=INT,QUIT "$@" </dev/null &
fi
child=$!
trap 'forward INT' INT
trap 'forward TERM' TERM
trap 'forward HUP' HUP
set +e
wait "$child"
status=$?
while kill -0 "$child" 2>/dev/null; do
	wait "$child"
	status=$?
done
set -e
child=
exit "$status"
