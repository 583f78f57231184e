# The two commands a new user needs:
#   make run    start the local engines and all five services (no Docker)
#   make test   run every test against the real engines (starts them if needed)

SERVICES := command-api query-api projector-orders projector-stats search-indexer
BIN      := bin
GO       ?= go
export PATH := $(PATH):/usr/local/go/bin:$(HOME)/go/bin

.PHONY: all build run stop status logs test test-unit test-chaos test-deploy lint vet fmt staticcheck \
        stack-up stack-down stack-status stack-reset bench-append bench-load bench-latency bench-depth clean

all: build

## build: compile every service into bin/ (the same command the Dockerfile runs)
build:
	@for s in $(SERVICES); do scripts/build.sh $$s $(BIN) || exit 1; done

## run: engines + all services in the background; logs in .stack/logs/services
##      (scale a projector: make run REPLICAS="projector-stats=3")
run: build
	scripts/run.sh start $(REPLICAS)

## stop: stop the services (the engines keep running; make stack-down stops them)
stop:
	scripts/run.sh stop

status:
	@scripts/stack.sh status || true
	@scripts/run.sh status

## test: every test — unit, integration and end-to-end on the real engines, and the deployment checks
test: stack-up vet
	$(GO) test -count=1 -p 2 -timeout 20m ./...
	$(MAKE) test-chaos
	$(MAKE) test-deploy

## test-chaos: tests that stop and restart an engine; they run alone, after the others
test-chaos: stack-up
	$(GO) test -count=1 -p 1 -tags chaos -run 'Outage' ./services/command-api/internal/server/

test-unit:
	$(GO) test -count=1 -short ./pkg/... ./internal/domain/...

test-deploy:
	cd deploy/check && $(GO) test -count=1 ./...

vet:
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

staticcheck:
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.7.0 ./...

lint: vet staticcheck
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)

stack-up:
	scripts/stack.sh up

stack-down:
	scripts/stack.sh down

stack-status:
	scripts/stack.sh status

stack-reset:
	scripts/stack.sh reset

## bench-append: store and HTTP append throughput beside a raw Postgres INSERT baseline
bench-append: stack-up
	$(GO) run ./services/command-api/cmd/bench-append

## bench-load: load a 1,000,000-event account with and without a snapshot
bench-load: stack-up
	$(GO) run ./cmd/bench-load

## bench-depth: in one run, bench-load and the rebuild of every read model beside a raw COPY baseline
bench-depth: stack-up
	$(GO) run ./cmd/bench-depth

## bench-latency: steady load against `make run`; 201 -> visible latency per read model
bench-latency:
	$(GO) run ./cmd/bench-latency $(ARGS)

clean:
	rm -rf $(BIN)
