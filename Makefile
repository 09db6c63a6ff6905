# masq-janitor. Run as root on Debian: every target installs what it needs.
SHELL := /bin/bash
.DEFAULT_GOAL := build

# Debian packages, per target: each installs only what it runs.
# The demo (examples/demo.sh): iptables and nft in throwaway namespaces, the upstream plugins, jq, ip.
DEMO_APT_PACKAGES := iptables nftables containernetworking-plugins iproute2 jq
# The tests: the demo's tools, plus unshare/nsenter (util-linux), busybox-static (container rootfs and
# the image's shell) and file (build-image.sh). promtool, the metrics file's parser, is unpacked from
# Debian's prometheus package into dist/tools (see below) rather than installed: installing the
# package would start a Prometheus server.
TEST_APT_PACKAGES := $(DEMO_APT_PACKAGES) util-linux busybox-static file
# The containerd e2e tests need a container runtime. Never install one on a host that has one:
# a Docker CE host has containerd from containerd.io, which dpkg does not list as "containerd",
# and apt would replace docker-ce with Debian's. So the binaries decide, not package names.
RUNTIME_APT_PACKAGES := containerd runc
RUNTIME_BINARIES := containerd dockerd podman crio
# Only the benchmarks count processes (strace) and peak RSS (GNU time).
BENCH_APT_PACKAGES := strace time

SOURCES := $(shell find src -name '*.ts') tsup.config.ts package.json

.PHONY: build deps npm-deps apt-deps demo-deps runtime-deps promtool test unit e2e demo bench standalone image typecheck clean

deps: npm-deps apt-deps runtime-deps promtool

# promtool alone, from the Debian package, with no service started (test/cli/metrics.test.ts).
PROMTOOL := dist/tools/promtool
promtool: $(PROMTOOL)
$(PROMTOOL):
	@mkdir -p $(@D)/deb
	if command -v promtool >/dev/null; then ln -sf "$$(command -v promtool)" $@; else \
	  (cd $(@D)/deb && { apt-get download prometheus 2>/dev/null || { apt-get update -qq && apt-get download prometheus; }; }) && \
	  dpkg-deb --fsys-tarfile $(@D)/deb/prometheus_*.deb | tar -xO ./usr/bin/promtool > $@.tmp && chmod 755 $@.tmp && mv $@.tmp $@; \
	fi
	rm -rf $(@D)/deb

npm-deps: node_modules/.installed
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

# Install the Debian packages in $(1) that are missing.
define apt_install
	@missing=""; for p in $(1); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
endef

apt-deps:
	$(call apt_install,$(TEST_APT_PACKAGES))

demo-deps: npm-deps
	$(call apt_install,$(DEMO_APT_PACKAGES))

# containerd and runc only when no container runtime binary is on this host at all.
runtime-deps:
	@for b in $(RUNTIME_BINARIES); do \
	  if command -v $$b >/dev/null 2>&1; then echo "container runtime found ($$(command -v $$b)): installing none"; exit 0; fi; \
	done; \
	echo "no container runtime on this host: installing $(RUNTIME_APT_PACKAGES) for the containerd tests"; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(RUNTIME_APT_PACKAGES)

build: dist/masq-janitor
dist/masq-janitor: node_modules/.installed $(SOURCES)
	npx tsup

typecheck: npm-deps
	npx tsc --noEmit -p .

