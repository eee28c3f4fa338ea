#!/usr/bin/env bash
# The main job on built-in defaults: set up, train the default preset (v5-fast) on facts200
# until it answers every training question (then its memory stage: it learns to read its fact
# memory), evaluate it, ask it something, and write a new fact into its memory and ask that.
# The run goes to runs/facts (the README's worked example uses that name); if it already
# holds a run, to runs/facts-<date-time>, and the commands printed at the end name it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
run="runs/facts"
[ -e "$run" ] && run="runs/facts-$(date +%Y%m%d-%H%M%S)"
start=$(date +%s)
.venv/bin/ghost train --data facts200 --out "$run"
for split in train test_hard paraphrase novel; do
  .venv/bin/ghost eval "$run" --data "facts200:$split" --json "$run/eval_$split.json"
done
echo "Q: What is the capital of Peru?"
echo "A: $(.venv/bin/ghost ask "$run" "What is the capital of Peru?")"
fact="The capital of Velmoria is Tashkarun."
.venv/bin/ghost memory add "$run" "$fact" > /dev/null
echo "written into its memory: $fact"
echo "Q: What is the capital of Velmoria?"
echo "A: $(.venv/bin/ghost ask "$run" "What is the capital of Velmoria?")"
echo "demo finished in $(( $(date +%s) - start )) s; the run is in $run"
echo "try: source .venv/bin/activate && ghost ask $run \"What is the chemical symbol of gold?\""
