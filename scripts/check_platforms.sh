#!/usr/bin/env bash
# Builds and tests scalevec on each supported platform, each in a fresh Debian root made with
# debootstrap, from a clean copy of this checkout (tracked and untracked-but-not-ignored files, so
# no build folder), through the README's test command (`bash scripts/test.sh [--cuda]`).
#
# usage: bash scripts/check_platforms.sh [debian12|debian13|debian13-cuda|all ...]   (as root)
#   debian12       Debian 12, LibTorch 1.13.1 CPU
#   debian13       Debian 13, LibTorch 2.6 CPU
#   debian13-cuda  Debian 13, LibTorch 2.6 + CUDA 12.4 + NCCL: full build (kernels for sm_80 and
#                  sm_90, NCCL backend) and the test suite, whose GPU tests skip on a machine without one
#
# Environment:
#   SCALEVEC_PLATFORM_CACHE  cache folder (default /var/cache/scalevec/platforms): base roots as
#                            <suite>-base.tar.zst and downloaded packages in apt-<suite>/, so a second
#                            run spends its time compiling, not downloading. Delete it to start over.
#   SCALEVEC_PLATFORM_WORK   where the roots are unpacked (default /var/tmp/scalevec-platforms);
#                            each root is deleted after its run unless SCALEVEC_KEEP_ROOTS=1.
#   SCALEVEC_DEBIAN_MIRROR   Debian mirror URL; default: the first non-snapshot Debian URI in this
#                            machine's apt sources.
#   SCALEVEC_CUDNN_DIR       folder holding libcudnn.so.9 for debian13-cuda (default: found under
#                            /usr/local/cuda*/lib64); without one, nvidia-cudnn downloads cuDNN.
#   SCALEVEC_GOLDEN_WRITE=1  regenerate each platform's golden loss curves (tests/golden/<platform>/)
#                            and copy them back into this checkout (scripts/regenerate_golden.sh)
# Logs: <work>/<platform>.log. Exit status: 0 when every platform built and passed its tests.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cache="${SCALEVEC_PLATFORM_CACHE:-/var/cache/scalevec/platforms}"
work="${SCALEVEC_PLATFORM_WORK:-/var/tmp/scalevec-platforms}"

platforms=()
for arg in "${@:-all}"; do
  case "$arg" in
    all) platforms+=(debian12 debian13 debian13-cuda) ;;
    debian12 | debian13 | debian13-cuda) platforms+=("$arg") ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "check_platforms: unknown platform '$arg' (debian12, debian13, debian13-cuda, all)" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "check_platforms: run as root (debootstrap, chroot, mount)" >&2; exit 2; }

need_tools=()
command -v debootstrap >/dev/null || need_tools+=(debootstrap)
command -v zstd >/dev/null || need_tools+=(zstd)
if [ ${#need_tools[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || { echo "check_platforms: install ${need_tools[*]}" >&2; exit 2; }
  echo "check_platforms: installing ${need_tools[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_tools[@]}" >/dev/null
fi

# The mirror from apt's own sources (deb822 URIs: lines, or one-line `deb URL suite`), skipping
# snapshot and security archives, so no host name is written in this repository.
debian_mirror() {
  if [ -n "${SCALEVEC_DEBIAN_MIRROR:-}" ]; then
    echo "$SCALEVEC_DEBIAN_MIRROR"
    return
  fi
  local uri
  uri=$({ grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | tr ' ' '\n' | grep -v '^URIs:'
          grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list | awk '{print $2}'; } |
        grep -E '^https?://' | grep -v snapshot | grep -E '/debian/?$' | sed -n 1p)
  [ -n "$uri" ] || { echo "check_platforms: no Debian mirror in apt's sources; set SCALEVEC_DEBIAN_MIRROR" >&2; exit 2; }
  echo "${uri%/}"
}

suite_of() { case "$1" in debian12) echo bookworm ;; *) echo trixie ;; esac; }

