#!/usr/bin/env bash
# Build the base images Rexec's containers use, locally, with `docker import`
# (no image registry is reachable from our machines). Idempotent: an image that
# exists is kept.
#   scripts/base-image.sh busybox   -> rexec/busybox:1   (about 1 s, 2 MB)
#   scripts/base-image.sh debian    -> rexec/debian:12   (debootstrap, about 1 min, once)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

USER_SETUP='root:x:0:0:root:/root:/bin/sh
rexec:x:1000:1000:Rexec user:/home/rexec:/bin/sh'

busybox_image() {
  local name=rexec/busybox:1 root
  docker image inspect "$name" >/dev/null 2>&1 && { echo "$name"; return; }
  apt_install busybox-static
  root=$(mktemp -d)
  mkdir -p "$root"/{bin,etc,home/rexec,root,tmp,proc,sys,dev}
  cp /bin/busybox "$root/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
  done
  printf '%s\n' "$USER_SETUP" >"$root/etc/passwd"
  printf 'root:x:0:\nrexec:x:1000:\n' >"$root/etc/group"
  chown 1000:1000 "$root/home/rexec"
  chmod 1777 "$root/tmp"
  say "importing $name"
  tar -C "$root" --numeric-owner -c . | docker import \
    -c 'ENV PATH=/bin' -c 'ENV HOME=/home/rexec' -c 'USER rexec' -c 'WORKDIR /home/rexec' \
    -c 'CMD ["/bin/sh"]' - "$name" >/dev/null
  rm -rf "$root"
  echo "$name"
}

# The Debian image's recipe, as a label on the image: an image made by an older recipe
# (a machine that kept it) is made again. Bump it with any change below.
DEBIAN_RECIPE=2  # 2: openssh-sftp-server, for sftp and scp through the gateway

debian_image() {
  local name=rexec/debian:12 root
  if [ "$(docker image inspect -f '{{ index .Config.Labels "rexec.recipe" }}' "$name" 2>/dev/null)" \
    = "$DEBIAN_RECIPE" ]; then
    echo "$name"
    return
  fi
  apt_install debootstrap
  root=$(mktemp -d)
  say "debootstrap bookworm (about a minute, once)"
  debootstrap --variant=minbase \
    --include=python3,python3-venv,ca-certificates,curl,procps,less,openssh-sftp-server \
    bookworm "$root" >/dev/null
  chroot "$root" useradd --create-home --uid 1000 --shell /bin/bash rexec
  say "importing $name"
  tar -C "$root" --one-file-system --numeric-owner -c . | docker import \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'ENV LANG=C.UTF-8' -c 'USER rexec' -c 'WORKDIR /home/rexec' \
    -c "LABEL rexec.recipe=$DEBIAN_RECIPE" -c 'CMD ["/bin/bash"]' - "$name" >/dev/null
  rm -rf "$root"
  echo "$name"
}

case "${1:-busybox}" in
  busybox) busybox_image ;;
  debian) debian_image ;;
  *) echo "usage: $0 busybox|debian" >&2; exit 2 ;;
esac
