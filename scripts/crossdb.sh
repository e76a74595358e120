#!/usr/bin/env bash
# Cross-database figures of one fingerprint model (issue 11): every shipped real set it was not
# trained on, FVC protocol, binary hashmaps under the default key, with the raw embedding and raw
# pixels beside them; and the 39 fingers on both Neurotechnology sensors matched across sensors.
#
#   scripts/crossdb.sh MODEL_DIR OUT_DIR [SET...]
#
# SET names a set to evaluate: db1b db4b uareu crossmatch cross db1b569 (default: all six). Leave
# out the sets the model was trained on. `db1b569` is DB1_B with its even impressions resampled
# to 569 dpi (`nhm dataset resample`, the resolution stated in each PNG's header): the same finger
# at two resolutions, to compare with `db1b`. Each evaluation writes OUT_DIR/SET/report.json (cross.json for
# `cross`); the summary table (markdown) is printed and written to OUT_DIR/table.md.
# Every set is read at its documented 500 dpi (`--dpi 500`; none of the files states it).
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:?usage: scripts/crossdb.sh MODEL_DIR OUT_DIR [SET...]}
out=${2:?usage: scripts/crossdb.sh MODEL_DIR OUT_DIR [SET...]}
shift 2
sets=("$@")
[ ${#sets[@]} -gt 0 ] || sets=(db1b db4b uareu crossmatch cross db1b569)
data=${NHM_DATA:-../shared/data}
nhm=${NHM:-target/release/nhm}
# Extra flags for every `nhm eval` (for example `--crop-centre core` on an older checkpoint).
read -r -a extra <<< "${NHM_EVAL_FLAGS:-}"
[ -x "$nhm" ] || cargo build --release -p nhm-cli
mkdir -p "$out"
for s in "${sets[@]}"; do
  case $s in
    db1b) path=$data/fvc2002/DB1_B; proto=fvc ;;
    db4b) path=$data/fvc2002/DB4_B; proto=fvc ;;
    uareu) path=$data/neurotech/UareU; proto=fvc ;;
    crossmatch) path=$data/neurotech/CrossMatch; proto=fvc ;;
    db1b569)
      rm -rf "$out/db1b569-data"
      "$nhm" --quiet dataset resample "$data/fvc2002/DB1_B" --from-dpi 500 --to-dpi 569 --out "$out/db1b569-data/all" >/dev/null
      mkdir -p "$out/db1b569-data/mixed"
      cp "$data"/fvc2002/DB1_B/*_[1357].tif "$out/db1b569-data/mixed/"
      cp "$out"/db1b569-data/all/*_[2468].png "$out/db1b569-data/mixed/"
      path=$out/db1b569-data/mixed; proto=fvc ;;
    cross)
      "$nhm" --quiet eval --model "$model" --data "$data/neurotech/UareU" --probe-data "$data/neurotech/CrossMatch" \
        --dpi 500 --eval-fraction 1 --val-fraction 0 --out "$out/cross" "${extra[@]}" >/dev/null
      continue ;;
    *) echo "unknown set $s (db1b db4b uareu crossmatch cross db1b569)" >&2; exit 2 ;;
  esac
  "$nhm" --quiet eval --model "$model" --data "$path" --dpi 500 --eval-fraction 1 --val-fraction 0 \
    --protocol "$proto" --out "$out/$s" "${extra[@]}" >/dev/null
done
python3 - "$out" "${sets[@]}" <<'PY' | tee "$out/table.md"
import json, sys, os
out, sets = sys.argv[1], sys.argv[2:]
def pct(v): return f"{100*v:.1f}%"
def op(fig, target):
    for o in fig["fnmr_at_fmr"]:
        if abs(o["fmr_target"] - target) < 1e-12:
            return pct(o["fnmr"]) if o["resolvable"] else "n/r"
    return "-"
print("| set | protocol, pairs (gen/imp) | binary EER | FNMR@FMR1% | FNMR@FMR0.1% | rank-1 | raw embedding EER | raw pixels EER |")
print("|---|---|---|---|---|---|---|---|")
for s in sets:
    if s == "cross":
        d = json.load(open(os.path.join(out, "cross", "cross.json")))
        sy = {x["name"].split(" (")[0]: x["figures"] for x in d["systems"]}
        b = sy["binary hashmap"]
        print(f"| UareU → CrossMatch ({d['shared_subjects']} fingers) | all cross pairs, {b['genuine_pairs']}/{b['impostor_pairs']} | {pct(b['verification']['eer'])} | {op(b['verification'],1e-2)} | {op(b['verification'],1e-3)} | {pct(b['rank1'])} | {pct(sy['raw embedding']['verification']['eer'])} | {pct(sy['raw pixels']['verification']['eer'])} |")
        continue
    d = json.load(open(os.path.join(out, s, "report.json")))
    sy = {x["name"].split(" (")[0]: x["figures"] for x in d["systems"]}
    b = sy["binary hashmap"]
    r1 = next((r["rank1"] for r in b["identification"] if r["enrolled"] == 1), None)
    print(f"| {s} | FVC, {b['genuine_pairs']}/{b['impostor_pairs']} | {pct(b['eer'])} | {op(b,1e-2)} | {op(b,1e-3)} | {pct(r1) if r1 is not None else '-'} | {pct(sy['raw embedding']['eer'])} | {pct(sy['raw pixels']['eer'])} |")
PY
