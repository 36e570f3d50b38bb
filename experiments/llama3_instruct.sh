#!/usr/bin/env bash
# What did instruction tuning change in Llama-3-8B? Needs a GPU and hub access to meta-llama.
set -euo pipefail
python -m cdx.run model=llama3_pair decoding=topp prompts.limit=64 decoding.batch_size=16
python -m cdx.run model=llama3_pair_4bit decoding=amplify decoding.rule.alpha=1 prompts.limit=64
