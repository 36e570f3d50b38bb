#!/usr/bin/env bash
# Installs cdx as a user would, from its wheel, into a fresh virtual environment outside the
# checkout, then runs `cdx --help` and a tiny decode there. CI runs it after the tests (.ci/run).
#   scripts/check_wheel.sh [PYTHON]     (default: python3; the venv gets torch==2.13.0, the CPU wheel)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${1:-python3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$PY" -m pip wheel -q --no-deps --no-build-isolation . -w "$work/dist" 2>/dev/null \
  || "$PY" -m pip wheel -q --no-deps . -w "$work/dist"
wheel=$(ls "$work"/dist/cdx-*.whl)
echo "built $(basename "$wheel"): $(unzip -l "$wheel" | grep -c 'cdx/conf/.*\.yaml') config files"
"$PY" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q --upgrade pip
"$work/venv/bin/python" -m pip install -q torch==2.13.0   # the CPU wheel; see the Makefile
"$work/venv/bin/python" -m pip install -q "$wheel"
cd "$work"   # outside the checkout: nothing of it is importable from here
"$work/venv/bin/python" -c "import cdx, sys; assert cdx.__file__.startswith('$work/venv/'), cdx.__file__"
"$work/venv/bin/cdx" --help > "$work/help.txt"
grep -q "^cdx is powered by Hydra" "$work/help.txt" && grep -q "^model: " "$work/help.txt"
echo "cdx --help: $(grep -c ': ' "$work/help.txt") lines of config groups and options"
CDX_CACHE_DIR="$work/cache" CDX_KNOWLEDGE_PATH="$work/knowledge.sqlite" \
  "$work/venv/bin/python" -m cdx.run model=tiny_random prompts.limit=2 decoding.max_new_tokens=4 \
  report.print_top=false hydra.run.dir="$work/run"
test -s "$work/run/generations.jsonl"
echo "wheel check: cdx --help and a tiny decode ran from $(dirname "$("$work/venv/bin/python" -c 'import cdx; print(cdx.__file__)')")"
