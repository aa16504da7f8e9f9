"""`xdt explain`: which of a user's history items made a recommended target item score high.

Every explanation names the method that produced it, because they are not equally strong:

- "exact kNN terms" (itemknn, xknn): score(u, i) = Σ_{j ∈ history(u)} sim(j, i) + prior(i), so each
  history item's term sim(j, i) *is* its contribution; the terms plus the tie-break prior add
  up to the score exactly (`unattributed` is the prior).
- "occlusion" (ptupcdr's bridge for cold-start users, dann's history views, two_tower's target
  history, content's TF-IDF profile): these models read a history through a non-linear encoder
  (attention, MLP, L2 normalisation), so no per-item split of the score exists. A history item's
  contribution is the score drop when it alone is removed from the history the model reads:
  one batched forward pass with one row per removed item scores every candidate at once.
  Drops need not add up to the score, and can be negative (the item pulled the score down).
- "none": the model scores from a learned user vector (target_mf, finetune, emcdr, cmf, joint,
  warm users of ptupcdr), a count (popularity) or a blend (fusion). There is no history input to
  take apart, and we do not invent one: the explanation says so and lists no items.

`share` is a contribution over the sum of the absolute contributions of all the user's history
items for that recommended item, so shares of a kNN explanation (all terms ≥ 0) are the
fractions of the history part of the score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sparse

from xdt.data.dataset import PreparedDataset
from xdt.data.protocols import SOURCE, TARGET
from xdt.errors import XdtError
from xdt.runs import RunDirectory, check_model_run

EXACT_KNN = "exact kNN terms"
OCCLUSION = "occlusion"
NOT_EXPLAINABLE = "none"
# The history domain of each NeighbourhoodModel channel, by method (xdt.methods.itemknn, xdt.methods.xknn).
KNN_CHANNEL_DOMAINS = {"itemknn": (TARGET,), "xknn": (SOURCE, TARGET)}
PURE_ID_REASONS = {
    "popularity": "popularity ranks items by training count; no user input at all",
    "target_mf": "target_mf scores from a learned user vector (an id embedding), not from history items",
    "finetune": "finetune scores from a learned user vector; for cold-start users it is the source MF embedding, trained on the "
    "source history but not a function of it the model can re-evaluate",
    "emcdr": "emcdr scores from a learned user vector (warm: target MF; cold-start: the mapped source MF embedding, trained on the "
    "source history but not computed from it)",
    "cmf": "cmf scores from one learned user vector shared by both domains, not from history items",
    "joint": "joint scores from learned shared and private user vectors, not from history items",
    "fusion": "fusion blends z-scored component scores; explain the runs of its components instead",
}


@dataclass(frozen=True)
class Contribution:
    """One history item's part in one recommended item's score."""

    domain: str
    item: str
    title: str
    contribution: float
    share: float


@dataclass(frozen=True)
class Explanation:
    """Why `item` scored `score` for `user`: the top history items, and how that was computed."""

    user: str
    item: str
    title: str
    rank: int | None
    score: float
    method: str
    note: str
    contributions: tuple[Contribution, ...]
    unattributed: float | None = None  # exact methods only: the score part no history item carries

    def to_dict(self) -> dict[str, Any]:
        """Plain data for `--format json`."""
        return {**asdict(self), "contributions": [asdict(part) for part in self.contributions]}


@dataclass(frozen=True)
class Terms:
    """Contributions of one history read by the model: `values[c, j]` of history item j to candidate c."""

    domain: str
    items: np.ndarray  # history item indices in the domain, (n_history,)
    values: np.ndarray  # (n_candidates, n_history)


@dataclass(frozen=True)
class Attribution:
    """What an explainer returns for one user: the method, a note, and the terms (empty when not explainable)."""

    method: str
    note: str
    terms: tuple[Terms, ...]
    unattributed: np.ndarray | None = None  # (n_candidates,), exact methods only


def explain(run: RunDirectory, raw_user: str, *, items: Sequence[str] = (), k: int = 10, top: int = 5) -> list[Explanation]:
    """Explanations of `raw_user`'s top-k recommendations (or of the given target `items`), `top` history items each."""
    if k < 1 or top < 1:
        raise XdtError(f"Expected --k >= 1 and --top >= 1. Received: k={k}, top={top}")
    from xdt.session import load_model, load_run_config, open_dataset

    config = load_run_config(run)
    if config.task != "ranking":
        raise XdtError(f"explain expects a run of a task: ranking experiment; {run.path} is a task: {config.task} run")
    check_model_run(run, config.task, "explain")
    dataset = open_dataset(config)
    user = user_index(dataset, raw_user)
    model = load_model(run)
    scores = np.asarray(model.score_all(np.array([user], dtype=np.int32)))[0].astype(np.float64)
    seen = dataset.interaction_matrix(TARGET, "train", "valid", "test")[user].indices
    candidates, ranks = chosen_items(dataset, scores, seen, items, k)
    attribution = explainer(run.info().get("method", ""), model, dataset)(user, candidates)
    return [
        build_explanation(dataset, raw_user, int(item), rank, float(scores[item]), attribution, row, top)
        for row, (item, rank) in enumerate(zip(candidates, ranks))
    ]


