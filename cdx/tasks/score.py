"""task=score: teacher-forced divergences and perplexities of given texts (no generation)."""

from __future__ import annotations

from hydra.utils import instantiate
from omegaconf import DictConfig
from tqdm.auto import tqdm

from cdx.decoding.engine import Generation
from cdx.decoding.scoring import score_rows
from cdx.models.pair import raw_context_ids
from cdx.tasks.common import flat_metrics, output_dir, seed_everything, to_record, tracked
from cdx.tasks.decode import finish_run
from cdx.io import JsonlWriter, read_records


def run(cfg: DictConfig) -> dict:
    out = output_dir(cfg)
    seed_everything(cfg.seed)
    with tracked(cfg, "score") as tracker:
        pair = instantiate(cfg.model)
        source = instantiate(cfg.prompts)
        items = source.load_pairs() if hasattr(source, "load_pairs") else [("", t, None) for t in source.load()]
        weights = (float(cfg.decoding.rule.starting_weight), float(cfg.decoding.rule.comparison_weight))
        path = out / "scores.jsonl"
        bs = int(cfg.task.batch_size)
        meta = {"models": pair.describe(), "decoding": "teacher-forced", "seed": cfg.seed}
        with JsonlWriter(path) as writer:
            for start in tqdm(range(0, len(items), bs), desc="scoring", unit="batch"):
                chunk = items[start: start + bs]
                gens = score_items(pair, chunk, weights, start)
                writer.write(to_record(g, pair.tokenizer, meta) for g in gens)
        records = read_records(path)
        summary = finish_run(cfg, out, records, pair.describe(), tracker, "scores")
    return flat_metrics(summary)


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
