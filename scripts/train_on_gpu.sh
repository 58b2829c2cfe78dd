#!/usr/bin/env bash
# One stage of the training campaign on a GPU box that has JAX and no TensorFlow: Keras runs on
# JAX there, and the run folder it writes goes on under TensorFlow here (docs/training.md,
# "Where it stands", item 3).
#
#   scripts/train_on_gpu.sh OUT PACK MINUTES [campaign options...]
#
# OUT      where the run folder is written (OUT/campaign), each file under 16 MB: the checkpoints
#          come back split (OUT/campaign/last.keras.part-00, -01, ...; `cat` joins them);
# PACK     FER2013 packed by `python -m training.pack --out PACK` (train/ may be JPEG:
#          `--train-quality 90` makes it 32 MB instead of 53 MB);
# MINUTES  the campaign's --budget-minutes;
# then the options of the stage, for example a warm restart from the served network:
#          --extend-to 400 --restart-lr 0.005 --restart-from models/emotion_model.keras
#
# The run starts from the state committed in models/campaign/ (its last.keras may be left
# behind when the stage takes its weights from a served model). PYTHON names the interpreter
# (default python3); WHEELS, a folder of wheels to install first (keras, pydantic,
# pydantic-settings and what they need, where the box lacks them).
set -euo pipefail
out=${1:?usage: scripts/train_on_gpu.sh OUT PACK MINUTES [campaign options...]}
pack=${2:?usage: scripts/train_on_gpu.sh OUT PACK MINUTES [campaign options...]}
minutes=${3:?usage: scripts/train_on_gpu.sh OUT PACK MINUTES [campaign options...]}
shift 3
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
if [ -n "${WHEELS:-}" ]; then
    "$python" -m pip install -q --no-index --no-deps --target /tmp/site "$WHEELS"/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export KERAS_BACKEND=jax PYTHONUNBUFFERED=1

run="$out/campaign"
data=$(mktemp -d)/fer2013
mkdir -p "$run"
"$python" -m training.pack --unpack "$pack" --data "$data"
for name in config.json campaign.json history.csv time.json teacher.npy last.keras; do
    if [ -f "models/campaign/$name" ]; then cp "models/campaign/$name" "$run/"; fi
done
# The run reads its faces where its config says: here, where they were unpacked.
"$python" - "$run/config.json" "$data" <<'EOF'
import json, sys
path, data = sys.argv[1], sys.argv[2]
config = json.load(open(path))
config["data"] = data
json.dump(config, open(path, "w"), indent=2)
EOF
if [ -n "$(command -v nvidia-smi)" ]; then nvidia-smi --query-gpu=name,memory.total --format=csv; fi
"$python" -c 'import jax; print("jax devices:", jax.devices())'
status=0
"$python" -m training.campaign --run-dir "$run" --carry '' --budget-minutes "$minutes" "$@" || status=$?

# Back as it came: the committed config's data path, the teacher's answers left out (unchanged
# unless asked again), the checkpoints in parts under 16 MB.
"$python" - "$run/config.json" models/campaign/config.json <<'EOF'
import json, sys
path, committed = sys.argv[1], sys.argv[2]
config = json.load(open(path))
config["data"] = json.load(open(committed))["data"]
json.dump(config, open(path, "w"), indent=2)
EOF
rm -f "$run/teacher.npy"
for name in last best; do
    if [ -f "$run/$name.keras" ]; then
        split -b 15M -d "$run/$name.keras" "$run/$name.keras.part-"
        rm "$run/$name.keras"
    fi
done
ls -l "$run"
exit "$status"
