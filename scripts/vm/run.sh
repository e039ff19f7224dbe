#!/usr/bin/env bash
# Run a command inside the VM test image (real OpenZFS 2.1, kernel nfsd, Samba) with this checkout at /src.
# Usage: scripts/vm/run.sh [COMMAND...]   (default: pytest tests/vm). Exits with the command's exit code;
# 124 when the VM hit the timeout, 125 when the guest never reported one. Needs root (image build, qemu).
# Env: NASD_VM_TIMEOUT (seconds, default 2400), NASD_VM_OUT (where the guest's out/ files and vm.log are copied,
# default <checkout>/.vm-out), NASD_VM_MEM (MiB, default 1536), NASD_VM_KEEP=1 (keep the run directory),
# NASD_VM_CACHE (see build-image.sh), NASD_VM_SYSTEMD=1 (boot systemd as PID 1 and run the command as a unit
# under it, with the project's dependencies as wheels in the share for an offline `make install`: see
# systemd-boot.sh). In the guest: NASD_VM=1, NASD_REQUIRE_ZFS=1, and NASD_VM_OUT=<a folder
# whose files are copied back to the host>.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
timeout_s=${NASD_VM_TIMEOUT:-2400}
out_dir=${NASD_VM_OUT:-$repo/.vm-out}
[ $# -gt 0 ] || set -- pytest tests/vm
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f s", b - a }'; }
log() { echo "vm: $*" >&2; }

t0=$(now)
img=$("$here/build-image.sh" | tail -n 1)
[ -e "$img/complete" ] || { log "build-image.sh gave no image"; exit 125; }
t_img=$(now)

run=$(mktemp -d "${TMPDIR:-/var/tmp}/nasd-vm-run.XXXXXX")
share="$run/share"
mkdir -p "$share/wheels" "$share/out" "$run/src"
qpid=""
cleanup() {
  if [ -n "$qpid" ]; then kill "$qpid" 2>/dev/null || true; wait "$qpid" 2>/dev/null || true; fi
  if [ "${NASD_VM_KEEP:-}" = 1 ]; then log "kept $run"; else rm -rf "$run"; fi
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# The checkout as one tarball (9p is slow per file): tracked and untracked-but-not-ignored files that exist.
cd "$repo"
git ls-files -z -co --exclude-standard | while IFS= read -r -d '' f; do
  if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\0' "$f"; fi
done | tar --null -T - --owner=0 --group=0 --numeric-owner -cf "$share/src.tar"

# Wheels of the project's distributions (nasd, each plugin, and nasd-testing: the test harness, a pytest plugin),
# built from a copy of that snapshot so the checkout gets no build/ or egg-info changes. The build tools live in
# a small venv in the cache (the project's .venv has setuptools 65, which needs `wheel` to build wheels).
# (it is renamed into place, so its scripts' shebangs are stale: always `python -m pip`)
wb="${NASD_VM_CACHE:-/var/cache/nasd-vm}/wheel-build-venv"
if [ ! -x "$wb/bin/python" ]; then
  log "creating $wb (setuptools, wheel)"
  rm -rf "$wb.tmp" && python3 -m venv "$wb.tmp"
  "$wb.tmp/bin/python" -m pip install -q --disable-pip-version-check "setuptools>=70.1" wheel >&2
  mv -T "$wb.tmp" "$wb"
fi
tar -xf "$share/src.tar" -C "$run/src"
dists=(. testing/)
for p in "$run"/src/plugins/*/pyproject.toml; do
  if [ -e "$p" ]; then dists+=("plugins/$(basename "$(dirname "$p")")/"); fi
done
# (two at a time: each is mostly pip's start-up)
(cd "$run/src" && printf '%s\0' "${dists[@]}" | xargs -0 -n 1 -P 2 "$wb/bin/python" -m pip wheel -q --isolated \
  --no-deps --no-index --no-build-isolation --disable-pip-version-check -w "$share/wheels") >&2 \
  || { log "building the wheels failed"; exit 125; }

# systemd mode: the script init hands over to, and the dependencies of nasd and its plugins as wheels (downloaded
# once from the package registry, cached by their requirement lines), for `make install` without a network.
append=""
if [ "${NASD_VM_SYSTEMD:-}" = 1 ]; then
  cp "$here/systemd-boot.sh" "$share/systemd-boot.sh"
  reqs=$("$wb/bin/python" - "$run"/src/pyproject.toml "$run"/src/plugins/*/pyproject.toml <<'PY'
import re, sys, tomllib
def name(req): return re.split(r"[<>=!~ \[;]", req)[0].lower().replace("_", "-")
projects = []
for path in sys.argv[1:]:
    with open(path, "rb") as f:
        projects.append(tomllib.load(f).get("project", {}))
ours = {name(p.get("name", "")) for p in projects}   # nasd and its plugins come from the checkout
deps = {"setuptools>=64", "wheel"} | {d for p in projects for d in p.get("dependencies", []) if name(d) not in ours}
print("\n".join(sorted(deps)))
PY
)
  deps="${NASD_VM_CACHE:-/var/cache/nasd-vm}/deps/$(echo "$reqs" | sha256sum | cut -c1-16)"
  if [ ! -e "$deps/complete" ]; then
    log "downloading the dependencies of nasd and its plugins as wheels into $deps"
    rm -rf "$deps" && mkdir -p "$deps"
    # shellcheck disable=SC2086
    echo "$reqs" | tr '\n' '\0' | xargs -0 "$wb/bin/python" -m pip download -q --disable-pip-version-check \
      --only-binary=:all: -d "$deps" >&2 || { log "downloading the dependencies failed"; exit 125; }
    touch "$deps/complete"
  fi
  mkdir -p "$share/deps" && cp "$deps"/*.whl "$share/deps/"
  append=" nasd.systemd=1"
fi

# The command, run by the guest's init with bash in /src.
{ printf 'exec'; printf ' %q' "$@"; printf '\n'; } > "$share/cmd"

# A throwaway overlay: the cached image is never written.
qemu-img create -q -f qcow2 -F raw -b "$img/rootfs.ext4" "$run/overlay.qcow2"
kernel="$img/vmlinux"   # uncompressed: booted through PVH, no self-decompression
[ -e "$kernel" ] || kernel="$img/vmlinuz"
t_boot=$(now)
log "booting ($(secs "$t0" "$t_boot") after start; image $(basename "$img")): $*"
set +e
timeout -k 10 "$timeout_s" qemu-system-x86_64 \
  -machine q35 -accel tcg,thread=multi,tb-size=256 -cpu max -smp 2 -m "${NASD_VM_MEM:-1536}" \
  -display none -no-reboot -nodefaults -serial stdio \
  -kernel "$kernel" -initrd "$img/initrd.img" \
  -append "root=/dev/vda rw console=ttyS0 init=/sbin/nasd-init quiet loglevel=3 panic=-1$append" \
  -drive "file=$run/overlay.qcow2,if=virtio,format=qcow2,cache=unsafe" \
  -virtfs "local,path=$share,mount_tag=host,security_model=none,id=host" </dev/null &
qpid=$!
wait "$qpid"
qrc=$?
qpid=""
set -e
t_end=$(now)

# Files the guest left in out/, and its log, to the host.
if [ -z "${NASD_VM_OUT:-}" ]; then rm -rf "$out_dir"; fi
mkdir -p "$out_dir"
cp -a "$share/out/." "$out_dir/"
if [ -e "$share/log" ]; then cp "$share/log" "$out_dir/vm.log"; fi

mtime() { stat -c %.9Y "$1"; }
timings="image ready $(secs "$t0" "$t_img"), packing $(secs "$t_img" "$t_boot")"
if [ -e "$share/t_start" ]; then
  timings="$timings, boot-to-command $(secs "$t_boot" "$(mtime "$share/t_start")")"
  if [ -e "$share/rc" ]; then
    timings="$timings, command $(secs "$(mtime "$share/t_start")" "$(mtime "$share/rc")")"
  fi
fi
log "timings: $timings, total $(secs "$t0" "$t_end")"

rc=$(cat "$share/rc" 2>/dev/null || true)
if [ "$qrc" = 124 ]; then
  log "ERROR: the VM was stopped after NASD_VM_TIMEOUT=${timeout_s}s"; exit 124
elif ! [[ "$rc" =~ ^[0-9]+$ ]]; then
  log "ERROR: the guest wrote no exit code (qemu exited with $qrc); see the output above"; exit 125
fi
[ "$rc" = 0 ] || log "the command exited with $rc"
exit "$rc"
