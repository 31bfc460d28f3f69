#!/usr/bin/env bash
# A small virtual machine for what this machine's own kernel cannot do, such as kernel TLS (kTLS):
# it boots Debian's stock kernel with THIS machine's root filesystem shared read-only, so the guest
# runs the very same binaries (build/edgecert, python3, openssl, curl, ...). docs/vm.md.
#
#   scripts/vm.sh setup         install qemu + busybox-static if missing, fetch Debian's kernel
#                               package into the cache (not into /boot), build the initramfs
#   scripts/vm.sh run [--cpus N] [--mem MIB] [--share DIR]... [--env NAME]... [--modules M,M]
#                     [--times] -- CMD [ARGS...]
#                               boot, run CMD as root in the caller's working directory with the
#                               caller's PATH, HOME, LANG/LC_*, TZ, EDGECERT_* and PYTHON*
#                               variables (plus each --env NAME) and stdin from /dev/null, copy
#                               its stdout and stderr to ours, power off; the exit status is CMD's
#   scripts/vm.sh check         boot and verify the kernel, kTLS (TCP_ULP "tls" + TLS_TX on a
#                               connected loopback socket) and that build/edgecert ($EDGECERT_BIN)
#                               runs; prints the boot time
#
# In the guest: / is the host's root, read-only (9p); /proc /sys /dev /dev/pts /dev/shm are fresh,
# /tmp /var/tmp /run are empty tmpfs (the host's /tmp is NOT visible); `lo` is up and there is no
# other network. Each --share DIR (default: a fresh temporary directory) is mounted read-write at
# the same path; the first is $EDGECERT_VM_OUT in CMD's environment (EDGECERT_IN_VM=1 too).
# Modules load on demand from the cached kernel (busybox modprobe); tls and aesni_intel are
# loaded at boot, --modules loads more before CMD. --cpus defaults to 2 with KVM, 1 emulated.
#
# EDGECERT_VM_ACCEL: kvm (default) needs a /dev/kvm that boots a stock kernel, else exits 77 with
# one line "no usable /dev/kvm: ..." (tests skip on it); tcg emulates (slow, but kTLS works);
# auto is KVM when usable, else TCG.
# Exit status: CMD's; 125 when the guest did not run CMD to the end (its console log is printed).
# EDGECERT_VM_DIR (default build-vm/) caches the kernel and initramfs; EDGECERT_VM_KERNEL names
# the kernel metapackage (default linux-image-amd64: the cloud flavour lacks 9p);
# EDGECERT_VM_DEBUG=1 keeps the kernel's boot messages and init's timings and prints them.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VM_DIR=${EDGECERT_VM_DIR:-$ROOT/build-vm}
KERNEL_META=${EDGECERT_VM_KERNEL:-linux-image-amd64}
QEMU=qemu-system-x86_64
# Loaded by the initramfs, in dependency order: virtio PCI + 9p to mount the root, virtio-serial
# for CMD's output, then kTLS and the AES-NI AEAD it uses (gcm(aes) from aesni_intel).
BOOT_MODULES=(virtio_pci 9pnet_virtio 9p virtio_console tls aesni_intel)
# 9p transfer size: fewer round trips per read of a binary or a library.
MSIZE=512000
ACCEL="" # kvm or tcg, from choose_accel

die() {
  echo "vm: $*" >&2
  exit 1
}

