#!/usr/bin/env bash
# deploy/local/infra.sh — the local real stack, installed and run without Docker.
#
#   infra.sh install [component...]   install/download only (apt packages, Maven jars, launcher;
#                                     with no component named, also Prometheus and promtool)
#   infra.sh up      [component...]   install what is missing, start, wait until ready
#   infra.sh down    [component...]   stop (SIGTERM, bounded wait, then SIGKILL)
#   infra.sh status  [component...]   one line per component
#   infra.sh env                      export lines for the tests (libs/testenv reads them)
#
# Components: kafka mariadb postgres ferretdb cassandra (default: all; ferretdb needs postgres).
# Everything lives under ${SAGASUITE_HOME:-$HOME/.cache/sagasuite}: jars/<name>-<version>/,
# infra/<component>/ (data, logs, pid file) and bin/. Servers listen on loopback only, on
# ports below 32768 (outside Linux's ephemeral range; see shared INFRA-NOTES).
#
# INFRA_FRESH_DATA="kafka" makes `up` start those components from empty data when it
# starts them (a running one is reused as it is); with-infra.sh sets it for Kafka.
#
# `up --record FILE` appends the name of every component this call starts to FILE
# (with-infra.sh uses it to stop only what it started).
#
#   infra.sh kill    component...     SIGKILL the server (its whole process group), no
#                                     clean shutdown; `up` restarts it on the same data
#
# Private instances (e.g. outage tests that kill servers while the shared stack keeps
# running): INFRA_INSTANCE=NAME keeps data, logs and pid files under
# instances/NAME/<component>/ instead of infra/, and every command (up, down, kill,
# status, env) acts on that instance only. Ports come from INFRA_KAFKA_PORT,
# INFRA_KAFKA_CONTROLLER_PORT, INFRA_MARIADB_PORT, INFRA_POSTGRES_PORT,
# INFRA_FERRETDB_PORT, INFRA_CASSANDRA_CQL_PORT, INFRA_CASSANDRA_STORAGE_PORT,
# INFRA_CASSANDRA_SSL_STORAGE_PORT, INFRA_CASSANDRA_JMX_PORT (each below 32768;
# unset: the defaults above, so a private instance must set the ones it starts).
# INFRA_CASSANDRA_COMMITLOG_SYNC=group makes Cassandra sync its commitlog before it
# acknowledges a write (default periodic: a kill -9 loses the last 10 s of writes).
set -euo pipefail
# Name any command that fails unexpectedly (expected failures go through die).
set -E
on_err() {
	local rc=$1 line=$2 cmd=$3
	# A wrapper such as prefixed's ( "$@" ) fails because of what ran inside: said already.
	[[ "$cmd" == *'"$@"'* ]] && return
	printf 'infra.sh: line %s: "%s" failed (exit %s)\n' "$line" "$cmd" "$rc" >&2
}
trap 'on_err "$?" "$LINENO" "$BASH_COMMAND"' ERR

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)

SAGASUITE_HOME=${SAGASUITE_HOME:-$HOME/.cache/sagasuite}
JARS=$SAGASUITE_HOME/jars
# Installs (apt, Maven, the launcher) are shared by every instance and locked here.
SHARED_INFRA=$SAGASUITE_HOME/infra
INFRA_INSTANCE=${INFRA_INSTANCE:-}
if [ -z "$INFRA_INSTANCE" ]; then
	INFRA=$SHARED_INFRA
elif [[ "$INFRA_INSTANCE" =~ ^[a-z0-9][a-z0-9_-]{0,62}$ ]]; then
	INFRA=$SAGASUITE_HOME/instances/$INFRA_INSTANCE
else
	printf 'infra.sh: INFRA_INSTANCE=%q: want 1-63 characters of a-z, 0-9, _ and -, starting with a letter or digit\n' "$INFRA_INSTANCE" >&2
	exit 2
fi
BIN=$SAGASUITE_HOME/bin

KAFKA_VERSION=4.1.1
LOG4J_VERSION=2.24.3
CASSANDRA_VERSION=5.0.9
DEPENDENCY_PLUGIN_VERSION=3.8.1

HOST=127.0.0.1

# port_setting VAR DEFAULT: VAR from $INFRA_VAR when set (a port in 1..32767), else DEFAULT.
port_setting() {
	local var=$1 def=$2 env=INFRA_$1 v
	v=${!env:-$def}
	if ! [[ "$v" =~ ^[0-9]{1,5}$ ]] || [ "$v" -lt 1 ] || [ "$v" -gt 32767 ]; then
		printf 'infra.sh: %s=%q: want a port number from 1 to 32767 (32768 and up is the ephemeral range)\n' "$env" "$v" >&2
		exit 2
	fi
	printf -v "$var" '%s' "$v"
}
port_setting KAFKA_PORT 19092
port_setting KAFKA_CONTROLLER_PORT 19093
port_setting MARIADB_PORT 13306
port_setting POSTGRES_PORT 15432
port_setting FERRETDB_PORT 17017
port_setting CASSANDRA_CQL_PORT 19042
port_setting CASSANDRA_STORAGE_PORT 17000
port_setting CASSANDRA_SSL_STORAGE_PORT 17001
port_setting CASSANDRA_JMX_PORT 17199

DB_USER=sagasuite
DB_PASSWORD=sagasuite

ALL=(kafka mariadb postgres ferretdb cassandra)

