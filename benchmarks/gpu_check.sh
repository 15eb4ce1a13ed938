#!/usr/bin/env bash
# The GPU check in one command, on a machine with an NVIDIA GPU (CUDA 12):
#
#   bash benchmarks/gpu_check.sh [--no-install] [--quick]
#
# 1. installs the [gpu] extra (pip install -e ".[gpu]"), and torch, pytest and hypothesis if
#    absent (--no-install, or NANOGAN_GPU_CHECK_NO_INSTALL=1, skips pip: use what is installed);
# 2. stops with a one-line message (exit status 2) if the CuPy backend is not available;
# 3. runs the backend tests under NANOGAN_BACKEND=cupy (tests/test_backend*.py and any
#    tests/test_*strict*.py, tests/test_device*.py, tests/test_gpu*.py);
# 4. compares every op of the CuPy kernel set with the reference kernels on random inputs
#    (benchmarks/kernel_check.py, float32 and float64);
# 5. runs the CUDA benchmark against PyTorch (benchmarks/vs_pytorch.py --device cuda; --quick:
#    DCGAN-28 at batch 256 only, 10 iterations);
# 6. writes benchmarks/gpu_check_results.md (each step's status and output) beside
#    benchmarks/results_cuda.json; exit status 0 only if every step passed.
#
# PYTHON=/path/to/python selects the interpreter (default: python3, else python).
# For testing the script itself on a CPU: NANOGAN_GPU_CHECK_BACKEND=strict runs steps 2-4 on the
# strict test backend (the CUDA benchmark then fails with its message), and
# NANOGAN_GPU_CHECK_RESULTS=path writes the results file there.

set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 2
PY="${PYTHON:-$(command -v python3 || command -v python)}"
INSTALL=1
QUICK=0
[ "${NANOGAN_GPU_CHECK_NO_INSTALL:-0}" = "1" ] && INSTALL=0
for arg in "$@"; do
    case "$arg" in
        --no-install) INSTALL=0 ;;
        --quick) QUICK=1 ;;
        -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "gpu_check: unknown argument '$arg' (use --no-install, --quick)" >&2; exit 2 ;;
    esac
done
if [ -z "$PY" ]; then
    echo "gpu_check: no python3 or python on PATH (set PYTHON=...)" >&2
    exit 2
fi

RESULTS="${NANOGAN_GPU_CHECK_RESULTS:-$ROOT/benchmarks/gpu_check_results.md}"
BACKEND="${NANOGAN_GPU_CHECK_BACKEND:-cupy}"
LOGDIR="$(mktemp -d "${TMPDIR:-/tmp}/nanogan_gpu_check.XXXXXX")"
trap 'rm -rf "$LOGDIR"' EXIT

# ---------------------------------------------------------------- 1. install
if [ "$INSTALL" = "1" ]; then
    echo "== installing nanogan with the [gpu] extra"
    if ! "$PY" -m pip install -q -e ".[gpu]"; then
        echo "gpu_check: pip install -e \".[gpu]\" failed (see above)" >&2
        exit 2
    fi
    for mod in torch pytest hypothesis; do
        if ! "$PY" -c "import $mod" >/dev/null 2>&1; then
            echo "== installing $mod"
            "$PY" -m pip install -q "$mod" || { echo "gpu_check: pip install $mod failed" >&2; exit 2; }
        fi
    done
fi

# ---------------------------------------------------------------- 2. the backend is there
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
if ! DESCRIBE="$("$PY" -c "import nanogan; nanogan.set_backend('$BACKEND'); print(nanogan.backend.describe())" 2>"$LOGDIR/backend.err")"; then
    WHY="$(grep -E "Error|error" "$LOGDIR/backend.err" | tail -n 1)"
    echo "gpu_check: the $BACKEND backend is not available: ${WHY:-$(tail -n 1 "$LOGDIR/backend.err")}" >&2
    echo "gpu_check: run it on a machine with an NVIDIA GPU, after pip install -e \".[gpu]\" (or without --no-install)" >&2
    exit 2
