#!/usr/bin/env bash
# Installs the Debian packages Baton needs, only if they are missing.
#   scripts/install-deps.sh          build and run: libzmq3-dev, libssl-dev, libsqlite3-dev, libpq-dev, pkg-config
#   scripts/install-deps.sh --test   also what the tests use: python3, python3-zmq (scripts/bus_churn.py, the
#                                    doc's examples), python3-jsonschema (scripts/protocol_check.py),
#                                    docker-compose (validation only), postgresql (the tests' own servers:
#                                    initdb and pg_ctl from /usr/lib/postgresql/<version>/bin), chromium (the web
#                                    view's browser test, headless)
#   scripts/install-deps.sh --static also libcurl4-openssl-dev: a --static-swift-stdlib build links Foundation's
#                                    networking statically, which needs libcurl (make bench, the Docker image)
#   scripts/install-deps.sh --compose also what `make compose-test` runs: docker.io (dockerd, containerd, runc),
#                                    docker-compose, debootstrap (the base image), binutils (strip), python3
set -euo pipefail

packages=(libzmq3-dev libssl-dev libsqlite3-dev libpq-dev pkg-config)
case "${1:-}" in
  --test) packages+=(python3 python3-zmq python3-jsonschema docker-compose postgresql chromium) ;;
  --static) packages+=(libcurl4-openssl-dev) ;;
  --compose) packages+=(docker.io docker-compose debootstrap binutils python3 iptables) ;;
esac
# The hosts tests and benchmark (TestHosts) make network namespaces with iproute2's ip.
if [[ "${1:-}" == --test ]]; then packages+=(iproute2); fi

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v swift >/dev/null 2>&1; then
  echo "swift is not on PATH: install the Swift 6.2 (or later) toolchain from swift.org first" >&2
  exit 1
fi