# Readiness budgets (seconds) and stop budgets.
declare -A READY_TIMEOUT=([kafka]=90 [mariadb]=30 [postgres]=30 [ferretdb]=15 [cassandra]=120)
declare -A STOP_TIMEOUT=([kafka]=30 [mariadb]=30 [postgres]=30 [ferretdb]=15 [cassandra]=45)
declare -A PORT=([kafka]=$KAFKA_PORT [mariadb]=$MARIADB_PORT [postgres]=$POSTGRES_PORT
	[ferretdb]=$FERRETDB_PORT [cassandra]=$CASSANDRA_CQL_PORT)
# PostgreSQL: SIGINT is its "fast" shutdown (SIGTERM waits for clients to disconnect).
declare -A STOP_SIGNAL=([kafka]=TERM [mariadb]=TERM [postgres]=INT [ferretdb]=TERM [cassandra]=TERM)

log() { printf '%s\n' "$*"; }
die() {
	printf 'infra.sh: %s\n' "$*" >&2
	exit 1
}
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }

as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null; then
		sudo "$@"
	else
		die "need root for: $*"
	fi
}

# ---------------------------------------------------------------------------
# process helpers

dir_of() { echo "$INFRA/$1"; }
pidfile_of() { echo "$INFRA/$1/$1.pid"; }
logfile_of() { echo "$INFRA/$1/$1.log"; }

# listening HOST PORT: true when a socket is in LISTEN on exactly that address (a JVM's
# dual-stack socket shows as [::ffff:127.0.0.1]:PORT).
listening() {
	ss -Hltn "sport = :$2" 2>/dev/null |
		awk -v a="$1:$2" -v b="[::ffff:$1]:$2" '$4 == a || $4 == b { found = 1 } END { exit !found }'
}

# alive PID: the process exists and is not a zombie (a server that exited stays a zombie
# until init reaps it, and kill -0 still succeeds on a zombie).
alive() {
	local state
	state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
	[ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# A string that the command line of the component's server contains (so that a pid
# file naming a recycled pid is not mistaken for our server).
marker_of() {
	case $1 in
	# Every FerretDB runs the same binary: its listen address tells instances apart.
	ferretdb) echo "$FERRETDB_BIN -listen $HOST:$FERRETDB_PORT" ;;
	*) dir_of "$1" ;;
	esac
}

# The pid of a component when its pid file names a live process of ours, else nothing.
# A stale pid file is removed.
live_pid() {
	local c=$1 pf pid
	pf=$(pidfile_of "$c")
	[ -f "$pf" ] || return 0
	pid=$(head -n1 "$pf" 2>/dev/null || true)
	if [[ "$pid" =~ ^[0-9]+$ ]] && alive "$pid" &&
		tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$(marker_of "$c")"; then
		echo "$pid"
		return 0
	fi
	rm -f "$pf"
	log "removed stale pid file $pf (pid ${pid:-?} is gone)" >&2
}

rss_of() { # resident set size of a pid in MiB
	awk '/^VmRSS:/ { printf "%d", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || true
}

tail_log() {
	local f
	f=$(logfile_of "$1")
	if [ -s "$f" ]; then
		printf -- '--- last 40 lines of %s ---\n' "$f" >&2
		tail -n 40 "$f" >&2
		printf -- '--- end of log ---\n' >&2
	fi
}

# spawn COMPONENT CMD...: start CMD in its own session (Ctrl-C in the caller's terminal
# does not reach it), stdout+stderr appended to the component's log, pid file written by
# the process itself before it execs the server.
spawn() {
	local c=$1 pf lf
	shift
	pf=$(pidfile_of "$c")
	lf=$(logfile_of "$c")
	rm -f "$pf"
	# Keep one older log: rotate past 20 MiB.
	if [ -f "$lf" ] && [ "$(stat -c %s "$lf")" -gt $((20 << 20)) ]; then mv -f "$lf" "$lf.1"; fi
	printf '\n=== %s: starting %s\n' "$(date -Is)" "$c" >>"$lf"
	# Where this run's log starts (readiness checks that read the log look only past it).
	stat -c %s "$lf" >"$(dir_of "$c")/.log-offset"
	# shellcheck disable=SC2016 # $$ and $@ belong to the inner bash
	# (fd 9 is infra.sh's lock: the server must not inherit it.)
	setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pf" "$@" </dev/null >>"$lf" 2>&1 9>&- &
	local i
	for i in $(seq 1 100); do
		[ -s "$pf" ] && break
		sleep 0.02
	done
	[ -s "$pf" ] || die "$c: no pid file after starting it"
	if [ -n "${RECORD_FILE:-}" ]; then
		echo "$c" >>"$RECORD_FILE"
	fi
}

# wait_listen COMPONENT PID: wait (bounded) until the component's port is in LISTEN.
# Nothing dials the port before that.
wait_listen() {
	local c=$1 pid=$2 port=${PORT[$1]} deadline
	deadline=$(($(date +%s) + READY_TIMEOUT[$c]))
	until listening "$HOST" "$port"; do
		if ! alive "$pid"; then
			tail_log "$c"
			die "$c: the server exited before listening on $HOST:$port"
		fi
		if [ "$(date +%s)" -ge "$deadline" ]; then
			tail_log "$c"
			die "$c: not listening on $HOST:$port after ${READY_TIMEOUT[$c]}s"
		fi
		sleep 0.1
	done
}

# wait_until COMPONENT PID DESCRIPTION CMD...: retry CMD until it succeeds (bounded).
wait_until() {
	local c=$1 pid=$2 what=$3 deadline
	shift 3
	deadline=$(($(date +%s) + READY_TIMEOUT[$c]))
	until "$@" >/dev/null 2>&1; do
		if ! alive "$pid"; then
			tail_log "$c"
			die "$c: the server exited while waiting for $what"
		fi
		if [ "$(date +%s)" -ge "$deadline" ]; then
			tail_log "$c"
			die "$c: no $what after ${READY_TIMEOUT[$c]}s"
		fi
		sleep 0.2
	done
}

