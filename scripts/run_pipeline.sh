#!/usr/bin/env bash
# Run Emojify under supervisord (Ctrl-C stops everything). One argument, the layout:
#   one-host (default)  capture, workers and display here, all on loopback (deploy/supervisord.conf)
#   camera-host         capture and display; workers connect over CurveZMQ (deploy/camera-host.conf)
#   gpu-host            workers only, connecting to EMOJIFY_CAMERA_HOST (deploy/gpu-host.conf)
# Defaults: the bundled recording, looping, one worker, the MJPEG page on 127.0.0.1:8080.
# Any EMOJIFY_* variable already set wins, e.g. EMOJIFY_CAPTURE_SOURCE=0 for the first webcam.
set -euo pipefail
layout="${1:-one-host}"
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
keys="${EMOJIFY_KEYS_DIR:-$home/keys}"

need_file() {  # need_file PATH WHAT: stop with a hint when a key file is missing
    [ -r "$1" ] && return 0
    echo "run_pipeline.sh $layout: $2 $1 is missing; see README 'Split layout' (python -m commands.keys generate; a key folder of the old layout, NAME.key.pub: python -m commands.keys migrate $keys)" >&2
    exit 2
}

case "$layout" in
one-host)
    conf=supervisord.conf
    export EMOJIFY_WORKER_ID_PREFIX="${EMOJIFY_WORKER_ID_PREFIX:-worker}"
    ;;
camera-host)
    conf=camera-host.conf
    bind="${EMOJIFY_BIND_HOST:-0.0.0.0}"
    export EMOJIFY_CAPTURE_FRAMES_ENDPOINT="${EMOJIFY_CAPTURE_FRAMES_ENDPOINT:-tcp://$bind:5555}"
    export EMOJIFY_DISPLAY_RESULTS_ENDPOINT="${EMOJIFY_DISPLAY_RESULTS_ENDPOINT:-tcp://$bind:5557}"
    export EMOJIFY_CAPTURE_CURVE_SECRET_KEY="${EMOJIFY_CAPTURE_CURVE_SECRET_KEY:-$keys/capture.key_secret}"
    export EMOJIFY_CAPTURE_CURVE_ALLOWED_DIR="${EMOJIFY_CAPTURE_CURVE_ALLOWED_DIR:-$keys/clients}"
    export EMOJIFY_DISPLAY_CURVE_SECRET_KEY="${EMOJIFY_DISPLAY_CURVE_SECRET_KEY:-$keys/display.key_secret}"
    export EMOJIFY_DISPLAY_CURVE_ALLOWED_DIR="${EMOJIFY_DISPLAY_CURVE_ALLOWED_DIR:-$keys/clients}"
    export EMOJIFY_DISPLAY_CURVE_CAPTURE_PUBLIC_KEY="${EMOJIFY_DISPLAY_CURVE_CAPTURE_PUBLIC_KEY:-$keys/capture.key}"
    need_file "$EMOJIFY_CAPTURE_CURVE_SECRET_KEY" "capture's secret key"
    need_file "$EMOJIFY_DISPLAY_CURVE_SECRET_KEY" "display's secret key"
    need_file "$EMOJIFY_DISPLAY_CURVE_CAPTURE_PUBLIC_KEY" "capture's public key"
    ;;
gpu-host)
    conf=gpu-host.conf
    camera="${EMOJIFY_CAMERA_HOST:?set EMOJIFY_CAMERA_HOST to the camera host address}"
    # Unique across GPU hosts: two workers with one id would take over each other at capture.
    host_id="$(hostname -s | tr -c 'A-Za-z0-9_.\n-' '-' | cut -c1-40)"
    export EMOJIFY_WORKER_ID_PREFIX="${EMOJIFY_WORKER_ID_PREFIX:-${host_id:-gpu}}"
    export EMOJIFY_WORKER_CAPTURE_ENDPOINTS="${EMOJIFY_WORKER_CAPTURE_ENDPOINTS:-tcp://$camera:5555}"
    export EMOJIFY_WORKER_RESULTS_ENDPOINT="${EMOJIFY_WORKER_RESULTS_ENDPOINT:-tcp://$camera:5557}"
    export EMOJIFY_WORKER_CURVE_SECRET_KEY="${EMOJIFY_WORKER_CURVE_SECRET_KEY:-$keys/worker.key_secret}"
    export EMOJIFY_WORKER_CURVE_CAPTURE_PUBLIC_KEY="${EMOJIFY_WORKER_CURVE_CAPTURE_PUBLIC_KEY:-$keys/capture.key}"
    export EMOJIFY_WORKER_CURVE_DISPLAY_PUBLIC_KEY="${EMOJIFY_WORKER_CURVE_DISPLAY_PUBLIC_KEY:-$keys/display.key}"
    need_file "$EMOJIFY_WORKER_CURVE_SECRET_KEY" "this host's secret key"
    need_file "$EMOJIFY_WORKER_CURVE_CAPTURE_PUBLIC_KEY" "capture's public key"
    need_file "$EMOJIFY_WORKER_CURVE_DISPLAY_PUBLIC_KEY" "display's public key"
    ;;
*)
    echo "usage: $0 [one-host|camera-host|gpu-host]" >&2
    exit 2
    ;;
esac
mkdir -p "$EMOJIFY_RUN_DIR"
exec "$(dirname "$EMOJIFY_PYTHON")/supervisord" -c "$home/deploy/$conf"
