"""Stage 2: describe how the two models' discovery samples differ, with no LLM.

* Distinctive words and bigrams: the log-odds ratio with an informative Dirichlet prior (Monroe,
  Colaresi & Quinn 2008, "Fightin' Words", eq. 16-22), comparison-side texts against
  starting-side texts. Terms are counted once per text (document frequency), so a text that
  repeats a word (a common artefact of amplified sampling) counts it once.
* Each token's mean log p_c - log p_s where it was sampled (the models' own view).
* Behavioural feature rates per sampling mode (cdx.analysis.features).
* Where it lives: prompts clustered on sentence embeddings (k-means), each cluster labelled by
  its c-TF-IDF words, with feature rates and divergence per cluster, and each cluster's own
  distinctive terms (its comparison-side texts against its starting-side texts, beside the
  term's difference over all prompts), so that a behaviour bound to one topic is not diluted
  over all prompts before it can become a candidate.

Artefacts of amplified sampling (byte soup, stray chat turns, exact repeats) are dropped before
counting and reported, so they never become candidates.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cdx.analysis.checkers import ENDED
from cdx.analysis.features import FEATURES
from cdx.analysis.stats import one_sided_p
from cdx.io.records import (
    ClusterRow,
    ClusterTermRow,
    ClusterTerms,
    Description,
    EndingRow,
    PromptClusters,
    Rate,
    SampleRecord,
    TermRow,
    TokenDelta,
)

SIDE = {"plain_s": "s", "amp_s": "s", "plain_c": "c", "amp_c": "c"}
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")
_TURN = re.compile(r"^\s*(user|assistant|system)\s*$", re.M | re.I)
_TEMPLATE_WORDS = {"im_start", "im_end", "endoftext", "assistant", "user", "system"}


@dataclass
class DescribeSettings:
    ngram_max: int = 2
    min_count: int = 3
    """A term must occur in at least this many texts of the side it is distinctive for."""
    prior_strength: float = 100.0
    """alpha_0 of the informative Dirichlet prior (pseudo-counts spread by the pooled frequencies)."""
    top_terms: int = 30
    cluster_top_terms: int = 5
    """Distinctive terms kept per prompt cluster and direction (cluster_terms in description.json)."""
    n_clusters: int = 4
    min_cluster_size: int = 6
    endings: bool = False
    """Also count how often each side's answers end by themselves (within the budget, and within the
    median length of the texts that ended), for ending hypotheses (`description.json["endings"]`)."""
    cluster_min_texts: int = 8
    """A cluster with fewer discovery texts a side has its discovery prompts sampled again until it has
    them, for its cluster describers only (0: never; `cdx.analysis.pipeline.DescribeStage.small_clusters`)."""


def artefact(text: str) -> str | None:
    """Why a sample is an artefact (None when it is ordinary text)."""
    if not text.strip():
        return "empty"
    if text.count("\ufffd") > 0 or sum(not ch.isprintable() and ch not in "\n\t" for ch in text) > 2:
        return "byte soup"
    letters = sum(ch.isalpha() for ch in text)
    if letters < 0.4 * len(text.replace(" ", "")):
        return "byte soup"
    if _TURN.search(text):
        return "stray chat turn"
    return None


def clean_corpus(samples: Sequence[SampleRecord]) -> tuple[list[SampleRecord], Counter]:
    """Samples without artefacts and without exact repeats (same prompt and mode), and what was dropped."""
    kept: list[SampleRecord] = []
    dropped: Counter[str] = Counter()
    seen: set = set()
    for r in samples:
        why = artefact(r.text)
        # the same text drawn again for the same prompt and mode (amplified sampling collapsing onto
        # one string); identical texts for different prompts are kept: a stock refusal is behaviour
        key = (r.prompt_index, r.mode, " ".join(r.text.lower().split()))
        if why is None and key in seen:
            why = "repeated sample"
        if why:
            dropped[why] += 1
            continue
        seen.add(key)
        kept.append(r)
    return kept, dropped


def terms(text: str, ngram_max: int = 2) -> set[str]:
    words = [w.lower() for w in _WORD.findall(text)]
    words = [w for w in words if len(w) > 1 and w not in _TEMPLATE_WORDS]
    out: set[str] = set()
    for n in range(1, ngram_max + 1):
        out.update(" ".join(words[i: i + n]) for i in range(len(words) - n + 1))
    return out


def log_odds(counts_c: Counter, counts_s: Counter, prior_strength: float) -> dict[str, tuple[float, float]]:
    """term -> (delta, z): Monroe et al.'s log-odds ratio of c vs s with an informative Dirichlet prior.

    The prior's pseudo-counts alpha_w = alpha_0 * (y_w^c + y_w^s) / (n_c + n_s) shrink rare terms
    towards no difference; z = delta / sqrt(1/(y_c + alpha_w) + 1/(y_s + alpha_w)).
    """
    vocabulary = set(counts_c) | set(counts_s)
    if len(vocabulary) < 2:  # a term is compared with all the others: with none, its odds are 1/0
        return {}
    n_c, n_s = sum(counts_c.values()), sum(counts_s.values())
    total = n_c + n_s
    out = {}
    for w in vocabulary:
        y_c, y_s = counts_c.get(w, 0), counts_s.get(w, 0)
        a_w = prior_strength * (y_c + y_s) / total
        a_0 = prior_strength
        l_c = np.log((y_c + a_w) / (n_c + a_0 - y_c - a_w))
        l_s = np.log((y_s + a_w) / (n_s + a_0 - y_s - a_w))
        delta = float(l_c - l_s)
        out[w] = (delta, delta / float(np.sqrt(1.0 / (y_c + a_w) + 1.0 / (y_s + a_w))))
    return out


def distinctive_terms(samples: Sequence[SampleRecord], s: DescribeSettings) -> list[TermRow]:
    """Terms ranked by |z|, each with its counts per side and the mean delta of texts holding it."""
    docs: dict[str, Counter[str]] = {"c": Counter(), "s": Counter()}
    n_docs: Counter[str] = Counter()
    deltas = defaultdict(list)
    for r in samples:
        side = SIDE[r.mode]
        n_docs[side] += 1
        for t in terms(r.text, s.ngram_max):
            docs[side][t] += 1
            deltas[t].append(r.delta)
    scores = log_odds(docs["c"], docs["s"], s.prior_strength)
    rows = []
    for t, (delta, z) in scores.items():
        k_c, k_s = docs["c"].get(t, 0), docs["s"].get(t, 0)
        if (k_c if z > 0 else k_s) < s.min_count:
            continue
        rows.append(TermRow(term=t, log_odds=delta, z=z, k_c=k_c, k_s=k_s, n_c=n_docs["c"], n_s=n_docs["s"],
                            mean_text_delta=float(np.mean(deltas[t]))))
    # ties (terms with the same counts) by the term itself: set order changes with PYTHONHASHSEED,
    # and which tied term makes the cut must not change from one process to the next
    rows.sort(key=lambda r: (-abs(r.z), r.term))
    return rows[: s.top_terms * 2]


def token_deltas(samples: Sequence[SampleRecord], min_count: int = 3, top: int = 15) -> dict[str, list[TokenDelta]]:
    """Tokens by their mean log p_c - log p_s where sampled: {"comparison": [...], "starting": [...]}."""
    acc = defaultdict(list)
    for r in samples:
        for tok, ls, lc in zip(r.token_strs, r.logp_s, r.logp_c):
            key = tok.strip().lower()
            if key and any(ch.isalpha() for ch in key):
                acc[key].append(lc - ls)
    rows = [TokenDelta(token=k, mean_delta=float(np.mean(v)), count=len(v)) for k, v in acc.items() if len(v) >= min_count]
    rows.sort(key=lambda r: -r.mean_delta)
    return {"comparison": rows[:top], "starting": rows[::-1][:top]}


def feature_rates(samples: Sequence[SampleRecord]) -> dict[str, dict[str, Rate | float]]:
    """mode -> feature -> its Rate; plus mode -> mean_tokens."""
    out: dict[str, dict[str, Rate | float]] = {}
    for mode in ("plain_s", "plain_c", "amp_c", "amp_s"):
        rows = [r for r in samples if r.mode == mode]
        if not rows:
            continue
        d: dict[str, Rate | float] = {}
        for name, fn in FEATURES.items():
            k = sum(bool(fn(r.text)) for r in rows)
            d[name] = Rate(k=k, n=len(rows), rate=k / len(rows))
        d["mean_tokens"] = float(np.mean([r.n_tokens for r in rows]))
        out[mode] = d
    return out


def side_rates(samples: Sequence[SampleRecord]) -> dict[str, dict[str, tuple[int, int]]]:
    """feature -> side (c, s) -> (k, n) over plain and amplified samples together."""
    out: dict[str, dict[str, tuple[int, int]]] = {}
    for name, fn in FEATURES.items():
        out[name] = {}
        for side in ("c", "s"):
            rows = [r for r in samples if SIDE[r.mode] == side]
            out[name][side] = (sum(bool(fn(r.text)) for r in rows), len(rows))
    return out


# ---- prompt clusters -----------------------------------------------------------------------

def cluster_prompts(prompts: Sequence[str], embedder, n_clusters: int, min_size: int, seed: int) -> PromptClusters:
    """k-means on prompt embeddings: each prompt's cluster (`assignment`) and each cluster's label.

    k is reduced until every cluster holds at least `min_size` prompts (1 cluster when too few).
    Clustering sees only the prompts, never the models' answers, so it may use the held-out
    prompts too without leaking outcomes.
    """
    from sklearn.cluster import KMeans

    emb = embedder.embed(list(prompts))  # (N, D)
    k = min(n_clusters, max(1, len(prompts) // max(min_size, 1)))
    while k > 1:
        assign = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(emb)
        if np.bincount(assign, minlength=k).min() >= min_size:
            break
        k -= 1
    if k <= 1:
        assign = np.zeros(len(prompts), dtype=int)
    labels = ctfidf_labels(prompts, assign)
    return PromptClusters(assignment=[int(a) for a in assign], labels=labels)


def ctfidf_labels(docs: Sequence[str], assign: Sequence[int], top: int = 3) -> dict[int, str]:
    """Each cluster's top c-TF-IDF words (BERTopic's class-based TF-IDF: tf_wc * log(1 + A / f_w))."""
    from sklearn.feature_extraction.text import CountVectorizer

    classes = sorted({int(a) for a in assign})
    joined = [" ".join(d for d, a in zip(docs, assign) if a == c) for c in classes]
    try:
        cv = CountVectorizer(stop_words="english", token_pattern=r"(?u)\b[^\W\d_]{3,}\b")
        tf = cv.fit_transform(joined).toarray().astype(float)  # (classes, vocab)
    except ValueError:  # no words at all
        return {c: f"cluster {c}" for c in classes}
    tf = tf / np.maximum(tf.sum(1, keepdims=True), 1)
    avg = tf.sum() / len(classes)
    idf = np.log(1 + avg / np.maximum(tf.sum(0), 1e-12))
    score = tf * idf
    vocab = np.array(cv.get_feature_names_out())
    return {c: ", ".join(vocab[np.argsort(-score[i])[:top]]) for i, c in enumerate(classes)}


def cluster_table(samples: Sequence[SampleRecord], clusters: PromptClusters) -> list[ClusterRow]:
    """Per cluster: label, prompts, mean KL(s||c) per token, each side's feature rates."""
    assign = clusters.assignment
    rows = []
    for c, label in clusters.labels.items():
        mine = [r for r in samples if assign[r.prompt_index] == c]
        kl = [v for r in mine if r.mode in ("plain_s", "plain_c") for v in r.kl_sc]
        rates = {name: {side: _rate([r for r in mine if SIDE[r.mode] == side], name) for side in ("c", "s")}
                 for name in FEATURES}
        rows.append(ClusterRow(cluster=c, label=label, n_prompts=sum(1 for a in assign if a == c), n_texts=len(mine),
                               kl_sc_mean=float(np.mean(kl)) if kl else 0.0, features=rates))
    return rows