# log_since_start COMPONENT: the component's log from its latest start on.
log_since_start() {
	local off=0 f
	f=$(dir_of "$1")/.log-offset
	[ -f "$f" ] && off=$(cat "$f")
	tail -c +"$((off + 1))" "$(logfile_of "$1")" 2>/dev/null
}

port_taken_check() {
	local c=$1 port=${PORT[$1]}
	if ss -Hltn "sport = :$port" | grep -q .; then
		die "$c: port $port is already in use by a process this script did not start: $(ss -Hltnp "sport = :$port" | head -n1)"
	fi
}

stop_component() {
	local c=$1 pid sig deadline
	pid=$(live_pid "$c")
	if [ -z "$pid" ]; then
		log "not running"
		return 0
	fi
	sig=${STOP_SIGNAL[$c]}
	local t0
	t0=$(now)
	kill -s "$sig" "$pid" 2>/dev/null || true
	deadline=$(($(date +%s) + STOP_TIMEOUT[$c]))
	while alive "$pid"; do
		if [ "$(date +%s)" -ge "$deadline" ]; then
			log "still running after ${STOP_TIMEOUT[$c]}s: SIGKILL"
			kill -s KILL "$pid" 2>/dev/null || true
			sleep 0.5
			break
		fi
		sleep 0.1
	done
	rm -f "$(pidfile_of "$c")"
	log "stopped (pid $pid, SIG$sig, $(elapsed "$t0"))"
}

# ---------------------------------------------------------------------------
# installation

# Tools this script itself needs; all are in a standard Debian image, but check.
base_tools() {
	local missing=()
	command -v ss >/dev/null || missing+=(iproute2)
	command -v setsid >/dev/null && command -v setpriv >/dev/null && command -v flock >/dev/null || missing+=(util-linux)
	if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi
}

# lock: one infra.sh up/down/install/kill at a time per instance (released on exit).
lock() {
	mkdir -p "$INFRA"
	exec 9>"$INFRA/.lock"
	if ! flock -n 9; then
		log "waiting for another infra.sh (lock $INFRA/.lock)" >&2
		flock -w 300 9 || die "another infra.sh has held $INFRA/.lock for 300s"
	fi
}

# install_shared COMPONENTS...: install_components for a private instance, under the
# default instance's lock (fd 8), since apt, Maven and the launcher are shared.
install_shared() {
	mkdir -p "$SHARED_INFRA"
	exec 8>"$SHARED_INFRA/.lock"
	if ! flock -n 8; then
		log "waiting for another infra.sh to finish installing (lock $SHARED_INFRA/.lock)" >&2
		flock -w 300 8 || die "another infra.sh has held $SHARED_INFRA/.lock for 300s"
	fi
	install_components "$@"
	exec 8>&-
}

have_mariadb() { command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ]; }

pg_bindir() {
	local d
	for d in /usr/lib/postgresql/15/bin $(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin 2>/dev/null | sort -rV); do
		if [ -x "$d/initdb" ] && [ -x "$d/postgres" ] && [ -x "$d/pg_isready" ]; then
			echo "$d"
			return 0
		fi
	done
	return 1
}

apt_install() { # packages...
	[ $# -gt 0 ] || return 0
	log "apt-get install $* (apt-get update first)"
	local t0 policy=/usr/sbin/policy-rc.d created_policy=
	t0=$(now)
	# Keep the packages' own services (system instances on 3306/5432) from starting.
	if [ ! -e "$policy" ]; then
		as_root sh -c "printf '#!/bin/sh\nexit 101\n' >$policy && chmod 755 $policy"
		created_policy=1
	fi
	local rc=0 out
	out=$(mktemp)
	{
		as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
			as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
	} >"$out" 2>&1 || rc=$?
	if [ -n "$created_policy" ]; then as_root rm -f "$policy"; fi
	if [ $rc -ne 0 ]; then
		tail -n 30 "$out" >&2
		rm -f "$out"
		die "apt-get install $* failed (exit $rc)"
	fi
	rm -f "$out"
	log "installed $* in $(elapsed "$t0")"
}

install_apt_packages() { # components...
	local pkgs=() c
	for c in "$@"; do
		case $c in
		mariadb) have_mariadb || pkgs+=(mariadb-server mariadb-client) ;;
		postgres) pg_bindir >/dev/null || pkgs+=(postgresql-15 postgresql-client-15) ;;
		esac
	done
	if [ ${#pkgs[@]} -gt 0 ]; then
		apt_install "${pkgs[@]}"
	fi
	for c in "$@"; do
		case $c in
		mariadb) have_mariadb || die "mariadbd still missing after apt-get" ;;
		postgres) pg_bindir >/dev/null || die "PostgreSQL binaries still missing after apt-get" ;;
		esac
	done
}

