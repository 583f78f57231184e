#!/usr/bin/env bash
# Local engine stack for development and CI: PostgreSQL 15, Redis, Kafka 3.9 (KRaft)
# and Elasticsearch 7.10 run as plain local processes (no Docker, no systemd).
#
#   scripts/stack.sh up     [engine...]   install what is missing, start what is not running, wait until ready
#   scripts/stack.sh down   [engine...]   clean shutdown, data is kept
#   scripts/stack.sh status [engine...]   one line per engine; exit 0 only if all are up
#   scripts/stack.sh reset  [engine...]   down + delete the engine's data
#   scripts/stack.sh env                  print `export ...` lines for eval
#
# Engines: postgres redis kafka elasticsearch (default: all four).
# Data, logs and pid files live in <repo>/.stack/ ; downloaded jars in
# ${STACK_CACHE:-~/.cache/cqrs-stack}/<engine>-<version>/ so a second start takes seconds.
set -euo pipefail

# ---------------------------------------------------------------------------------------------
# Fixed layout and addresses (other code depends on these exact values).
# ---------------------------------------------------------------------------------------------
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
STACK_DIR="$ROOT/.stack"
LOG_DIR="$STACK_DIR/logs"
RUN_DIR="$STACK_DIR/run"
HOME="${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}"
CACHE_DIR="${STACK_CACHE:-$HOME/.cache/cqrs-stack}"

ALL_ENGINES=(postgres redis kafka elasticsearch)

PG_BIN="/usr/lib/postgresql/15/bin"   # not /usr/local/bin/pg_ctl: that is only a symlink to this one
PG_PORT=5432
REDIS_PORT=6379
KAFKA_PORT=9092
KAFKA_CONTROLLER_PORT=9093
ES_PORT=9200

KAFKA_VERSION="${KAFKA_VERSION:-3.9.2}"
# Maven Central has no elasticsearch-cluster-runner newer than 7.10.2.0 (7.11+ builds are only on
# maven.codelibs.org, which is unreachable here), so this is Elasticsearch 7.10.2 (last Apache-2.0 7.x).
ES_RUNNER_VERSION="${ES_RUNNER_VERSION:-7.10.2.0}"
ES_CLUSTER_NAME="cqrs-stack"
JAVA="${JAVA:-/usr/bin/java}"
MAVEN_DEP_PLUGIN="org.apache.maven.plugins:maven-dependency-plugin:3.6.1"

DATABASE_URL="postgres://cqrs:cqrs@127.0.0.1:$PG_PORT/cqrs?sslmode=disable"
REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
KAFKA_BROKERS="127.0.0.1:$KAFKA_PORT"
ELASTICSEARCH_URL="http://127.0.0.1:$ES_PORT"

# Bounded but generous start timeouts (seconds); the first ES start on a cold machine is the slowest.
PG_TIMEOUT=90
REDIS_TIMEOUT=30
KAFKA_TIMEOUT=150
ES_TIMEOUT=180

# STACK_ES_NICE=N (0-19, like nice; default 0) runs Elasticsearch at a lower CPU weight. When
# everything shares a machine's few cores, its indexing and refreshes then wait for the Postgres and
# Redis paths' hops rather than the other way round, at the search model's expense (README,
# "Measured": on two cores, 5-15 at times cut the relay's p50 from 15-20 to 7-17 ms and pushed
# search's p99 past 1.5 s, at others changed nothing). With spare cores the weight changes nothing.
ES_NICE="${STACK_ES_NICE:-0}"
if ! [[ "$ES_NICE" =~ ^[0-9]+$ ]] || [ "$ES_NICE" -gt 19 ]; then
  echo "stack.sh: STACK_ES_NICE=$ES_NICE: want 0-19" >&2; exit 2
fi

export DEBIAN_FRONTEND=noninteractive
# Predictable number formatting (bash's EPOCHREALTIME uses the locale's decimal separator).
export LC_ALL=C.UTF-8

# ---------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------
say()  { printf '%s\n' "$*"; }
warn() { printf '%s\n' "$*" >&2; }

now() { printf '%s' "$EPOCHREALTIME"; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1fs", b - a }'; }

log_file() { printf '%s/%s.log' "$LOG_DIR" "$1"; }

# Print the tail of an engine's log and exit non-zero.
die_with_log() {
  local engine=$1; shift
  warn "$engine: ERROR: $*"
  local f; f="$(log_file "$engine")"
  if [ -e "$f" ]; then
    warn "----- last 40 lines of $f -----"
    tail -n 40 "$f" >&2 || true
    warn "-----"
  fi
  exit 1
}

die() { warn "stack: ERROR: $*"; exit 1; }

# True if something accepts TCP connections on host:port.
port_open() {
  timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null
}

# Who listens on a port (for error messages only).
port_owner() {
  ss -ltnpH "sport = :$1" 2>/dev/null | grep -o 'users:(([^)]*))' | head -n1 || true
}

pid_file() { printf '%s/%s.pid' "$RUN_DIR" "$1"; }

# Read a pid file and check that the pid is alive AND is the expected program (guards against a
# stale pid file whose pid was reused by an unrelated process). Prints the pid when alive.
live_pid() {
  local file=$1 marker=$2 pid
  [ -s "$file" ] || return 1
  local cmdline
  pid="$(head -n1 "$file" | tr -dc '0-9')"
  [ -n "$pid" ] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
  case "$cmdline" in *"$marker"*) printf '%s' "$pid" ;; *) return 1 ;; esac
}

