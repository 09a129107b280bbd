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
#   make profile         CPU profile of the request path in the VM (profiling kernel) -> build/profile/report.txt
#   make install         zvpoolctl, udev rule, systemd unit, man pages, bash completion (and the
#                        module with KDIR= when it was built); DESTDIR, PREFIX (/usr/local)
#   make uninstall       removes what install installed
#   make clean
# Variables: ZVPOOL_CACHE (default ~/.cache/zvpool), ZVPOOL_KERNEL=test|debug|profile,
#            CLIPPY=1 (clippy on the module), ZVPOOL_ACCEL=tcg|kvm.

TOP := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
MO  ?= $(TOP)/build/module

.PHONY: all module check demo host-test vm-shell bench clean fmt deps kernel crash-campaign scale \
	profile install uninstall

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

profile:
	@$(TOP)/scripts/profile.sh

fmt:
	cargo fmt --all
	@$(TOP)/scripts/rustfmt-kernel.sh

clean:
	rm -rf $(TOP)/build $(TOP)/target

# Installation. zvpoolctl is built with `cargo build --release` unless
# ZVPOOLCTL_BIN names a binary to install. udev reads its rules from
# /usr/lib/udev/rules.d (not under /usr/local), systemd its units from
# /usr/lib/systemd/system: both default there whatever PREFIX is. The rule
# and the unit get the path zvpoolctl is installed to.
PREFIX         ?= /usr/local
SBINDIR        ?= $(PREFIX)/sbin
MANDIR         ?= $(PREFIX)/share/man
BASHCOMPDIR    ?= $(PREFIX)/share/bash-completion/completions
UDEVRULESDIR   ?= /usr/lib/udev/rules.d
SYSTEMDUNITDIR ?= /usr/lib/systemd/system
ZVPOOLCTL_BIN  ?=

INSTALLED := $(SBINDIR)/zvpoolctl $(MANDIR)/man8/zvpoolctl.8 $(MANDIR)/man4/zvpool.4 \
	$(BASHCOMPDIR)/zvpoolctl $(UDEVRULESDIR)/60-zvpool.rules $(SYSTEMDUNITDIR)/zvpool-import.service

install:
	@set -e; bin="$(ZVPOOLCTL_BIN)"; \
	if [ -z "$$bin" ]; then \
		cargo build --release -p zvpoolctl --manifest-path $(TOP)/Cargo.toml; \
		bin=$${CARGO_TARGET_DIR:-$(TOP)/target}/release/zvpoolctl; \
	fi; \
	install -D -m 0755 "$$bin" "$(DESTDIR)$(SBINDIR)/zvpoolctl"
	install -D -m 0644 $(TOP)/man/zvpoolctl.8 "$(DESTDIR)$(MANDIR)/man8/zvpoolctl.8"
	install -D -m 0644 $(TOP)/man/zvpool.4 "$(DESTDIR)$(MANDIR)/man4/zvpool.4"
	install -D -m 0644 $(TOP)/completion/zvpoolctl.bash "$(DESTDIR)$(BASHCOMPDIR)/zvpoolctl"
	install -d "$(DESTDIR)$(UDEVRULESDIR)" "$(DESTDIR)$(SYSTEMDUNITDIR)"
	sed 's|/usr/local/sbin/zvpoolctl|$(SBINDIR)/zvpoolctl|g' $(TOP)/udev/60-zvpool.rules \
		> "$(DESTDIR)$(UDEVRULESDIR)/60-zvpool.rules"
	sed 's|/usr/local/sbin/zvpoolctl|$(SBINDIR)/zvpoolctl|g' $(TOP)/systemd/zvpool-import.service \
		> "$(DESTDIR)$(SYSTEMDUNITDIR)/zvpool-import.service"
	chmod 0644 "$(DESTDIR)$(UDEVRULESDIR)/60-zvpool.rules" "$(DESTDIR)$(SYSTEMDUNITDIR)/zvpool-import.service"
	@if [ -f "$(MO)/zvpool.ko" ] && [ -n "$(KDIR)" ]; then \
		$(MAKE) -C "$(KDIR)" M="$(MO)" INSTALL_MOD_PATH="$(DESTDIR)" modules_install; \
	elif [ -f "$(MO)/zvpool.ko" ]; then \
		echo "make install: zvpool.ko not installed: give KDIR= (the kernel tree it was built against)"; \
	else \
		echo "make install: zvpool.ko not built ('make' or 'make KDIR=...'); module not installed"; \
	fi

uninstall:
	rm -f $(addprefix "$(DESTDIR),$(addsuffix ",$(INSTALLED)))
	rm -f "$(DESTDIR)"/lib/modules/*/updates/zvpool.ko "$(DESTDIR)"/lib/modules/*/extra/zvpool.ko
