"""Stage 5: findings.jsonl and behaviours.jsonl are already written; here analysis.json, analysis.html,
terminal, tracker. Reports lead with behaviours (a group of findings re-tested as one, with its
phrase and scope); the findings follow as their details.

When nothing is validated the report says so, with the held-out sample sizes and the smallest
rate difference the run could have detected with 80% power (exact, one-sided Fisher test at the
per-hypothesis level BH needs for a single true effect among the m tested: alpha = fdr / m).
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path

from pydantic import ConfigDict
from rich.console import Console
from rich.table import Table

from cdx.analysis.behaviours import OTHER_SIDE, WORD_SHIFT, Behaviour, DiscoveryRates, read_behaviours
from cdx.analysis.pipeline import Context, JudgeUsage, RunState, load_findings
from cdx.analysis.stats import minimum_detectable_effect
from cdx.analysis.tilted import TiltedTest
from cdx.analysis.types import Finding
from cdx.io import atomic_write_json, atomic_write_text, read_records
from cdx.io.records import Description, SampleRecord, SetFields, Split, read_model, read_samples
from cdx.metrics.importance import RateEstimate


class AnalysisSummary(SetFields):
    """analysis.json: the run's headline numbers, its behaviours and what it cost.

    `dump()` writes the fields in this order; the cost fields only when this process measured
    the generation they divide by (a run resumed past validation did not).
    """

    model_config = ConfigDict(extra="allow")

    n_behaviours: int = 0
    n_word_shifts: int = 0
    """Validated groups with no distinctive phrase (a shift of word rates, not a behaviour)."""
    n_validated: int
    n_hypotheses: int
    n_prompts: int
    n_discovery_prompts: int
    n_validation_prompts: int
    n_validation_texts_s: int
    n_validation_texts_c: int
    n_tokens: int = 0
    """Tokens generated for the analysis (discovery and validation samples, those drawn before a
    resume included): what task=pipeline charges to `task.budget.tokens` for its analysis stage."""
    fdr: float
    mde_80: float | None = None
    """Smallest rate difference detectable with 80% power at the Bonferroni level of this many tests."""
    mde_80_single: float | None = None
    validated: list[str] = []
    """The statements of the validated findings."""
    behaviours: list[Behaviour] = []
    tilted: list[TiltedTest] = []
    """Hypotheses the plain test left open, tested on tilted samples (analysis.validate.tilted; only
    when it ran): tilted.jsonl's records."""
    n_tilted_validated: int | None = None
    pair: dict = {}
    timings_s: dict[str, float | None] = {}
    generation_s: float | None = None
    analysis_s: float | None = None
    cost_ratio: float | None = None
    judge: JudgeUsage | None = None
    output_dir: str

    def dump(self) -> dict:
        d = super().dump()
        if "behaviours" in d:  # as JSON (NaN-free), the form behaviours.jsonl's readers expect
            d["behaviours"] = [b.model_dump(mode="json") for b in self.behaviours]
        if "tilted" in d:
            d["tilted"] = [t.model_dump(mode="json") for t in self.tilted]
        return d

    def numbers(self) -> dict:
        """The numbers (and unset ones as None) of analysis.json: what task=analyze returns to sweeps."""
        return {k: v for k, v in self.dump().items() if isinstance(v, (int, float)) or v is None}


class ReportStage:
    name = "report"

    def __init__(self, top_n: int = 10, color: bool = True, print_table: bool = True, fdr: float = 0.05):
        self.top_n, self.color, self.print_table, self.fdr = top_n, color, print_table, fdr

    def run(self, ctx: Context) -> None:
        findings = load_findings(ctx.out)
        behaviours = read_behaviours(ctx.out / "behaviours.jsonl")
        samples = read_splits(ctx.out)
        tilted = read_tilted(ctx.out)
        summary = write_summary(ctx, findings, self.fdr, samples, behaviours, tilted)
        desc = read_model(ctx.out / "description.json", Description)
        atomic_write_text(ctx.out / "analysis.html",
                          html_report(findings, summary, desc, samples["validation"], behaviours))
        if self.print_table:
            console = Console(highlight=False, no_color=not self.color, soft_wrap=True)
            print_behaviours(behaviours, self.top_n, console)
            print_tilted(tilted or [], console)
            print_findings(findings, self.top_n, console)
        if ctx.tracker is not None:
            ctx.tracker.log_summary({k: v for k, v in summary.dump().items() if isinstance(v, (int, float))})
            ctx.tracker.log_records([_flat_record(f) for f in findings], "findings")
            ctx.tracker.log_files([str(ctx.out / n) for n in ("findings.jsonl", "analysis.json", "analysis.html",
                                                               "description.json", "hypotheses.jsonl", "behaviours.jsonl")],
                                  "analysis")
        print(summary_line(summary, ctx.out))
        ctx.state.result = summary