# Send SIGTERM, wait for a clean exit, SIGKILL only as the last resort.
stop_pid() {
  local engine=$1 pid=$2 wait_s=$3 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < wait_s * 4; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.25
  done
  warn "$engine: did not stop within ${wait_s}s, killing pid $pid"
  kill -KILL "$pid" 2>/dev/null || true
  sleep 0.5
}

# Launch a long-running engine detached from this script: own session (setsid) so it survives the
# caller's shell, stdin from /dev/null and stdout/stderr to the log so it never holds the caller's
# pipes open (CI would otherwise wait for EOF), and fd 9 (our lock) closed.
spawn() {
  local engine=$1; shift
  setsid nohup "$@" >>"$(log_file "$engine")" 2>&1 </dev/null 9>&- &
  printf '%s\n' "$!" >"$(pid_file "$engine")"
}

# ---------------------------------------------------------------------------------------------
# Package installation (apt, once per run, only if something is missing)
# ---------------------------------------------------------------------------------------------
APT_UPDATED=0
apt_install() {
  [ "$#" -gt 0 ] || return 0
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "missing packages ($*) and not root: install them first"
    sudo="sudo"
  fi
  say "stack: installing Debian packages: $* (log: $LOG_DIR/apt.log)"
  local apt_log="$LOG_DIR/apt.log"
  if [ "$APT_UPDATED" -eq 0 ]; then
    $sudo apt-get update -q >>"$apt_log" 2>&1 || { tail -n 40 "$apt_log" >&2; die "apt-get update failed"; }
    APT_UPDATED=1
  fi
  # A policy-rc.d that says "no" stops the packages' postinst from starting their own
  # system services (a Debian redis/postgres cluster would grab 6379/5432).
  local policy=/usr/sbin/policy-rc.d created=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod 755 "$policy"
    created=1
  fi
  local rc=0
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" \
    >>"$apt_log" 2>&1 || rc=$?
  if [ "$created" -eq 1 ]; then $sudo rm -f "$policy"; fi
  if [ "$rc" -ne 0 ]; then
    tail -n 40 "$apt_log" >&2
    die "apt-get install $* failed (rc=$rc)"
  fi
}

ensure_packages() {
  local pkgs=() e need_java=0
  command -v curl >/dev/null || pkgs+=(curl)
  for e in "$@"; do
    case "$e" in
      postgres) [ -x "$PG_BIN/initdb" ] || pkgs+=(postgresql) ;;
      redis) { command -v redis-server >/dev/null && command -v redis-cli >/dev/null; } || pkgs+=(redis-server) ;;
      kafka | elasticsearch) need_java=1 ;;
    esac
  done
  if [ "$need_java" -eq 1 ]; then
    [ -x "$JAVA" ] || pkgs+=(openjdk-17-jre-headless)
    command -v mvn >/dev/null || pkgs+=(maven)
  fi
  apt_install "${pkgs[@]}"
  if [ "$need_java" -eq 1 ] && [ ! -x "$JAVA" ]; then
    JAVA="$(command -v java)" || die "java not found after install"
  fi
}

# Resolve a throwaway pom's runtime dependencies into <cache>/<name>/libs once. The Maven
# settings mirror every repository to Central: some POMs name repositories unreachable here,
# and each of those would cost a connect time-out.
maven_fetch() {
  local engine=$1 dir=$2 pom=$3
  [ -f "$dir/.complete" ] && return 0
  say "$engine: downloading jars into $dir (one-time) ..."
  local t0; t0="$(now)"
  mkdir -p "$dir"
  cat >"$dir/settings.xml" <<'EOF'
<settings>
  <mirrors>
    <mirror>
      <id>central-for-everything</id>
      <mirrorOf>*</mirrorOf>
      <url>https://repo.maven.apache.org/maven2</url>
    </mirror>
  </mirrors>
</settings>
EOF
  printf '%s\n' "$pom" >"$dir/pom.xml"
  rm -rf "$dir/libs.tmp"
  if ! mvn -B -q -Dstyle.color=never -s "$dir/settings.xml" -f "$dir/pom.xml" \
    "$MAVEN_DEP_PLUGIN:copy-dependencies" -DincludeScope=runtime \
    -DoutputDirectory="$dir/libs.tmp" >"$LOG_DIR/$engine-install.log" 2>&1; then
    warn "----- last 40 lines of $LOG_DIR/$engine-install.log -----"
    tail -n 40 "$LOG_DIR/$engine-install.log" >&2
    die "$engine: maven download failed"
  fi
  rm -rf "$dir/libs"
  mv "$dir/libs.tmp" "$dir/libs"
  touch "$dir/.complete"
  say "$engine: jars ready ($(ls "$dir/libs" | wc -l) jars, $(since "$t0"))"
}

