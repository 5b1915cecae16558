#!/usr/bin/env bash
# Prove edgekit's runtime on a Raspberry Pi's software — Debian 12 "bookworm" arm64 with Python 3.11 (Raspberry
# Pi OS until late 2025) or, with --release trixie, Debian 13 "trixie" with Python 3.13 (today's Raspberry Pi OS) —
# on this x86-64 machine, under qemu-user:
#
#   1. a bookworm (or trixie) arm64 root, unpacked from Debian's own arm64 .debs (no debootstrap, no chroot),
#      with a Raspberry Pi 4's /proc/cpuinfo (Cortex-A72, CPU part 0xd08, 4 cores);
#   2. edgekit's device install into it: the edgekit wheel built from this repository plus its BASE
#      dependencies as aarch64 wheels from PyPI — no TensorFlow;
#   3. under `qemu-aarch64-static -cpu cortex-a72 -L ROOT`: edgekit.runtime imports without TensorFlow;
#      `edgekit predict --json` on models exported on x86-64 gives the same digits and boxes as the same
#      command run natively, confidences within 0.05 (OpenCV's preprocessing rounds differently on NEON);
#      the models' probabilities agree within 1e-5 (float) / 0.0137 (int8, 3.5 output steps); out of the box,
#      `edgekit predict FRAME` with no model reads camera-like frames with the model bundled in the wheel (says
#      so in one line; same digits, boxes and int8 probabilities as x86-64, same file); the runtime's
#      device-side tests pass on models handed over from x86-64 (none may skip, and some must run);
#      `edgekit benchmark` runs on two models x two thread counts (emulated: functional only, its timings are
#      qemu's, not a Pi's).
#
# Usage: scripts/pi_check.sh (--models DIR | --keras FILE) [options]
#   --models DIR      exported models (model_float32.tflite, model_int8.tflite, model_float32.onnx[, model_int8.onnx])
#   --keras FILE      a trained .keras: exported here first with `edgekit export --format all --quantize none,int8`
#                     (on this x86-64 host, with TensorFlow)
#   --data FILE       MNIST (.npz) for the test images and int8 calibration
#                     (default $EDGEKIT_TEST_DATA, else ../shared/data/mnist.npz beside the repository)
#   --images N        how many real MNIST test images to predict (default 10; emulated float32 costs ~2 s each)
#   --cache DIR       where the root, wheels and installs are kept between runs
#                     (default $EDGEKIT_PI_CACHE, else /var/tmp/edgekit-pi; outside the repository)
#   --json FILE       write the results as JSON (default CACHE/pi_check.json)
#   --no-tests        skip running the runtime's tests under qemu
#   --all-tests       run all of tests/runtime under qemu, not the device-side subset (over half an hour);
#                     the stage fails if any of them skips (e.g. one that needs TensorFlow)
#   --sizes           also measure the workstation install (edgekit[train], x86-64) to compare sizes (~1 GB download)
#   --python PY       the host Python with edgekit[train] installed (default: python3)
#   --release R       bookworm (Debian 12, Python 3.11; the default) or trixie (Debian 13, Python 3.13); trixie's
#                     root and installs are cached in CACHE/trixie
#
# Exit codes: 0 everything passed; 1 a check failed (a prediction mismatch, a failing or skipped test, no test
# run, an import of TensorFlow); 2 bad usage or input; 3 the machine cannot do it (no apt, no network, qemu missing).
# Wall time of each stage and what passed are printed at the end. Run as root (it may apt-get install
# qemu-user-static); nothing on the host's dpkg is changed besides that.
set -euo pipefail
# One script of ~440 lines: its steps share the cache, the arm64 root and the installs, and run in one order; the
# Python half is scripts/pi_check_helper.py.

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HELPER="$REPO/scripts/pi_check_helper.py"

