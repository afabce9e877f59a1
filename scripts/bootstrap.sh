#!/usr/bin/env bash
# Installs what is missing: Debian packages (Redis, WeasyPrint's libraries), the venv and its requirements.
set -euo pipefail
cd "$(dirname "$0")/.."

REQUIREMENTS="${1:-requirements.txt}"
# chromium: the browser of `engine: chromium` (workers without it render WeasyPrint jobs only).
SYSTEM_PACKAGES=(redis-server libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core poppler-utils
                 chromium)
# Tests also validate docker-compose.yml with docker-compose's own parser (no engine needed), check PDFs with
# qpdf, drive the pages a person sees in Debian's Chromium, verify the systemd units (systemd-analyze), test
# the alert rules (promtool, in Debian's prometheus package) and run checkov without network (unshare).
[ "$REQUIREMENTS" = "requirements-dev.txt" ] && SYSTEM_PACKAGES+=(docker-compose qpdf systemd prometheus util-linux)

missing=()
for pkg in "${SYSTEM_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "bootstrap: installing ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c "import ensurepip, venv" 2>/dev/null; then  # Debian's python3 ships venv separately
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >/dev/null
fi
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv" >&2
  "$PYTHON" -m venv .venv
fi
stamp=".venv/.installed-$(cat requirements*.txt clients/python/pyproject.toml | sha256sum | cut -c1-16)-$(basename "$REQUIREMENTS")"
if [ ! -f "$stamp" ]; then
  echo "bootstrap: installing $REQUIREMENTS and the Python client (the pdfq command)" >&2
  .venv/bin/pip install -q --disable-pip-version-check -r "$REQUIREMENTS"
  .venv/bin/pip install -q --disable-pip-version-check --no-deps -e . >/dev/null
  .venv/bin/pip install -q --disable-pip-version-check -e ./clients/python >/dev/null
  touch "$stamp"
fi

if [ "$REQUIREMENTS" = "requirements-dev.txt" ]; then
  # checkov brings ~100 packages of its own: a separate venv keeps .venv's pins untouched.
  tools_stamp=".venv-tools/.installed-$(sha256sum requirements-tools.txt | cut -c1-16)"
  if [ ! -f "$tools_stamp" ]; then
    echo "bootstrap: installing requirements-tools.txt into .venv-tools" >&2
    [ -x .venv-tools/bin/python ] || "$PYTHON" -m venv .venv-tools
    .venv-tools/bin/pip install -q --disable-pip-version-check -r requirements-tools.txt
    touch "$tools_stamp"
  fi
  # The Kubernetes manifests are rendered with kubectl's built-in kustomize (`kubectl kustomize`, no cluster
  # needed). The machine image ships kubectl; Debian's kubernetes-client is too old (kustomize v2) to stand in.
  command -v kubectl >/dev/null || echo "bootstrap: kubectl is missing: the Kubernetes manifest tests will fail" >&2
fi
