# registryd
#
#   make build        bin/registryd, version from git describe
#   make run          build and serve with the embedded default config (:5000, ./data)
#   make test         everything CI runs: deps, vet, gofmt check, unit tests (-race), e2e
#   make unit         unit tests only (-race when cgo is available)
#   make e2e          end-to-end tests against a live registryd (conformance, clients, compat, docker)
#   make conformance  the OCI conformance suite only; reports kept in .cache/conformance/
#   make fuzz         every go test -fuzz target for FUZZTIME each (default 30s; make test runs the seeds only)
#   make deps         scripts/install-deps.sh: Debian packages + tools in .cache/bin
#   make tools-distribution  also distribution v3's registry as .cache/bin/registry-v3 (benchmarks)
#   make tools-zot    also zot as .cache/bin/zot (benchmarks; ZOT_GIT=url-or-clone, default GitHub)
#   make bench        cmd/regbench: registryd vs distribution 2.8 and v3, on disk and on S3 (MinIO) (BENCH.md); not part of test
#                     BENCH_FLAGS="-reps 5 -size 4GiB -only push,gc" for other runs
#   make ui-screenshots  the web UI's screenshots in docs/ui/ (the browser test takes them)
#   make image        container image registryd:$(VERSION) from the Dockerfile (needs dockerd)
#   make vet | fmt | fmt-check | clean | distclean

SHELL   := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
# -race needs cgo and a C compiler; without them the unit tests run without it.
RACE    ?= $(shell [ "$$($(GO) env CGO_ENABLED)" = 1 ] && command -v gcc >/dev/null && echo -race)
GOFILES  = find . \( -path ./.git -o -path ./.cache -o -path ./bin -o -path ./data -o -name testdata \) -prune -o -name '*.go' -print

.PHONY: all build run test unit e2e conformance fuzz deps tools-distribution tools-zot bench vet fmt fmt-check image clean distclean ui-screenshots

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/registryd ./cmd/registryd

run: build
	./bin/registryd serve

deps:
	bash scripts/install-deps.sh

tools-distribution:
	REGISTRYD_TOOLS_DISTRIBUTION=1 bash scripts/install-deps.sh

tools-zot:
	REGISTRYD_TOOLS_ZOT=1 bash scripts/install-deps.sh

# The load generator; registry-v3 comes from tools-distribution. Not part of
# test: it takes minutes and its figures depend on the machine.
# REGBENCH_V3=path uses a registry-v3 built elsewhere instead. zot is an
# optional column: REGBENCH_ZOT=path, or .cache/bin/zot from make tools-zot
# (not built here: it needs zot's git repository); skipped when missing.
BENCH_FLAGS ?=
REGBENCH_V3 ?= .cache/bin/registry-v3
REGBENCH_ZOT ?= .cache/bin/zot
bench: build
	@if [ "$(REGBENCH_V3)" = .cache/bin/registry-v3 ]; then $(MAKE) --no-print-directory tools-distribution; fi
	$(GO) build -o bin/regbench ./cmd/regbench
	./bin/regbench -registryd bin/registryd -v3 $(REGBENCH_V3) -zot $(REGBENCH_ZOT) $(BENCH_FLAGS)

# Explores with every fuzz target in turn (scripts/fuzz.sh); crashers land
# in the package's testdata/fuzz/<Target>/, to be committed as seeds.
FUZZTIME ?= 30s
fuzz:
	FUZZTIME=$(FUZZTIME) bash scripts/fuzz.sh

vet:
	$(GO) vet ./...

fmt:
	$(GOFILES) | xargs -r gofmt -w

fmt-check:
	@bad=$$($(GOFILES) | xargs -r gofmt -l); \
	if [ -n "$$bad" ]; then echo "gofmt needed (run make fmt):"; echo "$$bad"; exit 1; fi

unit:
	$(GO) test $(RACE) -timeout 30m $$($(GO) list -e ./... | grep -v '/e2e$$')

e2e: deps
	$(GO) test -v -timeout 60m ./e2e/

conformance: deps
	REGISTRYD_E2E_RESULTS_DIR=$(CURDIR)/.cache/conformance $(GO) test -count=1 -v -run 'TestConformance' -timeout 30m ./e2e/

ui-screenshots: deps
	REGISTRYD_UI_SCREENSHOTS=$(CURDIR)/docs/ui $(GO) test -count=1 -run 'TestUIBrowser' -timeout 10m ./e2e/

# Unit tests and e2e both run even when the first fails, so one CI run reports both.
test: deps vet fmt-check
	@status=0; \
	echo "== unit tests $(RACE)"; \
	$(GO) test $(RACE) -timeout 30m $$($(GO) list -e ./... | grep -v '/e2e$$') || status=1; \
	echo "== e2e tests"; \
	$(GO) test -v -timeout 60m ./e2e/ || status=1; \
	exit $$status

# Static binary plus the few files the FROM-scratch Dockerfile copies.
# bin/image/volume is an empty directory for
#   COPY --chown=65532:65532 bin/image/volume/ /var/lib/registry/
# which gives the non-root user its volume with both the legacy builder and
# BuildKit, provided rootfs/ has no var/lib/registry (a --chown COPY onto an
# existing directory leaves it root's; the legacy builder on vfs even fails
# with "layer does not exist"). rootfs/var/lib/registry is made only while the
# Dockerfile still names it.
image:
	rm -rf bin/image
	mkdir -p bin/image/rootfs/usr/local/bin bin/image/rootfs/etc/ssl/certs bin/image/volume
	if grep -q 'rootfs/var/lib/registry' Dockerfile; then mkdir -p bin/image/rootfs/var/lib/registry; fi
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/image/rootfs/usr/local/bin/registryd ./cmd/registryd
	cp /etc/ssl/certs/ca-certificates.crt bin/image/rootfs/etc/ssl/certs/
	printf 'root:x:0:0:root:/root:/sbin/nologin\nregistryd:x:65532:65532:registryd:/var/lib/registry:/sbin/nologin\n' > bin/image/rootfs/etc/passwd
	printf 'root:x:0:\nregistryd:x:65532:\n' > bin/image/rootfs/etc/group
	DOCKER_BUILDKIT=0 docker build --build-arg VERSION=$(VERSION) -t registryd:$(VERSION) -t registryd:dev .

clean:
	rm -rf bin .cache/conformance

distclean: clean
	rm -rf .cache
