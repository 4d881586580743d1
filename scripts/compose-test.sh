#!/usr/bin/env bash
# make compose-test: runs compose/docker-compose.yml for real, in a Docker engine of its own, with no registry.
#   1. installs docker.io and debootstrap when missing (scripts/install-deps.sh --compose);
#   2. starts its own dockerd (own data root, exec root, pid file and socket in a temporary directory) with
#      --ip-forward=false --ip-masq=false --iptables=false, so no container traffic leaves the machine;
#   3. makes the base image with debootstrap from the Debian mirror named in apt's own sources (cached under
#      $BATON_COMPOSE_CACHE, default ~/.cache/baton-compose, keyed by mirror, release and packages), then
#      `docker import`; builds the Baton and PostgreSQL images from it and the host's debug build
#      (compose/Dockerfile.prebuilt): the executables `make test` already built, so no second compile;
#   4. `docker-compose up --scale processor=3` with a job firing every second (compose/compose-test.yml), waits
#      for every container to be healthy, SIGKILLs one processor's and the algorithm's main process by host pid,
#      waits for both to be restarted, pauses the job and checks every slot of its grid from the first stored one
#      to the pause is stored exactly once with its deterministic payload (scripts/compose_check.py);
#   5. `docker-compose down -v`, stops dockerd and removes everything it made, on success or failure.
# Prints each phase's time. Exit status 0 only if every check passed.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
started=$(date +%s)
phase_start=$started
phase() {
  local now
  now=$(date +%s)
  echo "compose-test: $1: $((now - phase_start)) s"
  phase_start=$now
}
say() { echo "compose-test: $*"; }

if [ "$(id -u)" -ne 0 ]; then
  say "FAILED: needs root (it starts dockerd and runs debootstrap); run it as root or with sudo"
  exit 1
fi
scripts/install-deps.sh --compose
phase "dependencies"

