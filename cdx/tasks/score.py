"""task=score: teacher-forced divergences and perplexities of given texts (no generation)."""

from __future__ import annotations

from hydra.utils import instantiate
from omegaconf import DictConfig

from cdx.decoding.engine import Generation
from cdx.decoding.prompts import check_prompt_lengths
from cdx.decoding.scoring import score_rows
from cdx.io import RecordLog, open_run, progress
from cdx.models.pair import raw_context_ids
from cdx.tasks.common import flat_metrics, output_dir, record_id, run_identity, seed_everything, to_record, tracked
from cdx.tasks.decode import finish_run


def run(cfg: DictConfig) -> dict:
    out = output_dir(cfg)
    seed_everything(cfg.seed)
    source = instantiate(cfg.prompts)
    items = source.load_pairs() if hasattr(source, "load_pairs") else [("", t, None) for t in source.load()]
    weights = rule_weights(cfg)
    # The texts (and given token ids) and the weights decide the scores; the rest of `decoding` does not.
    texts = [f"{p}\x00{t}\x00{ids}" for p, t, ids in items]
    identity = run_identity(cfg, "score", texts, groups=("model",), weights=list(weights))
    with open_run(out, "score", identity, bool(cfg.resume)) as rundir, tracked(cfg, "score") as tracker:
        pair = instantiate(cfg.model)
        check_prompt_lengths(pair, [p + t for p, t, _ in items], 0)
        meta = {"models": pair.describe(), "decoding": "teacher-forced", "seed": cfg.seed}
        records = score_missing(pair, items, weights, int(cfg.task.batch_size), out / "scores.jsonl", meta)
        summary = finish_run(cfg, out, records, pair.describe(), tracker, "scores")
        rundir.finish(n_records=len(records))
    return flat_metrics(summary)


def rule_weights(cfg: DictConfig) -> tuple[float, float]:
    """(w_s, w_c) of the built rule: every rule (ProbDiff, LogitDiff with alpha, ...) sets both."""
    rule = instantiate(cfg.decoding.rule)
    return float(rule.starting_weight), float(rule.comparison_weight)


def score_missing(pair, items: list[tuple], weights, batch_size: int, path, meta: dict) -> list[dict]:
    """Score every item whose record id is not yet in `path` (batches laid out as in a fresh run)."""
    records = RecordLog(path, kind="score")
    done = records.load()
    expected = [record_id(i, 0) for i in range(len(items))]
    starts = [s for s in range(0, len(items), batch_size) if any(i not in done for i in expected[s: s + batch_size])]
    n_batches = -(-len(items) // batch_size)
    with records.writer() as writer:
        for start in progress.bar(starts, total=n_batches, initial=n_batches - len(starts), desc="scoring", unit="batch"):
            gens = score_items(pair, items[start: start + batch_size], weights, start)
            new = [to_record(g, pair.tokenizer, meta) for g in gens]
            writer.write([r for r in new if r["id"] not in done])
    return records.finalize(expected)


def score_items(pair, items: list[tuple], weights, first_index: int = 0) -> list[Generation]:
    """Score (prompt, continuation, token ids or None) items; an empty prompt means a raw text.

    Given token ids (an earlier run's) are scored exactly; otherwise the text is tokenised.
    """
    tok = pair.tokenizer
    ps, pc, conts = [], [], []
    for prompt, text, ids in items:
        cont = list(ids) if ids is not None else tok(text, add_special_tokens=False).input_ids
        if prompt:
            s, c = pair.starting.prompt_ids(prompt), pair.comparison.prompt_ids(prompt)
        else:
            s, c = raw_context_ids(pair.starting), raw_context_ids(pair.comparison)
            if not s or not c:  # nothing before the text: its first token is context, not scored
                s, c, cont = s + cont[:1], c + cont[:1], cont[1:]
        ps.append(s)
        pc.append(c)
        conts.append(cont)
    scored = score_rows(pair, ps, pc, conts, weights)
    return [Generation(first_index + i, 0, p, conts[i], scored[i], "given") for i, (p, *_) in enumerate(items)]
