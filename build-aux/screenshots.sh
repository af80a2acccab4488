#!/bin/sh
# Regenerate the screenshots in data/screenshots (README, metainfo) from the GUI
# tests: the same windows the tests check, in English and Spanish, under Xvfb.
set -eu
cd "$(dirname "$0")/.."
mkdir -p data/screenshots
TRASPASO_SCREENSHOTS="$PWD/data/screenshots" cargo test --test gui