def explain_recommendations(run: RunDirectory, recommendations: pd.DataFrame, *, top: int = 5) -> list[Explanation]:
    """Explanations of the rows of an `xdt recommend` frame (user, rank, item, …), in its order."""
    explanations = []
    for user, group in recommendations.groupby("user", sort=False):
        explanations.extend(explain(run, str(user), items=[str(item) for item in group["item"]], top=top))
    return explanations


def user_index(dataset: PreparedDataset, raw_user: str) -> int:
    """The user's index; an unknown id names what was expected."""
    matches = np.flatnonzero(dataset.raw_users.astype(str) == str(raw_user))
    if len(matches) == 0:
        raise XdtError(
            f"--user: expected a raw user id of dataset {dataset.manifest['name']!r} ({dataset.n_users} users, "
            f"e.g. {', '.join(dataset.raw_users[:3].astype(str))}). Received: {raw_user!r}, which is in neither domain"
        )
    return int(matches[0])


def chosen_items(dataset: PreparedDataset, scores: np.ndarray, seen: np.ndarray, items: Sequence[str], k: int) -> tuple[np.ndarray, list]:
    """The target items to explain and their ranks among the user's unseen items (None for a seen item).

    Without `items`: the top-k unseen items, ties broken by item index (as `xdt recommend` shows them).
    """
    unseen = np.ones(len(scores), dtype=bool)
    unseen[seen] = False
    if not items:
        order = np.flatnonzero(unseen)[np.argsort(-scores[unseen], kind="stable")][:k]
        return order, list(range(1, len(order) + 1))
    raw = pd.Index(dataset.items(TARGET)["raw_item"].astype(str))
    indices = raw.get_indexer(pd.Index([str(item) for item in items]))
    unknown = [str(item) for item, index in zip(items, indices) if index < 0]
    if unknown:
        raise XdtError(
            f"--item: expected a target item id of dataset {dataset.manifest['name']!r} ({len(raw)} target items, "
            f"e.g. {', '.join(raw[:3])}). Received: {', '.join(repr(item) for item in unknown[:5])}, not a target item"
        )
    ranks = [1 + int(np.sum(scores[unseen] > scores[index])) if unseen[index] else None for index in indices]
    return indices.astype(np.int64), ranks


