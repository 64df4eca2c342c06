#!/usr/bin/env bash
# Set up dicomnode on a fresh machine: system tools for the tests, a venv, torch first, then the project.
# Idempotent: re-running only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# Real peers for the tests: dcmtk (storescu/storescp/echoscu), Orthanc (the PACS of the
# end-to-end tests) with its DICOMweb plugin (QIDO-RS/WADO-RS priors), dicom3tools (dciodvfy), a PostgreSQL server (multi-worker tests) and
# Debian's chromium with its chromedriver (the web app's browser test; selenium drives them,
# nothing is downloaded at run time).
APT_PACKAGES=(dcmtk orthanc orthanc-dicomweb dicom3tools postgresql systemd chromium chromium-driver)
missing=()
for tool in /usr/bin/storescu /usr/bin/dciodvfy /usr/sbin/Orthanc /usr/share/orthanc/plugins/libOrthancDicomWeb.so /usr/bin/chromium /usr/bin/chromedriver; do
  [ -e "$tool" ] || missing+=("$tool")
done
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(initdb)
command -v systemd-analyze >/dev/null || missing+=(systemd-analyze)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${APT_PACKAGES[@]}"
    # Debian starts Orthanc and PostgreSQL as services on install; the tests start their own.
    (service orthanc stop >/dev/null 2>&1 || true)
    (service postgresql stop >/dev/null 2>&1 || true)
  else
    echo "setup: missing ${missing[*]}; run as root or: sudo apt-get install ${APT_PACKAGES[*]}" >&2
    exit 1
  fi
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
# torch first and pinned: an unpinned torch pulls a multi-GB build.
.venv/bin/python -c "import torch, torchvision" 2>/dev/null \
  || .venv/bin/python -m pip install -q torch==2.14.1 torchvision==0.29.1
.venv/bin/python -m pip install -q -e '.[dev]'
echo "setup: ok (.venv ready)"