# ---------------------------------------------------------------------------------------------
# PostgreSQL 15 (Debian binaries, our own cluster; postgres refuses to run as root)
# ---------------------------------------------------------------------------------------------
PG_DATA=""
PG_SOCKDIR=""
PG_LOG="" # the file pg_ctl -l writes (as the postgres user); .stack/logs/postgres.log or its target

# Run a command as the postgres OS user when we are root; from / so that an unreadable cwd
# does not produce warnings.
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then
    (cd / && runuser -u postgres -- "$@")
  else
    (cd / && "$@")
  fi
}

pg_paths() {
  [ -n "$PG_DATA" ] && return 0
  if [ -s "$STACK_DIR/postgres.path" ]; then
    # An earlier run found .stack/ not reachable for the postgres user and used a fallback dir.
    PG_DATA="$(cat "$STACK_DIR/postgres.path")"
  else
    PG_DATA="$STACK_DIR/postgres"
  fi
  if [ "$(id -u)" -eq 0 ] || [ -w /run/postgresql ]; then
    PG_SOCKDIR=/run/postgresql
  else
    PG_SOCKDIR="$RUN_DIR"
  fi
}

pg_running() {
  pg_paths
  [ -f "$PG_DATA/PG_VERSION" ] || return 1
  as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1
}

pg_pid() { head -n1 "$PG_DATA/postmaster.pid" 2>/dev/null || true; }

pg_ready() {
  "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -t 2 >/dev/null 2>&1
}

pg_prepare_dirs() {
  pg_paths
  if [ "$(id -u)" -eq 0 ]; then
    install -d -o postgres -g postgres -m 2775 /run/postgresql
    if [ "$PG_DATA" = "$STACK_DIR/postgres" ] && ! runuser -u postgres -- test -x "$STACK_DIR"; then
      # The repo lives somewhere the postgres user cannot traverse (e.g. under /root): keep the
      # cluster in a per-repo dir postgres owns, and remember where it is.
      local h; h="$(printf '%s' "$ROOT" | sha1sum | cut -c1-12)"
      PG_DATA="/var/lib/postgresql/cqrs-stack-$h/data"
      printf '%s\n' "$PG_DATA" >"$STACK_DIR/postgres.path"
      install -d -o postgres -g postgres -m 700 "$(dirname "$PG_DATA")"
      warn "postgres: $STACK_DIR is not reachable by the postgres user; data in $PG_DATA"
    fi
    install -d -o postgres -g postgres -m 700 "$PG_DATA"
  else
    install -d -m 700 "$PG_DATA"
  fi
  # pg_ctl -l opens the log as the postgres user.
  PG_LOG="$(log_file postgres)"
  if [ "$PG_DATA" != "$STACK_DIR/postgres" ]; then
    # Fallback location: the log lives next to the data and .stack/logs gets a symlink.
    local link="$PG_LOG"
    PG_LOG="$(dirname "$PG_DATA")/postgres.log"
    touch "$PG_LOG"
    ln -sfn "$PG_LOG" "$link"
  fi
  touch "$PG_LOG"
  if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "$PG_LOG"; fi
}

pg_write_conf() {
  # Rewritten on every start so changes to this script take effect; included from postgresql.conf.
  local conf="$PG_DATA/cqrs-stack.conf"
  cat >"$conf" <<EOF
# Managed by scripts/stack.sh; rewritten on every start.
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_SOCKDIR'
max_connections = 300
shared_buffers = 256MB
# fsync and synchronous_commit stay at their safe defaults: benchmarks compare against a raw
# baseline on this same server, so durability settings must be realistic.
logging_collector = off
log_line_prefix = '%m [%p] %q%u@%d '
log_timezone = 'UTC'
timezone = 'UTC'
EOF
  if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "$conf"; fi
}