def doc_rates(samples: Sequence[SampleRecord], ngram_max: int) -> dict[str, tuple[Counter[str], int]]:
    """side -> (texts holding each term, texts) over `samples`."""
    docs: dict[str, Counter[str]] = {"c": Counter(), "s": Counter()}
    n: Counter[str] = Counter()
    for r in samples:
        side = SIDE[r.mode]
        n[side] += 1
        docs[side].update(terms(r.text, ngram_max))
    return {side: (docs[side], n[side]) for side in ("c", "s")}


def cluster_terms(samples: Sequence[SampleRecord], clusters: PromptClusters, s: DescribeSettings,
                  every: Sequence[SampleRecord] | None = None) -> list[ClusterTerms]:
    """Per cluster: its distinctive terms (within the cluster, c vs s), each with its difference
    of text rates inside the cluster (`diff`) and over all prompts (`global_diff`), and the
    one-sided Fisher p of the difference inside the cluster (`p`). In a cluster of a few dozen
    texts the prior-shrunk log-odds z ranks terms but barely separates a planted word (17 of 20
    texts against 0) from chance (5 against 11); Fisher's p does (1e-8 against 0.05). `every`: the
    texts `global_diff` is over (default `samples`)."""
    assign = clusters.assignment
    every_rates = doc_rates(samples if every is None else every, s.ngram_max)
    out = []
    for c, label in clusters.labels.items():
        mine = [r for r in samples if assign[r.prompt_index] == c]
        rows = []
        for sign in (1, -1):
            picked = [r for r in distinctive_terms(mine, s) if sign * r.z > 0][: s.cluster_top_terms]
            rows += [ClusterTermRow(**r.model_dump(), diff=_diff(r.k_c, r.n_c, r.k_s, r.n_s),
                                    p=one_sided_p(r.k_c, r.n_c, r.k_s, r.n_s, "gained" if sign > 0 else "lost"),
                                    global_diff=_diff(every_rates["c"][0][r.term], every_rates["c"][1],
                                                      every_rates["s"][0][r.term], every_rates["s"][1]))
                     for r in picked]
        out.append(ClusterTerms(cluster=c, label=label, terms=rows))
    return out