# <cache>/<suite>-base.tar.zst: a minbase root with every component enabled (CUDA is in contrib
# and non-free), made once.
ensure_base() {
  local suite="$1" tarball="$cache/$1-base.tar.zst"
  [ -s "$tarball" ] && return
  local mirror tmp
  mirror=$(debian_mirror)
  tmp="$work/debootstrap-$suite"
  rm -rf "$tmp"
  echo "check_platforms: debootstrap $suite from $mirror"
  debootstrap --variant=minbase --components=main,contrib,non-free,non-free-firmware \
    "$suite" "$tmp" "$mirror" >"$work/debootstrap-$suite.log" 2>&1 ||
    { tail -n 20 "$work/debootstrap-$suite.log" >&2; exit 1; }
  echo "deb $mirror $suite main contrib non-free non-free-firmware" >"$tmp/etc/apt/sources.list"
  tar -C "$tmp" --zstd -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
  rm -rf "$tmp"
}

root=""
unmount_root() {
  [ -n "$root" ] || return 0
  local m
  # Deepest first; lazy, so a process still holding a file cannot keep the root mounted.
  for m in $(awk -v r="$root" 'index($2, r) == 1 {print $2}' /proc/self/mounts | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
}
cleanup() {
  unmount_root
  if [ -n "$root" ] && [ "${SCALEVEC_KEEP_ROOTS:-0}" != 1 ]; then rm -rf --one-file-system "$root"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Runs one platform; prints its summary line and returns non-zero when it failed.
check_platform() {
  local platform="$1" suite flag="" log
  suite=$(suite_of "$platform")
  [ "$platform" = debian13-cuda ] && flag="--cuda"
  log="$work/$platform.log"
  ensure_base "$suite"
  root="$work/$platform"
  unmount_root
  rm -rf --one-file-system "$root"
  mkdir -p "$root" "$cache/apt-$suite"
  tar -C "$root" --zstd -xf "$cache/$suite-base.tar.zst"

  mount -t proc proc "$root/proc"
  mount --rbind /sys "$root/sys" && mount --make-rslave "$root/sys"
  mount --rbind /dev "$root/dev" && mount --make-rslave "$root/dev"
  mount --bind "$cache/apt-$suite" "$root/var/cache/apt/archives"
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  cp /etc/hosts "$root/etc/hosts"

  local env=(HOME=/root LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin)
  [ "${SCALEVEC_GOLDEN_WRITE:-0}" = 1 ] && env+=(SCALEVEC_GOLDEN_WRITE=1)
  if [ -n "$flag" ]; then
    local cudnn="${SCALEVEC_CUDNN_DIR:-}" d
    if [ -z "$cudnn" ]; then
      for d in /usr/local/cuda*/lib64; do [ -e "$d/libcudnn.so.9" ] && { cudnn="$d"; break; }; done
    fi
    if [ -n "$cudnn" ]; then
      # Only the loader library: libtorch_cuda.so names it; it opens its sub-libraries lazily.
      mkdir -p "$root/opt/cudnn"
      cp -L "$cudnn/libcudnn.so.9" "$root/opt/cudnn/"
      env+=(SCALEVEC_CUDNN_DIR=/opt/cudnn)
    fi
  fi

  # A clean copy of the checkout: what `git clone` of this state would give, without build folders.
  mkdir -p "$root/root/scalevec"
  (cd "$repo" && git ls-files -co --exclude-standard -z | tar --null -T - -cf -) |
    tar -C "$root/root/scalevec" -xf -

  local start status=0 elapsed
  start=$(date +%s)
  echo "check_platforms: $platform: bash scripts/test.sh $flag (log: $log)"
  chroot "$root" /usr/bin/env -i "${env[@]}" bash -c "cd /root/scalevec && bash scripts/test.sh $flag" \
    >"$log" 2>&1 || status=$?
  elapsed=$(($(date +%s) - start))
  if [ "${SCALEVEC_GOLDEN_WRITE:-0}" = 1 ] && [ -d "$root/root/scalevec/tests/golden" ]; then
    cp -r "$root/root/scalevec/tests/golden/." "$repo/tests/golden/"
    echo "check_platforms: $platform: golden curves copied back to tests/golden (git status tests/golden)"
  fi

  local build_s tests_line skipped artifacts="" build_dir="$root/root/scalevec/build"
  [ -n "$flag" ] && build_dir="$root/root/scalevec/build-cuda"
  build_s=$(sed -n 's/^setup: built .* in \([0-9]*\) s$/\1/p' "$log" | tail -n 1)
  tests_line=$(grep -E '^[0-9]+% tests passed' "$log" | tail -n 1 || true)
  skipped=$(skipped_tests "$build_dir/Testing/Temporary/LastTest.log")
  if [ -n "$skipped" ]; then
    echo "$platform: skipped tests and why:" >>"$work/skipped.txt"
    sed 's/^/  /' <<<"$skipped" >>"$work/skipped.txt"
    # The data-parallel tests must run everywhere: a build without Gloo would skip them.
    if grep -qE '^(DistGloo|DistStore|DdpTrainer|DdpSignals)\.' <<<"$skipped"; then
      echo "check_platforms: $platform skipped data-parallel tests (no Gloo backend?)" >>"$log"
      status=1
    fi
  fi
  if [ "$status" -eq 0 ] && [ -n "$flag" ]; then
    artifacts=$(check_cuda_artifacts "$build_dir") || status=1
  fi
  unmount_root
  if [ "${SCALEVEC_KEEP_ROOTS:-0}" != 1 ]; then rm -rf --one-file-system "$root"; fi
  root=""

  local verdict=PASS
  [ "$status" -eq 0 ] || verdict=FAIL
  printf '%-14s %s  total %d s, build %s s, %s, %d skipped%s\n' "$platform" "$verdict" "$elapsed" \
    "${build_s:-?}" "${tests_line:-no test summary}" "$(grep -c . <<<"$skipped" || true)" \
    "${artifacts:+; $artifacts}" | tee -a "$work/summary.txt"
  if [ "$status" -ne 0 ]; then
    echo "---- last lines of $log ----"
    tail -n 40 "$log"
  fi
  return "$status"
}

# "Suite.Name: reason" for every skipped test, from ctest's log of the tests' own output
# (GoogleTest prints "file:line: Skipped" and the GTEST_SKIP message on the next line).
skipped_tests() {
  [ -f "$1" ] || return 0
  awk '/^[0-9]+\/[0-9]+ Test: / { name = $3 }
       reason_next { print name ": " $0; reason_next = 0 }
       /: Skipped$/ { reason_next = 1 }' "$1"
}

# The CUDA build must hold what a GPU user runs: the executables linked against libtorch_cuda,
# our kernels for both architectures, and the NCCL backend.
check_cuda_artifacts() {
  local build="$1" bin missing=() archs
  for bin in scalevec scalevec-tokenizer scalevec_tests; do
    [ -x "$build/$bin" ] || missing+=("$bin")
  done
  [ ${#missing[@]} -eq 0 ] || { echo "missing ${missing[*]}"; return 1; }
  grep -q 'libtorch_cuda\.so' <<<"$(readelf -d "$build/scalevec")" || { echo "scalevec not linked to libtorch_cuda"; return 1; }
  archs=$(chroot "$root" cuobjdump --list-elf "/root/scalevec/build-cuda/scalevec" 2>/dev/null |
    grep -o 'sm_[0-9]*' | sort -u | tr '\n' ' ')
  [[ "$archs" == *sm_80* && "$archs" == *sm_90* ]] || { echo "kernels for '${archs}', not sm_80 and sm_90"; return 1; }
  grep -q 'ProcessGroupNCCL' "$build/scalevec" || { echo "no NCCL backend in scalevec"; return 1; }
  echo "cuda kernels ${archs% }, NCCL backend linked"
}

mkdir -p "$cache" "$work"
: >"$work/summary.txt"
: >"$work/skipped.txt"
failed=0
for p in "${platforms[@]}"; do
  check_platform "$p" || failed=1
done
echo "check_platforms: summary"
cat "$work/skipped.txt" "$work/summary.txt"
# One plain closing line over every platform's ctest counts; a platform that failed before its
# tests ran counts as one failure.
awk '{
  if (match($0, /[0-9]+ tests failed out of [0-9]+/)) {
    split(substr($0, RSTART, RLENGTH), w, " ")
    failed += w[1]; passed += w[6] - w[1]
  } else if ($2 == "FAIL") failed += 1
} END { printf "platforms: %d passed, %d failed\n", passed, failed }' "$work/summary.txt"
exit "$failed"
