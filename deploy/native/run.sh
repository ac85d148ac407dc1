#!/usr/bin/env bash
# Runs docker-compose.yml's topology as local processes, each bound to
# 127.0.0.1, for machines without a Docker engine:
#
#   hotel, payments, email   the example MCP tool servers (examples/cmd/toolserver)
#   jaeger                   Jaeger v2 all-in-one built from its Go module
#                            (deploy/jaeger/build.sh, config deploy/jaeger/config.yaml)
#   agenthelm                agenthelm serve, with deploy/agenthelm/agenthelm.yaml
#                            rewritten for loopback addresses
#   prometheus, grafana      only if their programs are installed (PATH, or
#                            PROMETHEUS_BIN / GRAFANA_BIN; "none" skips one),
#                            with the configs in deploy/prometheus and deploy/grafana
#
#   deploy/native/run.sh     start everything and wait until it is healthy
#   deploy/native/stop.sh    stop what run.sh started
#
# State (binaries, generated configs, journal, logs, pid files) lives in
# AGENTHELM_NATIVE_DIR, by default ${TMPDIR:-/tmp}/agenthelm-native. Ports
# default to those of docker-compose.yml; each can be moved with the
# variable named in the table below.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
state=${AGENTHELM_NATIVE_DIR:-${TMPDIR:-/tmp}/agenthelm-native}

mcp_port=${AGENTHELM_MCP_PORT:-7070}
admin_port=${AGENTHELM_ADMIN_PORT:-7071}
hotel_port=${HOTEL_PORT:-9101}
payments_port=${PAYMENTS_PORT:-9102}
email_port=${EMAIL_PORT:-9103}
jaeger_ui_port=${JAEGER_UI_PORT:-16686}
jaeger_query_grpc_port=${JAEGER_QUERY_GRPC_PORT:-16685}
jaeger_otlp_grpc_port=${JAEGER_OTLP_GRPC_PORT:-4317}
jaeger_otlp_http_port=${JAEGER_OTLP_HTTP_PORT:-4318}
jaeger_health_port=${JAEGER_HEALTH_PORT:-13133}
prometheus_port=${PROMETHEUS_PORT:-9090}
grafana_port=${GRAFANA_PORT:-3000}
policy_dir=${AGENTHELM_POLICY_DIR:-$root/policies}

say() { printf 'run.sh: %s\n' "$*" >&2; }
die() {
	say "$*"
	exit 1
}

mkdir -p "$state"/{bin,logs,pids,data}
state=$(cd "$state" && pwd)