work=$(mktemp -d /tmp/baton-compose.XXXXXX)
project=batoncompose$$
export DOCKER_HOST="unix://$work/docker.sock" DOCKER_BUILDKIT=0 COMPOSE_PROJECT_NAME=$project
export BATON_TEST_DIR="$work/test" BATON_POSTGRES_IMAGE=baton-postgres:latest
export COMPOSE_FILE=compose/docker-compose.yml:compose/compose-test.yml
compose=(docker-compose)

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  set +e  # every step of the cleanup runs, whatever fails
  if [ -S "$work/docker.sock" ]; then
    if [ "$status" -ne 0 ]; then
      say "failed (status $status); the containers and their last log lines:"
      "${compose[@]}" ps || true
      "${compose[@]}" logs --no-color --tail 30 || true
    fi
    timeout 120 "${compose[@]}" down -v --remove-orphans >/dev/null 2>&1 || true
  fi
  if [ -f "$work/dockerd.pid" ]; then
    local pid
    pid=$(cat "$work/dockerd.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  # What a dockerd killed before it cleaned up leaves mounted (overlay layers, netns, shm).
  grep -o " $work/[^ ]*" /proc/self/mounts | sort -r | while read -r mount; do umount -l "$mount" 2>/dev/null || true; done
  rm -rf "$work"
  [ "$status" -eq 0 ] && say "passed in $(($(date +%s) - started)) s"
  [ "$status" -ne 0 ] && say "FAILED after $(($(date +%s) - started)) s"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- 2. dockerd -------------------------------------------------------------------------------------------------
dockerd --data-root "$work/root" --exec-root "$work/exec" --pidfile "$work/dockerd.pid" -H "$DOCKER_HOST" \
  --ip-forward=false --ip-masq=false --iptables=false --bridge=none >"$work/dockerd.log" 2>&1 &
for _ in $(seq 1 120); do docker version >/dev/null 2>&1 && break; sleep 0.5; done
docker version >/dev/null || { tail -20 "$work/dockerd.log"; exit 1; }
phase "dockerd"

# --- 3. images --------------------------------------------------------------------------------------------------
# The mirror apt uses for this release: deb822 .sources stanzas, then one-line .list entries.
suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
apt_mirror() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk -v s="$suite" 'BEGIN { RS = ""; FS = "\n" }
      { t = ""; u = ""; su = ""; on = "yes"
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^#/) continue
          k = tolower(substr($i, 1, index($i, ":") - 1)); v = substr($i, index($i, ":") + 1); gsub(/^[ \t]+|[ \t]+$/, "", v)
          if (k == "types") t = v; else if (k == "uris") u = v; else if (k == "suites") su = v; else if (k == "enabled") on = v
        }
        if (on != "no" && (" " t " ") ~ / deb / && (" " su " ") ~ (" " s " ")) { split(u, a, /[ \t]+/); print a[1]; exit } }' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    awk -v s="$suite" '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
      if ($(i + 1) == s) { print $i; exit } }' "$f"
  done
}
mirror=$(apt_mirror | head -1)
[ -n "$mirror" ] || { say "no deb source for $suite in apt's sources"; exit 1; }
# One root file system for both images: a second debootstrap would cost more than the image size saved.
packages=libzmq5,libpq5,libsqlite3-0,python3,ca-certificates,tzdata,postgresql-15
cache=${BATON_COMPOSE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/baton-compose}
key=$(printf '%s\n' 1 "$mirror" "$suite" "$packages" "$(dpkg --print-architecture)" | sha256sum | cut -c1-16)
base_tar="$cache/base-$suite-$key.tar"
if [ ! -s "$base_tar" ]; then
  say "debootstrap $suite from $mirror (cached as $base_tar)"
  mkdir -p "$cache"
  debootstrap --variant=minbase --include="$packages" "$suite" "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log"; exit 1; }
  rm -rf "$work"/rootfs/var/cache/apt/archives/*.deb "$work"/rootfs/var/lib/apt/lists/*
  tar -C "$work/rootfs" -cf "$base_tar.partial" . && mv "$base_tar.partial" "$base_tar"
  rm -rf "$work/rootfs"
  phase "debootstrap"
fi
docker import "$base_tar" baton-base:latest >/dev/null
phase "base image import"

# The executables only (after `make test` in CI, about a minute of planning and linking, nothing to compile).
swift build 2>&1 | tail -1
phase "swift build (debug)"
ctx="$work/context"
mkdir -p "$ctx/bin" "$ctx/lib"
for exe in baton baton-logger baton-scheduler baton-algorithm baton-processor baton-exec; do
  strip -o "$ctx/bin/$exe" ".build/debug/$exe"
done
# The Swift runtime the debug build links (the toolchain's, not Debian's): everything ldd finds outside /lib, /usr/lib.
ldd "$ctx"/bin/* | awk '$3 ~ /^\// && $3 !~ /^\/(usr\/)?lib/ { print $3 }' | sort -u | xargs -r cp -L -t "$ctx/lib"
cp -r examples "$ctx/examples"
cp compose/postgres-entrypoint.sh "$ctx/"
for target in postgres baton; do
  tag=baton:latest
  [ "$target" = postgres ] && tag=baton-postgres:latest
  # Quiet unless it fails (the client's notice that the legacy builder is deprecated is noise here).
  out=$(docker build -q -f compose/Dockerfile.prebuilt --target "$target" -t "$tag" "$ctx" 2>&1) || { echo "$out"; exit 1; }
done
phase "image build"

# --- 4. the stack -----------------------------------------------------------------------------------------------
mkdir -p "$BATON_TEST_DIR"
eval "$(python3 scripts/compose_check.py --write-config "$BATON_TEST_DIR")"
up_started=$(date +%s)
if ! out=$("${compose[@]}" up -d --no-build --scale processor=3 2>&1); then
  echo "$out"
  exit 1
fi
python3 scripts/compose_check.py --project "$project" --up-at "$up_started"
phase "stack run and checks"
"${compose[@]}" down -v --remove-orphans >/dev/null 2>&1
phase "down"