pg_start() {
  pg_prepare_dirs
  local log="$PG_LOG"
  if [ ! -f "$PG_DATA/PG_VERSION" ]; then
    say "postgres: initdb $PG_DATA"
    # trust on the local socket (only the postgres OS user can reach it) so the script can
    # create roles without a password; real password auth on TCP.
    as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres -E UTF8 --locale=C.UTF-8 \
      --auth-local=trust --auth-host=scram-sha-256 >>"$log" 2>&1 ||
      die_with_log postgres "initdb failed"
    printf "\ninclude_if_exists = 'cqrs-stack.conf'\n" >>"$PG_DATA/postgresql.conf"
  fi
  pg_write_conf
  say "postgres: starting ..."
  # pg_ctl daemonizes the postmaster with its output in the log; own session + fd hygiene as in
  # spawn. setsid -w: wait for pg_ctl (which itself waits until the server accepts connections).
  local runas=()
  if [ "$(id -u)" -eq 0 ]; then runas=(runuser -u postgres --); fi
  (cd / && setsid -w "${runas[@]}" "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$log" -w -t "$PG_TIMEOUT" start \
    >>"$log" 2>&1 </dev/null 9>&-) || die_with_log postgres "pg_ctl start failed"
}

pg_setup_db() {
  # Idempotent: role cqrs/cqrs (superuser, it is a local dev box) and database cqrs owned by it.
  as_pg "$PG_BIN/psql" -h "$PG_SOCKDIR" -p "$PG_PORT" -U postgres -d postgres -qAt \
    -v ON_ERROR_STOP=1 >>"$(log_file postgres)" 2>&1 <<'SQL' || die_with_log postgres "creating role/database failed"
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'cqrs') THEN
    CREATE ROLE cqrs LOGIN SUPERUSER PASSWORD 'cqrs';
  END IF;
END
$$;
SELECT 'CREATE DATABASE cqrs OWNER cqrs' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'cqrs')
\gexec
SQL
  PGCONNECT_TIMEOUT=5 "$PG_BIN/psql" "$DATABASE_URL" -qAt -c 'select 1' >/dev/null 2>&1 ||
    die_with_log postgres "cannot connect with $DATABASE_URL"
}

pg_stop() {
  pg_paths
  if pg_running; then
    say "postgres: stopping (pid $(pg_pid)) ..."
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 stop >/dev/null 2>&1 ||
      die_with_log postgres "pg_ctl stop failed"
    say "postgres: stopped"
  else
    say "postgres: not running"
  fi
}

pg_reset_data() {
  pg_paths
  if [ -s "$STACK_DIR/postgres.path" ]; then
    rm -rf "$(dirname "$PG_DATA")"
    rm -f "$STACK_DIR/postgres.path"
  fi
  rm -rf "$STACK_DIR/postgres"
}

# ---------------------------------------------------------------------------------------------
# Redis (Debian binary, no persistence: it is a cache/pub-sub for us)
# ---------------------------------------------------------------------------------------------
redis_pid() { live_pid "$(pid_file redis)" "redis-server"; }
redis_running() { redis_pid >/dev/null; }
redis_ready() {
  [ "$(timeout 3 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = "PONG" ]
}

redis_start() {
  mkdir -p "$STACK_DIR/redis"
  rm -f "$(pid_file redis)"
  say "redis: starting ..."
  # --daemonize makes redis fork and write its own pid file; its output goes to --logfile.
  setsid -w redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$STACK_DIR/redis" \
    --save "" --appendonly no --daemonize yes --pidfile "$(pid_file redis)" \
    --logfile "$(log_file redis)" >>"$(log_file redis)" 2>&1 </dev/null 9>&- ||
    die_with_log redis "redis-server failed to start"
}

redis_stop() {
  local pid
  if pid="$(redis_pid)"; then
    say "redis: stopping (pid $pid) ..."
    timeout 10 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
    stop_pid redis "$pid" 20
    rm -f "$(pid_file redis)"
    say "redis: stopped"
  else
    rm -f "$(pid_file redis)"
    say "redis: not running"
  fi
}

redis_reset_data() { rm -rf "$STACK_DIR/redis"; }

# ---------------------------------------------------------------------------------------------
# Apache Kafka (KRaft, one combined broker+controller) from Maven Central jars
# ---------------------------------------------------------------------------------------------
KAFKA_HOME_DIR="$CACHE_DIR/kafka-$KAFKA_VERSION"
KAFKA_DIR="$STACK_DIR/kafka"
# Fixed cluster id (base64url of "cqrs-stack-kafka"); a log dir formatted with another id will not start.
KAFKA_CLUSTER_ID="Y3Fycy1zdGFjay1rYWZrYQ"

kafka_pid() { live_pid "$(pid_file kafka)" "kafka.Kafka"; }
kafka_running() { kafka_pid >/dev/null; }

# Readiness = the broker answers a real Kafka Metadata (v0) request and lists >= 1 broker.
# Pure bash over /dev/tcp: a JVM admin tool would cost seconds on every `up`.
kafka_ready() {
  local out
  out="$(timeout 3 bash -c '
    exec 3<>"/dev/tcp/$0/$1" || exit 1
    # size=19 | api_key=3 (Metadata) | version=0 | correlation_id=7 | client_id="stack" | topics=[]
    printf "\x00\x00\x00\x13\x00\x03\x00\x00\x00\x00\x00\x07\x00\x05stack\x00\x00\x00\x00" >&3
    head -c 12 <&3 | od -An -tu1' 127.0.0.1 "$KAFKA_PORT" 2>/dev/null)" || return 1
  # shellcheck disable=SC2086
  set -- $out
  [ "$#" -eq 12 ] || return 1
  [ "$5$6$7$8" = "0007" ] || return 1                          # our correlation id came back
  [ $((($9 << 24) + (${10} << 16) + (${11} << 8) + ${12})) -ge 1 ] # broker count
}

kafka_install() {
  maven_fetch kafka "$KAFKA_HOME_DIR" "$(cat <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.cqrs-stack</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <!-- console producer/consumer and TopicCommand, handy for debugging; Connect is not needed -->
    <dependency>
      <groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$KAFKA_VERSION</version>
      <exclusions><exclusion><groupId>org.apache.kafka</groupId><artifactId>connect-runtime</artifactId></exclusion></exclusions>
    </dependency>
    <!-- the published POM has no logging binding: without one the broker logs nothing -->
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-reload4j</artifactId><version>1.7.36</version></dependency>
    <dependency><groupId>ch.qos.reload4j</groupId><artifactId>reload4j</artifactId><version>1.2.25</version></dependency>
  </dependencies>
</project>
EOF
)"
}

