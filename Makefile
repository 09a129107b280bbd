# SPDX-License-Identifier: GPL-2.0
# zvpool top-level Makefile.
#
#   make                 build zvpool.ko against the platform test kernel (built and cached on first use)
#   make KDIR=/path      build zvpool.ko against another CONFIG_RUST=y kernel build tree
#   make check           everything: deps, kernel, module, host tests, VM selftests (the test command)
#   make demo            boot the VM and show zvpool at work (the main command)
#   make crash-campaign  100 power cuts in the VM (ZVPOOL_CRASH_POINTS, ZVPOOL_CRASH_SEED)
#   make host-test       cargo test of the host-side Rust only
#   make vm-shell        boot the VM with an interactive shell
#   make bench           benchmarks in the VM -> Documentation/benchmarks.md (long; BENCH_QUICK=1: smoke test)
#   make clean
# Variables: ZVPOOL_CACHE (default ~/.cache/zvpool), ZVPOOL_KERNEL=test|debug,
#            CLIPPY=1 (clippy on the module), ZVPOOL_ACCEL=tcg|kvm.

TOP := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
MO  ?= $(TOP)/build/module

.PHONY: all module check demo host-test vm-shell bench clean fmt deps kernel crash-campaign scale

all: module

module:
	@$(TOP)/scripts/build-module.sh $(if $(KDIR),--kdir $(KDIR)) $(if $(CLIPPY),--clippy)

deps:
	@$(TOP)/scripts/deps.sh

kernel: deps
	@$(TOP)/scripts/kernel-build.sh >/dev/null

check:
	@$(TOP)/scripts/check.sh

demo:
	@$(TOP)/scripts/check.sh --demo

crash-campaign:
	@$(TOP)/scripts/check.sh --crash-campaign

scale:
	@$(TOP)/scripts/check.sh --scale

host-test:
	cargo test --workspace

vm-shell:
	@$(TOP)/scripts/check.sh --shell

bench:
	@$(TOP)/scripts/bench.sh

fmt:
	cargo fmt --all
	@$(TOP)/scripts/rustfmt-kernel.sh

clean:
	rm -rf $(TOP)/build $(TOP)/target