CACHE="${EDGEKIT_PI_CACHE:-/var/tmp/edgekit-pi}"
DATA="${EDGEKIT_TEST_DATA:-$(dirname "$REPO")/shared/data/mnist.npz}"
PY="${PYTHON:-python3}"
MODELS="" KERAS="" JSON="" IMAGES=10 RUN_TESTS=1 SIZES=0 RELEASE=bookworm
BUNDLED_FRAMES=3  # camera-like frames for the bundled model, one digit each (emulated: ~15 s a start, <1 s a frame)
# Which runtime tests run under emulation. Emulated, the arm64 code runs 200-1400x slower than natively: the whole of
# tests/runtime (hundreds of generated camera frames and 500-image batches through float32 models) takes over half
# an hour, so by default the tests that prove the device side run — TensorFlow never imported, a missing backend
# named, metadata read, bad inputs refused, int8 quantized with the model's own scale, a fixed-batch model run image
# by image — and `edgekit predict` is compared above. --all-tests runs everything. Either way the stage fails
# unless tests ran and all of them passed: a skipped test proved nothing on the device.
PI_TESTS="tests/runtime/test_runtime_import.py tests/runtime/test_classifier.py"
PI_TESTS_K="never_imports or missing_backend or metadata or bad_inputs or own_scale or fixed_batch"
PI_TESTS_TIMEOUT=1200

die() { echo "pi_check: error: $2" >&2; exit "$1"; }
while [ $# -gt 0 ]; do
    case "$1" in
        --models) MODELS="${2:?}"; shift 2 ;;
        --keras) KERAS="${2:?}"; shift 2 ;;
        --data) DATA="${2:?}"; shift 2 ;;
        --images) IMAGES="${2:?}"; shift 2 ;;
        --cache) CACHE="${2:?}"; shift 2 ;;
        --json) JSON="${2:?}"; shift 2 ;;
        --python) PY="${2:?}"; shift 2 ;;
        --no-tests) RUN_TESTS=0; shift ;;
        --all-tests) PI_TESTS="tests/runtime"; PI_TESTS_K=""; PI_TESTS_TIMEOUT=7200; shift ;;
        --sizes) SIZES=1; shift ;;
        --release) RELEASE="${2:?}"; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die 2 "unknown option '$1'; see scripts/pi_check.sh --help" ;;
    esac
done
[ -n "$MODELS" ] || [ -n "$KERAS" ] || die 2 "give --models DIR (exported models) or --keras FILE (a trained model to export)"
[ -z "$MODELS" ] || [ -d "$MODELS" ] || die 2 "--models $MODELS is not a folder"
[ -z "$KERAS" ] || [ -f "$KERAS" ] || die 2 "--keras $KERAS is not a file"
[ -f "$DATA" ] || die 2 "MNIST not found at $DATA; give --data or set EDGEKIT_TEST_DATA"
[[ "$IMAGES" =~ ^[1-9][0-9]*$ ]] || die 2 "--images must be a positive whole number, not '$IMAGES'"
[ "$(id -u)" = 0 ] || die 3 "run as root: it unpacks a Debian root and may apt-get install qemu-user-static"
command -v "$PY" >/dev/null || die 3 "host Python '$PY' not found; give --python"
# Per release: the Pi's Python, its glibc (the newest manylinux tag pip may take), and the package names that differ.
case "$RELEASE" in
    bookworm) PYV=3.11 GLIBC_MINOR=36 GLIB_DEB=libglib2.0-0 DEBIAN="Debian 12 bookworm" ;;
    trixie) PYV=3.13 GLIBC_MINOR=41 GLIB_DEB=libglib2.0-0t64 DEBIAN="Debian 13 trixie"
            CACHE="$CACHE/trixie" ;;
    *) die 2 "--release must be bookworm or trixie, not '$RELEASE'" ;;
esac
CP="cp${PYV/./}"
mkdir -p "$CACHE"
CACHE="$(cd "$CACHE" && pwd)"
JSON="${JSON:-$CACHE/pi_check.json}"

ROOT="$CACHE/root"          # the bookworm arm64 root
SITE="$CACHE/site"          # the device install: edgekit + its base dependencies (aarch64)
TESTSITE="$CACHE/testsite"  # pytest for running tests/runtime on the "device"; not part of the device install
WORK="$CACHE/run"           # this run's images, models and outputs
PIPY="$CACHE/bin/python$PYV"  # the Pi's python, run through qemu (a wrapper so subprocesses work too)
rm -rf "$WORK" && mkdir -p "$WORK/native" "$WORK/pi" "$CACHE/bin"
STAGES="$WORK/stages.tsv"; : > "$STAGES"
FAILED=0

