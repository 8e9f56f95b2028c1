#!/usr/bin/env bash
# Watch the hidden state learn (docs/cells.md, "Across training"): train with
# snapshots dense early (--snapshot-every 25x1.5: steps 0, 25, 38, 57, ...),
# then run one text through every snapshot and write the page with the slider.
# Two corpora: C code (a 2×256 LSTM on the Linux headers, read over stdio.h,
# which it never saw) and tiny Shakespeare (a 2×256 LSTM with dropout 0.2,
# read over its own validation part). docs/results.md has what these showed.
#
#   bash examples/cells-across-training.sh            # both, 10 + 5 minutes
#   ONLY=c TIME=20m bash examples/cells-across-training.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ONLY=${ONLY:-both}
THREADS=${THREADS:-2}
[ -x build/unroll ] || bash scripts/setup.sh
U=./build/unroll

if [ "$ONLY" != shakespeare ]; then
  TEXT=${TEXT:-/usr/include/stdio.h}  # C the model never saw (not under linux/)
  rm -rf runs/c-timeline
  $U train /usr/include/linux/*.h --out runs/c-timeline --layers 2 --hidden 256 \
    --time "${TIME:-10m}" --eval-every 500 --sample-every 0 --snapshot-every 25x1.5 \
    --threads "$THREADS"
  $U cells runs/c-timeline --text "$TEXT" --max-chars 20000 --threads "$THREADS" \
    --json-file runs/c-timeline/cells-timeline.json
fi

if [ "$ONLY" != c ]; then
  DATA=${DATA:-../shared/data/tinyshakespeare/input.txt}
  [ -f "$DATA" ] || { echo "missing $DATA (set DATA=the text file)" >&2; exit 1; }
  rm -rf runs/ts-timeline
  $U train "$DATA" --out runs/ts-timeline --split 0.9,0.1 --time "${TS_TIME:-5m}" \
    --layers 2 --hidden 256 --dropout 0.2 \
    --eval-every 500 --sample-every 0 --snapshot-every 25x1.5 --threads "$THREADS"
  # The last 10% (the validation part): a text the model did not train on.
  tail -c 100000 "$DATA" > runs/ts-timeline/held-out.txt
  $U cells runs/ts-timeline --text runs/ts-timeline/held-out.txt --max-chars 20000 \
    --probe 'speaker=^[A-Za-z ]+:$' --probe 'capital=[A-Z]' --threads "$THREADS" \
    --json-file runs/ts-timeline/cells-timeline.json
fi
echo "pages: runs/c-timeline/cells-timeline.html, runs/ts-timeline/cells-timeline.html"
