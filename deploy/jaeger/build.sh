#!/usr/bin/env bash
# Prints the path of a Jaeger v2 all-in-one binary, building it first if
# needed: the program github.com/jaegertracing/jaeger/cmd/jaeger, built with
# the Go toolchain in a scratch module outside this repository (Jaeger is
# never added to agenthelm's go.mod). The build takes minutes on a cold
# cache, so the binary is kept in a cache directory and reused.
#
#   AGENTHELM_JAEGER_BIN    use this binary; build nothing
#   AGENTHELM_JAEGER_CACHE  cache directory (default: agenthelm-jaeger next
#                           to the Go build cache, i.e. $(go env GOCACHE)/..)
#   JAEGER_MODULE_VERSION   module version (default v1.76.0, Jaeger v2.13.0;
#                           docker-compose.yml runs the same release)
#
# Build output goes to standard error; standard output is only the path.
set -euo pipefail

if [[ -n "${AGENTHELM_JAEGER_BIN:-}" ]]; then
	if [[ ! -x "$AGENTHELM_JAEGER_BIN" ]]; then
		echo "AGENTHELM_JAEGER_BIN=$AGENTHELM_JAEGER_BIN is not an executable file" >&2
		exit 1
	fi
	echo "$AGENTHELM_JAEGER_BIN"
	exit 0
fi

version=${JAEGER_MODULE_VERSION:-v1.76.0}
cache=${AGENTHELM_JAEGER_CACHE:-$(dirname "$(go env GOCACHE)")/agenthelm-jaeger}
dir=$cache/$version
bin=$dir/jaeger
if [[ -x "$bin" ]]; then
	echo "$bin"
	exit 0
fi

mkdir -p "$dir"
# One build at a time per cache directory (tests of several packages, or a
# test and run.sh, may ask at once).
exec 9>"$dir/.lock"
if command -v flock >/dev/null; then
	flock 9
fi
if [[ -x "$bin" ]]; then
	echo "$bin"
	exit 0
fi

echo "building Jaeger ($version) into $dir; this takes a few minutes once" >&2
start=$SECONDS
cd "$dir"
export GOWORK=off GOFLAGS=-mod=mod
[[ -f go.mod ]] || go mod init agenthelm-jaeger-build 2>/dev/null
# go get lists every module it adds: keep that in a log unless it fails.
if ! go get -tool "github.com/jaegertracing/jaeger/cmd/jaeger@$version" >"$dir/get.log" 2>&1; then
	cat "$dir/get.log" >&2
	exit 1
fi
go build -trimpath -o "$bin.tmp" github.com/jaegertracing/jaeger/cmd/jaeger >&2
mv "$bin.tmp" "$bin"
echo "built Jaeger in $((SECONDS - start))s" >&2
echo "$bin"
