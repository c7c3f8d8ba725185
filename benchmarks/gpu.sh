#!/usr/bin/env bash
# The engine measured on a GPU (issue 24): one prepared script for a lent H200 (or H100). Its
# steps run in order of importance, each under its own timeout (about 12 minutes in all on the
# GPU), write every table, log and JSON into the output folder, and a failed step does not stop
# the next (the exit status is 1 if any step failed or timed out):
#
#   throughput  benchmarks/throughput.py with bf16 and channels-last, eager then --compile (the
#               compiled run measures the cnn and the 64 px small-stem ResNet-18 only, to bound
#               compile time), and the targets beside (benchmarks/gpu_targets.py)
#   checks      the tests that skip without CUDA ("needs a CUDA device") and
#               benchmarks/forgetting_score.py on the GPU
#   salun64     examples/salun-bloodmnist-64-10pct.yaml: the original and Retrain (200 epochs
#               each) and SalUn, at 64 px from the 28 px file (resized: no 64 px file can be had)
#   experiment  benchmarks/experiment.py, the default experiment with a bank of 8 Retrains and
#               8 repeats of each method (the forgetting score and U-LiRA)
#
#   bash benchmarks/gpu.sh [--device cpu --tiny] [--data DIR] [--steps LIST] [OUT]
#
# OUT: the output folder (default $OUT if set, else gpu-out). It gets at most 8 files, as many
# as the device tool brings back: gpu.log (the machine, each step's status and seconds, the
# targets), throughput.log, throughput.json, throughput-compile.json, checks.log, salun64.log,
# experiment.log and experiment.json. --data: the folder of bloodmnist.npz (default
# $MEDUNLEARN_DATA, else .gpu-data). --steps: a comma list of the steps to run (default all).
# --tiny: a CPU dry run that checks the script itself in about a minute on 2 idle cores (tiny
# settings, no compiled run, looser timeouts); tests/test_benchmarks.py runs it.
#
# The device tool runs a command for at most 10 minutes, so run the steps in two calls, the
# second at once while the machine is still warm. ../shared/data does not travel and the
# machine has no network nor medmnist, so first, here, in the checkout the tool sends, fill an
# ignored folder that travels as `carry` (.gitignore names .gpu-data/; the echo is for a
# checkout whose .gitignore does not yet):
#
#   echo /.gpu-data/ >> .git/info/exclude
#   mkdir -p .gpu-data && cp ../shared/data/bloodmnist.npz .gpu-data/
#   python3 -m pip download -q --no-deps medmnist==3.0.2 -d .gpu-data
#
# then run, with carry [".gpu-data"] and timeout_s 600 each:
#
#   bash benchmarks/gpu.sh --steps throughput,checks "$OUT"       # at most 5.5 minutes
#   bash benchmarks/gpu.sh --steps salun64,experiment "$OUT"      # at most 7 minutes

set -uo pipefail

DEVICE=cuda
TINY=0
DATA="${MEDUNLEARN_DATA:-.gpu-data}"
STEPS="throughput,checks,salun64,experiment"
OUTDIR="${OUT:-gpu-out}"
PYTHON="${PYTHON:-python3}"
while (($#)); do
    case "$1" in
        --device) DEVICE="$2"; shift 2 ;;
        --tiny) TINY=1; shift ;;
        --data) DATA="$2"; shift 2 ;;
        --steps) STEPS="$2"; shift 2 ;;
        -h | --help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;;
        -*) echo "gpu.sh: unknown option $1" >&2; exit 2 ;;
        *) OUTDIR="$1"; shift ;;
    esac
done

mkdir -p "$OUTDIR"
OUTDIR="$(cd "$OUTDIR" && pwd)"
DATA="$(cd "$DATA" 2>/dev/null && pwd || echo "$DATA")"
LOG="$OUTDIR/gpu.log"
FAILURES=0
WORK="$(mktemp -d -t medunlearn-gpu-XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
export MEDUNLEARN_DATA="$DATA" PYTHONUNBUFFERED=1
cd "$(dirname "$0")/.."

# log LINE...: one line in gpu.log and on stdout
log() { echo "$*" | tee -a "$LOG"; }

# limit GPU_SECONDS TINY_SECONDS: a step's timeout for this run
limit() { if ((TINY)); then echo "$2"; else echo "$1"; fi; }