# --- stage bookkeeping: name, wall seconds, status, one-line detail ---
stage() { STAGE_NAME="$1"; STAGE_T0=$EPOCHREALTIME; echo; echo "== $1"; }
stage_done() {  # status detail
    local dt; dt=$(awk -v a="$STAGE_T0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
    printf '%s\t%s\t%s\t%s\n' "$STAGE_NAME" "$dt" "$1" "$2" >> "$STAGES"
    echo "-- $STAGE_NAME: $1 in ${dt}s${2:+ ($2)}"
    [ "$1" != FAIL ] || FAILED=1
}
RUN_T0=$EPOCHREALTIME

# Debian packages of the root: Python 3.11 as Raspberry Pi OS has it, the C++ runtime the backends need,
# and the X11/GL libraries that the opencv-python (not -headless) aarch64 wheel links against — a
# Raspberry Pi OS Lite image lacks some of them (see README "On a Raspberry Pi").
BASE_DEBS="python$PYV-minimal libpython$PYV-stdlib libstdc++6 libgcc-s1"
OPENCV_GUI_DEBS="libgl1 $GLIB_DEB libsm6 libice6 libx11-6 libxext6 libxcb1"
ROOT_DEBS="$BASE_DEBS $OPENCV_GUI_DEBS"

# pip's view of a Raspberry Pi OS: CPython 3.11, aarch64, glibc 2.36 (bookworm; trixie: 3.13, glibc 2.41). pip does
# not widen an explicit --platform to older manylinux tags, so name each one (ai-edge-litert ships manylinux_2_27,
# protobuf manylinux2014).
PLATFORM_ARGS=(--only-binary=:all: --python-version "$PYV" --implementation cp --abi "$CP")
for v in $(seq "$GLIBC_MINOR" -1 17); do PLATFORM_ARGS+=(--platform "manylinux_2_${v}_aarch64"); done
PLATFORM_ARGS+=(--platform manylinux2014_aarch64)
PIP=("$PY" -m pip --disable-pip-version-check --no-input)

# ====================================================================================================
stage "host tools"
if ! command -v qemu-aarch64-static >/dev/null; then
    echo "installing qemu-user-static from Debian"
    (apt-get -o DPkg::Lock::Timeout=300 install -y -q qemu-user-static >/dev/null 2>"$WORK/apt.err" ||
        { apt-get -o DPkg::Lock::Timeout=300 update -q >/dev/null && \
          apt-get -o DPkg::Lock::Timeout=300 install -y -q qemu-user-static >/dev/null; }) ||
        { cat "$WORK/apt.err" >&2; die 3 "could not apt-get install qemu-user-static"; }
fi
command -v dpkg-deb >/dev/null || die 3 "dpkg-deb not found: this script needs a Debian host"
QEMU_VERSION=$(qemu-aarch64-static --version | head -1)
stage_done ok "$QEMU_VERSION"

# ====================================================================================================
stage "arm64 root"
# A private apt (own lists, empty dpkg status, arm64 only) resolves and downloads the .debs; the host's
# dpkg architectures are left alone. Sources are the host's own (/etc/apt/sources.list[.d]) for bookworm; for
# trixie, Debian's own trixie suite, checked with the host's Debian archive keyring.
APT_DIR="$CACHE/apt"
APT=(apt-get -q -o APT::Architecture=arm64 -o "APT::Architectures::=arm64" -o "Dir::State=$APT_DIR/state"
     -o "Dir::State::status=$APT_DIR/state/status" -o "Dir::Cache=$APT_DIR/cache" -o Debug::NoLocking=1
     -o APT::Install-Recommends=0)
if [ "$RELEASE" != bookworm ]; then
    mkdir -p "$APT_DIR"
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $RELEASE main" \
        > "$APT_DIR/sources.list"
    APT+=(-o "Dir::Etc::sourcelist=$APT_DIR/sources.list" -o "Dir::Etc::sourceparts=-")
fi
ROOT_KEY="$(printf '%s\n' "$ROOT_DEBS" "pi4-cpuinfo-v1" ${RELEASE/#bookworm/} | sha256sum | cut -c1-16)"
if [ -f "$ROOT/.edgekit-root" ] && [ "$(cat "$ROOT/.edgekit-root")" = "$ROOT_KEY" ]; then
    stage_done ok "cached: $ROOT"
else
    mkdir -p "$APT_DIR/state/lists/partial" "$APT_DIR/cache/archives/partial"
    : > "$APT_DIR/state/status"
    "${APT[@]}" update >"$WORK/apt.log" 2>&1 || { tail -5 "$WORK/apt.log" >&2; die 3 "apt-get update for arm64 failed"; }
    rm -f "$APT_DIR/cache/archives/"*.deb
    # shellcheck disable=SC2086
    "${APT[@]}" install -s $BASE_DEBS 2>/dev/null | awk '/^Inst /{ print $2 }' > "$APT_DIR/base-closure.txt"
    # shellcheck disable=SC2086
    "${APT[@]}" install -y --download-only $ROOT_DEBS >>"$WORK/apt.log" 2>&1 ||
        { tail -5 "$WORK/apt.log" >&2; die 3 "downloading the arm64 packages failed"; }
    rm -rf "$ROOT.tmp" && mkdir -p "$ROOT.tmp"
    for deb in "$APT_DIR/cache/archives/"*.deb; do dpkg-deb -x "$deb" "$ROOT.tmp"; done
    # trixie's packages install under /usr only (merged /usr); its /lib -> usr/lib links come from base-files,
    # which is not in the closure: make them, or the dynamic loader /lib/ld-linux-aarch64.so.1 is not found.
    for d in bin sbin lib; do [ -e "$ROOT.tmp/$d" ] || ln -s "usr/$d" "$ROOT.tmp/$d"; done
    # qemu-user shows arm64 programs the host's x86 /proc/cpuinfo, on which LiteRT and ONNX Runtime crash;
    # qemu looks under -L first, so a Raspberry Pi 4's cpuinfo and CPU lists there fix that.
    mkdir -p "$ROOT.tmp/proc" "$ROOT.tmp/sys/devices/system/cpu"
    for i in 0 1 2 3; do
        printf 'processor\t: %d\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\nCPU implementer\t: 0x41\n' "$i"
        printf 'CPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\n'
    done > "$ROOT.tmp/proc/cpuinfo"
    printf 'Revision\t: c03114\nSerial\t\t: 100000000000edge\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n' >> "$ROOT.tmp/proc/cpuinfo"
    for f in possible present online; do echo 0-3 > "$ROOT.tmp/sys/devices/system/cpu/$f"; done
    echo "$ROOT_KEY" > "$ROOT.tmp/.edgekit-root"
    rm -rf "$ROOT" && mv "$ROOT.tmp" "$ROOT"
    stage_done ok "built from $(ls "$APT_DIR/cache/archives/"*.deb | wc -l) arm64 .debs: $ROOT"
fi
cat > "$PIPY.tmp" <<EOF
#!/bin/sh
# The Raspberry Pi's python3.11, emulated. -0 makes sys.executable this wrapper, so subprocesses work too.
exec qemu-aarch64-static -cpu cortex-a72 -L "$ROOT" -0 "\$0" "$ROOT/usr/bin/python$PYV" "\$@"
EOF
chmod +x "$PIPY.tmp" && mv "$PIPY.tmp" "$PIPY"

# ====================================================================================================
stage "device install (aarch64 wheels)"
# Build from a copy of the checkout's files (tracked and new, not ignored): setuptools writes build/ in-tree.
rm -rf "$WORK/dist" "$WORK/src" && mkdir -p "$WORK/dist" "$WORK/src"
(cd "$REPO" && git ls-files -z -co --exclude-standard | tar --null -T - -cf -) | tar -C "$WORK/src" -xf - ||
    die 3 "could not copy the checkout's files (is $REPO a git checkout?)"
"${PIP[@]}" wheel --quiet --no-deps -w "$WORK/dist" "$WORK/src" >"$WORK/wheel.log" 2>&1 ||
    { tail -5 "$WORK/wheel.log" >&2; die 3 "building the edgekit wheel failed"; }
EDGEKIT_WHEEL="$(ls "$WORK/dist"/edgekit-*.whl)"
"$PY" "$HELPER" requirements "$EDGEKIT_WHEEL" > "$WORK/requirements.txt"
SITE_KEY="$( (cat "$WORK/requirements.txt"; printf '%s\n' "${PLATFORM_ARGS[@]}") | sha256sum | cut -c1-16)"
WHEELS="$CACHE/wheels-aarch64"
if [ -f "$SITE/.edgekit-site" ] && [ "$(cat "$SITE/.edgekit-site")" = "$SITE_KEY" ]; then
    # Dependencies unchanged: only this checkout's edgekit wheel is replaced.
    "${PIP[@]}" install --quiet --no-warn-conflicts --no-index --no-deps --upgrade --target "$SITE" "${PLATFORM_ARGS[@]}" "$EDGEKIT_WHEEL" \
        >"$WORK/pip.log" 2>&1 || { tail -5 "$WORK/pip.log" >&2; die 3 "installing the edgekit wheel failed"; }
    stage_done ok "dependencies cached; edgekit wheel reinstalled"
else
    rm -rf "$WHEELS" "$SITE.tmp" && mkdir -p "$WHEELS"
    "${PIP[@]}" download --quiet -d "$WHEELS" "${PLATFORM_ARGS[@]}" -r "$WORK/requirements.txt" >"$WORK/pip.log" 2>&1 ||
        { grep -v WARNING "$WORK/pip.log" | tail -5 >&2; die 3 "pip download of the aarch64 wheels failed"; }
    cp "$EDGEKIT_WHEEL" "$WHEELS/"
    "${PIP[@]}" install --quiet --no-warn-conflicts --no-index --find-links "$WHEELS" --target "$SITE.tmp" "${PLATFORM_ARGS[@]}" "$EDGEKIT_WHEEL" \
        >>"$WORK/pip.log" 2>&1 || { grep -v WARNING "$WORK/pip.log" | tail -5 >&2; die 3 "pip install --target of the aarch64 wheels failed"; }
    rm -rf "$SITE.tmp/bin"  # console scripts with the host's shebang: useless on the device
    echo "$SITE_KEY" > "$SITE.tmp/.edgekit-site"
    rm -rf "$SITE" && mv "$SITE.tmp" "$SITE"
    stage_done ok "$(ls "$WHEELS" | wc -l) wheels downloaded and installed into $SITE"
fi

if [ "$RUN_TESTS" = 1 ]; then
    TEST_REQS=(pytest hypothesis)
    TEST_KEY="$(printf '%s\n' "${TEST_REQS[@]}" "${PLATFORM_ARGS[@]}" | sha256sum | cut -c1-16)"
    if ! { [ -f "$TESTSITE/.edgekit-site" ] && [ "$(cat "$TESTSITE/.edgekit-site")" = "$TEST_KEY" ]; }; then
        rm -rf "$TESTSITE.tmp"
        "${PIP[@]}" install --quiet --no-warn-conflicts --target "$TESTSITE.tmp" "${PLATFORM_ARGS[@]}" "${TEST_REQS[@]}" >"$WORK/pip-test.log" 2>&1 ||
            { grep -v WARNING "$WORK/pip-test.log" | tail -5 >&2; die 3 "pip install --target of pytest failed"; }
        # numpy etc. come from the device install, never from here
        rm -rf "$TESTSITE.tmp/bin" && echo "$TEST_KEY" > "$TESTSITE.tmp/.edgekit-site"
        rm -rf "$TESTSITE" && mv "$TESTSITE.tmp" "$TESTSITE"
    fi
fi

# ====================================================================================================
stage "import check (emulated)"
if PYTHONPATH="$SITE" timeout 600 "$PIPY" "$HELPER" import-check > "$WORK/import.json" 2> "$WORK/import.err"; then
    stage_done ok "$("$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["summary"])' "$WORK/import.json")"
