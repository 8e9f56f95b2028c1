#!/usr/bin/env bash
# The main job: set up, build, train a 2-layer 128-unit character-level LSTM
# on the Linux kernel's user-space headers (/usr/include/linux/*.h, C code that
# every Debian machine with a compiler has) for a few minutes, then print a
# generated sample of C code. TIME=10m bash scripts/demo.sh trains longer.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
TIME=${TIME:-3m}
RUN=${RUN:-runs/linux-headers}
rm -rf "$RUN"
./build/unroll train /usr/include/linux/*.h --out "$RUN" --cell lstm --layers 2 --hidden 128 \
  --time "$TIME" --eval-every 500 --sample-every 2000 --sample-len 300
echo
echo "== A sample from the best checkpoint ($RUN/best.safetensors), prime '#include', temperature 0.7 =="
./build/unroll sample "$RUN/best.safetensors" --prime '#include' --length 1500 --temperature 0.7 --seed 1
