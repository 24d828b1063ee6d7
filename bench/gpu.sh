#!/usr/bin/env bash
# GPU benchmarks for a CUDA machine. Prints one JSON line per benchmark (the last line each
# benchmark prints) and, if $OUT is set, writes them to $OUT/bench_gpu.jsonl and the full logs to
# $OUT/bench_gpu.log.
#
#   bash bench/gpu.sh                  # python from .venv if present, else $PYTHON or python3
#   BATCH=512 FRAMES=48 bash bench/gpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -n "${PYTHON:-}" ]]; then
    py="$PYTHON"
elif [[ -x .venv/bin/python ]]; then
    py=.venv/bin/python
else
    py=python3
fi
batch="${BATCH:-256}"
frames="${FRAMES:-24}"

log="$(mktemp)"
results="$(mktemp)"
trap 'rm -f "$log" "$results"' EXIT

run() {
    echo "== $*" | tee -a "$log" >&2
    local out
    # Keep going if one benchmark fails: the others' figures are still worth having.
    if out="$("$py" "$@" 2>&1)"; then
        printf '%s\n' "$out" >>"$log"
        printf '%s\n' "$out" | tail -n 1 >>"$results"
    else
        printf '%s\n' "$out" >>"$log"
        printf '{"failed": "%s", "exit": 1}\n' "$*" >>"$results"
    fi
    printf '%s\n' "$out" | tail -n 25 >&2
}

"$py" -c 'import torch; assert torch.cuda.is_available(), "no CUDA GPU visible"; print(torch.__version__, torch.cuda.get_device_name())' >&2

# Correctness first: the engine on the GPU against the CPU per-tile PIL reference (fp32 and
# bf16 tolerances, batch sizes, files with bad frames). No Django needed (--noconftest).
echo "== engine tests on cuda" | tee -a "$log" >&2
if tests_out="$(BEARSITE_ENGINE_TEST_DEVICE=cuda "$py" -m pytest --noconftest -p no:django -q \
        tests/inference/test_engine_predictor.py 2>&1)"; then
    status=passed
else
    status=failed
fi
printf '%s\n' "$tests_out" >>"$log"
printf '%s\n' "$tests_out" | tail -n 15 >&2
summary="$(printf '%s\n' "$tests_out" | tail -n 1 | tr -d '"=')"
printf '{"engine_tests_cuda": "%s", "summary": "%s"}\n' "$status" "$summary" >>"$results"

run bench/inference.py --device cuda --batch-size "$batch" --frames "$frames"
run bench/inference.py --device cuda --batch-size "$batch" --frames "$frames" --compile
if [[ -f bench/training.py ]]; then
    run bench/training.py --device cuda
fi

cat "$results"
if [[ -n "${OUT:-}" ]]; then
    mkdir -p "$OUT"
    cp "$results" "$OUT/bench_gpu.jsonl"
    cp "$log" "$OUT/bench_gpu.log"
fi