def _diff(k_c: int, n_c: int, k_s: int, n_s: int) -> float:
    return (k_c / n_c if n_c else 0.0) - (k_s / n_s if n_s else 0.0)


def _rate(rows: list[SampleRecord], name: str) -> Rate:
    k = sum(bool(FEATURES[name](r.text)) for r in rows)
    return Rate(k=k, n=len(rows), rate=k / len(rows) if rows else 0.0)


# ---- the whole description -----------------------------------------------------------------

def ending_rows(samples: Sequence[SampleRecord]) -> list[EndingRow]:
    """Texts of each side that ended by themselves: anywhere within the budget, and within the median
    length of the texts that ended (both sides pooled; a shorter-answers change shows there when
    both models mostly end within the budget)."""
    def row(max_tokens: int | None) -> EndingRow:
        k = {side: sum(r.finish_reason in ENDED and (max_tokens is None or r.n_tokens <= max_tokens)
                       for r in samples if SIDE[r.mode] == side) for side in ("c", "s")}
        n = {side: sum(SIDE[r.mode] == side for r in samples) for side in ("c", "s")}
        return EndingRow(max_tokens=max_tokens, k_c=k["c"], n_c=n["c"], k_s=k["s"], n_s=n["s"])

    ended = sorted(r.n_tokens for r in samples if r.finish_reason in ENDED)
    rows = [row(None)]
    if len(ended) >= 6:
        rows.append(row(int(np.median(ended))))
    return rows


def describe(samples: Sequence[SampleRecord], clusters: PromptClusters | None = None,
             settings: DescribeSettings | None = None, extra: Sequence[SampleRecord] = ()) -> Description:
    """The discovery description: terms, token deltas, feature rates, clusters, dropped artefacts.

    `extra`: more samples of small clusters' discovery prompts, seen by the cluster describers only
    (over all prompts they would weigh those prompts more than the others)."""
    s = settings or DescribeSettings()
    kept, dropped = clean_corpus(samples)
    out = Description(n_samples=len(samples), n_kept=len(kept), dropped=dict(dropped), terms=distinctive_terms(kept, s),
                      tokens=token_deltas(kept), features=feature_rates(kept), side_features=side_rates(kept))
    if s.endings:  # set only when asked: description.json has no endings key otherwise
        out.endings = ending_rows(kept)
    if clusters is not None:  # set only here: description.json has no cluster keys for unclustered prompts
        inside = [*kept, *clean_corpus(extra)[0]] if extra else kept
        out.clusters = cluster_table(inside, clusters)
        out.cluster_terms = cluster_terms(inside, clusters, s, every=kept) if len(clusters.labels) > 1 else []
    return out