else
    tail -3 "$WORK/import.err" >&2
    stage_done FAIL "edgekit.runtime does not import cleanly on the emulated Pi: $(tail -1 "$WORK/import.err")"
fi

# ====================================================================================================
stage "models and images (x86-64)"
if [ -n "$KERAS" ]; then
    MODELS="$WORK/models"
    "$PY" -c "from edgekit.toolkit.cli import main; main()" export --model "$KERAS" --format all --quantize none,int8 --data "$DATA" \
        --out "$MODELS" > "$WORK/export.log" 2>&1 || { tail -5 "$WORK/export.log" >&2; die 1 "edgekit export failed on x86-64"; }
fi
MODELS="$(cd "$MODELS" && pwd)"
MODEL_FILES=()
for m in model_float32.tflite model_int8.tflite model_float32.onnx model_int8.onnx; do
    [ -f "$MODELS/$m" ] && MODEL_FILES+=("$m")
done
for m in model_float32.tflite model_int8.tflite model_float32.onnx; do
    [ -f "$MODELS/$m" ] || die 2 "$MODELS has no $m; export with: edgekit export --format all --quantize none,int8"
done
"$PY" "$HELPER" images "$DATA" "$IMAGES" "$WORK/images" > "$WORK/images.txt"
stage_done ok "${#MODEL_FILES[@]} models (${MODEL_FILES[*]}) from $MODELS; $IMAGES MNIST test images as PNG"

