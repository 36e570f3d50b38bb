#!/usr/bin/env bash
# What does the pirate system prompt change in SmolLM2-135M-Instruct? (CPU, minutes)
set -euo pipefail
out=${1:-outputs/persona}
python -m cdx.run hydra.run.dir="$out/decode" prompts.limit=16
python -m cdx.run experiment=persona_amplify hydra.run.dir="$out/amplify"
python -m cdx.run task=score prompts=previous_run prompts.path="$out/amplify" hydra.run.dir="$out/rescore"
