#!/usr/bin/env bash
# Regenerates the Python stubs for every .proto under proto/. The proto path mirrors the Python
# package path (proto/hakube/api/v1/x.proto -> hakube/api/v1/x_pb2.py), so imports resolve.
# Generated files are committed; tests/test_generated_stubs.py checks this script changes nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-.}"
mapfile -t protos < <(cd proto && find . -name '*.proto' | sed 's|^\./||' | sort)
python -m grpc_tools.protoc -Iproto --python_out="$out" --grpc_python_out="$out" --pyi_out="$out" "${protos[@]}"