kvm_problem() { # prints why /dev/kvm cannot boot a stock kernel; status 0 when it can
  if [ ! -e /dev/kvm ]; then
    echo "it does not exist (no KVM on this machine)"
  elif [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
    echo "$(id -un) cannot open it read-write"
  elif [ -d /sys/module/kvm_pvm ] && [ ! -d /sys/module/kvm_intel ] && [ ! -d /sys/module/kvm_amd ]; then
    # PVM (pagetable-based KVM, no VT-x/AMD-V): only a kernel built as a PVM guest boots on it;
    # Debian's stops right after the real-mode setup code.
    echo "it is kvm_pvm, which boots only PVM guest kernels, not Debian's"
  elif [ -x /usr/bin/python3 ] && ! /usr/bin/python3 -c '
import fcntl, os, sys
fd = os.open("/dev/kvm", os.O_RDWR)
sys.exit(0 if fcntl.ioctl(fd, 0xAE00) == 12 else 1)  # KVM_GET_API_VERSION
' 2>/dev/null; then
    echo "KVM_GET_API_VERSION did not answer 12"
  else
    return 0
  fi
  return 1
}

# Sets ACCEL (kvm or tcg) from EDGECERT_VM_ACCEL: kvm (default) exits 77 when KVM cannot be used;
# tcg always emulates; auto uses KVM when it can and TCG otherwise.
choose_accel() {
  [ -z "${ACCEL:-}" ] || return 0
  local why=""
  case ${EDGECERT_VM_ACCEL:-kvm} in
    tcg) ACCEL=tcg ;;
    kvm | auto)
      if why=$(kvm_problem); then
        ACCEL=kvm
      elif [ "${EDGECERT_VM_ACCEL:-kvm}" = auto ]; then
        ACCEL=tcg
        echo "vm: no usable /dev/kvm ($why): emulating with TCG (slow)" >&2
      else
        echo "no usable /dev/kvm: $why"
        exit 77
      fi
      ;;
    *) die "EDGECERT_VM_ACCEL must be kvm, tcg or auto" ;;
  esac
}

# --- setup -----------------------------------------------------------------------------------

install_packages() { # same pattern as scripts/setup.sh (which lists these packages too)
  local missing=() p
  for p in qemu-system-x86 busybox-static; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "vm: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

kernel_package() { # the concrete linux-image-<abi>-<flavour> the metapackage depends on
  apt-cache depends "$KERNEL_META" 2>/dev/null |
    awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }'
}