# run_step NAME SECONDS LOGFILE CMD...: CMD under its timeout, its output appended to LOGFILE,
# its status and seconds in gpu.log; the script goes on whatever the status
run_step() {
    local name="$1" seconds="$2" file="$OUTDIR/$3" began status
    shift 3
    echo "### $name: $*" >>"$file"
    began=$SECONDS
    timeout --kill-after=15 "$seconds" "$@" >>"$file" 2>&1
    status=$?
    local verdict="ok"
    ((status == 124 || status == 137)) && verdict="TIMED OUT after ${seconds} s"
    ((status != 0 && status != 124 && status != 137)) && verdict="FAILED (exit $status)"
    ((status != 0)) && FAILURES=$((FAILURES + 1))
    log "$(printf '%-22s %-28s %5d s  (%s)' "$name" "$verdict" $((SECONDS - began)) "${file##*/}")"
}

# wanted STEP: whether --steps names it
wanted() { [[ ",$STEPS," == *",$1,"* ]]; }

# ensure_package: make medunlearn (and medmnist, from wheels in the data folder) importable
ensure_package() {
    "$PYTHON" -c "import medunlearn.data.medmnist" 2>/dev/null && return 0
    log "medunlearn or medmnist not importable: installing offline"
    compgen -G "$DATA/*.whl" >/dev/null &&
        "$PYTHON" -m pip install -q --no-index --no-deps "$DATA"/*.whl >>"$LOG" 2>&1
    "$PYTHON" -m pip install -q --no-index --no-deps --no-build-isolation -e . >>"$LOG" 2>&1 ||
        export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
    "$PYTHON" -c "import medunlearn.data.medmnist" >>"$LOG" 2>&1 && return 0
    log "still not importable (see above): the steps will fail"
}

log "gpu.sh $(date -u '+%Y-%m-%d %H:%M UTC'), device $DEVICE, tiny $TINY, data $DATA"
log "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
command -v nvidia-smi >/dev/null &&
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$LOG"
ensure_package
"$PYTHON" -c "import sys, torch; print('python', sys.version.split()[0], 'torch',
    torch.__version__, 'cuda', torch.cuda.is_available())" 2>&1 | tee -a "$LOG"
log "$(printf '%-22s %-28s %7s' step status seconds)"

if wanted throughput; then
    sizes=(--bf16 --channels-last)
    ((TINY)) && sizes+=(--models cnn --steps 2 --rounds 1 --warmup 1)
    run_step "throughput eager" "$(limit 90 120)" throughput.log \
        "$PYTHON" benchmarks/throughput.py --device "$DEVICE" "${sizes[@]}" \
        --json "$OUTDIR/throughput.json"
    if ((TINY)); then
        log "throughput compile     skipped with --tiny (compiling on the CPU takes minutes)"
    else
        run_step "throughput compile" 140 throughput.log \
            "$PYTHON" benchmarks/throughput.py --device "$DEVICE" "${sizes[@]}" --compile \
            --models cnn resnet18-small@64 --json "$OUTDIR/throughput-compile.json"
    fi
    "$PYTHON" benchmarks/gpu_targets.py "$OUTDIR/throughput.json" \
        "$OUTDIR/throughput-compile.json" 2>&1 | tee -a "$OUTDIR/throughput.log" "$LOG"
fi

if wanted checks; then
    mapfile -t cuda_tests < <(grep -rl "needs a CUDA device" tests)
    run_step "CUDA-only tests" "$(limit 45 90)" checks.log \
        "$PYTHON" -m pytest -q -rs -p no:cacheprovider -k cuda "${cuda_tests[@]}"
    run_step "forgetting score" "$(limit 45 60)" checks.log \
        "$PYTHON" benchmarks/forgetting_score.py --device "$DEVICE" \
        --examples "$(limit 1196 64)"
fi

if wanted salun64; then
    echo "64 px from the 28 px file (data.file_size=28, resized): no 64 px file can be had" \
        >>"$OUTDIR/salun64.log"
    overrides=(--set data.file_size=28 --set runtime.device="$DEVICE")
    ((TINY)) && overrides+=(--set train.epochs=1 --set methods.salun.params.epochs=1)
    run_step "salun64" "$(limit 300 180)" salun64.log \
        "$PYTHON" -c "from medunlearn.cli import app; app()" run \
        examples/salun-bloodmnist-64-10pct.yaml "${overrides[@]}" --data-root "$DATA" \
        --cache "$WORK/cache" --out "$WORK/salun64"
    [[ -f "$WORK/salun64/results.csv" ]] && cat "$WORK/salun64/results.csv" >>"$OUTDIR/salun64.log"
fi

if wanted experiment; then
    banks=(--set evaluation.bank=8 --set evaluation.repeats=8)
    ((TINY)) && banks=(--quick --set evaluation.bank=3 --set evaluation.repeats=3)
    run_step "experiment" "$(limit 120 180)" experiment.log \
        "$PYTHON" benchmarks/experiment.py --device "$DEVICE" --data-root "$DATA" "${banks[@]}" \
        --json "$OUTDIR/experiment.json"
fi

log "done, $FAILURES step(s) failed or timed out; written: $(ls "$OUTDIR" | tr '\n' ' ')"
((FAILURES == 0))
