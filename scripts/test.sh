#!/usr/bin/env bash
# Every test on a fresh Debian 12 machine: install what is missing, build plain and with ASan+UBSan
# (-Werror), run ctest in both. The test data folder ../shared must sit beside this checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
make test "$@"
