#!/usr/bin/env bash
# The face figures of the README: the pretrained backbone alone, a head that only centres, and a
# head trained with SupCon, each fitted on one shipped set and evaluated on the other (every
# identity of the evaluated set unseen), binary hashmaps at 128 and 2048 bits under the default
# (shared) key, the raw embedding and raw pixels beside them in each report.json.
#   scripts/face-eval.sh [OUT]        (NHM=path/to/nhm, NHM_DATA=folder of the shared sets)
set -euo pipefail
export NHM_FACE_CACHE=${NHM_FACE_CACHE:-artifacts/face-chips}
cd "$(dirname "$0")/.."
N=${NHM:-target/release/nhm}
DATA=${NHM_DATA:-../shared/data}
OUT=${1:-artifacts/face}
ORL=$DATA/orl_faces
YALE=$DATA/extended_yale_b
mkdir -p "$OUT"
EVAL=(--eval-fraction 1 --val-fraction 0)

[ -f "$OUT/head-yale-centre/checkpoint.json" ] || "$N" face build --data "$YALE" --epochs 0 --out "$OUT/head-yale-centre"
"$N" face build --data "$YALE" --epochs 30 --out "$OUT/head-yale-supcon"
"$N" face build --data "$ORL" --epochs 0 --out "$OUT/head-orl-centre"
"$N" face build --data "$ORL" --epochs 30 --out "$OUT/head-orl-supcon"

for m in models/face "$OUT/head-yale-centre" "$OUT/head-yale-supcon"; do
  for bits in 128 2048; do
    name=orl-$(basename "$m")-$bits
    "$N" eval --model "$m" --data "$ORL" "${EVAL[@]}" --hashmap-dim "$bits" --out "$OUT/$name" | tee "$OUT/$name.txt"
  done
done
for m in models/face "$OUT/head-orl-centre" "$OUT/head-orl-supcon"; do
  name=yale-$(basename "$m")-2048
  "$N" eval --model "$m" --data "$YALE" "${EVAL[@]}" --hashmap-dim 2048 --out "$OUT/$name" | tee "$OUT/$name.txt"
done
# Extended Yale B ships cropped faces; under extreme lighting the detector misses some. The
# whole-frame policy takes the frame as the face's box instead of leaving them out.
"$N" eval --model "$OUT/head-orl-centre" --data "$YALE" "${EVAL[@]}" --hashmap-dim 2048 --no-face whole-frame \
  --out "$OUT/yale-head-orl-centre-2048-wholeframe" | tee "$OUT/yale-head-orl-centre-2048-wholeframe.txt"
