#!/usr/bin/env bash
# Fixed-seed outputs of decode (two presets), analyze and the smoke benchmark on the tiny pair, and a
# sha256 of every record file they wrote: run it before and after a refactor that must not change
# behaviour, from the same folder, and diff the two listings (issue 20).
#   experiments/fixed_seed_outputs.sh /tmp/fixed > before.txt   # on the old commit
#   experiments/fixed_seed_outputs.sh /tmp/fixed > after.txt    # on the new one; diff before.txt after.txt
# The same OUT path both times: summaries name their folder. Files listing the resolved config
# (summary.json, run.json, analysis.json) are hashed without it, as a new option adds a key there;
# the pipeline's state.json and events.jsonl without their times; its knowledge base as rows, without
# the columns that hold a time, a file's mtime or the run's command and git commit.
set -euo pipefail
OUT=${1:?usage: fixed_seed_outputs.sh OUT}
PY=${PYTHON:-python}
[[ $PY == */* && $PY != /* ]] && PY="$PWD/$PY"  # the script changes folder below
rm -rf "$OUT"; mkdir -p "$OUT"
common=(model=tiny_random logger=none report.print_top=false)
{
  $PY -m cdx.run "${common[@]}" seed=3 prompts.limit=6 hydra.run.dir="$OUT/decode_amplify"
  $PY -m cdx.run "${common[@]}" seed=3 prompts.limit=4 decoding=beam hydra.run.dir="$OUT/decode_beam"
  $PY -m cdx.run "${common[@]}" task=analyze seed=5 hydra.run.dir="$OUT/analyze"
  $PY -m cdx.run suite=smoke logger=none hydra.sweep.dir="$OUT/smoke"
  # the pipeline with the tests' toy analysis (two open hypotheses, so the agent decides twice)
  PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" $PY -c "
import runpy, sys
from tests.agent import pipeline_toys
from tests.agent.test_pipeline_resume import ANALYZED
pipeline_toys.ANALYZED = ANALYZED
sys.argv = ['cdx.run', 'model=tiny_random', 'task=pipeline', 'task.iterations=1', 'task.search.enabled=false',
            'task.analyze.entry=tests.agent.pipeline_toys.toy_analyze', 'agent.sampler.max_new_tokens=4',
            'agent.sampler.batch_size=4', 'agent.settings.topics=[cooking,travel,weather,mathematics]',
            'report.color=false', 'knowledge.path=$OUT/pipeline.sqlite', 'hydra.run.dir=$OUT/pipeline']
runpy.run_module('cdx.run', run_name='__main__')"
} > "$OUT/log.txt" 2>&1
cd "$OUT"
# Records (generations, samples, hypotheses, findings, behaviours): their raw bytes. Summaries and the
# benchmark's table: without the keys that hold the resolved config or a timing, which differ run to run.
normalised='
import hashlib, json, sys
DROP = {"decoding", "config", "settings", "analysis_s", "generation_s", "cost_ratio", "timings_s",
        "cpu_min", "wall_min", "analysis_cpu_min", "wall_s", "used_wall_s", "used/wall_s", "time", "seconds"}
def clean(x):
    if isinstance(x, dict):
        return {k: clean(v) for k, v in x.items() if k not in DROP}
    return [clean(v) for v in x] if isinstance(x, list) else x
path = sys.argv[1]
text = open(path).read()
docs = [json.loads(line) for line in text.splitlines() if line.strip()] if path.endswith(".jsonl") else [json.loads(text)]
print(hashlib.sha256(json.dumps([clean(d) for d in docs], sort_keys=True).encode()).hexdigest())
'
find . -name '*.jsonl' -o -name 'summary.json' -o -name 'analysis.json' -o -name 'state.json' | sort | while read -r f; do
  case $f in
    *.json|*/benchmark.jsonl|*/events.jsonl) h=$($PY -c "$normalised" "$f") ;;
    *) h=$(sha256sum "$f" | cut -c1-64) ;;
  esac
  echo "$h  $f"
done
kb_rows='
import hashlib, json, sqlite3, sys
con = sqlite3.connect(sys.argv[1])
out = {}
for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type=\"table\" ORDER BY name"):
    cols = [r[1] for r in con.execute(f"PRAGMA table_info({table})")]
    keep = [c for c in cols if not c.endswith("_at") and c not in ("mtime_ns", "command", "git_commit", "config")]
    columns = ", ".join(keep)
    out[table] = [list(r) for r in con.execute(f"SELECT {columns} FROM {table} ORDER BY rowid")]
print(hashlib.sha256(json.dumps(out, sort_keys=True, default=str).encode()).hexdigest())
'
for f in ./pipeline.sqlite; do
  echo "$($PY -c "$kb_rows" "$f")  $f"
done
