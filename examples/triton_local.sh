#!/usr/bin/env bash
# Embed a library through a real local Triton server (CPU, Python backend), then compare with onnx.
#   bash examples/triton_local.sh LIBRARY
set -euo pipefail
lib=${1:?usage: examples/triton_local.sh LIBRARY}
pd=${PHOTODEDUP:-.venv/bin/photodedup}
repo=$(mktemp -d)/model_repository
$pd scan "$lib" --catalog triton-example.sqlite
$pd export-onnx --weights random
$pd triton-config --weights random --out "$repo"          # configs + links to the export
$pd serve --engine triton --model-repository "$repo" &     # HTTP 8003, gRPC 8004, metrics 8005
server=$!
trap 'kill -INT $server; wait $server || true' EXIT
for _ in $(seq 120); do curl -sf http://127.0.0.1:8003/v2/health/ready >/dev/null && break; sleep 1; done
$pd embed --backend triton-grpc --url 127.0.0.1:8004 --catalog triton-example.sqlite --json
curl -s http://127.0.0.1:8005/metrics | grep -E '^nv_inference_(count|exec_count)' || true