def read_splits(out: Path) -> dict[str, list[SampleRecord]]:
    """discovery.jsonl and validation.jsonl of a run folder (empty where a stage has not written one), the
    small clusters' extra samples (cluster_discovery.jsonl, cluster_validation.jsonl) under "cluster" and
    the tilted tests' samples (tilted_<k>.jsonl) under "tilted" when there are any: all count in n_tokens."""
    splits = {split: read_samples(p) if (p := out / f"{split}.jsonl").exists() else []
              for split in ("discovery", "validation")}
    extra = {name: rows for name, paths in (("cluster", [out / "cluster_discovery.jsonl", out / "cluster_validation.jsonl"]),
                                            ("tilted", sorted(out.glob("tilted_*.jsonl"))))
             if (rows := [r for p in paths if p.exists() for r in read_samples(p)])}
    return {**splits, **extra}


def read_tilted(out: Path) -> list[TiltedTest] | None:
    """tilted.jsonl's tests (None: the tilted tests did not run)."""
    path = out / "tilted.jsonl"
    return [TiltedTest.model_validate(r) for r in read_records(path)] if path.exists() else None


def write_summary(ctx: Context, findings: list[Finding], fdr: float, samples: dict[str, list[SampleRecord]],
                  behaviours: Sequence[Behaviour] = (), tilted: list[TiltedTest] | None = None) -> AnalysisSummary:
    split = read_model(ctx.out / "split.json", Split)
    modes = [r.mode for r in samples["validation"]]
    n_s, n_c = modes.count("plain_s"), modes.count("plain_c")
    m = max(len(findings), 1)
    summary = AnalysisSummary(
        n_behaviours=sum(b.is_behaviour for b in behaviours),
        n_word_shifts=sum(b.validated and b.kind == WORD_SHIFT for b in behaviours),
        n_validated=sum(f.validated for f in findings),
        n_hypotheses=len(findings),
        n_prompts=len(split.prompts),
        n_discovery_prompts=len(split.discovery),
        n_validation_prompts=len(split.validation),
        n_validation_texts_s=n_s,
        n_validation_texts_c=n_c,
        n_tokens=sum(r.n_tokens for rows in samples.values() for r in rows),
        fdr=fdr,
        mde_80=minimum_detectable_effect(n_s, n_c, alpha=fdr / m) if n_s and n_c else None,
        mde_80_single=minimum_detectable_effect(n_s, n_c, alpha=fdr) if n_s and n_c else None,
        validated=[f.hypothesis.statement for f in findings if f.validated],
        behaviours=list(behaviours),
        **({"tilted": tilted, "n_tilted_validated": sum(t.validated for t in tilted)} if tilted is not None else {}),
        pair=ctx.pair_info or split.pair,
        timings_s=ctx.state.timings,
        **_cost(ctx.state),
        judge=ctx.state.judge,
        output_dir=str(ctx.out),
    )
    atomic_write_json(ctx.out / "analysis.json", summary.dump())
    return summary


def _cost(state: RunState) -> dict[str, float]:
    """Generation time (both sampling passes) against the whole analysis: the overhead of analysing."""
    t = state.timings
    gen = (t.get("sample") or 0.0) + (state.validation_sampling_s or 0.0)
    total = sum(v for v in t.values() if v)
    if not gen or state.validation_sampling_s is None:  # resumed past validation: not measured
        return {}
    return {"generation_s": round(gen, 2), "analysis_s": round(total, 2), "cost_ratio": round(total / gen, 3)}


def summary_line(s: AnalysisSummary, out: Path | str) -> str:
    line = _summary_line(s, out)
    if s.n_tilted_validated is None:
        return line
    head, _, where = line.rpartition(" -> ")
    return f"{head}; tilted tests: {s.n_tilted_validated} of {len(s.tilted)} validated -> {where}"


def _summary_line(s: AnalysisSummary, out: Path | str) -> str:
    if s.n_validated:
        lead = (f"{s.n_behaviours} behaviour(s)"
                + (f" and {s.n_word_shifts} word-frequency shift(s)" if s.n_word_shifts else "") + " from ")
        return (f"cdx analyze: {lead}{s.n_validated} validated finding(s) of {s.n_hypotheses} hypotheses "
                f"(FDR {s.fdr}, {s.n_validation_texts_s}+{s.n_validation_texts_c} held-out texts) -> {out}")
    mde_txt = f"; smallest rate difference detectable with 80% power: {s.mde_80:.2f}" if s.mde_80 is not None else ""
    return (f"cdx analyze: no validated difference ({s.n_hypotheses} hypotheses tested on "
            f"{s.n_validation_texts_s} starting and {s.n_validation_texts_c} comparison held-out "
            f"texts{mde_txt}) -> {out}")