kafka_write_conf() {
  mkdir -p "$KAFKA_DIR/data"
  cat >"$KAFKA_DIR/server.properties" <<EOF
# Managed by scripts/stack.sh; rewritten on every start.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$KAFKA_DIR/data
num.partitions=12
auto.create.topics.enable=true
log.retention.hours=168
group.initial.rebalance.delay.ms=0
# fewer offsets partitions than the default 50 = faster first consumer-group start
offsets.topic.num.partitions=12
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
EOF
  cat >"$KAFKA_DIR/log4j.properties" <<'EOF'
# Everything to stdout, which scripts/stack.sh redirects to .stack/logs/kafka.log.
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.org.apache.kafka.clients=WARN
EOF
}

kafka_start() {
  kafka_install # no-op when cached (cmd_up already did it)
  kafka_write_conf
  local cp="$KAFKA_HOME_DIR/libs/*" log4j="-Dlog4j.configuration=file:$KAFKA_DIR/log4j.properties"
  if [ ! -f "$KAFKA_DIR/data/meta.properties" ]; then
    printf '%s\n' "$KAFKA_CLUSTER_ID" >"$KAFKA_DIR/cluster.id"
    say "kafka: formatting storage (cluster id $KAFKA_CLUSTER_ID)"
    "$JAVA" -Xmx256m "$log4j" -cp "$cp" kafka.tools.StorageTool format \
      -t "$(cat "$KAFKA_DIR/cluster.id")" -c "$KAFKA_DIR/server.properties" -g \
      >>"$(log_file kafka)" 2>&1 || die_with_log kafka "storage format failed"
  fi
  say "kafka: starting ..."
  # JVM flags as in kafka-server-start.sh / kafka-run-class.sh, with a fixed small heap
  # (the JVM default would be a quarter of RAM), except MaxGCPauseMillis=20: on two shared
  # cores G1 cannot meet it, so it shrinks the young generation to ~24 MB and collects every
  # two seconds under load, each pause ~45 ms (the GC threads share the cores with everything
  # else): Kafka stopped 2% of the time. With G1's default goal (200 ms) it collects every
  # ~25 s, the pauses as long: stopped 0.2% of the time (measured with -Xlog:gc at 500 commands/s).
  # shellcheck disable=SC2086 # STACK_JVM_OPTS is a list of flags
  spawn kafka "$JAVA" -Xms512m -Xmx512m -XX:+UseG1GC \
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError ${STACK_JVM_OPTS:-} \
    -Djava.awt.headless=true "$log4j" -Dkafka.logs.dir="$LOG_DIR" \
    -cp "$cp" kafka.Kafka "$KAFKA_DIR/server.properties"
}

kafka_stop() {
  local pid
  if pid="$(kafka_pid)"; then
    say "kafka: stopping (pid $pid) ..."
    stop_pid kafka "$pid" 60   # SIGTERM = controlled shutdown
    say "kafka: stopped"
  else
    say "kafka: not running"
  fi
  rm -f "$(pid_file kafka)"
}

kafka_reset_data() { rm -rf "$KAFKA_DIR"; }

