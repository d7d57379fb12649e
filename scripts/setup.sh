#!/usr/bin/env bash
# Installs everything kaib's tests and `kaib demo` need, idempotently, with caches outside the work
# tree: Debian packages, uv and the locked Python environment, Azurite (npm), and the control-plane
# binaries built from Go modules. Safe to run again: each step is skipped when already satisfied.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${KAIB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kaib}"
UV_VERSION=0.13.8
AZURITE_VERSION=3.37.0
DEBIAN_PACKAGES=(packer openssh-server openssh-client nftables iproute2 lua5.4 util-linux procps sudo)

say() { printf '\033[1msetup:\033[0m %s\n' "$*" >&2; }

missing=()
for p in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts sshd on install; kaib runs its own per VM, never the host's.
  $SUDO systemctl disable --now ssh.service >/dev/null 2>&1 || true
fi

if ! command -v uv >/dev/null 2>&1 || [ "$(uv --version | cut -d' ' -f2)" != "$UV_VERSION" ]; then
  say "installing uv $UV_VERSION"
  python3 -m pip install -q --disable-pip-version-check "uv==$UV_VERSION"
fi
say "syncing the Python environment (uv.lock)"
# --compile-bytecode, as the Dockerfile: with PYTHONDONTWRITEBYTECODE set and no .pyc, every operator
# start compiles ~15 MB of azure-mgmt sources and keeps the compiler's ~200 MB peak resident.
uv sync --frozen --quiet --compile-bytecode

if [ ! -x "$CACHE/npm/node_modules/.bin/azurite-blob" ] || \
   [ "$(node -p "require('$CACHE/npm/node_modules/azurite/package.json').version" 2>/dev/null)" != "$AZURITE_VERSION" ]; then
  say "installing Azurite $AZURITE_VERSION (npm) into $CACHE/npm"
  mkdir -p "$CACHE/npm"
  npm install --silent --no-audit --no-fund --prefix "$CACHE/npm" "azurite@$AZURITE_VERSION" >/dev/null
fi

say "control-plane binaries (etcd, kube-apiserver, kubectl)"
uv run --frozen python -m kaib.devenv.assets >/dev/null
# --- chart tools (issue 7): helm and kubeconform from their Go modules, for tests/integration/test_chart*.py
say "chart tools (helm, kubeconform) into $CACHE/tools"
KAIB_CACHE="$CACHE" python3 scripts/build_tools.py
# --- end chart tools

say "ready"
