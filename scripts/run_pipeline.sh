#!/usr/bin/env bash
# Run the whole pipeline on this host under supervisord (Ctrl-C stops everything).
# Defaults: the bundled recording, looping, one worker, the MJPEG page on 127.0.0.1:8080.
# Any EMOJIFY_* variable already set wins, e.g. EMOJIFY_CAPTURE_SOURCE=0 for the first webcam.
set -euo pipefail
home="$(cd "$(dirname "$0")/.." && pwd)"
export EMOJIFY_HOME="$home"
export EMOJIFY_PYTHON="${EMOJIFY_PYTHON:-$home/.venv/bin/python}"
export EMOJIFY_RUN_DIR="${EMOJIFY_RUN_DIR:-$home/var/run}"
export EMOJIFY_WORKERS="${EMOJIFY_WORKERS:-1}"
export EMOJIFY_CAPTURE_SOURCE="${EMOJIFY_CAPTURE_SOURCE:-recordings/demo}"
export EMOJIFY_CAPTURE_LOOP="${EMOJIFY_CAPTURE_LOOP:-true}"
# Worker N serves /metrics and /healthz on port <prefix><NN>: 9200, 9201, ... by default.
export EMOJIFY_WORKER_STATUS_PORT_PREFIX="${EMOJIFY_WORKER_STATUS_PORT_PREFIX:-92}"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
export PYTHONUNBUFFERED=1
mkdir -p "$EMOJIFY_RUN_DIR"
exec "$(dirname "$EMOJIFY_PYTHON")/supervisord" -c "$home/deploy/supervisord.conf"
