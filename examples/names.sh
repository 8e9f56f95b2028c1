#!/usr/bin/env bash
# Names by language (18 languages, ../shared/data/names/, one name a line):
#  1. many-to-one: a character-level GRU tells a name's language
#     (a fixed 80/20 split, seed 1, repeated names dropped first; ~30 s);
#  2. one-to-many: a language model conditioned on the language generates
#     ten names for each of three languages (~30 s).
#
#   bash examples/names.sh
set -euo pipefail
cd "$(dirname "$0")/.."
NAMES=${NAMES:-../shared/data/names}
[ -f "$NAMES/Korean.txt" ] || { echo "missing $NAMES (set NAMES=folder of LANGUAGE.txt files)" >&2; exit 1; }
[ -x build/unroll ] || bash scripts/setup.sh
rm -rf runs/names runs/names-gen

./build/unroll classify train "$NAMES" --out runs/names --cell gru --hidden 256 --embed 64 --dropout 0.2 \
  --val-fraction 0.2 --seed 1 --dedupe --epochs 30 --patience 5
./build/unroll classify eval runs/names/best.safetensors --validation --html runs/names/validation.html | head -2
printf 'Nakamura\nSchmidt\nO'"'"'Connor\nGarcia\n' | ./build/unroll classify predict runs/names/best.safetensors

./build/unroll conditional "$NAMES" --out runs/names-gen --cell gru --hidden 128 --embed 32 \
  --val-fraction 0.1 --seed 1 --epochs 30 --patience 3
for lang in Russian Japanese Italian; do
  echo "== $lang"
  ./build/unroll sample runs/names-gen/best.safetensors --category "$lang" --samples 10 --seed 7 -t 0.8
done
