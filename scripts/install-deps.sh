#!/usr/bin/env bash
# Install the Debian 12 packages lsa builds and tests with (as root, or through sudo). Does nothing when
# they are all present already.
set -euo pipefail
pkgs=(build-essential make cmake pkg-config git libhdf5-dev hdf5-tools libcairo2-dev libopenblas-dev zlib1g-dev
      libcjson-dev libpcre2-dev libdeflate-dev libisal-dev libdnnl-dev python3-h5py python3-numpy poppler-utils fonts-dejavu-core
      clang libclang-rt-14-dev libomp-14-dev)  # the last three: the fuzz targets (tests/fuzz/run.sh, in CI)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
