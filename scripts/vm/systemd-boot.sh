#!/bin/bash
# The VM's systemd mode (run.sh with NASD_VM_SYSTEMD=1 puts this file in the share and nasd.systemd=1 on the
# kernel command line). Two roles:
# - sourced by /sbin/nasd-init (PID 1) once the share is mounted, the checkout unpacked, the wheels installed and
#   zfs loaded: writes nasd-vm.target (basic.target + nasd-vm-command.service, not multi-user.target, so none of
#   the image's services start by themselves), masks what could import pools or fire on a timer, and execs
#   systemd as PID 1;
# - `bash systemd-boot.sh run`, the unit's command: runs the share's `cmd` in /src as init does (output to the
#   console and the share's log, exit code to the share's rc) and powers off.
# Not part of the image key (build-image.sh leaves it out): it can change without an image rebuild.
share=/mnt/host

if [ "${1:-}" = run ]; then
  export PATH=/opt/nasd-venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  export HOME=/root LANG=C.UTF-8 TERM=dumb
  echo "[nasd-vm] running the command under systemd (uptime $(cut -d' ' -f1 /proc/uptime) s)"
  echo > "$share/t_start"
  cd /src || exit 1
  mkdir -p /var/tmp/nasd && chmod 1777 /var/tmp/nasd
  TMPDIR=/var/tmp/nasd NASD_VM=1 NASD_REQUIRE_ZFS=1 NASD_VM_OUT="$share/out" NASD_VM_DEPS="$share/deps" \
    /bin/bash "$share/cmd" </dev/null 2>&1 | tee "$share/log"
  rc=${PIPESTATUS[0]}
  echo "[nasd-vm] command exited with $rc"
  echo "$rc" > "$share/rc"
  sync
  umount "$share" 2>/dev/null
  echo o > /proc/sysrq-trigger
  sleep 60
  exit 0
fi

units=/etc/systemd/system
mkdir -p "$units"
cat > "$units/nasd-vm-command.service" <<EOF
[Unit]
Description=The VM test command (share's cmd)
After=basic.target

[Service]
Type=simple
ExecStart=/bin/bash $share/systemd-boot.sh run
StandardOutput=tty
StandardError=tty
TTYPath=/dev/console
TimeoutStartSec=infinity
EOF
cat > "$units/nasd-vm.target" <<'EOF'
[Unit]
Description=The VM test (basic.target and the test command only)
Requires=basic.target
Wants=nasd-vm-command.service
After=basic.target
AllowIsolate=yes
EOF
# the image's services that could import pools, or fire on a timer, during a test; smbd and nmbd stay as they
# are (wanted by multi-user.target, which is not started: `make install` finds them enabled and disables them)
for u in zfs-import-cache.service zfs-import-scan.service zfs-mount.service zfs-share.service zfs-zed.service \
    zfs-volume-wait.service zfs-load-module.service sanoid.timer sanoid.service sanoid-prune.service \
    apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer \
    dpkg-db-backup.timer man-db.timer; do
  ln -sfn /dev/null "$units/$u"
done
echo "[nasd-vm] exec systemd (uptime at:$marks)"
exec /lib/systemd/systemd --unit=nasd-vm.target --show-status=false --log-target=kmsg --log-level=notice
