#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine: install what is missing (as root, or via sudo), build, capture
# the demo corpus with the demo model, and write the report to output/demo/ (report.pdf, report.md,
# results.h5, summary.json, figures/). Extra arguments go to make (e.g. MODEL=... CORPUS=...).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
make demo "$@"
echo "done: output/demo/report.pdf"