# maven_jars NAME-VERSION DEPENDENCY_XML: copy a dependency closure into $JARS/NAME-VERSION
# once; a .complete marker makes later calls free.
maven_jars() {
	local name=$1 deps=$2 dir=$JARS/$1 work
	if [ -f "$dir/.complete" ]; then
		return 0
	fi
	command -v mvn >/dev/null || apt_install maven
	log "downloading $name jars from Maven Central"
	local t0
	t0=$(now)
	work=$(mktemp -d "$JARS/.$name.XXXXXX")
	cat >"$work/pom.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.sagasuite</groupId>
  <artifactId>$name</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
$deps
  </dependencies>
  <build>
    <plugins>
      <plugin>
        <groupId>org.apache.maven.plugins</groupId>
        <artifactId>maven-dependency-plugin</artifactId>
        <version>$DEPENDENCY_PLUGIN_VERSION</version>
      </plugin>
    </plugins>
  </build>
</project>
EOF
	if ! (cd "$work" && mvn -B -q dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$work/jars" >"$work/mvn.log" 2>&1); then
		tail -n 30 "$work/mvn.log" >&2
		die "mvn could not fetch the $name jars (log above)"
	fi
	rm -rf "$dir"
	mv "$work/jars" "$dir"
	rm -rf "$work"
	touch "$dir/.complete"
	log "$name: $(find "$dir" -name '*.jar' | wc -l) jars, $(du -sh "$dir" | cut -f1) in $(elapsed "$t0")"
}

install_kafka() {
	maven_jars "kafka-$KAFKA_VERSION" "
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>$LOG4J_VERSION</version></dependency>"
}

install_cassandra() {
	maven_jars "cassandra-$CASSANDRA_VERSION" "
    <dependency><groupId>org.apache.cassandra</groupId><artifactId>cassandra-all</artifactId><version>$CASSANDRA_VERSION</version></dependency>"
}

FERRETDB_BIN=$BIN/ferretdb-local

install_ferretdb() {
	local src=$REPO/tools/cmd/ferretdb-local
	if [ -x "$FERRETDB_BIN" ] && [ -z "$(find "$src" "$REPO/tools/go.mod" "$REPO/tools/go.sum" -newer "$FERRETDB_BIN" -print -quit 2>/dev/null)" ]; then
		return 0
	fi
	command -v go >/dev/null || die "go is not on PATH (needed to build $FERRETDB_BIN)"
	log "building $FERRETDB_BIN"
	local t0
	t0=$(now)
	mkdir -p "$BIN"
	(cd "$REPO/tools" && go build -o "$FERRETDB_BIN.tmp" ./cmd/ferretdb-local) || die "go build ./tools/cmd/ferretdb-local failed"
	mv -f "$FERRETDB_BIN.tmp" "$FERRETDB_BIN"
	log "built ferretdb-local in $(elapsed "$t0")"
}

# Prometheus and promtool (Debian's prometheus 2.42) are not a component of the stack:
# the tests start their own Prometheus (tools/internal/promcheck) and run promtool on
# deploy/prometheus. The package's own service is kept from starting by apt_install.
have_prometheus() { command -v promtool >/dev/null && command -v prometheus >/dev/null; }

install_prometheus() {
	have_prometheus || apt_install prometheus
	have_prometheus || die "prometheus/promtool still missing after apt-get"
}

# Chromium (Debian's chromium) is not a component of the stack either: the web
# console's browser tests (tools/internal/webtest) drive it headless with chromedp.
have_chromium() { command -v chromium >/dev/null; }

install_chromium() {
	have_chromium || apt_install chromium
	have_chromium || die "chromium still missing after apt-get"
}

java_check() {
	command -v java >/dev/null || apt_install openjdk-17-jre-headless
}

# install COMPONENTS...: apt packages, Maven jars and the launcher, in parallel groups.
install_components() {
	local want_apt=() want_mvn=() c
	for c in "$@"; do
		case $c in
		mariadb | postgres) want_apt+=("$c") ;;
		kafka | cassandra) want_mvn+=("$c") ;;
		esac
	done
	if [[ " $* " == *" kafka "* || " $* " == *" cassandra "* ]]; then java_check; fi
	mkdir -p "$JARS" "$INFRA" "$BIN"
	local pids=() names=()
	if [ ${#want_apt[@]} -gt 0 ]; then
		prefixed install/apt install_apt_packages "${want_apt[@]}" &
		pids+=($!) names+=(apt)
	fi
	if [ ${#want_mvn[@]} -gt 0 ]; then
		# One Maven at a time: concurrent runs into one local repository are not safe.
		prefixed install/mvn run_all install_ "${want_mvn[@]}" &
		pids+=($!) names+=(mvn)
	fi
	if [[ " $* " == *" ferretdb "* ]]; then
		prefixed install/go install_ferretdb &
		pids+=($!) names+=(go)
	fi
	local i failed=()
	for i in "${!pids[@]}"; do
		wait "${pids[$i]}" || failed+=("${names[$i]}")
	done
	[ ${#failed[@]} -eq 0 ] || die "install failed: ${failed[*]}"
}

run_all() { # PREFIX ITEMS...: call PREFIX$item for each
	local p=$1 x
	shift
	for x in "$@"; do "$p$x"; done
}

# prefixed LABEL CMD...: run CMD in a subshell with every output line prefixed.
prefixed() {
	local label=$1
	shift
	("$@") 2>&1 | while IFS= read -r line; do printf '%-11s %s\n' "[$label]" "$line"; done
	return "${PIPESTATUS[0]}"
}

# ---------------------------------------------------------------------------
# Kafka (KRaft, one node that is broker and controller)

start_kafka() {
	local d jars
	d=$(dir_of kafka)
	jars=$JARS/kafka-$KAFKA_VERSION
	# Test runs ask for an empty log (with-infra.sh): every run leaves topics and
	# consumer groups behind, and a broker that loads thousands of them at start
	# gets slower each time.
	if [[ " ${INFRA_FRESH_DATA:-} " == *" kafka "* ]] && [ -d "$d/data" ]; then
		rm -rf "$d/data"
		log "emptied $d/data (INFRA_FRESH_DATA)"
	fi
	mkdir -p "$d/data"
	cat >"$d/server.properties" <<EOF
# written by deploy/local/infra.sh
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$KAFKA_PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$d/data
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
EOF
	cat >"$d/log4j2.properties" <<'EOF'
# written by deploy/local/infra.sh
status = warn
shutdownHook = disable
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
EOF
	if [ ! -f "$d/data/meta.properties" ]; then
		local id
		id=$(java -cp "$jars/*" kafka.tools.StorageTool random-uuid 2>>"$(logfile_of kafka)" | tail -n1) || true
		[[ "$id" =~ ^[A-Za-z0-9_-]{22}$ ]] || {
			tail_log kafka
			die "kafka: 'StorageTool random-uuid' printed '$id' (are the jars in $jars complete?)"
		}
		java -cp "$jars/*" kafka.tools.StorageTool format -t "$id" -c "$d/server.properties" >>"$(logfile_of kafka)" 2>&1 ||
			{
				tail_log kafka
				die "kafka: formatting $d/data failed"
			}
		log "formatted $d/data (cluster id $id)"
	fi
	spawn kafka java -Xms256m -Xmx512m -XX:+UseG1GC -XX:-UsePerfData -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
		-Djava.net.preferIPv4Stack=true \
		-Dlog4j2.configurationFile="$d/log4j2.properties" \
		-cp "$jars/*" kafka.Kafka "$d/server.properties"
}

ready_kafka() {
	local pid=$1
	wait_listen kafka "$pid"
	# The socket listens before request processing is enabled; the broker says when it is.
	wait_until kafka "$pid" "'Kafka Server started' in the log" kafka_started
}

kafka_started() {
	log_since_start kafka | grep -q 'Kafka Server started'
}

# ---------------------------------------------------------------------------
# MariaDB (Debian packages, a private datadir)

# shellcheck disable=SC2120 # called with arguments through wait_until
mariadb_client() { # args...: as root over the private socket
	mariadb --no-defaults --protocol=socket --socket="$(dir_of mariadb)/mariadb.sock" -uroot "$@"
}

start_mariadb() {
	local d me
	d=$(dir_of mariadb)
	me=$(id -un)
	mkdir -p "$d"
	if [ ! -d "$d/data/mysql" ]; then
		rm -rf "$d/data"
		mariadb-install-db --no-defaults --user="$me" --datadir="$d/data" \
			--auth-root-authentication-method=socket --skip-test-db >>"$(logfile_of mariadb)" 2>&1 ||
			{
				tail_log mariadb
				die "mariadb: mariadb-install-db failed"
			}
		log "initialised $d/data"
	fi
	spawn mariadb "$(command -v mariadbd || echo /usr/sbin/mariadbd)" --no-defaults --user="$me" \
		--datadir="$d/data" --pid-file="$d/mariadbd.pid" \
		--socket="$d/mariadb.sock" --port="$MARIADB_PORT" --bind-address="$HOST" \
		--skip-name-resolve --max-connections=500 --max-allowed-packet=64M \
		--innodb-flush-log-at-trx-commit=1 --innodb-buffer-pool-size=256M \
		--character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci
}

ready_mariadb() {
	local pid=$1
	wait_listen mariadb "$pid"
	wait_until mariadb "$pid" "answer to 'select 1' over the socket" mariadb_client -e 'select 1'
	mariadb_client <<EOF || die "mariadb: creating user $DB_USER failed"
CREATE USER IF NOT EXISTS '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$DB_PASSWORD';
CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASSWORD';
ALTER USER '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$DB_PASSWORD';
ALTER USER '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASSWORD';
GRANT ALL PRIVILEGES ON *.* TO '$DB_USER'@'127.0.0.1' WITH GRANT OPTION;
GRANT ALL PRIVILEGES ON *.* TO '$DB_USER'@'localhost' WITH GRANT OPTION;
EOF
	wait_until mariadb "$pid" "answer to 'select 1' from $DB_USER over TCP" \
		mariadb --no-defaults --protocol=tcp -h "$HOST" -P "$MARIADB_PORT" -u "$DB_USER" -p"$DB_PASSWORD" -e 'select 1'
}

# ---------------------------------------------------------------------------
# PostgreSQL (a private instance run as an unprivileged user)

pg_user() {
	if [ "$(id -u)" -ne 0 ]; then
		id -un
	elif id postgres >/dev/null 2>&1; then
		echo postgres
	else
		id sagasuite-pg >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin sagasuite-pg
		echo sagasuite-pg
	fi
}

# as_pg_user CMD...: run CMD as the PostgreSQL user. setpriv execs (it does not fork), so
# a pid recorded before it is the server's pid.
as_pg_user() {
	if [ "$(id -u)" -eq 0 ]; then
		local u
		u=$(pg_user)
		setpriv --reuid="$u" --regid="$(id -g "$u")" --init-groups "$@"
	else
		"$@"
	fi
}

# The PostgreSQL user must be able to reach its directory (e.g. under /root, mode 700):
# give each parent it cannot search the search bit for others — x only, no read bit, so
# nothing becomes listable.
pg_make_traversable() {
	local p parents=() i
	p=$(dir_of postgres)
	while p=$(dirname "$p") && [ "$p" != / ]; do parents=("$p" "${parents[@]}"); done
	for p in "${parents[@]}"; do
		if ! as_pg_user test -x "$p"; then
			chmod o+x "$p" || die "postgres: cannot make $p searchable for user $(pg_user)"
			log "chmod o+x $p (so that user $(pg_user) can reach its data directory)"
		fi
	done
}

start_postgres() {
	local d bin u
	d=$(dir_of postgres)
	bin=$(pg_bindir)
	u=$(pg_user)
	mkdir -p "$d/run"
	if [ "$(id -u)" -eq 0 ]; then
		pg_make_traversable
		chown "$u:" "$d" "$d/run"
	fi
	if [ ! -f "$d/data/PG_VERSION" ]; then
		rm -rf "$d/data"
		local pw=$d/run/pwfile
		printf '%s\n' "$DB_PASSWORD" >"$pw"
		[ "$(id -u)" -ne 0 ] || chown "$u:" "$pw"
		as_pg_user "$bin/initdb" -D "$d/data" -U "$DB_USER" --pwfile="$pw" \
			--auth-local=scram-sha-256 --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 \
			>>"$(logfile_of postgres)" 2>&1 || {
			rm -f "$pw"
			tail_log postgres
			die "postgres: initdb failed"
		}
		rm -f "$pw"
		log "initialised $d/data (superuser $DB_USER)"
	fi
	# After a kill -9 the postmaster.pid stays; PostgreSQL takes a pid that is now a
	# zombie for a live postmaster and refuses to start.
	local stale
	stale=$(head -n1 "$d/data/postmaster.pid" 2>/dev/null || true)
	if [[ "$stale" =~ ^[0-9]+$ ]] && ! alive "$stale"; then
		rm -f "$d/data/postmaster.pid"
		log "removed $d/data/postmaster.pid (pid $stale is gone)"
	fi
	local drop=()
	if [ "$(id -u)" -eq 0 ]; then drop=(setpriv --reuid="$u" --regid="$(id -g "$u")" --init-groups); fi
	spawn postgres "${drop[@]}" "$bin/postgres" -D "$d/data" \
		-c listen_addresses="$HOST" -c port="$POSTGRES_PORT" -c unix_socket_directories="$d/run" \
		-c max_connections=300
}

ready_postgres() {
	local pid=$1 bin
	bin=$(pg_bindir)
	wait_listen postgres "$pid"
	wait_until postgres "$pid" "pg_isready" "$bin/pg_isready" -q -h "$HOST" -p "$POSTGRES_PORT"
	local url="postgres://$DB_USER:$DB_PASSWORD@$HOST:$POSTGRES_PORT/postgres?sslmode=disable"
	if [ "$("$bin/psql" "$url" -XtAc "select 1 from pg_database where datname = 'ferretdb'")" != 1 ]; then
		"$bin/psql" "$url" -Xqc "create database ferretdb" || die "postgres: create database ferretdb failed"
		log "created database ferretdb"
	fi
}

# ---------------------------------------------------------------------------
# FerretDB (our launcher, MongoDB wire protocol on PostgreSQL)

start_ferretdb() {
	local d
	d=$(dir_of ferretdb)
	mkdir -p "$d"
	listening "$HOST" "$POSTGRES_PORT" || die "ferretdb: postgres is not running (start it first: infra.sh up postgres ferretdb)"
	spawn ferretdb "$FERRETDB_BIN" -listen "$HOST:$FERRETDB_PORT" \
		-postgresql-url "postgres://$DB_USER:$DB_PASSWORD@$HOST:$POSTGRES_PORT/ferretdb?sslmode=disable"
}

ready_ferretdb() {
	local pid=$1
	wait_listen ferretdb "$pid"
	wait_until ferretdb "$pid" "answer to listDatabases" "$FERRETDB_BIN" -ping "mongodb://$HOST:$FERRETDB_PORT/"
}

# ---------------------------------------------------------------------------
# Cassandra (jars from Maven Central)

# The commitlog settings of cassandra.yaml. periodic (the default) acknowledges writes
# before they are synced, and a kill -9 loses up to the period's worth of them (replay
# stops at the last sync marker); INFRA_CASSANDRA_COMMITLOG_SYNC=group syncs every 10 ms
# before acknowledging, so a crash loses nothing acknowledged (outage tests use it).
cassandra_commitlog_sync() {
	case ${INFRA_CASSANDRA_COMMITLOG_SYNC:-periodic} in
	periodic) printf 'commitlog_sync: periodic\ncommitlog_sync_period: 10000ms' ;;
	group) printf 'commitlog_sync: group\ncommitlog_sync_group_window: 10ms' ;;
	*) return 1 ;;
	esac
}

start_cassandra() {
	local d jars
	d=$(dir_of cassandra)
	jars=$JARS/cassandra-$CASSANDRA_VERSION
	mkdir -p "$d/conf" "$d/data" "$d/logs" "$d/triggers"
	local commitlog
	commitlog=$(cassandra_commitlog_sync) ||
		die "cassandra: INFRA_CASSANDRA_COMMITLOG_SYNC=${INFRA_CASSANDRA_COMMITLOG_SYNC:-}: want periodic or group"
	cat >"$d/conf/cassandra.yaml" <<EOF
# written by deploy/local/infra.sh: one local node for tests
cluster_name: sagasuite-local
num_tokens: 1
initial_token: 0
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: SimpleSnitch
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "$HOST:$CASSANDRA_STORAGE_PORT"
listen_address: $HOST
rpc_address: $HOST
storage_port: $CASSANDRA_STORAGE_PORT
ssl_storage_port: $CASSANDRA_SSL_STORAGE_PORT
native_transport_port: $CASSANDRA_CQL_PORT
start_native_transport: true
data_file_directories:
  - $d/data/data
commitlog_directory: $d/data/commitlog
saved_caches_directory: $d/data/saved_caches
hints_directory: $d/data/hints
cdc_raw_directory: $d/data/cdc_raw
$commitlog
# tests create and drop many keyspaces: no snapshot per DROP
auto_snapshot: false
EOF
	cat >"$d/conf/logback.xml" <<'EOF'
<!-- written by deploy/local/infra.sh -->
<configuration scan="false">
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="STDOUT"/></root>
</configuration>
EOF
	spawn cassandra java -Xms512m -Xmx1g -Xss512k -XX:+UseG1GC -XX:-UsePerfData -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
		-Djava.net.preferIPv4Stack=true \
		--add-opens java.base/sun.nio.ch=ALL-UNNAMED \
		--add-opens java.base/jdk.internal.ref=ALL-UNNAMED \
		--add-opens java.base/java.io=ALL-UNNAMED \
		--add-exports java.rmi/sun.rmi.registry=ALL-UNNAMED \
		-Dcassandra.jmx.local.port="$CASSANDRA_JMX_PORT" \
		-Dcom.sun.management.jmxremote.rmi.port="$CASSANDRA_JMX_PORT" \
		-Djava.rmi.server.hostname="$HOST" \
		-Dcassandra.config="file://$d/conf/cassandra.yaml" \
		-Dlogback.configurationFile="$d/conf/logback.xml" \
		-Dcassandra-foreground=yes \
		-Dcassandra.storagedir="$d/data" -Dcassandra.logdir="$d/logs" -Dcassandra.triggers_dir="$d/triggers" \
		-Dcassandra.shutdown_announce_in_ms=0 \
		-Dcassandra.skip_wait_for_gossip_to_settle=0 \
		-cp "$jars/*" org.apache.cassandra.service.CassandraDaemon
}

ready_cassandra() {
	# The CQL port opens last, once the node is ready for clients.
	wait_listen cassandra "$1"
}

# ---------------------------------------------------------------------------
# commands

# up_one COMPONENT: reuse a running server, else start it and wait until it is ready.
up_one() {
	local c=$1 pid t0
	t0=$(now)
	pid=$(live_pid "$c")
	if [ -n "$pid" ]; then
		if listening "$HOST" "${PORT[$c]}"; then
			log "already running (pid $pid, $HOST:${PORT[$c]}): reused"
			return 0
		fi
		log "pid $pid is running but $HOST:${PORT[$c]} is not listening yet: waiting"
		"ready_$c" "$pid"
		log "ready (pid $pid) after $(elapsed "$t0"): reused"
		return 0
	fi
	port_taken_check "$c"
	"start_$c"
	pid=$(live_pid "$c")
	[ -n "$pid" ] || {
		tail_log "$c"
		die "$c: exited right after start"
	}
	"ready_$c" "$pid"
	log "started (pid $pid, $HOST:${PORT[$c]}) in $(elapsed "$t0"), RSS $(rss_of "$pid") MiB; log: $(logfile_of "$c")"
}

# Parse component arguments into COMPONENTS (default: all), in canonical order.
parse_components() {
	local want=("$@") c ok
	if [ ${#want[@]} -eq 0 ]; then want=("${ALL[@]}"); fi
	for c in "${want[@]}"; do
		ok=
		for x in "${ALL[@]}"; do [ "$c" = "$x" ] && ok=1; done
		[ -n "$ok" ] || die "unknown component '$c' (known: ${ALL[*]})"
	done
	COMPONENTS=()
	for x in "${ALL[@]}"; do
		for c in "${want[@]}"; do
			if [ "$c" = "$x" ]; then
				COMPONENTS+=("$x")
				break
			fi
		done
	done
}

has() { [[ " ${COMPONENTS[*]} " == *" $1 "* ]]; }

cmd_install() {
	parse_components "$@"
	base_tools
	lock
	local t0
	t0=$(now)
	install_for_instance "${COMPONENTS[@]}"
	# The full install (no component named; what `make test` runs) brings promtool and
	# chromium (for the console's browser tests) too.
	if [ $# -eq 0 ] && [ -z "$INFRA_INSTANCE" ]; then
		prefixed install/prometheus install_prometheus
		prefixed install/chromium install_chromium
	fi
	log "install: done in $(elapsed "$t0")"
}

install_for_instance() {
	if [ -n "$INFRA_INSTANCE" ]; then install_shared "$@"; else install_components "$@"; fi
}

up_postgres_then_ferretdb() {
	prefixed postgres up_one postgres
	prefixed ferretdb up_one ferretdb
}

cmd_up() {
	parse_components "$@"
	# FerretDB stores its data in PostgreSQL.
	if has ferretdb && ! has postgres; then
		COMPONENTS=(postgres "${COMPONENTS[@]}")
		parse_components "${COMPONENTS[@]}"
	fi
	base_tools
	lock
	local t0
	t0=$(now)
	install_for_instance "${COMPONENTS[@]}"
	for c in "${COMPONENTS[@]}"; do mkdir -p "$(dir_of "$c")"; done

	# Independent servers start in parallel (Cassandra is the slow one); FerretDB after
	# PostgreSQL.
	local pids=() names=() c
	for c in "${COMPONENTS[@]}"; do
		case $c in
		ferretdb) ;;
		postgres)
			if has ferretdb; then
				up_postgres_then_ferretdb &
				names+=("postgres+ferretdb")
			else
				prefixed postgres up_one postgres &
				names+=(postgres)
			fi
			pids+=($!)
			;;
		*)
			prefixed "$c" up_one "$c" &
			pids+=($!) names+=("$c")
			;;
		esac
	done
	local i failed=()
	for i in "${!pids[@]}"; do
		wait "${pids[$i]}" || failed+=("${names[$i]}")
	done
	[ ${#failed[@]} -eq 0 ] || die "up failed: ${failed[*]} (servers that did start keep running: 'infra.sh down' stops them)"
	log "up: ${COMPONENTS[*]} ready in $(elapsed "$t0")"
}

cmd_down() {
	parse_components "$@"
	# FerretDB is useless without PostgreSQL: stopping postgres stops it too.
	if has postgres && ! has ferretdb && [ -n "$(live_pid ferretdb)" ]; then
		log "stopping ferretdb too: it stores its data in postgres"
		parse_components "${COMPONENTS[@]}" ferretdb
	fi
	lock
	local t0 pids=() c
	t0=$(now)
	# FerretDB before PostgreSQL; everything else in parallel.
	if has ferretdb; then prefixed ferretdb stop_component ferretdb; fi
	for c in "${COMPONENTS[@]}"; do
		[ "$c" = ferretdb ] && continue
		prefixed "$c" stop_component "$c" &
		pids+=($!)
	done
	local p rc=0
	for p in "${pids[@]}"; do wait "$p" || rc=1; done
	log "down: ${COMPONENTS[*]} in $(elapsed "$t0")"
	return $rc
}

cmd_status() {
	parse_components "$@"
	local c pid state
	for c in "${COMPONENTS[@]}"; do
		pid=$(live_pid "$c" 2>/dev/null)
		if [ -z "$pid" ]; then
			state="stopped"
			if listening "$HOST" "${PORT[$c]}"; then state="stopped (but $HOST:${PORT[$c]} is taken by another process)"; fi
			printf '%-10s %s\n' "$c" "$state"
		elif listening "$HOST" "${PORT[$c]}"; then
			printf '%-10s running   pid %-7s %s:%-5s RSS %s MiB\n' "$c" "$pid" "$HOST" "${PORT[$c]}" "$(rss_of "$pid")"
		else
			printf '%-10s starting  pid %-7s %s:%-5s not listening yet\n' "$c" "$pid" "$HOST" "${PORT[$c]}"
		fi
	done
}

# kill_component COMPONENT: SIGKILL the server's process group (spawn made the server a
# session leader, so PostgreSQL's backends go with its postmaster, as in a crash of the
# machine), wait until every process of it is gone, remove the pid file.
kill_component() {
	local c=$1 pid pgid deadline t0
	pid=$(live_pid "$c")
	if [ -z "$pid" ]; then
		log "not running"
		return 0
	fi
	t0=$(now)
	pgid=$(ps -o pgid= -p "$pid" 2>/dev/null | tr -d ' ' || true)
	if [ "$pgid" = "$pid" ]; then
		kill -s KILL -- "-$pgid" 2>/dev/null || true
	else
		kill -s KILL "$pid" 2>/dev/null || true
	fi
	deadline=$(($(date +%s) + 10))
	while alive "$pid" || { [ "$pgid" = "$pid" ] && group_alive "$pgid"; }; do
		[ "$(date +%s)" -lt "$deadline" ] || die "$c: pid $pid (or its process group) still running 10s after SIGKILL"
		sleep 0.05
	done
	# A zombie still counts as running for a server's own pid-file check (PostgreSQL's
	# kill(pid, 0)): give init a moment to reap it.
	deadline=$(($(date +%s) + 5))
	while [ -e "/proc/$pid" ] && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.05; done
	rm -f "$(pidfile_of "$c")"
	log "killed (pid $pid, SIGKILL, $(elapsed "$t0"))"
}

# group_alive PGID: some process of the group is alive (zombies waiting for their reaper
# do not count).
group_alive() {
	local p
	for p in $(pgrep -g "$1" 2>/dev/null); do
		if alive "$p"; then return 0; fi
	done
	return 1
}

cmd_kill() {
	[ $# -gt 0 ] || die "kill: name the components to kill (known: ${ALL[*]})"
	parse_components "$@"
	lock
	local c
	for c in "${COMPONENTS[@]}"; do prefixed "$c" kill_component "$c"; done
}

# The names of the given components that are running (pid alive and port listening).
cmd_running() {
	parse_components "$@"
	local c pid
	for c in "${COMPONENTS[@]}"; do
		pid=$(live_pid "$c" 2>/dev/null)
		if [ -n "$pid" ] && listening "$HOST" "${PORT[$c]}"; then echo "$c"; fi
	done
}

cmd_env() {
	cat <<EOF
export SAGASUITE_KAFKA_BROKERS=$HOST:$KAFKA_PORT
export SAGASUITE_MYSQL_ADMIN_DSN='$DB_USER:$DB_PASSWORD@tcp($HOST:$MARIADB_PORT)/'
export SAGASUITE_MONGO_URI=mongodb://$HOST:$FERRETDB_PORT/
export SAGASUITE_CASSANDRA_HOSTS=$HOST:$CASSANDRA_CQL_PORT
export SAGASUITE_POSTGRES_URL='postgres://$DB_USER:$DB_PASSWORD@$HOST:$POSTGRES_PORT/postgres?sslmode=disable'
EOF
}

usage() {
	sed -n '2,34s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
	exit 2
}

main() {
	[ $# -ge 1 ] || usage
	local cmd=$1
	shift
	RECORD_FILE=
	if [ "$cmd" = up ] && [ "${1:-}" = --record ]; then
		[ $# -ge 2 ] || usage
		RECORD_FILE=$2
		shift 2
	fi
	case $cmd in
	install) cmd_install "$@" ;;
	up) cmd_up "$@" ;;
	down) cmd_down "$@" ;;
	kill) cmd_kill "$@" ;;
	status) cmd_status "$@" ;;
	running) cmd_running "$@" ;;
	env) cmd_env ;;
	-h | --help | help) usage ;;
	*) usage ;;
	esac
}

main "$@"
