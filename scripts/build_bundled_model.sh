#!/usr/bin/env bash
# Build the model that ships inside edgekit (runtime/bundled/): train the camera recipe, export its int8 TFLite,
# validate it on all 10,000 MNIST test images, and copy the model, its sha256 and the validate report into place.
#
#   scripts/build_bundled_model.sh --data /path/to/mnist.npz --seed 1           # trains first (~30 min on 2 cores)
#   scripts/build_bundled_model.sh --data /path/to/mnist.npz --run runs/camera  # reuses a finished run folder
#
# Options:
#   --data PATH     MNIST (Keras-layout .npz or IDX folder); default $EDGEKIT_DATA, then Keras' download.
#   --run DIR       A finished `edgekit train --recipe camera` run folder (model.keras + metrics.json): skips training.
#   --seed N        Training seed when training here (default 0).
#   --dest DIR      Where the bundle goes (default: runtime/bundled in this repository).
#   --any-recipe    Accept a --run of another recipe (for trying the script out; never for the shipped model).
#
# Needs edgekit with its train extra (TensorFlow) on PATH, or EDGEKIT="python -m edgekit.toolkit.cli".
# Nothing in --dest changes unless every step passed: the files are staged beside it and renamed in at the end.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
EDGEKIT="${EDGEKIT:-edgekit}"
DATA="${EDGEKIT_DATA:-}"
RUN=""
SEED=0
DEST="$REPO/runtime/bundled"
ANY_RECIPE=0

die() { echo "build_bundled_model: error: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in
        --data) DATA="${2:?--data needs a path}"; shift 2 ;;
        --run) RUN="${2:?--run needs a folder}"; shift 2 ;;
        --seed) SEED="${2:?--seed needs a number}"; shift 2 ;;
        --dest) DEST="${2:?--dest needs a folder}"; shift 2 ;;
        --any-recipe) ANY_RECIPE=1; shift ;;
        -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done
DATA_ARGS=()
[ -n "$DATA" ] && DATA_ARGS=(--data "$DATA")

WORK="$(mktemp -d "${TMPDIR:-/tmp}/edgekit-bundle.XXXXXX")"
STAGE=""
trap 'rm -rf "$WORK" ${STAGE:+"$STAGE"}' EXIT
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"

# 1. train (or reuse a finished run)
if [ -z "$RUN" ]; then
    RUN="$WORK/run"
    echo "== 1/3 train --recipe camera (seed $SEED) -> $RUN"
    $EDGEKIT train --recipe camera --seed "$SEED" "${DATA_ARGS[@]}" --out "$RUN"
else
    echo "== 1/3 reuse the run folder $RUN"
fi
[ -f "$RUN/model.keras" ] && [ -f "$RUN/metrics.json" ] || die "$RUN: not a finished run folder (model.keras and metrics.json)"
RECIPE="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["recipe"]["name"])' "$RUN/metrics.json")"
if [ "$RECIPE" != "camera" ] && [ "$ANY_RECIPE" != 1 ]; then
    die "$RUN was trained with the '$RECIPE' recipe; the bundled model is the camera recipe's (--any-recipe to try anyway)"
fi

# 2. export the int8 TFLite (its metadata records the recipe and the Keras test accuracy from metrics.json)
echo "== 2/3 export tflite int8"
$EDGEKIT export --model "$RUN/model.keras" --format tflite --quantize int8 "${DATA_ARGS[@]}" --out "$WORK/export"

# 3. validate on all 10,000 test images against the Keras model; a failed parity check stops here (exit 1)
echo "== 3/3 validate (all 10,000 MNIST test images)"
$EDGEKIT validate "$WORK/export" "${DATA_ARGS[@]}" --json "$WORK/export/validate.json"

# copy into place: staged beside DEST, then renamed file by file
mkdir -p "$DEST"
STAGE="$(mktemp -d "$DEST/.staging.XXXXXX")"
cp "$WORK/export/model_int8.tflite" "$STAGE/model_int8.tflite"
cp "$WORK/export/validate.json" "$STAGE/validate.json"
(cd "$STAGE" && sha256sum model_int8.tflite > model_int8.tflite.sha256)
for f in model_int8.tflite validate.json model_int8.tflite.sha256; do mv -f "$STAGE/$f" "$DEST/$f"; done
(cd "$DEST" && sha256sum --check --quiet model_int8.tflite.sha256)
echo "== bundled model in $DEST"
$EDGEKIT info "$DEST/model_int8.tflite"