# Node 20 single executable application (SEA) of the bundle: no node needed on the host
# (it is the node binary itself, ~100 MB, dynamically linked against glibc). Never strip it:
# a stripped SEA segfaults.
# Its main is build/sea/loader.cjs, which runs the bundle (an asset) with a V8 code cache taken after a
# DEL ran against fake tools (build/sea/warm.cjs): `useCodeCache` alone caches only the top level, so every
# function a DEL calls was compiled on each start (measured in docs/performance.md).
STANDALONE := dist/standalone/masq-janitor
SEA_FILES := build/sea/loader.cjs build/sea/warm.cjs
standalone: $(STANDALONE)
$(STANDALONE): dist/masq-janitor $(SEA_FILES)
	@mkdir -p $(@D)
	node build/sea/warm.cjs dist/masq-janitor $(@D)/bundle.cache $(@D)/top-level.cache
	printf '%s\n' '{"main": "build/sea/loader.cjs", "output": "$(@D)/sea-prep.blob",' \
	  ' "disableExperimentalSEAWarning": true, "useCodeCache": true,' \
	  ' "assets": {"bundle.cjs": "dist/masq-janitor", "bundle.cache": "$(@D)/bundle.cache",' \
	  ' "top-level.cache": "$(@D)/top-level.cache"}}' > $(@D)/sea-config.json
	node --experimental-sea-config $(@D)/sea-config.json
	cp "$$(command -v node)" $@.tmp
	@# LIEF warns about note sections it cannot name ("Can't find string offset"); show the log only on failure.
	npx postject $@.tmp NODE_SEA_BLOB $(@D)/sea-prep.blob \
	  --sentinel-fuse NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2 >$(@D)/postject.log 2>&1 \
	  || { cat $(@D)/postject.log; rm -f $@.tmp; exit 1; }
	chmod 755 $@.tmp && mv -f $@.tmp $@
	env -i CNI_COMMAND=VERSION ./$@ <<<'{"cniVersion":"1.1.0"}' | grep -q supportedVersions

# Every test: unit, property, end to end (root, netns, real plugins, containerd), hardening,
# and the standalone build's protocol tests. Prints one summary line at the end.
test: deps build standalone typecheck
	@mkdir -p .test-results
	MJ_REQUIRE_REAL_TOOLS=1 npx vitest run --reporter=default --reporter=json --outputFile.json=.test-results/vitest.json; rc=$$?; \
	node -e 'const r=require("./.test-results/vitest.json");console.log(`vitest: $${r.numPassedTests} passed, $${r.numFailedTests} failed, $${r.numPendingTests+r.numTodoTests} skipped`)' || true; \
	exit $$rc

# Quick loop: everything that needs neither root nor real tools.
unit: npm-deps build
	npx vitest run test/identity.test.ts test/address.test.ts test/log.test.ts test/cni test/backends test/records test/verbs test/hostport test/cli test/examples

e2e: deps build
	npx vitest run test/e2e

# The main job: the leak with nerdctl's conflist as shipped, then none with masq-janitor appended.
# Installs no container runtime: the demo plays the runtime's part itself.
demo: demo-deps build
	bash examples/demo.sh

# The DaemonSet image, offline, from this machine's files (examples/kubernetes/build-image.sh):
# dist/image/oci (OCI layout) and dist/image/masq-janitor-<version>.oci.tar. Inputs are variables:
#   make image TOOLS_ROOT=/srv/bookworm BUSYBOX=/srv/busybox IPTABLES_DEFAULT=legacy
# ROOTFS_ONLY=1 stops at dist/image/rootfs (for the Containerfile).
IMAGE_VARS := OUT STANDALONE ENTRYPOINT_SH BUSYBOX TOOLS_ROOT IPTABLES_DEFAULT IMAGE_NAME ROOTFS_ONLY
image: standalone
	$(call apt_install,busybox-static iptables nftables file)
	$(foreach v,$(IMAGE_VARS),$(if $($(v)),$(v)='$($(v))')) bash examples/kubernetes/build-image.sh

# Benchmarks (not part of `make test`): throwaway netns only; writes test/bench/RESULTS.md.
# A quick look: make bench BENCH_ARGS="--sizes 0,1000 --runs 5 --no-write"
BENCH_ARGS ?=
bench: deps build standalone
	$(call apt_install,$(BENCH_APT_PACKAGES))
	node test/bench/bench.mjs $(BENCH_ARGS)
	@# Issue 11's row: sweep of 10,000 leaked portmap setups against one iptables command per step.
	@case " $(BENCH_ARGS) " in *" --no-write "*) node test/bench/hostports.mjs --per-rule-budget 30 ;; \
	  *) { printf '\n## k. Sweep of 10,000 hostport (portmap) orphans against one iptables command per step\n\n'; \
	       node test/bench/hostports.mjs --per-rule-budget 30; } >> test/bench/RESULTS.md ;; esac

clean:
	rm -rf dist .test-results
