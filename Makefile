# masq-janitor. Run as root on Debian: every target installs what it needs.
SHELL := /bin/bash
.DEFAULT_GOAL := build

# Debian packages: the real tools and upstream plugins the tests and demo drive.
APT_PACKAGES := iptables nftables containernetworking-plugins iproute2 util-linux jq containerd runc busybox-static

SOURCES := $(shell find src -name '*.ts') tsup.config.ts package.json

.PHONY: build deps npm-deps apt-deps test unit e2e demo bench standalone typecheck clean

deps: npm-deps apt-deps

npm-deps: node_modules/.installed
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

apt-deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

build: dist/masq-janitor
dist/masq-janitor: node_modules/.installed $(SOURCES)
	npx tsup

typecheck: npm-deps
	npx tsc --noEmit -p .

# Every test: unit, property and end-to-end (root, netns, real plugins, containerd).
test: deps build typecheck
	@mkdir -p .test-results
	npx vitest run --reporter=default --reporter=json --outputFile.json=.test-results/vitest.json; rc=$$?; \
	node -e 'const r=require("./.test-results/vitest.json");console.log(`vitest: $${r.numPassedTests} passed, $${r.numFailedTests} failed, $${r.numPendingTests+r.numTodoTests} skipped`)' || true; \
	exit $$rc

unit: npm-deps build
	npx vitest run test/unit

e2e: deps build
	npx vitest run test/e2e

# The main job: the leak with nerdctl's conflist as shipped, then none with masq-janitor appended.
demo: deps build
	bash examples/demo.sh

clean:
	rm -rf dist .test-results
