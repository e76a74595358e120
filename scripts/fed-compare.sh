#!/usr/bin/env bash
# Issue 14's comparison: 1000 federated clients (one synthetic finger, 4 impressions each),
# evaluated on 200 fingers no client holds. Every run starts from the same "public"
# pre-training (100 other synthetic fingers, 4 epochs) and has the same image budget:
# rounds x clients per round x local steps x impressions = 60 x 50 x 2 x 4 = 24 000 images.
#   bash scripts/fed-compare.sh [OUT]        (release build; about 30 min on 2 cores)
set -euo pipefail
OUT=${1:-artifacts/fed-compare}
NHM=${NHM:-target/release/nhm}
[ -x "$NHM" ] || cargo build --release -p nhm-cli
mkdir -p "$OUT"
[ -f "$OUT/pretrain/encoder.safetensors" ] || "$NHM" --quiet train --subjects 100 --impressions 4 --data-seed 4242 --epochs 4 \
  --eval-fraction 0 --val-fraction 0.2 --seed 7 --out "$OUT/pretrain"
COMMON=(--init "$OUT/pretrain" --clients 1000 --impressions 4 --eval-subjects 200 --data-seed 42
        --rounds 60 --per-round 50 --local-steps 2 --eval-every 5 --seed 7)
run() { local name=$1; shift; echo "== $name: $*"; "$NHM" --quiet fed simulate "${COMMON[@]}" "$@" --out "$OUT/$name"; }
# (a) centralised: the union of the clients' samples, same budget (Adam, supervised contrastive).
run centralised --centralised
# (b) the seed: contrastive loss, relayed negatives, FedAvg.
run seed --loss contrastive --margin 1.0 --lr 0.01 --negatives 64
# (c) the seed without negatives: positives only.
run positives-only --loss contrastive --margin 1.0 --lr 0.01 --negatives 0
# (d) improved: proxy loss towards the server-held hashmap, FedAwS spreadout, FedAdam.
run improved --loss proxy --lr 0.01 --negatives 64 --spreadout 1.0 --server-adam --server-lr 0.001
# (e) (d) with user-level differential privacy at epsilon 8, delta 1/clients.
run improved-dp-eps8 --loss proxy --lr 0.01 --negatives 64 --spreadout 1.0 --server-adam --server-lr 0.001 \
  --dp-clip 1.0 --dp-epsilon 8
run improved-dp-eps2 --loss proxy --lr 0.01 --negatives 64 --spreadout 1.0 --server-adam --server-lr 0.001 \
  --dp-clip 1.0 --dp-epsilon 2
