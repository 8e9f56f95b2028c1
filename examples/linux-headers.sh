#!/usr/bin/env bash
# C code: a 2×256 LSTM on the Linux user-space headers (/usr/include/linux/*.h),
# then which hidden cells track comments, brackets and line position, drawn
# over a C file the model never saw (docs/cells.md). The README's main job
# (scripts/demo.sh) is the 3-minute version of the first half.
#
#   bash examples/linux-headers.sh
#   TIME=1h bash examples/linux-headers.sh
set -euo pipefail
cd "$(dirname "$0")/.."
TIME=${TIME:-20m}
[ -x build/unroll ] || bash scripts/setup.sh
rm -rf runs/c-lstm
./build/unroll train /usr/include/linux/*.h --out runs/c-lstm --layers 2 --hidden 256 --time "$TIME" \
  --eval-every 500 --sample-every 2000
TEXT=${TEXT:-$(ls /usr/include/zlib.h /usr/include/stdio.h 2>/dev/null | head -1)}
./build/unroll cells runs/c-lstm/best.safetensors --text "$TEXT" -o runs/c-lstm/cells.html
echo "pages: runs/c-lstm/cells.html, runs/c-lstm/report.html"