fi
echo "== $DESCRIBE"
if [ "$BACKEND" = "cupy" ] && ! "$PY" -c "import torch, sys; sys.exit(not torch.cuda.is_available())" >/dev/null 2>&1; then
    echo "gpu_check: warning: this torch has no CUDA; the benchmark step will fail (install a CUDA build of torch)" >&2
fi

# ---------------------------------------------------------------- 3-5. the steps
declare -A STATUS
run_step() {  # run_step NAME COMMAND...: log to $LOGDIR/NAME.log, record pass/fail
    local name="$1"
    shift
    echo "== $name: $*"
    if "$@" 2>&1 | tee "$LOGDIR/$name.log"; then
        STATUS[$name]="passed"
    else
        STATUS[$name]="FAILED"
    fi
}

shopt -s nullglob
TESTS=(tests/test_backend*.py tests/test_*strict*.py tests/test_device*.py tests/test_gpu*.py)
shopt -u nullglob
mapfile -t TESTS < <(printf '%s\n' "${TESTS[@]}" | sort -u)

run_step tests env NANOGAN_BACKEND="$BACKEND" NANOGAN_ALLOW_FALLBACK=1 "$PY" -m pytest -q -p no:cacheprovider "${TESTS[@]}"
run_step kernels_float32 "$PY" benchmarks/kernel_check.py --backend "$BACKEND" --dtype float32 --json "$LOGDIR/kernels_float32.json"
run_step kernels_float64 "$PY" benchmarks/kernel_check.py --backend "$BACKEND" --dtype float64 --json "$LOGDIR/kernels_float64.json"
BENCH=("$PY" benchmarks/vs_pytorch.py --device cuda --out benchmarks/results_cuda.json)
[ "$QUICK" = "1" ] && BENCH+=(--configs dcgan256 --iters 10)
run_step benchmark "${BENCH[@]}"

# ---------------------------------------------------------------- 6. results
OVERALL=0
{
    echo "# GPU check"
    echo
    echo "Run $(date -u '+%Y-%m-%d %H:%M UTC') by \`bash benchmarks/gpu_check.sh$([ $# -gt 0 ] && printf ' %s' "$@")\` on $(hostname)."
    echo
    echo "- backend: $DESCRIBE"
    if command -v nvidia-smi >/dev/null 2>&1; then
        echo "- nvidia-smi: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -n 1)"
    fi
    echo "- python: $("$PY" --version 2>&1); $("$PY" -c 'import cupy, numpy, torch; print(f"cupy {cupy.__version__}, numpy {numpy.__version__}, torch {torch.__version__} (CUDA {torch.version.cuda})")' 2>&1 | tail -n 1)"
    echo
    echo "| step | status |"
    echo "|---|---|"
    for name in tests kernels_float32 kernels_float64 benchmark; do
        echo "| $name | ${STATUS[$name]} |"
        [ "${STATUS[$name]}" = "passed" ] || OVERALL=1
    done
    echo
    echo "## Backend tests under NANOGAN_BACKEND=$BACKEND"
    echo
    echo "Files: ${TESTS[*]}"
    echo
    echo '```'
    tail -n 25 "$LOGDIR/tests.log"
    echo '```'
    for dt in float32 float64; do
        echo
        echo "## $BACKEND kernels against the reference ($dt)"
        echo
        echo '```'
        cat "$LOGDIR/kernels_$dt.log"
        echo '```'
    done
    echo
    echo "## CUDA benchmark (benchmarks/results_cuda.json)"
    echo
    echo '```'
    tail -n 20 "$LOGDIR/benchmark.log"
    echo '```'
} > "$RESULTS.tmp" && mv "$RESULTS.tmp" "$RESULTS"
echo "== wrote $RESULTS"
if [ "$OVERALL" = "0" ]; then
    echo "gpu_check: every step passed"
else
    echo "gpu_check: some steps FAILED (see $RESULTS)" >&2
fi
exit "$OVERALL"