# ---------------------------------------------------------------------------------------------
# Elasticsearch 7.10.2 via org.codelibs:elasticsearch-cluster-runner (real ES node in one JVM)
# ---------------------------------------------------------------------------------------------
ES_HOME_DIR="$CACHE_DIR/elasticsearch-$ES_RUNNER_VERSION"
ES_DIR="$STACK_DIR/elasticsearch"
ES_MAIN="org.codelibs.elasticsearch.runner.ElasticsearchClusterRunner"

es_pid() { live_pid "$(pid_file elasticsearch)" "$ES_MAIN"; }
es_running() { es_pid >/dev/null; }

# Ready = cluster health reaches yellow AND the answering node is ours (cluster name).
es_ready() {
  local body
  body="$(curl -fsS -m 5 "$ELASTICSEARCH_URL/_cluster/health?wait_for_status=yellow&timeout=2s" 2>/dev/null)" || return 1
  case "$body" in *"\"cluster_name\":\"$ES_CLUSTER_NAME\""*) return 0 ;; *) return 1 ;; esac
}

es_install() {
  maven_fetch elasticsearch "$ES_HOME_DIR" "$(cat <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.cqrs-stack</groupId>
  <artifactId>elasticsearch-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencyManagement>
    <dependencies>
      <!-- ES 7.10.2 ships log4j 2.11.1 (Log4Shell); 2.17.2 is a drop-in replacement -->
      <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-api</artifactId><version>2.17.2</version></dependency>
      <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>2.17.2</version></dependency>
    </dependencies>
  </dependencyManagement>
  <dependencies>
    <dependency><groupId>org.codelibs</groupId><artifactId>elasticsearch-cluster-runner</artifactId><version>$ES_RUNNER_VERSION</version></dependency>
  </dependencies>
</project>
EOF
)"
}

es_write_conf() {
  # The runner reads node_1/config/elasticsearch.yml and log4j2.properties if present (it only
  # writes its bundled defaults when they are missing). Its own -baseHttpPort/-clusterName win.
  local conf="$ES_DIR/node_1/config"
  mkdir -p "$conf" "$ES_DIR/tmp"
  cat >"$conf/elasticsearch.yml" <<'EOF'
# Managed by scripts/stack.sh; rewritten on every start.
network.host: 127.0.0.1
discovery.type: single-node
# One node on a dev disk: never block writes because the disk is "too full".
cluster.routing.allocation.disk.threshold_enabled: false
action.auto_create_index: true
EOF
  cat >"$conf/log4j2.properties" <<'EOF'
# Console only; scripts/stack.sh redirects it to .stack/logs/elasticsearch.log.
status = error
appender.console.type = Console
appender.console.name = console
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d{ISO8601}][%-5p][%-25c{1.}] %m%n
rootLogger.level = info
rootLogger.appenderRef.console.ref = console
logger.deprecation.name = org.elasticsearch.deprecation
logger.deprecation.level = error
EOF
}

ES_LOG_OFFSET=0
es_start() {
  es_install # no-op when cached (cmd_up already did it)
  es_write_conf
  ES_LOG_OFFSET="$(stat -c %s "$(log_file elasticsearch)" 2>/dev/null || echo 0)"
  say "elasticsearch: starting ..."
  # The runner silently moves to the next free port when 9200 is taken; we checked that 9200 is
  # free before getting here, and es_check_port verifies the result. JVM flags follow ES's own
  # jvm.options where they matter without the bootstrap.
  # shellcheck disable=SC2086 # STACK_JVM_OPTS is a list of flags
  spawn elasticsearch nice -n "$ES_NICE" "$JAVA" -Xms512m -Xmx512m -XX:+UseG1GC -XX:+ExitOnOutOfMemoryError ${STACK_JVM_OPTS:-} \
    -Djava.awt.headless=true -Dfile.encoding=UTF-8 -Djava.locale.providers=SPI,COMPAT \
    -Djava.io.tmpdir="$ES_DIR/tmp" -Dlog4j2.formatMsgNoLookups=true -Dlog4j2.disable.jmx=true \
    -Dlog4j.shutdownHookEnabled=false -Dio.netty.noUnsafe=true -Dio.netty.noKeySetOptimization=true \
    -Dio.netty.recycler.maxCapacityPerThread=0 -Dio.netty.allocator.numDirectArenas=0 \
    -cp "$ES_HOME_DIR/libs/*" "$ES_MAIN" \
    -basePath "$ES_DIR" -numOfNode 1 -baseHttpPort $((ES_PORT - 1)) -clusterName "$ES_CLUSTER_NAME"
}

# Fail loudly if the runner picked another HTTP port than 9200 (it prints "HTTP Port: N").
es_check_port() {
  local port
  port="$(tail -c +$((ES_LOG_OFFSET + 1)) "$(log_file elasticsearch)" 2>/dev/null |
    grep -a 'HTTP Port:' | tail -n1 | tr -dc '0-9' || true)"
  if [ -n "$port" ] && [ "$port" != "$ES_PORT" ]; then
    es_stop >/dev/null
    die_with_log elasticsearch "runner chose HTTP port $port instead of $ES_PORT (port busy?)"
  fi
}