def _ci(ci: Sequence[float]) -> str:
    return f"[{ci[0]:.2f}, {ci[1]:.2f}]"


def print_behaviours(behaviours: Sequence[Behaviour], top_n: int, console: Console) -> None:
    """The behaviours, validated first, one paragraph each (a table would wrap the statements to shreds)."""
    if not behaviours:
        return
    console.print("[bold]cdx analysis: behaviours that changed (held-out plain samples; comparison vs starting)[/]")
    for b in [b for b in behaviours if b.kind != OTHER_SIDE][:top_n]:
        mark = "[green]✔[/]" if b.is_behaviour else "~" if b.validated else "·"
        console.print(f"{mark} {b.line()}; {len(b.members)} finding(s)")
        for o in (o for o in behaviours if o.other_side_of == b.id):
            console.print(f"    its other side (nothing on these texts tells them apart): {o.statement}: "
                          f"{o.rates_text()}, q={o.q:.2g}; {o.scope.text()}")
        if b.assistant_statement:
            console.print(f"    named by the assistant (blinded): {b.assistant_statement}")
        for ev in b.evidence[:1] if b.is_behaviour else []:
            console.print(f"    e.g. [{ev.model}] {ev.prompt[:60]!r} -> {ev.text[:160]!r}")
        if b.validated and b.discovery_rates is not None:
            console.print(f"    {discovery_rates_text(b.discovery_rates)}")
    if any(b.validated and b.kind == WORD_SHIFT for b in behaviours):
        console.print("  ~ word-frequency shift: validated word rates with no distinctive phrase, not a behaviour")
    console.print("  the findings below are the behaviours' details (behaviours.jsonl lists each one's members)")


def print_tilted(tests: Sequence[TiltedTest], console: Console) -> None:
    """The tilted tests, one line each: both models' stopped rates, the paired difference, p and q."""
    if not tests:
        return
    console.print("[bold]cdx analysis: rare behaviours, tested on samples tilted towards their phrase "
                  "(held-out prompts; stopped weights)[/]")
    for t in tests:
        mark = "[green]✔[/]" if t.validated else "·"
        d = t.difference
        console.print(f"{mark} {t.statement}: comparison {_rate(t.rate_c)} vs starting {_rate(t.rate_s)}; "
                      f"difference {d.diff:+.4f} [{d.low:+.4f}, {d.high:+.4f}] over {d.n_prompts} prompts, "
                      f"p={t.p:.2g}, q={t.q:.2g}" + ("" if t.validated else f" ({t.reason})"))


def _rate(e: RateEstimate) -> str:
    """One RateEstimate: rate [low, high], or why it was refused."""
    if e.rate is None:
        return (f"refused ({e.ess:.0f} effective hits of {e.n_hits})" if e.method == "refused" and e.n_hits and
                "effective hits" in e.message else f"refused (ESS {e.ess:.0f} of {e.n})")
    size = {"snis": f" ESS {e.ess:.0f}", "stopped": f" {e.ess:.0f} effective hits"}.get(e.method, "")
    return f"{e.rate:.3f} [{e.low:.3f}, {e.high:.3f}]{size}"


def discovery_rates_text(d: DiscoveryRates) -> str:
    """The behaviour's rates on the discovery prompts: plain counts beside importance-weighted amplified samples."""
    plain = (f"on discovery prompts, plain {d.plain_c.n_hits}/{d.plain_c.n} vs {d.plain_s.n_hits}/{d.plain_s.n} "
             f"(comparison {_rate(d.plain_c)}, starting {_rate(d.plain_s)})")
    if d.amplified is None:
        return plain
    a = d.amplified
    text = f"{plain}; from amplified samples, weighted: comparison {_rate(a.comparison)}, starting {_rate(a.starting)}"
    if d.stopped is not None:
        text += f"; stopped weights: comparison {_rate(d.stopped.comparison)}, starting {_rate(d.stopped.starting)}"
    return text