def build_explanation(
    dataset: PreparedDataset, raw_user: str, item: int, rank: int | None, score: float, attribution: Attribution, row: int, top: int
) -> Explanation:
    """The `top` history items by contribution to candidate `row`, with raw ids, titles and shares."""
    parts = [(terms.domain, int(history_item), float(value)) for terms in attribution.terms for history_item, value in zip(terms.items, terms.values[row])]
    total = sum(abs(value) for _, _, value in parts)
    parts.sort(key=lambda part: -part[2])
    contributions = tuple(
        Contribution(domain, raw_item(dataset, domain, index), title_of(dataset, domain, index), value, value / total if total > 0 else 0.0)
        for domain, index, value in parts[:top]
    )
    unattributed = None if attribution.unattributed is None else float(attribution.unattributed[row])
    note = attribution.note
    if rank is None:
        note = f"{note}; the item is already in the user's target history" if note else "the item is already in the user's target history"
    return Explanation(
        raw_user, raw_item(dataset, TARGET, item), title_of(dataset, TARGET, item), rank, score, attribution.method, note, contributions, unattributed
    )


def raw_item(dataset: PreparedDataset, domain: str, index: int) -> str:
    """The raw id of an item index."""
    return str(dataset.items(domain)["raw_item"].iat[index])


def title_of(dataset: PreparedDataset, domain: str, index: int) -> str:
    """The item's title, or "" where the data have none."""
    items = dataset.items(domain)
    if "title" not in items.columns:
        return ""
    title = items["title"].iat[index]
    return "" if pd.isna(title) else str(title)


def explainer(method: str, model: Any, dataset: PreparedDataset):  # noqa: ANN201  (a closure: user, candidates → Attribution)
    """The attribution function of a run's model, chosen by its class (and method name for kNN channels)."""
    from xdt.models.dann import DannModel
    from xdt.models.fusion import ContentModel
    from xdt.models.neighbourhood import NeighbourhoodModel
    from xdt.models.ptupcdr import PtupcdrModel
    from xdt.models.two_tower import TwoTowerModel

    if isinstance(model, NeighbourhoodModel) and method in KNN_CHANNEL_DOMAINS:
        channels = knn_channels(model)
        return lambda user, candidates: knn_attribution(channels, KNN_CHANNEL_DOMAINS[method], model, user, candidates)
    if isinstance(model, PtupcdrModel):
        return lambda user, candidates: ptupcdr_attribution(model, user, candidates)
    if isinstance(model, DannModel):
        return lambda user, candidates: dann_attribution(model, user, candidates)
    if isinstance(model, TwoTowerModel):
        return lambda user, candidates: two_tower_attribution(model, user, candidates)
    if isinstance(model, ContentModel):
        profile = ContentProfile.of(dataset)
        return lambda user, candidates: profile.attribution(user, candidates)
    reason = PURE_ID_REASONS.get(method, f"{method or type(model).__name__} has no history input to attribute its scores to")
    return lambda user, candidates: Attribution(NOT_EXPLAINABLE, f"not explainable by history items: {reason}", ())


def knn_channels(model: Any) -> list[tuple[sparse.csr_matrix, sparse.csr_matrix]]:
    """(history, similarity) CSR matrices of each channel, read back from the model's weights."""
    channels = []
    for weights, (history_items, _, _) in zip(model.channel_weights, model.channel_sizes):
        data = {name: np.asarray(weight.numpy()) for name, weight in weights.items()}
        history = sparse.csr_matrix(
            (np.ones(len(data["history_items"])), data["history_items"], data["history_splits"]), shape=(model.num_users, history_items)
        )
        similarity = sparse.csr_matrix(
            (data["similarity_values"], data["similarity_columns"], data["similarity_splits"]), shape=(history_items, model.num_items)
        )
        channels.append((history, similarity))
    return channels


def knn_attribution(channels: list, domains: Sequence[str], model: Any, user: int, candidates: np.ndarray) -> Attribution:
    """Exact terms sim(j, i) of every history item j of every channel; the prior is the unattributed rest."""
    terms = []
    for (history, similarity), domain in zip(channels, domains):
        items = history[user].indices
        terms.append(Terms(domain, items, similarity[items][:, candidates].toarray().T))
    prior = np.asarray(model.item_prior.numpy())[candidates]
    return Attribution(EXACT_KNN, "score = Σ similarity(history item, item) + popularity tie-break", tuple(terms), prior)


