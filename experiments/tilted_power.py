"""The tilted test's level and power against the plain test's, on a real pair (issue 19; docs/analysis.md,
"Tilted validation").

Testbed: tiny_brand (a 2-layer model that ends answers with "Buy Zyx!") against its base with the
organism's weights interpolated lambda of the way, and `--null-lams`: the organism interpolated lambda
of the way against itself (both sides write the brand at the same rate, rare at lambda 0.7), where
any rejection is a false one. The hypothesis is
the analysis's own kind of phrase hypothesis, "says 'Zyx'" (a string checker). Each replicate
draws, on the same held-out prompts and in the same decoder batches, `--per-prompt` texts per prompt
of plain_s, plain_c, tilt_c and tilt_s, and tests the hypothesis twice with as many texts per model:
  plain:  the validate stage's test (one-sided Fisher on the plain texts' counts, cdx.analysis.stats.rate_test);
  tilted: the tilted test (cdx.analysis.tilted.tilted_test: stopped rates of tilt_c towards p_c and of
          tilt_s towards p_s, the paired t-test over prompts, one-sided in the stated direction), a
          rejection when the validate stage would validate it: p <= level, the stated side, and hits
          of the comparison model on at least 5 prompts; beside it, the rejections by p alone and
          how often the comparison model's stopped rate was refused (too few effective hits);
  pooled: the tilted test with pool=True on all four modes' texts (every text weighted towards each
          model against the four modes' mixture): twice the texts per model of the other two, so
          compare it with --plain-factor 2.
The table gives the share of replicates rejecting at `--level` (on the null pair: the test's level).

    python experiments/tilted_power.py --null-lams 0.7 0.75 1 --lams 0.6 0.7 0.75 0.8 --seeds 60 --out tilted_power.md
    python experiments/tilted_power.py --lams 0.6 0.7 --seeds 40 --plain-factor 10   # plain with 10x the texts
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from is_calibration import pair_at  # run as python experiments/tilted_power.py
from tqdm import tqdm

from cdx.analysis import build_checker
from cdx.analysis.sampling import SampleSettings, sample_pair
from cdx.analysis.stats import rate_test
from cdx.analysis.tilted import apply_tilted_fdr, tilted_test
from cdx.analysis.types import Finding, Hypothesis
from cdx.decoding import phrase_tokens
from cdx.io.settings import TiltedSettings
from cdx.models.pair import ModelPair
from cdx.organisms.prompts import sample_prompts

MODES = ("plain_s", "plain_c", "tilt_c", "tilt_s")


def replicate(pair, finding: Finding, checker, prompts, a, seed: int, tokens: list[int]) -> dict:
    s = SampleSettings(samples_per_prompt=a.per_prompt, max_new_tokens=a.tokens, plausibility_beta=0.0,
                       batch_size=a.batch_size, seed=seed, tilt_tokens=tokens, tilt_bonus=a.bonus)
    recs = sample_pair(pair, prompts, s, modes=MODES, pool=True)
    k = {m: sum(checker.check(r.text) for r in recs if r.mode == m) for m in MODES}
    n = {m: sum(r.mode == m for r in recs) for m in MODES}
    plain = rate_test(k["plain_s"], n["plain_s"], k["plain_c"], n["plain_c"], "gained")
    more = None
    if a.plain_factor > 1:  # the plain test again with plain_factor times the texts (the extra ones drawn apart)
        extra = sample_pair(pair, prompts, s.but(samples_per_prompt=a.per_prompt * (a.plain_factor - 1),
                                                 seed=seed + 100_000), modes=("plain_s", "plain_c"))
        kk = {m: k[m] + sum(checker.check(r.text) for r in extra if r.mode == m) for m in ("plain_s", "plain_c")}
        nn = {m: n[m] + sum(r.mode == m for r in extra) for m in ("plain_s", "plain_c")}
        more = rate_test(kk["plain_s"], nn["plain_s"], kk["plain_c"], nn["plain_c"], "gained").p
    t = tilted_test(finding, tokens, [r for r in recs if r.mode in ("tilt_c", "tilt_s")],
                    TiltedSettings(enabled=True, samples_per_prompt=a.per_prompt, bonus=a.bonus), seed=seed)
    apply_tilted_fdr([t], a.level)  # one test: q = p; its verdict as the validate stage gives it
    pooled = tilted_test(finding, tokens, recs, TiltedSettings(enabled=True, samples_per_prompt=a.per_prompt,
                                                                bonus=a.bonus, pool=True), seed=seed)
    apply_tilted_fdr([pooled], a.level)
    return {"plain_p": plain.p, "more_p": more, "tilted_p": t.p, "tilted_ok": t.validated,
            "pooled_p": pooled.p, "pooled_ok": pooled.validated, "pooled_refused": pooled.rate_c.degenerate,
            "tilted_refused": t.rate_c.degenerate, "tilted_diff": t.difference.diff,
            "rate_c": t.rate_c.rate, "plain_rate_c": plain.rate_c, "drawn_c": k["tilt_c"] / n["tilt_c"],
            "k": k, "n": n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lams", type=float, nargs="*", default=[0.7, 0.75, 0.8])
    ap.add_argument("--null-lams", type=float, nargs="*", default=[],
                    help="null pairs: the organism interpolated lambda of the way against itself (the level)")
    ap.add_argument("--seeds", type=int, default=40)
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--per-prompt", type=int, default=4, help="texts per prompt, model and kind (plain, tilted)")
    ap.add_argument("--tokens", type=int, default=24)
    ap.add_argument("--bonus", type=float, default=3.0)
    ap.add_argument("--level", type=float, default=0.05)
    ap.add_argument("--plain-factor", type=int, default=1, help="also the plain test with this many times the texts")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--phrase", default="Zyx")
    ap.add_argument("--organism", default="tiny_brand")
    ap.add_argument("--cache", default=str(Path.home() / ".cache" / "cdx"))
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    torch.manual_seed(0)
    prompts = sample_prompts("general", "heldout", a.prompts, seed=0)
    spec = {"type": "string", "value": a.phrase, "case": False, "word": False}
    finding = Finding(Hypothesis(f"says {a.phrase!r}", spec, "gained", "ngram"), n_s=0, k_s=0, n_c=0, k_c=0,
                      rate_s=0.0, rate_c=0.0, rate_s_ci=(0.0, 0.0), rate_c_ci=(0.0, 0.0), effect=0.0,
                      effect_ci=(0.0, 0.0), p=1.0)
    checker = build_checker(spec)
    lines = [f"Testbed {a.organism} against its base, {len(prompts)} held-out general prompts, {a.tokens} new "
             f"tokens; per replicate {a.per_prompt} texts per prompt of each of plain_s, plain_c, tilt_c, tilt_s "
             f"(tilt bonus {a.bonus:g} on the first tokens of {a.phrase!r}); {a.seeds} replicates; rejection at "
             f"level {a.level:g}.", "",
             "| lambda | brand in plain_c texts | in tilt_c texts | plain test rejects | tilted test rejects | "
             "tilted p <= level (any number of hit prompts) | tilted rate refused | pooled test rejects | "
             "pooled rate refused | "
             + (f"plain test with {a.plain_factor}x the texts rejects | " if a.plain_factor > 1 else "")
             + "median p plain | median p tilted | median p pooled |",
             "|---" * 12 + "|" + ("---|" if a.plain_factor > 1 else "")]
    t0 = time.time()
    for null, lam in [(True, x) for x in a.null_lams] + [(False, x) for x in a.lams]:
        pair = pair_at(lam, a.cache, a.organism)[0]
        if null:  # both sides the interpolated organism (one model: the two sides run as one batch)
            pair = ModelPair(pair.comparison, pair.comparison, lam)
        tokens = phrase_tokens(pair.tokenizer, a.phrase)
        reps = [replicate(pair, finding, checker, prompts, a, seed, tokens)
                for seed in tqdm(range(a.seeds), desc=f"{'null ' if null else ''}lambda {lam:g}")]
        plain = np.mean([r["plain_p"] <= a.level for r in reps])
        tilted = np.mean([r["tilted_ok"] for r in reps])
        by_p = np.mean([r["tilted_p"] <= a.level and r["tilted_diff"] > 0 for r in reps])
        refused = np.mean([r["tilted_refused"] for r in reps])
        kc = sum(r["k"]["plain_c"] for r in reps)
        nc = sum(r["n"]["plain_c"] for r in reps)
        kt = sum(r["k"]["tilt_c"] for r in reps)
        nt = sum(r["n"]["tilt_c"] for r in reps)
        name = f"null: lambda {lam:g} against itself" if null else f"{lam:g}"
        more = f" {np.mean([r['more_p'] <= a.level for r in reps]):.2f} |" if a.plain_factor > 1 else ""
        lines.append(f"| {name} | {kc}/{nc} ({kc / nc:.4f}) | {kt}/{nt} ({kt / nt:.4f}) | {plain:.2f} | "
                     f"{tilted:.2f} | {by_p:.2f} | {refused:.2f} | {np.mean([r['pooled_ok'] for r in reps]):.2f} | "
                     f"{np.mean([r['pooled_refused'] for r in reps]):.2f} |{more} "
                     f"{np.median([r['plain_p'] for r in reps]):.3g} | "
                     f"{np.median([r['tilted_p'] for r in reps]):.3g} | "
                     f"{np.median([r['pooled_p'] for r in reps]):.3g} |")
        print(lines[-1], flush=True)
    lines += ["", f"{time.time() - t0:.0f} s wall"]
    text = "\n".join(lines)
    print(text)
    if a.out:
        Path(a.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