def print_findings(findings: list[Finding], top_n: int, console: Console) -> None:
    table = Table(title="cdx analysis: what changed (held-out plain samples)", show_lines=False)
    for col in ("", "finding", "starting", "comparison", "effect [95% CI]", "q"):
        table.add_column(col)
    for f in findings[:top_n]:
        mark = "[green]✔[/]" if f.validated else "·"
        table.add_row(mark, f.hypothesis.statement, f"{f.k_s}/{f.n_s} = {f.rate_s:.2f}",
                      f"{f.k_c}/{f.n_c} = {f.rate_c:.2f}", f"{f.effect:+.2f} {_ci(f.effect_ci)}", f"{f.q:.2g}")
    console.print(table)
    shown: set[str] = set()
    for f in [f for f in findings if f.validated][:3]:
        for ev in [e for e in f.evidence if e.id not in shown][:1]:
            shown.add(ev.id)
            console.print(f"  e.g. [{ev.model}] {ev.prompt[:60]!r} -> {ev.text[:160]!r}")


def _flat_record(f: Finding) -> dict:
    """The findings record with its nested fields as text (a tracker's table holds flat cells)."""
    rec = f.record()
    return {**rec.model_dump(), "checker": json.dumps(rec.checker), "evidence": [e.text for e in rec.evidence],
            "likelihood": json.dumps(rec.likelihood.model_dump()), "discovery": json.dumps(rec.discovery)}


# ---- HTML ------------------------------------------------------------------------------------

_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:80em}
table{border-collapse:collapse}td,th{padding:3px 8px;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}
.ok{color:#080;font-weight:bold}.text{font-family:ui-monospace,monospace;white-space:pre-wrap}.prompt{color:#666}"""


def html_report(findings: list[Finding], summary: AnalysisSummary, desc: Description, validation: list[SampleRecord],
                behaviours: Sequence[Behaviour] = ()) -> str:
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>cdx analysis</title>",
             f"<style>{_CSS}</style></head><body><h1>cdx analysis: what changed in behaviour?</h1>",
             f"<p>{html.escape(summary_line(summary, summary.output_dir))}</p>",
             _pair_table(summary), _behaviours_table(behaviours), _findings_table(findings)]
    figs = [_rate_figure(findings), _cluster_figure(desc)]
    first = True
    for fig in figs:
        if fig is not None:
            parts.append(fig.to_html(full_html=False, include_plotlyjs=first))
            first = False
    parts.append(_terms_table(desc))
    parts.append(_evidence_section(findings, {r.id: r for r in validation}))
    parts.append("</body></html>")
    return "\n".join(parts)


def _pair_table(summary: AnalysisSummary) -> str:
    keys = ("pair", "n_prompts", "n_discovery_prompts", "n_validation_prompts", "n_validation_texts_s",
            "n_validation_texts_c", "fdr", "mde_80", "timings_s")
    d = summary.model_dump(include=set(keys))
    rows = "".join(f"<tr><th>{k}</th><td>{html.escape(json.dumps(d.get(k), default=str))}</td></tr>" for k in keys)
    return f"<table>{rows}</table>"


def _behaviours_table(behaviours: Sequence[Behaviour]) -> str:
    if not behaviours:
        return ""
    head = ("<tr><th></th><th>behaviour</th><th>where</th><th>starting k/n</th><th>comparison k/n</th>"
            "<th>effect [95% CI]</th><th>q</th><th>size</th><th>member findings</th></tr>")
    rows = []
    for b in behaviours:
        mark = "✔" if b.is_behaviour else "↔" if b.kind == OTHER_SIDE else "~" if b.validated else ""
        members = "<br>".join(html.escape(m) for m in b.member_statements)
        kind = "" if b.is_behaviour else ", " + html.escape(b.kind + (f" of {b.other_side_of}" if b.other_side_of else ""))
        rows.append(f"<tr><td class='ok'>{mark}</td><td>{html.escape(b.statement)}</td>"
                    f"<td>{html.escape(b.scope.text())}</td><td>{b.k_s}/{b.n_s} = {b.rate_s:.2f}</td>"
                    f"<td>{b.k_c}/{b.n_c} = {b.rate_c:.2f}</td><td>{b.effect:+.2f} {_ci(b.effect_ci)}</td>"
                    f"<td>{b.q:.2g}</td><td>{b.size}{kind}</td>"
                    f"<td><details><summary>{len(b.members)}</summary>{members}</details></td></tr>")
    return ("<h2>Behaviours (validated findings grouped by the texts they fire on, re-tested as one)</h2>"
            f"<table>{head}{''.join(rows)}</table>")