def occlusion_rows(history: np.ndarray, pad: int) -> tuple[np.ndarray, np.ndarray]:
    """The real positions of a padded history `(length,)`, and one copy per position with it padded out `(1 + n, length)`.

    Row 0 is the full history, so drops are measured against the same forward pass.
    """
    positions = np.flatnonzero(history != pad)
    variants = np.repeat(history[None, :], 1 + len(positions), axis=0)
    variants[1 + np.arange(len(positions)), positions] = pad
    return positions, variants


def drops(scores: Any, candidates: np.ndarray) -> np.ndarray:
    """Score drops `(n_candidates, n_history)` from the scores `(1 + n, n_items)` of the full and occluded histories."""
    scores = np.asarray(scores, dtype=np.float64)[:, candidates]
    return (scores[:1] - scores[1:]).T


def ptupcdr_attribution(model: Any, user: int, candidates: np.ndarray) -> Attribution:
    """Cold-start users: occlusion of the source history fed to the meta-network. Warm users: not explainable."""
    from keras import ops

    if float(model.has_target.numpy()[user, 0]) > 0:
        return Attribution(NOT_EXPLAINABLE, "not explainable by history items: ptupcdr serves warm users from the target MF user vector", ())
    pad = model.num_source_items
    positions, variants = occlusion_rows(np.asarray(model.source_history.numpy())[user], pad)
    history = ops.convert_to_tensor(variants)
    bridge = model.bridge(model.source_item_embedding(history), history < pad)
    source_vector = ops.expand_dims(model.source_user_embedding(ops.full((len(variants),), user, dtype="int32")), 1)
    vectors = ops.squeeze(ops.matmul(source_vector, bridge), axis=1)
    scores = vectors @ ops.transpose(model.target.item_embedding.embeddings) + ops.reshape(model.target.item_bias.embeddings, (1, -1))
    items = variants[0, positions]
    note = "score drop when one source history item is removed from the meta-network's input (cold-start bridge)"
    return Attribution(OCCLUSION, note, (Terms(SOURCE, items, drops(scores, candidates)),))


def mean_pooled(embedding: Any, variants: np.ndarray, pad: int) -> Any:
    """Mean embedding of each row's real items `(rows, dim)`, as two_tower and dann pool a history."""
    from keras import ops

    history = ops.convert_to_tensor(variants)
    mask = ops.cast(history < pad, "float32")
    count = ops.maximum(ops.sum(mask, axis=1, keepdims=True), 1.0)
    return ops.sum(embedding(history) * ops.expand_dims(mask, -1), axis=1) / count


def two_tower_attribution(model: Any, user: int, candidates: np.ndarray) -> Attribution:
    """Occlusion of the target history pooled into the user tower."""
    from keras import ops

    positions, variants = occlusion_rows(np.asarray(model.target_history.numpy())[user], model.num_items)
    pooled = mean_pooled(model.item_embedding, variants, model.num_items)
    ids = model.user_embedding(ops.full((len(variants),), user, dtype="int32"))
    vectors = model.user_output(model.user_hidden(ops.concatenate([ids, pooled], axis=-1)))
    scores = vectors @ ops.transpose(model.item_vectors(ops.arange(model.num_items, dtype="int32")))
    note = "score drop when one target history item is removed from the user tower's mean" + ("" if len(positions) else "; the user has no target history")
    return Attribution(OCCLUSION, note, (Terms(TARGET, variants[0, positions], drops(scores, candidates)),))