# ====================================================================================================
for m in "${MODEL_FILES[@]}"; do
    stage "predict $m"
    t0=$EPOCHREALTIME
    "$PY" -c "from edgekit.toolkit.cli import main; main()" predict --json "$MODELS/$m" "$WORK/images" \
        > "$WORK/native/$m.jsonl" 2> "$WORK/native/$m.err" || true
    t1=$EPOCHREALTIME
    (cd "$WORK" && PYTHONPATH="$SITE" timeout 1200 "$PIPY" -c "from edgekit.toolkit.cli import main; main()" \
        predict --json "$MODELS/$m" "$WORK/images" > "$WORK/pi/$m.jsonl" 2> "$WORK/pi/$m.err") || true
    t2=$EPOCHREALTIME
    awk -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN { printf "%.2f\t%.2f\n", b - a, c - b }' > "$WORK/pi/$m.times"
    if detail="$("$PY" "$HELPER" compare "$m" "$WORK/native/$m.jsonl" "$WORK/pi/$m.jsonl" "$WORK/images.txt" \
            "$WORK/native/$m.err" "$WORK/pi/$m.err" "$WORK/pi/$m.times" "$WORK/compare-$m.json")"; then
        stage_done ok "$detail"
    else
        stage_done FAIL "$detail"
    fi
