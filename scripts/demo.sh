#!/usr/bin/env bash
# The main job on built-in defaults: set up, train the default preset (v5-fast) on facts200
# until it answers every training question, then evaluate it and ask it something.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
run="runs/demo-$(date +%Y%m%d-%H%M%S)"
start=$(date +%s)
.venv/bin/ghost train --data facts200 --out "$run"
.venv/bin/ghost eval "$run" --data facts200 --json "$run/eval_train.json"
.venv/bin/ghost eval "$run" --data facts200:test_hard --json "$run/eval_test_hard.json"
.venv/bin/ghost eval "$run" --data facts200:paraphrase --json "$run/eval_paraphrase.json"
.venv/bin/ghost eval "$run" --data facts200:novel --json "$run/eval_novel.json"
echo "Q: What is the capital of Peru?"
echo "A: $(.venv/bin/ghost ask "$run" "What is the capital of Peru?")"
echo "demo finished in $(( $(date +%s) - start )) s; the run is in $run"