# set_session_nice ENGINE N gives ENGINE's session the CPU weight of nice N. With the kernel's
# autogroups (sched_autogroup_enabled, the default of most distributions) every session is one
# scheduling group, weighed against the others by /proc/<pid>/autogroup: a thread's own nice only
# shares out its group's time, so `nice` alone (spawn's) would change nothing here. spawn gave each
# engine a session of its own; a process still in ours (setsid not yet run) is left alone.
set_session_nice() {
  local pid group
  pid="$(engine_pid "$1")"
  [ -n "$pid" ] || return 0
  group="$(cat "/proc/$pid/autogroup" 2>/dev/null)" || return 0 # no autogroups: nice did it
  [ "${group%% *}" != "$(cut -d' ' -f1 /proc/self/autogroup)" ] || return 0
  echo "$2" >"/proc/$pid/autogroup" 2>/dev/null || say "$1: could not set its session's nice to $2"
}

es_post_start() {
  set_session_nice elasticsearch "$ES_NICE"
  # Single node: replicas can never be assigned, so make 0 the default (explicit index settings
  # still win). Keeps cluster health green for indices created by tests.
  curl -fsS -m 10 -XPUT "$ELASTICSEARCH_URL/_template/cqrs-stack-single-node" \
    -H 'Content-Type: application/json' \
    -d '{"index_patterns":["*"],"order":-1000,"settings":{"index.number_of_replicas":0}}' \
    >/dev/null 2>&1 || die_with_log elasticsearch "could not install the default index template"
}

es_stop() {
  local pid
  if pid="$(es_pid)"; then
    say "elasticsearch: stopping (pid $pid) ..."
    stop_pid elasticsearch "$pid" 60   # SIGTERM: the runner's shutdown hook closes the node
    say "elasticsearch: stopped"
  else
    say "elasticsearch: not running"
  fi
  rm -f "$(pid_file elasticsearch)"
}

es_reset_data() { rm -rf "$ES_DIR"; }

# ---------------------------------------------------------------------------------------------
# Generic per-engine dispatch
# ---------------------------------------------------------------------------------------------
engine_port() {
  case "$1" in
    postgres) echo "$PG_PORT" ;; redis) echo "$REDIS_PORT" ;;
    kafka) echo "$KAFKA_PORT" ;; elasticsearch) echo "$ES_PORT" ;;
  esac
}
engine_addr() { printf '127.0.0.1:%s' "$(engine_port "$1")"; }
engine_timeout() {
  case "$1" in
    postgres) echo "$PG_TIMEOUT" ;; redis) echo "$REDIS_TIMEOUT" ;;
    kafka) echo "$KAFKA_TIMEOUT" ;; elasticsearch) echo "$ES_TIMEOUT" ;;
  esac
}
fn_prefix() {
  case "$1" in postgres) echo pg ;; redis) echo redis ;; kafka) echo kafka ;; elasticsearch) echo es ;; esac
}
is_running() { "$(fn_prefix "$1")_running"; }
is_ready() { "$(fn_prefix "$1")_ready"; }
engine_pid() {
  case "$1" in
    postgres) pg_paths; pg_pid ;; redis) redis_pid || true ;;
    kafka) kafka_pid || true ;; elasticsearch) es_pid || true ;;
  esac
}

# Wait until the engine answers, failing early if its process died.
wait_ready() {
  local engine=$1 limit deadline grace
  limit="$(engine_timeout "$engine")"
  deadline=$((SECONDS + limit))
  grace=$((SECONDS + 5)) # a daemonizing redis writes its pid file a moment after forking
  while ! is_ready "$engine"; do
    if ! is_running "$engine" && [ "$SECONDS" -ge "$grace" ]; then
      die_with_log "$engine" "process exited during startup"
    fi
    if [ "$engine" = elasticsearch ]; then es_check_port; fi
    [ "$SECONDS" -lt "$deadline" ] || die_with_log "$engine" "not ready after ${limit}s"
    sleep 0.5
  done
}

parse_engines() {
  ENGINES=()
  local e ok a
  if [ "$#" -eq 0 ]; then ENGINES=("${ALL_ENGINES[@]}"); return; fi
  for e in "$@"; do
    case "$e" in
      pg | postgresql) e=postgres ;;
      es | search) e=elasticsearch ;;
    esac
    ok=0
    for a in "${ALL_ENGINES[@]}"; do [ "$a" = "$e" ] && ok=1; done
    [ "$ok" -eq 1 ] || die "unknown engine '$e' (known: ${ALL_ENGINES[*]})"
    ENGINES+=("$e")
  done
}

