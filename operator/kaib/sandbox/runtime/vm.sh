#!/bin/sh
# Boots one sandbox VM. Runs as pid 1 of fresh mount, PID and UTS namespaces, inside the VM's network
# namespace (see vm.py). Everything mounted here vanishes with this namespace.
# Arguments: root upper work lowerdirs hostname vm-id ip admin-user public-key
set -eu
ROOT=$1 UPPER=$2 WORK=$3 LOWER=$4 NAME=$5 VMID=$6 IP=$7 ADMIN=$8 KEY=$9

mount --make-rprivate /
mount -t overlay kaib-vm -o "lowerdir=$LOWER,upperdir=$UPPER,workdir=$WORK" "$ROOT"
mount -t proc proc "$ROOT/proc"
mount -t sysfs -o ro sysfs "$ROOT/sys" 2>/dev/null || true

# A /dev of our own: a few host character devices and a private devpts instance.
mount -t tmpfs -o mode=755,nosuid kaib-dev "$ROOT/dev"
for dev in null zero full random urandom tty; do
  touch "$ROOT/dev/$dev"
  mount --bind "/dev/$dev" "$ROOT/dev/$dev"
done
mkdir "$ROOT/dev/pts" "$ROOT/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts "$ROOT/dev/pts"
ln -s pts/ptmx "$ROOT/dev/ptmx"
mount -t tmpfs -o mode=1777 tmpfs "$ROOT/dev/shm"
ln -s /proc/self/fd "$ROOT/dev/fd"
ln -s /proc/self/fd/0 "$ROOT/dev/stdin"
ln -s /proc/self/fd/1 "$ROOT/dev/stdout"
ln -s /proc/self/fd/2 "$ROOT/dev/stderr"
mount -t tmpfs -o mode=755 tmpfs "$ROOT/run"
mount -t tmpfs -o mode=1777 tmpfs "$ROOT/tmp"
hostname "$NAME"

# The "provisioning agent": admin user, its key, a host key of this VM's own. Idempotent, so a
# restarted VM or one made from a captured image just refreshes what differs.
chroot "$ROOT" /bin/sh -eu -c '
  ADMIN=$1 KEY=$2 VMID=$3 NAME=$4 IP=$5
  # As cloud-init does on Azure: the VM resolves its own name (sudo warns otherwise).
  echo "$NAME" > /etc/hostname
  grep -qs "^$IP[[:space:]]\+$NAME\$" /etc/hosts || printf "%s %s\n" "$IP" "$NAME" >> /etc/hosts
  id -u "$ADMIN" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash --user-group "$ADMIN"
  usermod --password "*" "$ADMIN"  # no password, yet not locked: key login only
  HOME_DIR=$(getent passwd "$ADMIN" | cut -d: -f6)
  install -d -m 700 -o "$ADMIN" -g "$ADMIN" "$HOME_DIR/.ssh"
  printf "%s\n" "$KEY" > "$HOME_DIR/.ssh/authorized_keys"
  chown "$ADMIN:$ADMIN" "$HOME_DIR/.ssh/authorized_keys"
  chmod 600 "$HOME_DIR/.ssh/authorized_keys"
  if [ -d /etc/sudoers.d ]; then
    echo "$ADMIN ALL=(ALL) NOPASSWD:ALL" > /etc/sudoers.d/90-kaib-admin
    chmod 440 /etc/sudoers.d/90-kaib-admin
  fi
  mkdir -p /var/lib/kaib-vm /run/sshd
  if [ "$(cat /var/lib/kaib-vm/id 2>/dev/null)" != "$VMID" ]; then
    rm -f /etc/ssh/kaib_host_ed25519_key /etc/ssh/kaib_host_ed25519_key.pub
    ssh-keygen -q -t ed25519 -N "" -C "$VMID" -f /etc/ssh/kaib_host_ed25519_key
    echo "$VMID" > /var/lib/kaib-vm/id
  fi
' kaib-provision "$ADMIN" "$KEY" "$VMID" "$NAME" "$IP"

echo "kaib-vm: $NAME up, sshd on $IP:22"
exec chroot "$ROOT" /usr/sbin/sshd -D -e \
  -o "ListenAddress=$IP" -o HostKey=/etc/ssh/kaib_host_ed25519_key \
  -o PasswordAuthentication=no -o KbdInteractiveAuthentication=no -o PermitRootLogin=no \
  -o PidFile=/run/sshd.pid