done

# ====================================================================================================
# The same comparison at full precision, through the runtime's API (predict prints 4 decimals), on a few images
# in one process per side (each emulated start costs ~15 s).
PROB_IMAGES=$(( IMAGES < 3 ? IMAGES : 3 ))
stage "probabilities (Classifier, $PROB_IMAGES images)"
MODEL_LIST="$(IFS=,; echo "${MODEL_FILES[*]}")"
if "$PY" "$HELPER" probabilities "$MODELS" "$MODEL_LIST" "$WORK/images" "$PROB_IMAGES" > "$WORK/native/probabilities.json" \
        2> "$WORK/native/probabilities.err" &&
   (cd "$WORK" && PYTHONPATH="$SITE" timeout 1200 "$PIPY" "$HELPER" probabilities "$MODELS" "$MODEL_LIST" "$WORK/images" \
        "$PROB_IMAGES" > "$WORK/pi/probabilities.json" 2> "$WORK/pi/probabilities.err") &&
   detail="$("$PY" "$HELPER" compare-probabilities "$WORK/native/probabilities.json" "$WORK/pi/probabilities.json" \
        "$WORK/compare-probabilities.json")"; then
    stage_done ok "$detail"
else
    stage_done FAIL "${detail:-$(tail -1 "$WORK/pi/probabilities.err" "$WORK/native/probabilities.err" 2>/dev/null | tr '\n' ' ')}"
fi

# ====================================================================================================
# Out of the box: `edgekit predict FRAME` with no model argument, so the model bundled in the wheel reads it, on
# camera-like frames made here (toolkit/synthetic.py: an MNIST test digit written on paper, light gradient, noise,
# blur, JPEG) that the bundled model reads right on x86-64. The device must say it uses the bundled model (one
# line), read the same digits and boxes, and, through Classifier() with no path, give the same probabilities on
# the same input within the int8 tolerance, from the same file (sha256 as recorded). No frame, no note, another
# digit: the stage fails.
stage "bundled model, no model argument ($BUNDLED_FRAMES camera frames)"
detail=""
if "$PY" "$HELPER" frames "$DATA" "$BUNDLED_FRAMES" "$WORK/frames" "$WORK/frames-input.npy" > "$WORK/frames.txt" \
        2> "$WORK/frames.err"; then
    t0=$EPOCHREALTIME
    "$PY" -c "from edgekit.toolkit.cli import main; main()" predict --json "$WORK/frames" \
        > "$WORK/native/bundled.jsonl" 2> "$WORK/native/bundled.err" || true
    "$PY" "$HELPER" bundled "$WORK/frames" "$WORK/frames-input.npy" > "$WORK/native/bundled.json" \
        2> "$WORK/native/bundled-probs.err" || true
    t1=$EPOCHREALTIME
    (cd "$WORK" && PYTHONPATH="$SITE" timeout 600 "$PIPY" -c "from edgekit.toolkit.cli import main; main()" \
        predict --json "$WORK/frames" > "$WORK/pi/bundled.jsonl" 2> "$WORK/pi/bundled.err") || true
    (cd "$WORK" && PYTHONPATH="$SITE" timeout 600 "$PIPY" "$HELPER" bundled "$WORK/frames" "$WORK/frames-input.npy" \
        > "$WORK/pi/bundled.json" 2> "$WORK/pi/bundled-probs.err") || true
    t2=$EPOCHREALTIME
    awk -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN { printf "%.2f\t%.2f\n", b - a, c - b }' > "$WORK/pi/bundled.times"
    if detail="$("$PY" "$HELPER" compare-bundled --frames "$WORK/frames.txt" --native "$WORK/native/bundled.jsonl" \
            --pi "$WORK/pi/bundled.jsonl" --native-err "$WORK/native/bundled.err" --pi-err "$WORK/pi/bundled.err" \
            --native-probs "$WORK/native/bundled.json" --pi-probs "$WORK/pi/bundled.json" --times "$WORK/pi/bundled.times" \
            --device-site "$SITE" --out "$WORK/compare-bundled.json")"; then
        stage_done ok "$detail"
    else
        tail -2 "$WORK/pi/bundled-probs.err" "$WORK/native/bundled-probs.err" >&2 2>/dev/null || true
        stage_done FAIL "$detail"
    fi
