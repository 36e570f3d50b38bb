"""task=decode: contrastive decoding over a prompt set; writes generations, summary and report.

The run directory is opened through `cdx.io.open_run` (lock, run.json identity, no rerun without
resume); `resume=true` makes exactly the record ids that are missing, batch by batch as the
uninterrupted run would have (same prompts per batch, same per-batch seed), so a resumed run
reproduces it byte for byte (`batch_size` decides the batches, so it is part of the run identity).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import cast

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from cdx.analysis import quick_summary
from cdx.decoding.prompts import check_prompt_lengths
from cdx.decoding.rules import direction_of
from cdx.io import RecordLog, atomic_write_json, atomic_write_text, open_run, progress
from cdx.io.records import DecodeSummary
from cdx.metrics.summary import summarize
from cdx.tasks.common import (
    flat_metrics,
    output_dir,
    record_id,
    resolved_config,
    run_identity,
    seed_everything,
    to_record,
    tracked,
)
from cdx.tracking.report import html_report, print_top, summary_line

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict:
    out = output_dir(cfg)
    seed_everything(cfg.seed)
    prompts = instantiate(cfg.prompts).load()
    with open_run(out, "decode", run_identity(cfg, "decode", prompts), bool(cfg.resume)) as rundir, \
            tracked(cfg, "decode") as tracker:
        pair = instantiate(cfg.model)
        decoder = instantiate(cfg.decoding, pair=pair)
        check_prompt_lengths(pair, prompts, decoder.settings.max_new_tokens)
        meta = {"models": pair.describe(), "decoding": _decoding_id(cfg, decoder), "seed": decoder.settings.seed}
        records = generate_missing(decoder, prompts, out / "generations.jsonl", meta)
        summary = finish_run(cfg, out, records, pair.describe(), tracker, "generations", rule=decoder.rule)
        rundir.finish(n_records=len(records))
    return flat_metrics(summary)


def generate_missing(decoder, prompts: list[str], path: Path, meta: dict) -> list[dict]:
    """Generate every record id not yet in `path`; return all records in id order.

    Batch b always holds prompts [b * batch_size, (b + 1) * batch_size) and is seeded by b, so a
    batch regenerated for one missing record makes that record exactly as before; only missing
    ids are written, so nothing is duplicated.
    """
    records = RecordLog(path, kind="decode")
    done = records.load()
    per, bs = decoder.settings.generations_per_prefix, decoder.settings.batch_size
    expected = [record_id(i, j) for i in range(len(prompts)) for j in range(per)]
    n_batches = decoder.n_batches(len(prompts))
    todo = [b for b in range(n_batches)
            if any(record_id(i, j) not in done for i in range(b * bs, min(len(prompts), (b + 1) * bs))
                   for j in range(per))]
    if done:
        log.info("resuming %s: %d of %d records on disk, %d of %d batches to run", path, len(done), len(expected),
                 len(todo), n_batches)
    tokenizer, stops = decoder.pair.tokenizer, decoder.settings.stop_strings
    with records.writer() as writer:
        for b in progress.bar(todo, total=n_batches, initial=n_batches - len(todo), desc="contrastive decoding", unit="batch"):
            start = b * bs
            batch = decoder.generate_batch(prompts[start: start + bs], first_index=start, batch_number=b)
            new = [to_record(g, tokenizer, meta, stops) for g in batch]
            writer.write([r for r in new if r["id"] not in done])
    return records.finalize(expected)


def finish_run(cfg: DictConfig, out: Path, records: list[dict], models: dict, tracker, kind: str,
               rule=None) -> DecodeSummary:
    """Summary, report, terminal view and tracker logging, shared by decode and score.

    `rule` is the rule that wrote the texts (decode): it says which side they show. Without it
    (scored texts) the direction is measured from the texts.
    """
    rep = cfg.report
    direction = direction_of(rule) if rule is not None else None
    summary = summarize(records, sort_key=rep.sort_key, top_n=rep.top_n, direction=direction)
    if kind == "generations":  # what changed, in words, from the log-probs the texts already carry
        summary.what_changed = quick_summary(records, _short_label(models["comparison"]),
                                             shows=direction.shows if direction is not None else "comparison")
    info = {"models": models, "decoding": resolved_config(cfg).get("decoding"), "output_dir": str(out)}
    atomic_write_json(out / "summary.json", {**summary.dump(), **info})
    meta = {"starting": models["starting"], "comparison": models["comparison"],
            "interpolation": models.get("interpolation"), "texts": len(records), "output": str(out)}
    atomic_write_text(out / "report.html", html_report(records, summary, meta, rep.sort_key, rep.token_metric))
    if rep.print_top:
        for line in summary.what_changed or []:
            print(line)
        print_top(records, rep.top_n, rep.sort_key, rep.token_metric, color=rep.color, summary=summary)
    tracker.log_summary(summary.dump())
    tracker.log_records(records, kind)
    tracker.log_files([str(out / f) for f in (f"{kind}.jsonl", "summary.json", "report.html")], kind)
    print(summary_line(summary, kind, len(records), out))
    return summary


def _short_label(context_label: str) -> str:
    """`smollm2-135m-pirate system='You are…'` -> `smollm2-135m-pirate`."""
    return context_label.split(" system=")[0].split(" prefix=")[0]


def _decoding_id(cfg: DictConfig, decoder) -> str:
    """The rule with the weights it was built with (LogitDiff configs give alpha, not weights)."""
    d = cast(dict, OmegaConf.to_container(cfg.decoding, resolve=True))
    name = type(decoder.rule).__name__
    w_s, w_c = decoder.weights
    return (f"{name}(w_s={w_s:g},w_c={w_c:g}) "
            f"{d.get('strategy')} T={d.get('temperature')} top_p={d.get('top_p')} top_k={d.get('top_k')} "
            f"beams={d.get('num_beams')} n={d.get('max_new_tokens')}")