def dann_attribution(model: Any, user: int, candidates: np.ndarray) -> Attribution:
    """Occlusion of the history of the view that serves the user: target view if they have target history, else source view."""
    from keras import ops

    target_history = np.asarray(model.target_history.numpy())[user]
    warm = bool(np.any(target_history != model.padding_item))
    history = target_history if warm else np.asarray(model.source_history.numpy())[user]
    positions, variants = occlusion_rows(history, model.padding_item)
    pooled = mean_pooled(model.item_embedding, variants, model.padding_item)
    shared = model.shared_user_embedding(ops.full((len(variants),), user, dtype="int32"))
    vectors = model.encoder_output(model.encoder_hidden(ops.concatenate([shared, pooled], axis=-1)))
    start, end = model.num_source_items, model.padding_item
    scores = vectors @ ops.transpose(model.item_embedding.embeddings[start:end]) + ops.reshape(model.item_bias.embeddings[start:end], (1, -1))
    items = variants[0, positions] - (start if warm else 0)
    view = "target" if warm else "source"
    note = f"score drop when one {view} history item is removed from the {view} view's mean (dann)"
    return Attribution(OCCLUSION, note, (Terms(TARGET if warm else SOURCE, items, drops(scores, candidates)),))


@dataclass(frozen=True)
class ContentProfile:
    """The content model's inputs rebuilt from the data (xdt.methods.content): TF-IDF rows of both domains' items."""

    source_vectors: sparse.csr_matrix
    target_vectors: sparse.csr_matrix
    source_history: sparse.csr_matrix
    target_history: sparse.csr_matrix

    @classmethod
    def of(cls, dataset: PreparedDataset) -> ContentProfile:
        """Vectors exactly as `content_model` fits them."""
        from xdt.methods.content import titles_of
        from xdt.models.fusion import tfidf_matrix

        target_titles = titles_of(dataset.items(TARGET))
        source_titles = titles_of(dataset.items(SOURCE))
        if source_titles is None:
            source_titles = np.full(dataset.n_items(SOURCE), "", dtype=object)
        vectors = tfidf_matrix(list(source_titles) + list(target_titles if target_titles is not None else []))
        return cls(
            vectors[: len(source_titles)].tocsr(),
            vectors[len(source_titles) :].tocsr(),
            dataset.interaction_matrix(SOURCE, "train"),
            dataset.interaction_matrix(TARGET, "train"),
        )

    def attribution(self, user: int, candidates: np.ndarray) -> Attribution:
        """Occlusion: cosine of the L2-normalised profile with and without each history item's TF-IDF row."""
        rows = [(SOURCE, self.source_history[user].indices, self.source_vectors), (TARGET, self.target_history[user].indices, self.target_vectors)]
        full = sum((vectors[items].sum(axis=0) for _, items, vectors in rows), np.zeros((1, self.target_vectors.shape[1])))
        full = np.asarray(full).ravel()
        items_matrix = self.target_vectors[candidates].toarray()
        score = items_matrix @ normalised(full)
        terms = []
        for domain, items, vectors in rows:
            without = full[None, :] - vectors[items].toarray()
            terms.append(Terms(domain, items, score[:, None] - items_matrix @ normalised(without).T))
        return Attribution(OCCLUSION, "score drop when one history item's title is removed from the TF-IDF profile", tuple(terms))


def normalised(vectors: np.ndarray) -> np.ndarray:
    """Rows (or one vector) scaled to unit L2 norm; zero rows stay zero."""
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


def planted_precision(explanation: Explanation, planted: set[str], history: set[str], *, at: int = 3) -> float | None:
    """Fraction of the top-`at` source items of an explanation that are planted causes of its item.

    The denominator is min(at, planted items the user has): a user holding one planted item can
    only ever name one, so that explanation is perfect when the one is among its top `at`.
    None when the user holds no planted item of the explained item (nothing to recover).
    """
    reachable = planted & history
    if not reachable:
        return None
    named = [part.item for part in explanation.contributions if part.domain == SOURCE][:at]
    return len(set(named) & reachable) / min(at, len(reachable))