def _findings_table(findings: list[Finding]) -> str:
    head = ("<tr><th></th><th>finding</th><th>kind</th><th>starting k/n (95% CI)</th><th>comparison k/n (95% CI)</th>"
            "<th>effect [95% CI]</th><th>p</th><th>q</th><th>likelihood check</th><th>why not</th></tr>")
    rows = []
    for f in findings:
        lk = f.likelihood
        lk_txt = "" if lk.delta is None else f"Δ={lk.delta:+.3f} (p={lk.p:.2g})"
        rows.append(
            f"<tr><td class='ok'>{'✔' if f.validated else ''}</td><td>{html.escape(f.hypothesis.statement)}</td>"
            f"<td>{f.hypothesis.kind}</td><td>{f.k_s}/{f.n_s} = {f.rate_s:.2f} {_ci(f.rate_s_ci)}</td>"
            f"<td>{f.k_c}/{f.n_c} = {f.rate_c:.2f} {_ci(f.rate_c_ci)}</td><td>{f.effect:+.2f} {_ci(f.effect_ci)}</td>"
            f"<td>{f.p:.2g}</td><td>{f.q:.2g}</td><td>{lk_txt}</td><td>{html.escape(f.reason)}</td></tr>")
    return f"<h2>Findings (the behaviours' details)</h2><table>{head}{''.join(rows)}</table>"


def _rate_figure(findings: list[Finding]):
    import plotly.graph_objects as go

    shown = findings[:15]
    if not shown:
        return None
    names = [f.hypothesis.statement[:60] for f in shown]
    fig = go.Figure()
    for side, rate, ci in (("starting", "rate_s", "rate_s_ci"), ("comparison", "rate_c", "rate_c_ci")):
        vals = [getattr(f, rate) for f in shown]
        cis = [getattr(f, ci) for f in shown]
        fig.add_bar(name=side, y=names, x=vals, orientation="h",
                    error_x={"type": "data", "symmetric": False, "array": [c[1] - v for v, c in zip(vals, cis)],
                             "arrayminus": [v - c[0] for v, c in zip(vals, cis)]})
    fig.update_layout(title="Rate under each model (held-out plain samples, Wilson 95% CI)", barmode="group",
                      height=200 + 40 * len(shown), xaxis_range=[0, 1], yaxis_autorange="reversed")
    return fig


def _cluster_figure(desc: Description):
    import plotly.graph_objects as go

    clusters = desc.clusters or []
    if not clusters:
        return None
    feats = list(clusters[0].features)
    z = [[c.features[f]["c"].rate - c.features[f]["s"].rate for f in feats] for c in clusters]
    labels = [f"{c.label} ({c.n_prompts} prompts, KL {c.kl_sc_mean:.2f})" for c in clusters]
    fig = go.Figure(go.Heatmap(z=z, x=feats, y=labels, colorscale="RdBu", zmid=0, colorbar={"title": "c - s"}))
    fig.update_layout(title="Feature rate difference per prompt cluster (discovery samples)", height=200 + 50 * len(clusters))
    return fig


def _terms_table(desc: Description) -> str:
    rows = "".join(f"<tr><td>{html.escape(t.term)}</td><td>{t.z:+.2f}</td><td>{t.log_odds:+.2f}</td>"
                   f"<td>{t.k_c}/{t.n_c}</td><td>{t.k_s}/{t.n_s}</td><td>{t.mean_text_delta:+.3f}</td></tr>"
                   for t in desc.terms[:30])
    dropped = html.escape(json.dumps(desc.dropped))
    return ("<h2>Distinctive terms (discovery; log-odds with informative Dirichlet prior)</h2>"
            f"<p>Artefacts dropped before counting: {dropped}</p><table><tr><th>term</th><th>z</th><th>log-odds</th>"
            f"<th>comparison texts</th><th>starting texts</th><th>mean log p_c - log p_s of its texts</th></tr>{rows}</table>")


def _evidence_section(findings: list[Finding], by_id: dict[str, SampleRecord]) -> str:
    from cdx.tracking.report import shade

    parts = ["<h2>Evidence (held-out texts; tokens shaded by log p_c - log p_s, red = the comparison model prefers it)</h2>"]
    for f in findings:
        if not f.validated:
            continue
        parts.append(f"<h3>{html.escape(f.hypothesis.statement)}</h3>")
        for ev in f.evidence:
            r = by_id.get(ev.id)
            if r is None:
                body = html.escape(ev.text)
            else:
                spans = []
                for tok, ls, lc in zip(r.token_strs, r.logp_s, r.logp_c):
                    red, g, b = shade(lc - ls, 3.0)
                    spans.append(f"<span style='background:rgb({red},{g},{b})' title='{lc - ls:+.2f}'>"
                                 f"{html.escape(tok)}</span>")
                body = "".join(spans)
            parts.append(f"<div class='text'>[{html.escape(str(ev.model))}] <span class='prompt'>"
                         f"{html.escape(ev.prompt)}</span> ⟶ {body}</div>")
    return "\n".join(parts)
