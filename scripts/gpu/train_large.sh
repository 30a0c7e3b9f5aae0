#!/usr/bin/env bash
# One device call: train a larger expression network (both heads) from a training pack, then distil it
# into the shipped student, each within a time budget.
#
# Made for the borrowed GPU machine (scripts/gpu/README.md): it has PyTorch but not fervid's media
# dependencies, and only the checkout travels, so the data comes as a pack (scripts/gpu/pack_fer.py)
# and fervid runs from the source tree. A one-epoch probe first proves the CUDA path and times an
# epoch; each run then gets as many epochs as fit in its budget (one-cycle schedules need the count
# up front).
#
#   bash scripts/gpu/train_large.sh TEACHER_S STUDENT_S [extra fervid train options for the teacher...]
#
# TEACHER_S: seconds for the larger network (widths 48,96,192,384, blocks 2,2,2: 6.2 M parameters,
# 25 MB a head, against the shipped 2.7 M). STUDENT_S: seconds for distilling it into the shipped
# network, warm-started from the shipped weights (0: skip). What comes back through $OUT (at most
# 8 files of 16 MB, 64 MB in all): the teacher's ferplus head in 15 MB parts (rejoin with
# `cat ferplus-large.pt.part* > ferplus-large.pt`; its fer2013 head stays behind, as both would not
# fit), the two distilled heads, the logs and summary.txt with every file's sha256.
#
# Tried on the CPU with tiny networks:
#   OUT=/tmp/o DEVICE=cpu WIDTHS=8,8,16,16 BLOCKS=1,1,1 bash scripts/gpu/train_large.sh 60 60 --threads 2
set -uo pipefail
export PYTHONUNBUFFERED=1 COLUMNS=${COLUMNS:-160} PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
OUT=${OUT:-/tmp/fervid-gpu-out}
TEACHER_S=${1:-300}
STUDENT_S=${2:-180}
shift 2 || shift $#
PACK=${PACK:-gpu/fer_joint.npz}
DEVICE=${DEVICE:-cuda}
WIDTHS=${WIDTHS:-48,96,192,384}
BLOCKS=${BLOCKS:-2,2,2}
RUN=${RUN:-/tmp/fervid-run}  # resumable checkpoints (.last.pt) are too large to come back, so runs live here
mkdir -p "$OUT" "$RUN/probe" "$RUN/teacher" "$RUN/student"
if [ ! -f "$PACK" ]; then echo "error: $PACK: no training pack (scripts/gpu/pack_fer.py; carry gpu/)"; exit 1; fi
(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi") > "$OUT/summary.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" | tee -a "$OUT/summary.txt"

# The recipe of the shipped models' joint run (docs/model-history.md, "Training recipe").
RECIPE=(--pack "$PACK" --device "$DEVICE" --photometric equalize --degrade 0.15 --class-weight-power 0.6
        --yaw 0.3 --pose-balance --seed "${SEED:-21}")

# epochs_for BUDGET_S LOG: how many epochs of the one-epoch probe whose output is LOG fit in BUDGET_S.
epochs_for() {
    local budget=$1 log=$2 probe_s=$3 epoch_s
    epoch_s=$(grep -oE '\(([0-9]+)s\)' "$log" | tail -1 | tr -dc '0-9')
    epoch_s=${epoch_s:-$probe_s}
    [ "$epoch_s" -ge 1 ] || epoch_s=1
    local n=$(( (budget - (probe_s - epoch_s)) * 9 / 10 / epoch_s ))
    [ "$n" -ge 1 ] || n=1
    echo "$n"
}

# train NAME BUDGET_S OPTIONS...: probe one epoch, then train as many as fit; weights in $RUN/NAME/.
train() {
    local name=$1 budget=$2 started probe_s epochs status
    shift 2
    started=$(date +%s)
    python3 -m fervid train "${RECIPE[@]}" "$@" --epochs 1 \
        --out "$RUN/probe/fer2013.pt" --out "$RUN/probe/ferplus.pt" > "$OUT/$name.log" 2>&1
    status=$?
    probe_s=$(( $(date +%s) - started ))
    rm -f "$RUN"/probe/*
    if [ "$status" -ne 0 ]; then cat "$OUT/$name.log"; echo "error: $name: the probe failed (exit $status)"; return "$status"; fi
    epochs=$(epochs_for "$budget" "$OUT/$name.log" "$probe_s")
    echo "$name: probe ${probe_s}s -> $epochs epochs in ${budget}s" | tee -a "$OUT/summary.txt"
    started=$(date +%s)
    python3 -m fervid train "${RECIPE[@]}" "$@" --epochs "$epochs" \
        --out "$RUN/$name/fer2013.pt" --out "$RUN/$name/ferplus.pt" 2>&1 | tee -a "$OUT/$name.log"
    status=${PIPESTATUS[0]}
    echo "$name: exit $status after $(( $(date +%s) - started ))s" | tee -a "$OUT/summary.txt"
    return "$status"
}

train teacher "$TEACHER_S" --arch resnet --widths "$WIDTHS" --blocks "$BLOCKS" --batch-size "${BATCH:-256}" \
    --lr "${LR:-2e-3}" "$@" || exit $?
split -b 15m -d "$RUN/teacher/ferplus.pt" "$OUT/ferplus-large.pt.part"
(cd "$RUN/teacher" && sha256sum ferplus.pt | sed 's/ferplus.pt/ferplus-large.pt/') >> "$OUT/summary.txt"

if [ "$STUDENT_S" -gt 0 ]; then
    train student "$STUDENT_S" --init fervid/weights/fer2013.pt --init fervid/weights/ferplus.pt \
        --teacher "$RUN/teacher/fer2013.pt" --teacher "$RUN/teacher/ferplus.pt" --distill 0.5 \
        --batch-size "${BATCH:-256}" --lr "${STUDENT_LR:-1.5e-3}" || exit $?
    for head in fer2013 ferplus; do
        cp "$RUN/student/$head.pt" "$OUT/$head-student.pt"
        (cd "$OUT" && sha256sum "$head-student.pt") >> "$OUT/summary.txt"
    done
fi
cat "$OUT/summary.txt"