for f in "$state"/pids/*.pid; do
	[[ -e "$f" ]] || continue
	read -r pid _ <"$f"
	if kill -0 "$pid" 2>/dev/null; then
		die "already running ($(basename "$f" .pid), pid $pid): run deploy/native/stop.sh first"
	fi
	rm -f "$f"
done

# Nothing else may be listening on our ports.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$mcp_port" "$admin_port" "$hotel_port" "$payments_port" "$email_port" "$jaeger_ui_port" \
	"$jaeger_query_grpc_port" "$jaeger_otlp_grpc_port" "$jaeger_otlp_http_port" "$jaeger_health_port"; do
	if port_busy "$p"; then
		die "127.0.0.1:$p is in use; stop what listens there or move the port (see the top of $0)"
	fi
done

say "building agenthelm and the example tool servers"
(cd "$root" && go build -o "$state/bin/agenthelm" ./cmd/agenthelm && go build -o "$state/bin/toolserver" ./examples/cmd/toolserver)
jaeger=$("$root/deploy/jaeger/build.sh")

# start NAME PROGRAM ARGS... runs a program in its own session, logging to
# logs/NAME.log, and records "pid program" in pids/NAME.pid for stop.sh.
start() {
	local name=$1
	shift
	setsid "$@" </dev/null >"$state/logs/$name.log" 2>&1 &
	local pid=$!
	echo "$pid $1" >"$state/pids/$name.pid"
	say "started $name (pid $pid, log $state/logs/$name.log)"
}

# wait_for NAME CHECK... retries CHECK for up to 60 s while NAME runs.
wait_for() {
	local name=$1
	shift
	local pid
	read -r pid _ <"$state/pids/$name.pid"
	for _ in $(seq 1 300); do
		if "$@" 2>/dev/null; then
			return 0
		fi
		if ! kill -0 "$pid" 2>/dev/null; then
			tail -n 20 "$state/logs/$name.log" >&2 || true
			die "$name exited; its log is above"
		fi
		sleep 0.2
	done
	tail -n 20 "$state/logs/$name.log" >&2 || true
	die "$name did not become healthy within 60 s"
}
if command -v curl >/dev/null; then
	http_ok() { curl -fsS -o /dev/null --max-time 2 "$1"; }
else
	http_ok() { wget -q -O /dev/null -T 2 "$1"; }
fi

for s in hotel payments email; do
	port_var=${s}_port
	start "$s" "$state/bin/toolserver" --server "$s" --listen "127.0.0.1:${!port_var}"
done

JAEGER_QUERY_HTTP=127.0.0.1:$jaeger_ui_port \
	JAEGER_QUERY_GRPC=127.0.0.1:$jaeger_query_grpc_port \
	JAEGER_OTLP_GRPC=127.0.0.1:$jaeger_otlp_grpc_port \
	JAEGER_OTLP_HTTP=127.0.0.1:$jaeger_otlp_http_port \
	JAEGER_HEALTH_HTTP=127.0.0.1:$jaeger_health_port \
	start jaeger "$jaeger" --config "$root/deploy/jaeger/config.yaml"

for s in hotel payments email; do
	port_var=${s}_port
	wait_for "$s" port_busy "${!port_var}"
done
wait_for jaeger http_ok "http://127.0.0.1:$jaeger_health_port/status"

# The admin token agenthelm and Prometheus share (compose: a secret).
if [[ ! -s "$state/admin.token" ]]; then
	(umask 077 && od -An -N24 -tx1 /dev/urandom | tr -d ' \n' >"$state/admin.token")
fi

# agenthelm's compose configuration, with loopback addresses and local paths.
sed -e "s|0\.0\.0\.0:7070|127.0.0.1:$mcp_port|" \
	-e "s|0\.0\.0\.0:7071|127.0.0.1:$admin_port|" \
	-e "s|/var/lib/agenthelm/data|$state/data|" \
	-e "s|/etc/agenthelm/policies|$policy_dir|" \
	-e "s|/run/secrets/admin_token|$state/admin.token|" \
	-e "s|http://jaeger:4318|http://127.0.0.1:$jaeger_otlp_http_port|" \
	-e "s|http://hotel:9101|http://127.0.0.1:$hotel_port|" \
	-e "s|http://payments:9102|http://127.0.0.1:$payments_port|" \
	-e "s|http://email:9103|http://127.0.0.1:$email_port|" \
	"$root/deploy/agenthelm/agenthelm.yaml" >"$state/agenthelm.yaml"

OTEL_METRICS_EXPORTER=prometheus OTEL_RESOURCE_ATTRIBUTES=deployment.environment=native \
	start agenthelm "$state/bin/agenthelm" serve --config "$state/agenthelm.yaml"
wait_for agenthelm http_ok "http://127.0.0.1:$admin_port/healthz"

prometheus=${PROMETHEUS_BIN:-$(command -v prometheus || true)}
[[ "$prometheus" == none ]] && prometheus=
if [[ -n "$prometheus" ]]; then
	sed -e "s|agenthelm:7071|127.0.0.1:$admin_port|" \
		-e "s|/run/secrets/admin_token|$state/admin.token|" \
		-e "s|127\.0\.0\.1:9090|127.0.0.1:$prometheus_port|" \
		"$root/deploy/prometheus/prometheus.yml" >"$state/prometheus.yml"
	start prometheus "$prometheus" --config.file="$state/prometheus.yml" \
		--storage.tsdb.path="$state/prometheus" --web.listen-address="127.0.0.1:$prometheus_port"
	wait_for prometheus http_ok "http://127.0.0.1:$prometheus_port/-/ready"
else
	say "prometheus skipped: not installed (set PROMETHEUS_BIN to its path) or PROMETHEUS_BIN=none"
fi

grafana=${GRAFANA_BIN:-$(command -v grafana || command -v grafana-server || true)}
[[ "$grafana" == none ]] && grafana=
if [[ -n "$grafana" ]]; then
	args=()
	[[ "$(basename "$grafana")" == grafana ]] && args+=(server)
	args+=(--homepath "${GRAFANA_HOME:-/usr/share/grafana}")
	mkdir -p "$state/grafana"
	GF_PATHS_PROVISIONING=$root/deploy/grafana/provisioning \
		GF_PATHS_DATA=$state/grafana GF_PATHS_LOGS=$state/grafana/log GF_PATHS_PLUGINS=$state/grafana/plugins \
		GF_SERVER_HTTP_ADDR=127.0.0.1 GF_SERVER_HTTP_PORT=$grafana_port \
		GF_AUTH_ANONYMOUS_ENABLED=true GF_AUTH_ANONYMOUS_ORG_ROLE=Viewer \
		GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH=$root/deploy/grafana/provisioning/dashboards/agenthelm.json \
		GF_ANALYTICS_REPORTING_ENABLED=false GF_ANALYTICS_CHECK_FOR_UPDATES=false \
		PROMETHEUS_URL=http://127.0.0.1:$prometheus_port JAEGER_URL=http://127.0.0.1:$jaeger_ui_port \
		start grafana "$grafana" "${args[@]}"
	wait_for grafana http_ok "http://127.0.0.1:$grafana_port/api/health"
else
	say "grafana skipped: not installed (set GRAFANA_BIN to its path) or GRAFANA_BIN=none"
fi

cat <<EOM
agenthelm is running natively (state in $state):
  MCP front door   http://127.0.0.1:$mcp_port/mcp/{hotel,payments,email}
  admin API        http://127.0.0.1:$admin_port (token in $state/admin.token), /metrics, /healthz
  Jaeger           http://127.0.0.1:$jaeger_ui_port (API: /api/traces?service=agenthelm), OTLP 127.0.0.1:$jaeger_otlp_http_port
  tool servers     http://127.0.0.1:$hotel_port/mcp, :$payments_port/mcp, :$email_port/mcp
EOM
[[ -n "$prometheus" ]] && echo "  Prometheus       http://127.0.0.1:$prometheus_port"
[[ -n "$grafana" ]] && echo "  Grafana          http://127.0.0.1:$grafana_port"
cat <<EOM
  CLI              $state/bin/agenthelm traces list --config $state/agenthelm.yaml
Stop it with deploy/native/stop.sh (same AGENTHELM_NATIVE_DIR).
EOM