# Prints the modules a module needs, then the module itself, each once (modules.dep lists a
# module's dependencies unordered; insmod needs them first). $1: kernel module dir, rest: names.
declare -A MOD_PATH=() MOD_DEPS=() MOD_DONE=()
module_order() {
  local kdir=$1 line name
  shift
  if [ ${#MOD_PATH[@]} -eq 0 ]; then
    while IFS= read -r line; do
      name=${line%%:*}
      name=${name##*/}
      name=${name%.ko}
      name=${name//-/_}
      MOD_PATH[$name]=${line%%:*}
      MOD_DEPS[$name]=${line#*:}
    done <"$kdir/modules.dep"
  fi
  local m d
  for m in "$@"; do
    m=${m//-/_}
    [ -n "${MOD_DONE[$m]:-}" ] && continue
    [ -n "${MOD_PATH[$m]:-}" ] || die "module $m is not in $kdir (built in, or misspelt?)"
    for d in ${MOD_DEPS[$m]}; do
      d=${d##*/}
      module_order "$kdir" "${d%.ko}"
    done
    MOD_DONE[$m]=1
    echo "${MOD_PATH[$m]}"
  done
}

# The initramfs's /init (busybox sh). It mounts the host root and the shares, runs the job
# chrooted into the host root, records its status, and powers off. What it reads per run is in
# the job share's "config" (written by vm_run).
write_init() {
  cat <<'EOF'
#!/bin/sh
PATH=/bin
export PATH
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
fail() {
  echo "vm-init: $*"
  poweroff -f
}
step() { # with EDGECERT_VM_DEBUG: where the boot time goes
  case " $(cat /proc/cmdline) " in *" edgecert.debug "*) echo "vm-init: $(cut -d' ' -f1 /proc/uptime) s $*" ;; esac
}
step "init started"
while read -r m; do
  insmod "/lib/modules/$m" || fail "insmod $m failed"
  step "loaded ${m##*/}"
done </modules.order
step "modules loaded"
R=/newroot
NINEP=trans=virtio,version=9p2000.L,msize=$(cat /msize)
# The host root changes little while a guest lives: cache its metadata and pages.
mount -t 9p -o "$NINEP,ro,cache=loose" hostroot $R || fail "cannot mount the host root"
mount -t proc proc $R/proc
mount -t sysfs sysfs $R/sys
mount -t cgroup2 cgroup2 $R/sys/fs/cgroup 2>/dev/null
mount -t devtmpfs devtmpfs $R/dev
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts $R/dev/pts
mount -t tmpfs -o mode=1777 tmpfs $R/dev/shm
ln -sf /proc/self/fd $R/dev/fd
ln -sf /proc/self/fd/0 $R/dev/stdin
ln -sf /proc/self/fd/1 $R/dev/stdout
ln -sf /proc/self/fd/2 $R/dev/stderr
mount -t tmpfs -o mode=1777 tmpfs $R/tmp
mount -t tmpfs -o mode=1777 tmpfs $R/var/tmp
mount -t tmpfs -o mode=0755 tmpfs $R/run
J=/run/edgecert-vm
mkdir -p $R$J
mount -t 9p -o "$NINEP" job $R$J || fail "cannot mount the job directory"
while read -r key value; do
  case $key in
    share)  # "share TAG PATH": read-write, at the same path as on the host
      tag=${value%% *} path=${value#* }
      mkdir -p "$R$path" && mount -t 9p -o "$NINEP" "$tag" "$R$path" || fail "cannot mount $path"
      ;;
    kmod)  # the cached kernel's module tree: on-demand loading (request_module) and --modules
      mkdir -p /lib/modules/$(uname -r)
      mount --bind "$R$value" /lib/modules/$(uname -r) || fail "cannot bind $value"
      echo /bin/modprobe >/proc/sys/kernel/modprobe
      ;;
    load) modprobe "$value" || fail "modprobe $value failed" ;;
  esac
done <$R$J/config
step "file systems mounted"
ip link set lo up
hostname edgecert-vm
port() { # the virtio-serial port the host named $1
  for p in /sys/class/virtio-ports/*; do
    [ "$(cat "$p/name" 2>/dev/null)" = "$1" ] && [ -e "/dev/${p##*/}" ] && echo "/dev/${p##*/}" && return 0
  done
  return 1
}
# Ports appear when the host's control messages arrive, shortly after the driver loads.
i=0
until out=$(port stdout) && err=$(port stderr) && ctl=$(port control); do
  i=$((i + 1))
  [ $i -lt 500 ] || fail "virtio-serial ports stdout/stderr/control did not appear"
  usleep 10000
done
step "running the command"
# The host stamps these lines as they arrive (the guest's clock is only as good as its RTC).
echo start >"$ctl"
chroot $R /bin/bash $J/job.sh </dev/null >"$out" 2>"$err"
echo "status $?" >"$ctl"
step "command done"
sync
poweroff -f
EOF
}

build_initrd() { # $1: extracted kernel dir, $2: output
  local kroot=$1 out=$2 kver kdir stage a m
  kver=$(basename "$kroot"/lib/modules/*)
  kdir=$kroot/lib/modules/$kver
  stage=$(mktemp -d "$VM_DIR/initrd.XXXXXX")
  mkdir -p "$stage"/{bin,dev,proc,sys,newroot,lib/modules}
  cp /bin/busybox "$stage/bin/busybox"
  for a in $(/bin/busybox --list); do
    [ "$a" = busybox ] || ln -s busybox "$stage/bin/$a"
  done
  module_order "$kdir" "${BOOT_MODULES[@]}" >"$stage/modules.order"
  while read -r m; do
    mkdir -p "$stage/lib/modules/$(dirname "$m")"
    cp "$kdir/$m" "$stage/lib/modules/$m"
  done <"$stage/modules.order"
  echo "$MSIZE" >"$stage/msize"
  write_init >"$stage/init"
  chmod 755 "$stage/init"
  (cd "$stage" && find . | /bin/busybox cpio -o -H newc 2>/dev/null) | gzip -1 >"$out.tmp"
  mv "$out.tmp" "$out"
  rm -rf "$stage"
}

# The uncompressed kernel inside Debian's bzImage (xz, as scripts/extract-vmlinux finds it). qemu
# boots this ELF through its PVH entry: no real-mode setup and no in-guest decompression, which
# costs seconds when the guest is emulated. Without it (another compression) the bzImage boots.
extract_vmlinux() {
  local off
  off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$1" | head -1 | cut -d: -f1) || return 0
  [ -n "$off" ] || return 0
  # xz complains about the bytes after the stream and exits 1; the ELF magic tells success.
  tail -c +$((off + 1)) "$1" | xz -dc >"$2.tmp" 2>/dev/null || true
  if [ "$(head -c 4 "$2.tmp" | od -An -tx1 | tr -d ' ')" = 7f454c46 ]; then
    mv "$2.tmp" "$2"
  else
    rm -f "$2.tmp"
  fi
}

# What the cached initramfs was built from: rebuilt when this script's init or module list changes.
initrd_stamp() {
  { write_init; echo "${BOOT_MODULES[*]} $MSIZE"; } | sha256sum | cut -d' ' -f1
}

cmd_setup() {
  install_packages
  mkdir -p "$VM_DIR"
  exec 9>"$VM_DIR/.lock"
  flock 9
  local pkg ver name
  pkg=$(kernel_package)
  if [ -z "$pkg" ]; then
    apt-get update -qq
    pkg=$(kernel_package)
  fi
  if [ -z "$pkg" ]; then
    [ -e "$VM_DIR/current" ] || die "cannot resolve $KERNEL_META to a kernel package"
    echo "vm: cannot resolve $KERNEL_META; keeping the cached $(readlink "$VM_DIR/current")" >&2
  else
    ver=$(apt-cache show --no-all-versions "$pkg" | awk '$1 == "Version:" { print $2; exit }')
    name=${pkg}_$ver
    if [ ! -e "$VM_DIR/$name/.extracted" ]; then
      echo "vm: fetching $name" >&2
      rm -rf "${VM_DIR:?}/$name" "$VM_DIR/dl"
      mkdir -p "$VM_DIR/dl"
      (cd "$VM_DIR/dl" && apt-get download -qq -o APT::Sandbox::User=root "$pkg=$ver")
      dpkg-deb -x "$VM_DIR"/dl/*.deb "$VM_DIR/$name"
      rm -rf "$VM_DIR/dl"
      local kver kdir
      kver=$(basename "$VM_DIR/$name"/lib/modules/*)
      kdir=$VM_DIR/$name/lib/modules/$kver
      # Hardware drivers and sound are no use in this guest: keep the tree small (~100 MB, not 400).
      find "$kdir/kernel/drivers" -mindepth 1 -maxdepth 1 -type d \
        ! -name virtio ! -name char ! -name net ! -name block ! -name ptp -exec rm -rf {} +
      rm -rf "$kdir/kernel/sound" "$kdir"/kernel/drivers/net/{wireless,ethernet,usb,can,wwan}
      /bin/busybox depmod -b "$VM_DIR/$name" "$kver"
      grep -q '^CONFIG_TLS=[ym]' "$VM_DIR/$name/boot/config-$kver" || die "$pkg has no CONFIG_TLS"
      grep -q '^CONFIG_9P_FS=[ym]' "$VM_DIR/$name/boot/config-$kver" || die "$pkg has no 9p"
      extract_vmlinux "$VM_DIR/$name/boot/vmlinuz-$kver" "$VM_DIR/$name/vmlinux"
      touch "$VM_DIR/$name/.extracted"
    fi
    ln -sfn "$name" "$VM_DIR/current"
  fi
  local stamp
  stamp=$(initrd_stamp)
  if [ "$(cat "$VM_DIR/current/.initrd-stamp" 2>/dev/null)" != "$stamp" ]; then
    build_initrd "$VM_DIR/current/" "$VM_DIR/current/initrd.gz"
    echo "$stamp" >"$VM_DIR/current/.initrd-stamp"
  fi
  flock -u 9
}

setup_ready() {
  [ -e "$VM_DIR/current/initrd.gz" ] && command -v "$QEMU" >/dev/null &&
    [ "$(cat "$VM_DIR/current/.initrd-stamp" 2>/dev/null)" = "$(initrd_stamp)" ]
}

# --- run -------------------------------------------------------------------------------------


# Whether the guest sees host path $1: not under the guest's own tmpfs mounts unless inside one of
# the shares $2...
visible() {
  local p=$1/ s
  shift
  for s in "$@"; do
    case $p in "$s"/*) return 0 ;; esac
  done
  case $p in /tmp/* | /var/tmp/* | /run/* | /dev/shm/*) return 1 ;; esac
}

qemu_path() { echo "${1//,/,,}"; } # qemu option values double their commas

# Boots the guest for one command. Sets RUN (the job directory, removed by the caller) and
# VM_STATUS. Options as documented at the top.
vm_run() {
  local cpus="" mem=2048 shares=() envs=() modules="" times=""
  while [ $# -gt 0 ]; do
    case $1 in
      --cpus) cpus=$2; shift 2 ;;
      --mem) mem=$2; shift 2 ;;
      --share)
        [ -d "$2" ] || die "--share $2: no such directory"
        shares+=("$(cd "$2" && pwd)")
        shift 2
        ;;
      --env) envs+=("$2"); shift 2 ;;
      --modules) modules=$2; shift 2 ;;
      --times) times=1; shift ;;
      --) shift; break ;;
      *) die "unknown option $1 (scripts/vm.sh run [options] -- CMD [ARGS...])" ;;
    esac
  done
  [ $# -gt 0 ] || die "no command (scripts/vm.sh run [options] -- CMD [ARGS...])"
  choose_accel
  T0=$EPOCHREALTIME
  setup_ready || cmd_setup >&2
  local kroot kver
  kroot=$(cd "$VM_DIR/current" && pwd -P)
  kver=$(basename "$kroot"/lib/modules/*)
  local s
  for s in "${shares[@]}"; do
    [[ $s != *$'\n'* ]] || die "a share path must not contain a newline"
  done
  visible "$PWD" "${shares[@]}" || die "the working directory $PWD is not visible in the guest (the host's /tmp, /var/tmp, /run and /dev/shm are not shared): cd elsewhere or --share it"
  if [ ${#shares[@]} -eq 0 ]; then
    shares=("$(mktemp -d "${TMPDIR:-/tmp}/edgecert-vm-out.XXXXXX")")
    DEFAULT_OUT=${shares[0]}
  fi
  local out=${shares[0]}
  # The module tree must be reachable for on-demand loading.
  visible "$kroot" "${shares[@]}" || shares+=("$kroot")
  # Mounted parents first, so that a share inside another stays visible.
  mapfile -t shares < <(printf '%s\n' "${shares[@]}" | sort -u | awk '{ print length($0) "\t" $0 }' | sort -n | cut -f2-)
  RUN=$(mktemp -d "${TMPDIR:-/tmp}/edgecert-vm-run.XXXXXX")
  trap remove_run EXIT
  mkdir "$RUN/job"
  local i=0 name
  {
    for s in "${shares[@]}"; do
      echo "share share$i $s"
      i=$((i + 1))
    done
    echo "kmod $kroot/lib/modules/$kver"
    for s in ${modules//,/ }; do echo "load $s"; done
  } >"$RUN/job/config"
  {
    echo "# generated by scripts/vm.sh: CMD's environment, directory and command"
    for name in $(compgen -e); do
      case $name in
        PATH | HOME | USER | LOGNAME | LANG | LANGUAGE | LC_* | TZ | TERM | EDGECERT_* | PYTHON*) ;;
        *) [[ " ${envs[*]} " == *" $name "* ]] || continue ;;
      esac
      printf 'export %s=%q\n' "$name" "${!name}"
    done
    printf 'export EDGECERT_VM_OUT=%q EDGECERT_IN_VM=1\n' "$out"
    printf 'ulimit -Hn %s; ulimit -Sn %s\n' "$(ulimit -Hn)" "$(ulimit -Sn)"
    printf 'cd %q || { echo "vm: the working directory %q is not visible in the guest (the host /tmp is not shared: use --share)" >&2; exit 125; }\n' "$PWD" "$PWD"
    printf 'exec'
    printf ' %q' "$@"
    echo
  } >"$RUN/job/job.sh"

  # Emulated, a second vCPU costs more than it gives (boot and TLB flushes across vCPUs) on a
  # small host: one unless asked.
  if [ -z "$cpus" ]; then
    if [ "$ACCEL" = kvm ]; then cpus=2; else cpus=1; fi
  fi
  local kernel=$kroot/vmlinux
  [ -e "$kernel" ] || kernel=$kroot/boot/vmlinuz-$kver
  # cryptomgr.notests: no self-test of every cipher at boot and at each crypto module load (most
  # of aesni_intel's load time); the guest tests our use of kTLS, not the kernel's ciphers.
  local append="console=ttyS0 panic=-1 cryptomgr.notests"
  if [ -n "${EDGECERT_VM_DEBUG:-}" ]; then append+=" edgecert.debug"; else append+=" quiet loglevel=0"; fi
  # shellcheck disable=SC2054 # qemu's options are comma-separated
  local args=(
    -smp "$cpus" -m "$mem" -M q35
    -nodefaults -no-user-config -display none -no-reboot -nic none
    -kernel "$kernel" -initrd "$kroot/initrd.gz"
    -chardev "file,id=console,path=$(qemu_path "$RUN/console.log")" -serial chardev:console
    -fsdev "local,id=hostroot,path=/,security_model=passthrough,readonly=on,multidevs=remap"
    -device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot
    -fsdev "local,id=job,path=$(qemu_path "$RUN/job"),security_model=passthrough"
    -device virtio-9p-pci,fsdev=job,mount_tag=job
    # CMD's stdout and stderr, through FIFOs that cat copies to ours (qemu opening our fds by
    # /proc/self/fd/N would write at its own offset of a file and overwrite what we print).
    -device virtio-serial-pci,id=vs
    -chardev "file,id=stdout,path=$(qemu_path "$RUN/stdout")" -device virtserialport,bus=vs.0,chardev=stdout,name=stdout
    -chardev "file,id=stderr,path=$(qemu_path "$RUN/stderr")" -device virtserialport,bus=vs.0,chardev=stderr,name=stderr
    -chardev "file,id=control,path=$(qemu_path "$RUN/control")" -device virtserialport,bus=vs.0,chardev=control,name=control
  )
  i=0
  for s in "${shares[@]}"; do
    args+=(-fsdev "local,id=share$i,path=$(qemu_path "$s"),security_model=passthrough,multidevs=remap"
      -device "virtio-9p-pci,fsdev=share$i,mount_tag=share$i")
    i=$((i + 1))
  done
  if [ "$ACCEL" = kvm ]; then
    args+=(-accel kvm -cpu host)
  else
    # Emulation: 4-level paging (la57 costs every emulated page walk); a preset delay-loop value
    # instead of a second of calibration (udelay uses the TSC anyway).
    # shellcheck disable=SC2054
    args+=(-accel tcg,thread=multi -cpu max,-la57)
    append+=" lpj=4000000"
  fi
  args+=(-append "$append")
  mkfifo "$RUN/stdout" "$RUN/stderr" "$RUN/control"
  cat "$RUN/stdout" &
  local cat_out=$!
  cat "$RUN/stderr" >&2 &
  local cat_err=$!
  local line
  while IFS= read -r line; do echo "$EPOCHREALTIME $line"; done <"$RUN/control" >"$RUN/control.log" &
  local ctl_reader=$!
  T_QEMU=$EPOCHREALTIME
  "$QEMU" "${args[@]}" >"$RUN/qemu.log" 2>&1 </dev/null &
  QEMU_PID=$!
  trap 'kill "$QEMU_PID" 2>/dev/null || true; wait "$QEMU_PID" || true; QEMU_PID=""; release_fifos; exit 143' INT TERM
  local qrc=0
  wait "$QEMU_PID" || qrc=$?
  QEMU_PID=""
  trap - INT TERM
  release_fifos
  wait "$cat_out" "$cat_err" "$ctl_reader" || true
  T_END=$EPOCHREALTIME
  VM_STATUS=$(awk '$2 == "status" { print $3 }' "$RUN/control.log")
  T_START=$(awk '$2 == "start" { print $1 }' "$RUN/control.log")
  if [ -z "$VM_STATUS" ]; then
    VM_STATUS=125
    {
      echo "vm: the guest did not run the command to the end (qemu exit $qrc)"
      sed 's/^/vm: qemu: /' "$RUN/qemu.log"
      sed 's/^/vm: console: /' "$RUN/console.log" 2>/dev/null | tail -40
    } >&2
  fi
  [ -z "${EDGECERT_VM_DEBUG:-}" ] || sed 's/^/vm: console: /' "$RUN/console.log" >&2
  if [ -n "$times" ]; then print_times >&2; fi
}

remove_run() { # the job directory, and the default output directory if CMD left nothing there
  if [ -n "${QEMU_PID:-}" ]; then
    kill "$QEMU_PID" 2>/dev/null || true
    wait "$QEMU_PID" 2>/dev/null || true
  fi
  rm -rf "$RUN"
  if [ -n "${DEFAULT_OUT:-}" ]; then
    rmdir "$DEFAULT_OUT" 2>/dev/null || echo "vm: outputs in $DEFAULT_OUT" >&2
  fi
}

release_fifos() { # a cat still waiting for qemu to open its FIFO gets a writer, then EOF
  local f
  for f in "$RUN/stdout" "$RUN/stderr" "$RUN/control"; do
    exec 5<>"$f"
    exec 5>&-
  done
}

print_times() {
  awk -v t0="$T0" -v tq="$T_QEMU" -v ts="$T_START" -v te="$T_END" 'BEGIN {
    if (ts != "") printf "vm: boot %.2f s (qemu start to the guest starting CMD; %.2f s from vm.sh start), CMD + poweroff %.2f s, total %.2f s\n", ts - tq, ts - t0, te - ts, te - t0
    else printf "vm: total %.2f s (CMD did not start)\n", te - t0
  }'
}

cmd_run() {
  vm_run "$@"
  exit "$VM_STATUS"
}

# --- check -----------------------------------------------------------------------------------

# Runs inside the guest (vm.sh check boots the guest with this). $1: the expected kernel release.
guest_check() {
  local want=$1 ok=1 bin=${EDGECERT_BIN:-$ROOT/build/edgecert}
  local got
  got=$(uname -r)
  if [ "$got" = "$want" ]; then echo "PASS kernel $got"; else echo "FAIL kernel $got, expected $want"; ok=0; fi
  if grep -qw tls /proc/sys/net/ipv4/tcp_available_ulp; then
    echo "PASS tcp_available_ulp: $(cat /proc/sys/net/ipv4/tcp_available_ulp)"
  else
    echo "FAIL tcp_available_ulp lacks tls: $(cat /proc/sys/net/ipv4/tcp_available_ulp)"
    ok=0
  fi
  # TCP_ULP needs an established socket; TLS_TX then installs an AES-128-GCM key (a dummy one:
  # no record is sent) the way a terminator hands a TLS 1.2 session to the kernel.
  if /usr/bin/python3 - <<'EOF'; then :; else ok=0; fi
import socket, struct
TCP_ULP, SOL_TLS, TLS_TX = 31, 282, 1
TLS_1_2_VERSION, TLS_CIPHER_AES_GCM_128 = 0x0303, 51
srv = socket.create_server(("127.0.0.1", 0))
cli = socket.create_connection(srv.getsockname())
acc, _ = srv.accept()
try:
    cli.setsockopt(socket.IPPROTO_TCP, TCP_ULP, b"tls")
    print("PASS setsockopt(TCP_ULP, tls) on a connected loopback socket")
except OSError as e:
    print(f"FAIL setsockopt(TCP_ULP, tls): {e}")
    raise SystemExit(1)
info = struct.pack("<HH8s16s4s8s", TLS_1_2_VERSION, TLS_CIPHER_AES_GCM_128,
                   bytes(8), bytes(16), bytes(4), bytes(8))
try:
    cli.setsockopt(SOL_TLS, TLS_TX, info)
    print("PASS setsockopt(SOL_TLS, TLS_TX, AES-128-GCM)")
except OSError as e:
    print(f"FAIL setsockopt(SOL_TLS, TLS_TX): {e}")
    raise SystemExit(1)
EOF
  local gcm
  gcm=$(awk '/^name/ { n = $3 } /^driver/ && n == "gcm(aes)" { print $3; exit }' /proc/crypto)
  echo "INFO gcm(aes) driver: ${gcm:-none}"
  local ver
  if ver=$("$bin" --version 2>&1); then echo "PASS $bin --version: $ver"; else echo "FAIL $bin --version: $ver"; ok=0; fi
  [ $ok = 1 ]
}

cmd_check() {
  choose_accel
  setup_ready || cmd_setup >&2
  local kver bin=${EDGECERT_BIN:-$ROOT/build/edgecert} opts=()
  kver=$(basename "$VM_DIR"/current/lib/modules/*)
  echo "vm: kernel package $(readlink "$VM_DIR/current"), release $kver, accelerator $ACCEL"
  # A checkout or build under /tmp (a CI clone, say) is shared so the guest sees it.
  visible "$ROOT" || opts+=(--share "$ROOT")
  visible "$(dirname "$bin")" || opts+=(--share "$(dirname "$bin")")
  cd "$ROOT"
  vm_run "${opts[@]}" -- /bin/bash "$ROOT/scripts/vm.sh" __guest-check "$kver"
  print_times
  if [ "$VM_STATUS" = 0 ]; then echo "vm: check passed"; else echo "vm: check FAILED (status $VM_STATUS)"; fi
  exit "$VM_STATUS"
}

case ${1:-} in
  setup) cmd_setup ;;
  run) shift; cmd_run "$@" ;;
  check) cmd_check ;;
  __guest-check) guest_check "$2" ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