else
    stage_done FAIL "no camera frames: $(tail -1 "$WORK/frames.err")"
fi

# ====================================================================================================
# `edgekit benchmark` on the device, as a user would run it there: two models x two thread counts, accuracy on 50
# MNIST test images. Emulated, so functional only: its table, JSON and recommendation are checked, never its times,
# which are qemu's translation speed and not a Pi's.
stage "edgekit benchmark (emulated: functional only, timings are not a Pi's)"
BENCH_MODELS=("$MODELS/model_int8.tflite")
[ -f "$MODELS/model_int8.onnx" ] && BENCH_MODELS+=("$MODELS/model_int8.onnx")
"$PY" -c "import numpy as np, sys; d = np.load(sys.argv[1]); np.savez(sys.argv[2], x_test=d['x_test'][:50], y_test=d['y_test'][:50])" \
    "$DATA" "$WORK/bench50.npz"
set +e
(cd "$WORK" && PYTHONPATH="$SITE" timeout 1200 "$PIPY" -c "from edgekit.toolkit.cli import main; main()" benchmark \
    "${BENCH_MODELS[@]}" --data "$WORK/bench50.npz" --threads 1,2 --frames 3 --json "$WORK/benchmark.json" \
    > "$WORK/pi/benchmark.txt" 2> "$WORK/pi/benchmark.err")
rc=$?
set -e
if detail="$("$PY" - "$WORK/benchmark.json" "$rc" "${#BENCH_MODELS[@]}" <<'PYEOF'
import json, sys
path, rc, models = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
try:
    report = json.load(open(path))
except (OSError, ValueError):
    sys.exit(print(f"exit {rc}, no JSON written") or 1)
rows, rec = report["rows"], report["recommendation"]
pairs = {(r["file"], r["threads"]) for r in rows}
ok = rc == 0 and len(rows) == 2 * models and (rec["file"], rec["threads"]) in pairs and all(r["accuracy"] is not None for r in rows)
accs = ", ".join(sorted({f"{r['file']} {r['accuracy']:.0f} %" for r in rows}))
print(f"exit {rc}; {len(rows)} rows ({models} models x threads 1,2), accuracy on 50 images: {accs}; recommends "
      f"{rec['file']} x {rec['threads']}; emulated timings not used")
sys.exit(0 if ok else 1)
PYEOF
)"; then
    stage_done ok "$detail"
else
    tail -2 "$WORK/pi/benchmark.err" >&2 || true
    stage_done FAIL "$detail"
fi

