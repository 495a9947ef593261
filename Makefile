# srp-mpathd — build, test and lab entry points.
#
#   make demo   set up and run the main job: the lab demo, srp-mpathd against
#               the kernel stack in a VM, with a latency plot
#   make test   set up and pass every test (host suites, fuzz smoke, lab)
#
# Every target that needs system packages depends on `deps`, which is
# idempotent: it installs only what is missing.

SHELL       := /bin/bash
GO          ?= go
BIN         := bin
PKG         := ./...
FUZZTIME    ?= 3s
LAB_OUT     ?= $(CURDIR)/test/lab/out
export LAB_OUT

# Debian packages: build (cgo headers), tests (promtool, chromium) and the lab
# (qemu, kernel unpacking, the storage stack used inside the VM).
DEB_PACKAGES := build-essential pkg-config git ca-certificates \
	libibverbs-dev librdmacm-dev libibumad-dev \
	rdma-core ibverbs-providers ibverbs-utils rdmacm-utils srptools \
	qemu-system-x86 busybox-static kmod cpio xz-utils zstd iproute2 \
	multipath-tools udev sg3-utils mdadm fio e2fsprogs nftables \
	prometheus chromium

.PHONY: all deps build test vet lint staticcheck unit fuzz-smoke bench lab lab-report demo demo-sim clean

all: build

deps:
	@test/scripts/deps.sh $(DEB_PACKAGES)

build: deps
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./cmd/...

vet:
	$(GO) vet $(PKG)

staticcheck:
	$(GO) tool staticcheck $(PKG)

lint: vet staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

unit:
	$(GO) test -race -count=1 $(PKG)

fuzz-smoke:
	@test/scripts/fuzz-smoke.sh $(FUZZTIME)

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./internal/...

test: deps lint unit fuzz-smoke lab

# The VM lab (test/lab/README.md): fetches the lab kernel into $LAB_CACHE
# (default /var/cache/srp-mpathd-lab), boots one VM per suite, writes $LAB_OUT/results.json.
# LAB_SUITES=smoke,ublk runs a subset.
lab: deps
	$(GO) run ./test/lab/cmd/labrun -go "$(GO)" $(if $(LAB_SUITES),-suites "$(LAB_SUITES)")

# The main job, in the VM lab (about 10 minutes under TCG, as root): the
# kernel stack's link-down baseline, then srp-mpathd's daemon under the same
# verified load and fault. labrun prints both stacks' longest single I/O and
# longest gap from results.json and writes $(LAB_OUT)/latency-demo.png (I/O
# completion latency over time around the fault, one panel per stack); it
# fails when a scenario failed.
demo: deps
	$(GO) run ./test/lab/cmd/labrun -go "$(GO)" -suites kernel-linkdown,demo

# The README's lab results table, rewritten from $(LAB_OUT)/results.json
# (the last lab run).
lab-report:
	$(GO) run ./test/lab/cmd/labrun -report README.md

# The main job over the simulated fabric: the whole daemon (2 targets x 2
# paths, software SRP targets) under a verified workload while link down,
# blackhole and DREQ are injected; prints the per-scenario stall and fails on
# any I/O error. DEMO_ARGS="--json" for machine-readable output.
DEMO_DURATION ?= 30s
demo-sim: build
	$(BIN)/srp-mpathd demo --sim --duration $(DEMO_DURATION) $(DEMO_ARGS)

clean:
	rm -rf $(BIN) $(LAB_OUT)
