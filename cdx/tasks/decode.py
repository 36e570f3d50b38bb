"""task=decode: contrastive decoding over a prompt set; writes generations, summary and report."""

from __future__ import annotations

import logging
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from cdx.metrics.summary import summarize
from cdx.tasks.common import flat_metrics, output_dir, resolved_config, seed_everything, to_record, tracked
from cdx.io import JsonlWriter, atomic_write_json, atomic_write_text, read_records
from cdx.tracking.report import html_report, print_top, summary_line

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict:
    out = output_dir(cfg)
    seed_everything(cfg.seed)
    with tracked(cfg, "decode") as tracker:
        pair = instantiate(cfg.model)
        decoder = instantiate(cfg.decoding, pair=pair)
        prompts = instantiate(cfg.prompts).load()
        path = out / "generations.jsonl"
        per_batch = decoder.batch_size * decoder.generations_per_prefix
        skip = _resume_point(path, cfg.resume, per_batch, len(prompts) * decoder.generations_per_prefix)
        meta = {"models": pair.describe(), "decoding": _decoding_id(cfg), "seed": decoder.seed}
        with JsonlWriter(path) as writer:
            bar = tqdm(decoder.generate(prompts, skip_batches=skip), total=decoder.n_batches(len(prompts)),
                       initial=skip, desc="contrastive decoding", unit="batch")
            for batch in bar:
                writer.write(to_record(g, pair.tokenizer, meta, decoder.stop_strings) for g in batch)
        records = read_records(path)
        summary = finish_run(cfg, out, records, pair.describe(), tracker, "generations")
    return flat_metrics(summary)


def finish_run(cfg: DictConfig, out: Path, records: list[dict], models: dict, tracker, kind: str) -> dict:
    """Summary, report, terminal view and tracker logging, shared by decode and score."""
    rep = cfg.report
    summary = summarize(records, sort_key=rep.sort_key, top_n=rep.top_n)
    info = {"models": models, "decoding": resolved_config(cfg).get("decoding"), "output_dir": str(out)}
    atomic_write_json(out / "summary.json", {**summary, **info})
    meta = {"starting": models["starting"], "comparison": models["comparison"],
            "interpolation": models.get("interpolation"), "texts": len(records), "output": str(out)}
    atomic_write_text(out / "report.html", html_report(records, summary, meta, rep.sort_key, rep.token_metric))
    if rep.print_top:
        print_top(records, rep.top_n, rep.sort_key, rep.token_metric, color=rep.color)
    tracker.log_summary(summary)
    tracker.log_records(records, kind)
    tracker.log_files([str(out / f) for f in (f"{kind}.jsonl", "summary.json", "report.html")], kind)
    print(summary_line(summary, kind, len(records), out))
    return summary


def _resume_point(path: Path, resume: bool, per_batch: int, expected: int) -> int:
    """Number of complete batches already on disk (0 for a fresh run); trims a partial batch."""
    if not path.exists() or path.stat().st_size == 0:
        return 0
    if not resume:
        raise FileExistsError(
            f"{path} already exists; pass resume=true to continue that run, or use a new output directory"
        )
    records = read_records(path)
    complete = min(len(records), expected) // per_batch
    keep = records[: complete * per_batch]
    atomic_write_text(path, "".join(_line(r) for r in keep))
    log.info("resuming: %d complete batches (%d records) kept in %s", complete, len(keep), path)
    return complete


def _line(record: dict) -> str:
    import json

    return json.dumps(record, ensure_ascii=False) + "\n"


def _decoding_id(cfg: DictConfig) -> str:
    d = OmegaConf.to_container(cfg.decoding, resolve=True)
    rule = d.get("rule", {})
    name = str(rule.get("_target_", "")).rsplit(".", 1)[-1]
    return (f"{name}(w_s={rule.get('starting_weight')},w_c={rule.get('comparison_weight')}) "
            f"{d.get('strategy')} T={d.get('temperature')} top_p={d.get('top_p')} top_k={d.get('top_k')} "
            f"beams={d.get('num_beams')} n={d.get('max_new_tokens')}")