# ====================================================================================================
if [ "$RUN_TESTS" = 1 ]; then
    stage "runtime tests (emulated)"
    missing=""
    for t in $PI_TESTS; do [ -e "$REPO/$t" ] || missing="$missing $t"; done
    if [ -n "$missing" ]; then
        stage_done FAIL "not in this checkout:$missing"
    else
        # The plugin (scripts/pi_pytest_plugin.py) hands the tests the models exported on x86-64 ($MODELS): the
        # device has no Keras to make its own. The verdict is the helper's, from the JUnit XML: the stage passes
        # only if tests ran and every one passed — none skipped, none failed (pytest's own exit is 0 for skips).
        set +e
        # shellcheck disable=SC2086
        (cd "$REPO" && PYTHONPATH="$TESTSITE:$SITE:$REPO/scripts" EDGEKIT_TEST_DATA="$DATA" EDGEKIT_PI_MODELS="$MODELS" \
            PYTHONUNBUFFERED=1 timeout "$PI_TESTS_TIMEOUT" "$PIPY" -m pytest $PI_TESTS -k "$PI_TESTS_K" -q -rA -p pi_pytest_plugin \
            -o cache_dir="$WORK/pytest-cache" --durations=8 -m "not browser" --junitxml "$WORK/pytest.xml" > "$WORK/pytest.log" 2>&1)
        rc=$?
        set -e
        tail -25 "$WORK/pytest.log"
        [ "$rc" != 124 ] || echo "pytest timed out after ${PI_TESTS_TIMEOUT}s"
        if detail="$("$PY" "$HELPER" test-verdict "$WORK/pytest.xml" "$rc" "$WORK/tests.json")"; then
            stage_done ok "$detail"
        else
            stage_done FAIL "$detail"
        fi
    fi
fi

# ====================================================================================================
stage "sizes"
SIZE_ARGS=(--device-wheels "$WHEELS" --device-site "$SITE" --root "$ROOT" --debs "$APT_DIR/cache/archives"
           --opencv-gui-debs "$OPENCV_GUI_DEBS" --base-closure "$APT_DIR/base-closure.txt")
if [ "$SIZES" = 1 ]; then
    WS_WHEELS="$CACHE/wheels-x86_64" WS_SITE="$CACHE/site-x86_64"
    "$PY" "$HELPER" requirements "$EDGEKIT_WHEEL" --extra train > "$WORK/requirements-train.txt"
    WS_KEY="$(sha256sum < "$WORK/requirements-train.txt" | cut -c1-16)"
    if ! { [ -f "$WS_SITE/.edgekit-site" ] && [ "$(cat "$WS_SITE/.edgekit-site")" = "$WS_KEY" ]; }; then
        X86=(--only-binary=:all: --python-version 3.11 --implementation cp --abi cp311)
        for v in $(seq 36 -1 17); do X86+=(--platform "manylinux_2_${v}_x86_64"); done
        X86+=(--platform manylinux2014_x86_64)
        rm -rf "$WS_WHEELS" "$WS_SITE.tmp" && mkdir -p "$WS_WHEELS"
        "${PIP[@]}" download --quiet -d "$WS_WHEELS" "${X86[@]}" -r "$WORK/requirements-train.txt" >"$WORK/pip-ws.log" 2>&1 ||
            { grep -v WARNING "$WORK/pip-ws.log" | tail -5 >&2; die 3 "pip download of the workstation wheels failed"; }
        cp "$EDGEKIT_WHEEL" "$WS_WHEELS/"
        "${PIP[@]}" install --quiet --no-warn-conflicts --no-index --find-links "$WS_WHEELS" --target "$WS_SITE.tmp" "${X86[@]}" \
            "$EDGEKIT_WHEEL[train]" >>"$WORK/pip-ws.log" 2>&1 ||
            { grep -v WARNING "$WORK/pip-ws.log" | tail -5 >&2; die 3 "pip install --target of the workstation wheels failed"; }
        rm -rf "$WS_SITE.tmp/bin" && echo "$WS_KEY" > "$WS_SITE.tmp/.edgekit-site"
        rm -rf "$WS_SITE" && mv "$WS_SITE.tmp" "$WS_SITE"
    fi
    SIZE_ARGS+=(--workstation-wheels "$WS_WHEELS" --workstation-site "$WS_SITE")
fi
"$PY" "$HELPER" sizes "${SIZE_ARGS[@]}" > "$WORK/sizes.json"
stage_done ok "$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["summary"])' "$WORK/sizes.json")"

# ====================================================================================================
TOTAL=$(awk -v a="$RUN_T0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
"$PY" "$HELPER" report --stages "$STAGES" --work "$WORK" --total "$TOTAL" --qemu "$QEMU_VERSION" --release "$DEBIAN" \
    --models "${MODEL_FILES[*]}" --images "$IMAGES" --json "$JSON"
if [ "$FAILED" != 0 ]; then
    echo "pi_check: FAILED (details above; outputs in $WORK)" >&2
    exit 1
fi
echo "pi_check: all passed in ${TOTAL}s"