print_env() {
  cat <<EOF
DATABASE_URL=$DATABASE_URL
KAFKA_BROKERS=$KAFKA_BROKERS
REDIS_URL=$REDIS_URL
ELASTICSEARCH_URL=$ELASTICSEARCH_URL
EOF
}

lock() {
  # Serialize concurrent up/down/reset (e.g. two `make test` at once). Children never inherit
  # fd 9 (see spawn), so the lock is released when this script exits.
  exec 9>"$STACK_DIR/.lock"
  flock -w 600 9 || die "another scripts/stack.sh is still running (lock $STACK_DIR/.lock)"
}

init_dirs() {
  mkdir -p "$STACK_DIR" "$LOG_DIR" "$RUN_DIR" "$CACHE_DIR"
  chmod 755 "$STACK_DIR" "$LOG_DIR"
}

# ---------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------
cmd_up() {
  init_dirs
  lock
  local t_all e t0 pid
  t_all="$(now)"
  declare -A started=()
  local to_start=()
  for e in "${ENGINES[@]}"; do
    is_running "$e" || to_start+=("$e")
  done

  # Phase 0: install what is missing (apt packages, cached Maven jars).
  ensure_packages "${ENGINES[@]}"
  for e in "${to_start[@]}"; do
    case "$e" in kafka) kafka_install ;; elasticsearch) es_install ;; esac
  done

  # Phase 1: launch everything that is not running (the JVMs boot in parallel).
  for e in "${to_start[@]}"; do
    # Not ours but the port answers: something else (a system service, another checkout's
    # stack) holds it. Fail loudly instead of silently talking to the wrong server.
    if port_open 127.0.0.1 "$(engine_port "$e")"; then
      die "$e: port $(engine_port "$e") is already in use by another process $(port_owner "$(engine_port "$e")")"
    fi
    if [ "$e" = kafka ] && port_open 127.0.0.1 "$KAFKA_CONTROLLER_PORT"; then
      die "kafka: controller port $KAFKA_CONTROLLER_PORT is already in use $(port_owner "$KAFKA_CONTROLLER_PORT")"
    fi
    started[$e]="$(now)"
    "$(fn_prefix "$e")_start"
  done

  # Phase 2: wait for each engine to really answer, then run its idempotent setup.
  for e in "${ENGINES[@]}"; do
    t0="${started[$e]:-}"
    wait_ready "$e"
    case "$e" in
      postgres) pg_setup_db ;;
      elasticsearch) es_post_start ;;
    esac
    pid="$(engine_pid "$e")"
    if [ -n "$t0" ]; then
      say "$e: ready on $(engine_addr "$e") (pid $pid, $(since "$t0"))"
    else
      say "$e: already running on $(engine_addr "$e") (pid $pid)"
    fi
  done
  say "stack: up in $(since "$t_all")"
  print_env
}

cmd_down() {
  init_dirs
  lock
  local i e
  # Reverse order: search and broker first, databases last.
  for ((i = ${#ENGINES[@]} - 1; i >= 0; i--)); do
    e="${ENGINES[$i]}"
    case "$e" in
      postgres) pg_stop ;; redis) redis_stop ;; kafka) kafka_stop ;; elasticsearch) es_stop ;;
    esac
  done
}

cmd_status() {
  local e state rc=0 pid
  for e in "${ENGINES[@]}"; do
    pid=""
    if is_running "$e" 2>/dev/null; then
      pid="$(engine_pid "$e")"
      if is_ready "$e"; then state=up; else state="starting"; rc=1; fi
    else
      state=down
      rc=1
    fi
    printf '%-14s %-8s %-16s%s\n' "$e" "$state" "$(engine_addr "$e")" "${pid:+ pid $pid}"
  done
  return "$rc"
}

cmd_reset() {
  cmd_down
  local e
  for e in "${ENGINES[@]}"; do
    "$(fn_prefix "$e")_reset_data"
    rm -f "$(log_file "$e")" "$LOG_DIR/$e-install.log" "$(pid_file "$e")"
    say "$e: data deleted"
  done
  if [ "${#ENGINES[@]}" -eq "${#ALL_ENGINES[@]}" ]; then
    exec 9>&-
    rm -rf "$STACK_DIR"
    say "stack: removed $STACK_DIR"
  fi
}

usage() {
  sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

main() {
  local cmd="${1:-}"
  [ "$#" -gt 0 ] && shift
  case "$cmd" in
    up) parse_engines "$@"; cmd_up ;;
    down | stop) parse_engines "$@"; cmd_down ;;
    status) parse_engines "$@"; cmd_status ;;
    reset) parse_engines "$@"; cmd_reset ;;
    env) print_env | sed 's/^/export /' ;;
    -h | --help | help) usage ;;
    *) usage >&2; exit 2 ;;
  esac
}

main "$@"
