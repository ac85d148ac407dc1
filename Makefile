# One entry point for humans and CI. `make check` is what CI runs.
GO ?= go
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
# Race-enabled tests are the default; TESTFLAGS adds to them.
TESTFLAGS ?=

.PHONY: all build test check fmt-check vet staticcheck tidy-check npm policy-test conformance-doc clean-check

all: build

build:
	$(GO) build -o bin/agenthelm ./cmd/agenthelm

# Real MCP servers (npm packages) that the tests run against, installed
# into testdata/npm/node_modules only.
npm:
	cd testdata/npm && npm ci --no-audit --no-fund --loglevel=error

# The conformance suite rewrites docs/CONFORMANCE.md from the run, so that
# clean-check fails when the committed matrix no longer matches reality.
test: npm
	AGENTHELM_UPDATE_CONFORMANCE=1 $(GO) test -race -timeout 20m $(TESTFLAGS) ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

# agenthelm runs on Linux and macOS; the tests run on Linux. Building for
# macOS here keeps it building there (Windows is not supported: stdio
# servers are managed as Unix process groups).
vet:
	$(GO) vet ./...
	GOOS=darwin $(GO) build -o /dev/null ./...

staticcheck:
	$(GO) run $(STATICCHECK) ./...

tidy-check:
	$(GO) mod tidy -diff

# Fails if the tests left the tree different from what was committed
# (e.g. a regenerated docs/CONFORMANCE.md that was not committed).
clean-check:
	@git status --porcelain --untracked-files=no | grep . && { echo "the tree changed during the checks:"; git diff --stat; exit 1; } || true

check: fmt-check vet tidy-check staticcheck test clean-check

# End-to-end test of traces and the native topology with a real Jaeger,
# built from its Go module by deploy/jaeger/build.sh into a cache outside the
# repository (minutes on the first run, then reused; AGENTHELM_JAEGER_BIN
# skips the build). Not part of `make test`: the build tag keeps it out.
.PHONY: jaeger-e2e
jaeger-e2e:
	$(GO) test -tags jaeger -count=1 -timeout 30m $(TESTFLAGS) ./deploy/e2e/...

# The shipped policies are standard Rego: OPA's own CLI, built from the OPA
# module version in go.mod, runs `opa test policies/` and agrees with
# `agenthelm policy test` (needs the Go module proxy for OPA's CLI).
.PHONY: opa-test
opa-test:
	$(GO) test -tags opacli -count=1 -v -run '^TestOPACLI$$' ./cmd/agenthelm/
