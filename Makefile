# The README's two commands are `make demo` and `make test`; both set up everything they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PLUGINS := $(wildcard plugins/*/pyproject.toml)
# the test harness (a pytest plugin of its own distribution, nasd-testing): in the venv, never in `make install`
TESTING := testing/pyproject.toml

.PHONY: install uninstall venv system-packages test test-fast demo demo-clean bench bench-zfs bench-smb bench-snapshots bench-memory crds clean test-vm test-vm-systemd vm-image bench-vm

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml $(PLUGINS) $(TESTING)
	scripts/install-system-packages.sh python
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e . $(foreach p,$(PLUGINS),-e $(dir $(p))) -e $(dir $(TESTING)) \
		"jsonschema>=4" "kubernetes-validate>=1.30" "smbprotocol>=1.10" "hypothesis>=6" wheel
	touch $@

system-packages:
	scripts/install-system-packages.sh zfs
	scripts/install-system-packages.sh samba
	scripts/install-system-packages.sh mdns
	scripts/install-system-packages.sh nfs
	scripts/install-system-packages.sh kubernetes

test: venv system-packages
	$(BIN)/pytest

demo: venv system-packages
	scripts/demo.sh

demo-clean:
	scripts/demo.sh clean

bench: bench-zfs bench-smb bench-snapshots bench-cli bench-memory

bench-zfs: venv system-packages
	$(BIN)/python bench/zfs_converge.py $(BENCH_ARGS)

bench-smb: venv system-packages
	$(BIN)/python bench/smb_apply.py $(BENCH_ARGS)

bench-snapshots: venv system-packages
	$(BIN)/python bench/snapshots.py $(BENCH_ARGS)

bench-cli: venv
	$(BIN)/python bench/cli_start.py $(BENCH_ARGS)

# the daemon's RSS at 1,000 datasets, SMB shares and NFS exports and 10,000 snapshots, over 1,000 no-op passes
bench-memory: venv system-packages
	$(BIN)/python bench/memory.py $(BENCH_ARGS)

# The VM tier (real OpenZFS 2.1, kernel nfsd and Samba under qemu; needs root): scripts/vm/ builds the image
# from Debian's packages (cached in /var/cache/nasd-vm) and runs a command in a throwaway VM with this checkout.
# `make test-vm` runs VM_TESTS there (tests/vm, and the ZFS, snapshot, Previous Versions, NFS, hostile-ZFS and SMB
# locking tests again on OpenZFS, whose xattrs and mounts differ; the SMB conformance test runs there by hand:
# `make test-vm VM_ARGS="pytest tests/test_smb_conformance.py"`, about 14 min under TCG), then the nasd-versus-sanoid benchmark; `make test-vm VM_ARGS="pytest -x tests/vm"` runs
# that instead.
VM_TESTS := tests/vm tests/test_reconcile_zfs.py tests/test_previous_versions.py tests/test_restore_nfs.py plugins/zfs/tests \
	plugins/snapshots/tests plugins/nfs/tests tests/test_hostile_zfs.py tests/test_smb_locking.py
VM_ARGS ?= sh -c "pytest $(VM_TESTS) && python bench/vs_sanoid.py $(BENCH_ARGS)"

# Run nasd as a service on this machine (root; Debian 12): the packages a node needs, nasd and its plugins in
# /opt/nasd, /usr/local/sbin/nasd, the systemd unit, /etc/nasd/config.yaml (kept when there) and
# /etc/nasd/manifests.d; started when systemd runs the machine. `make uninstall` keeps /etc/nasd and
# /var/lib/nasd (PURGE=1 removes them too; pools and datasets are never touched). See scripts/install.sh.
install:
	ROOT="$(ROOT)" scripts/install.sh install

uninstall:
	ROOT="$(ROOT)" PURGE="$(PURGE)" scripts/install.sh uninstall

test-vm: venv
	scripts/vm/run.sh $(VM_ARGS)

# The VM booted with systemd as PID 1 (scripts/vm/systemd-boot.sh): `make install`, the unit's start, watchdog,
# stop and restart under a real systemd, and `make uninstall` (tests/vm/test_systemd_service.py).
test-vm-systemd: venv
	NASD_VM_SYSTEMD=1 scripts/vm/run.sh pytest -v tests/vm/test_systemd_service.py

bench-vm: venv
	scripts/vm/run.sh python bench/vs_sanoid.py $(BENCH_ARGS)

vm-image:
	scripts/vm/build-image.sh

crds: venv
	$(BIN)/python -m nasd.crds crds

clean:
	rm -rf $(VENV) build *.egg-info plugins/*/src/*.egg-info testing/src/*.egg-info
