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


@dataclass(frozen=True)
class OpenedRun:
    """A run's data, model and explainer, loaded once for many users."""

    run: RunDirectory
    dataset: PreparedDataset
    model: Any
    explainer: Any  # KnnExplainer | HistoryExplainer | ContentExplainer | NotExplainable


def open_explained_run(run: RunDirectory) -> OpenedRun:
    """Load what explanations need, refusing runs that hold no trained ranking model."""
    from xdt.session import load_model, load_run_config, open_dataset
    from xdt.tasks import explainable_task_names, get_task

    config = load_run_config(run)
    if not get_task(config.task).explainable:
        raise XdtError(f"explain expects a run of a task: {' or '.join(explainable_task_names())} experiment; {run.path} is a task: {config.task} run")
    check_model_run(run, config.task, "explain")
    dataset = open_dataset(config)
    model = load_model(run)
    return OpenedRun(run, dataset, model, explainer(run.info().get("method", ""), model, dataset))


def explain(run: RunDirectory | OpenedRun, raw_user: str, *, items: Sequence[str] = (), k: int = 10, top: int = 5) -> list[Explanation]:
    """Explanations of `raw_user`'s top-k recommendations (or of the given target `items`), `top` history items each."""
    if k < 1 or top < 1:
        raise XdtError(f"Expected --k >= 1 and --top >= 1. Received: k={k}, top={top}")
    opened = run if isinstance(run, OpenedRun) else open_explained_run(run)
    dataset = opened.dataset
    user = user_index(dataset, raw_user)
    scores = model_scores(opened, user)
    seen = dataset.interaction_matrix(TARGET, "train", "valid", "test")[user].indices
    candidates, ranks = chosen_items(dataset, scores, seen, items, k)
    attribution = opened.explainer.attribution(user, candidates)
    return [
        build_explanation(dataset, raw_user, int(item), rank, float(scores[item]), attribution, row, top)
        for row, (item, rank) in enumerate(zip(candidates, ranks))
    ]


def model_scores(opened: OpenedRun, user: int) -> np.ndarray:
    """The model's scores of every target item for one user, as `xdt recommend` ranks them."""
    return np.asarray(opened.model.score_all(np.array([user], dtype=np.int32)))[0].astype(np.float64)


def explain_recommendations(run: RunDirectory, recommendations: pd.DataFrame, *, top: int = 5) -> list[Explanation]:
    """Explanations of the rows of an `xdt recommend` frame (user, rank, item, …), in its order."""
    opened = open_explained_run(run)
    explanations = []
    for user, group in recommendations.groupby("user", sort=False):
        explanations.extend(explain(opened, str(user), items=[str(item) for item in group["item"]], top=top))
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


def explainer(method: str, model: Any, dataset: PreparedDataset) -> Any:
    """The explainer of a run's model, chosen by its class (and by method name for the kNN channels' domains)."""
    from xdt.models.dann import DannModel
    from xdt.models.fusion import ContentModel
    from xdt.models.neighbourhood import NeighbourhoodModel
    from xdt.models.ptupcdr import PtupcdrModel
    from xdt.models.two_tower import TwoTowerModel

    if isinstance(model, NeighbourhoodModel) and method in KNN_CHANNEL_DOMAINS:
        return KnnExplainer(model, KNN_CHANNEL_DOMAINS[method])
    readers = {PtupcdrModel: ptupcdr_reader, DannModel: dann_reader, TwoTowerModel: two_tower_reader}
    for model_class, reader in readers.items():
        if isinstance(model, model_class):
            return HistoryExplainer(model, reader)
    if isinstance(model, ContentModel):
        return ContentExplainer.of(dataset)
    return NotExplainable(PURE_ID_REASONS.get(method, f"{method or type(model).__name__} has no history input to attribute its scores to"))


@dataclass(frozen=True)
class NotExplainable:
    """A model with no history input: every explanation says why, and nothing can be removed."""

    reason: str

    def attribution(self, user: int, candidates: np.ndarray) -> Attribution:
        """No terms, the reason as the note."""
        return Attribution(NOT_EXPLAINABLE, f"not explainable by history items: {self.reason}", ())

    def without(self, user: int, removals: Sequence[Sequence[tuple[str, int]]]) -> None:
        """Nothing to remove: None."""
        return None


class KnnExplainer:
    """Exact terms of a NeighbourhoodModel: each channel's (history, similarity) CSR pair, read back from the weights."""

    def __init__(self, model: Any, domains: Sequence[str]) -> None:
        self.domains = tuple(domains)
        self.prior = np.asarray(model.item_prior.numpy())
        self.channels = []
        for weights, (history_items, _, _) in zip(model.channel_weights, model.channel_sizes):
            data = {name: np.asarray(weight.numpy()) for name, weight in weights.items()}
            history = sparse.csr_matrix(
                (np.ones(len(data["history_items"])), data["history_items"], data["history_splits"]), shape=(model.num_users, history_items)
            )
            similarity = sparse.csr_matrix(
                (data["similarity_values"], data["similarity_columns"], data["similarity_splits"]), shape=(history_items, model.num_items)
            )
            self.channels.append((history, similarity))

    def attribution(self, user: int, candidates: np.ndarray) -> Attribution:
        """Terms sim(j, i) of every history item j of every channel; the prior is the unattributed rest."""
        terms = []
        for (history, similarity), domain in zip(self.channels, self.domains):
            items = history[user].indices
            terms.append(Terms(domain, items, similarity[items][:, candidates].toarray().T))
        return Attribution(EXACT_KNN, "score = Σ similarity(history item, item) + popularity tie-break", tuple(terms), self.prior[candidates])

    def without(self, user: int, removals: Sequence[Sequence[tuple[str, int]]]) -> np.ndarray:
        """Float64 scores `(len(removals), n_items)` recomputed from histories with each removal's (domain, item)s taken out."""
        rows = []
        for removal in removals:
            score = self.prior.copy()
            for (history, similarity), domain in zip(self.channels, self.domains):
                kept = np.setdiff1d(history[user].indices, [item for where, item in removal if where == domain])
                score = score + np.asarray(similarity[kept].sum(axis=0)).ravel()
            rows.append(score)
        return np.stack(rows)


@dataclass(frozen=True)
class HistoryReader:
    """The one padded history a model reads for a user, and how it scores every target item from variants of it."""

    domain: str
    history: np.ndarray  # (length,) in the model's item index, padded with `pad`
    pad: int
    offset: int  # model item index − domain item index
    score: Any  # variants (rows, length) → scores (rows, n_items)
    note: str

    def attribution(self, candidates: np.ndarray) -> Attribution:
        """Occlusion: row 0 the full history, then one row per real position with it padded out (one forward pass)."""
        positions = np.flatnonzero(self.history != self.pad)
        variants = np.repeat(self.history[None, :], 1 + len(positions), axis=0)
        variants[1 + np.arange(len(positions)), positions] = self.pad
        scores = np.asarray(self.score(variants), dtype=np.float64)[:, candidates]
        terms = Terms(self.domain, self.history[positions] - self.offset, (scores[:1] - scores[1:]).T)
        return Attribution(OCCLUSION, self.note + ("" if len(positions) else f"; the user has no {self.domain} history"), (terms,))

    def without(self, removals: Sequence[Sequence[tuple[str, int]]]) -> np.ndarray:
        """Scores `(len(removals), n_items)` with each removal's items of this history padded out (other domains' ignored)."""
        variants = np.repeat(self.history[None, :], len(removals), axis=0)
        for row, removal in enumerate(removals):
            removed = [item + self.offset for domain, item in removal if domain == self.domain]
            variants[row, np.isin(self.history, removed)] = self.pad
        return np.asarray(self.score(variants), dtype=np.float64)


@dataclass(frozen=True)
class HistoryExplainer:
    """Occlusion for a model that encodes one history; `reader(model, user)` gives a HistoryReader or the reason there is none."""

    model: Any
    reader: Any

    def attribution(self, user: int, candidates: np.ndarray) -> Attribution:
        """The reader's occlusion drops, or a not-explainable note."""
        reader = self.reader(self.model, user)
        if isinstance(reader, str):
            return Attribution(NOT_EXPLAINABLE, f"not explainable by history items: {reader}", ())
        return reader.attribution(candidates)

    def without(self, user: int, removals: Sequence[Sequence[tuple[str, int]]]) -> np.ndarray | None:
        """Rescored histories, or None when the user is not scored from a history."""
        reader = self.reader(self.model, user)
        return None if isinstance(reader, str) else reader.without(removals)


def ptupcdr_reader(model: Any, user: int) -> HistoryReader | str:
    """Cold-start users: the source history fed to the meta-network. Warm users are scored by target MF."""
    from keras import ops

    if float(model.has_target.numpy()[user, 0]) > 0:
        return "ptupcdr serves warm users from the target MF user vector"
    pad = model.num_source_items

    def score(variants: np.ndarray) -> Any:
        history = ops.convert_to_tensor(variants)
        bridge = model.bridge(model.source_item_embedding(history), history < pad)
        source_vector = ops.expand_dims(model.source_user_embedding(ops.full((len(variants),), user, dtype="int32")), 1)
        vectors = ops.squeeze(ops.matmul(source_vector, bridge), axis=1)
        return vectors @ ops.transpose(model.target.item_embedding.embeddings) + ops.reshape(model.target.item_bias.embeddings, (1, -1))

    note = "score drop when one source history item is removed from the meta-network's input (cold-start bridge)"
    return HistoryReader(SOURCE, np.asarray(model.source_history.numpy())[user], pad, 0, score, note)


def mean_pooled(embedding: Any, variants: np.ndarray, pad: int) -> Any:
    """Mean embedding of each row's real items `(rows, dim)`, as two_tower and dann pool a history."""
    from keras import ops

    history = ops.convert_to_tensor(variants)
    mask = ops.cast(history < pad, "float32")
    count = ops.maximum(ops.sum(mask, axis=1, keepdims=True), 1.0)
    return ops.sum(embedding(history) * ops.expand_dims(mask, -1), axis=1) / count


def two_tower_reader(model: Any, user: int) -> HistoryReader:
    """The target history pooled into the user tower."""
    from keras import ops

    def score(variants: np.ndarray) -> Any:
        pooled = mean_pooled(model.item_embedding, variants, model.num_items)
        ids = model.user_embedding(ops.full((len(variants),), user, dtype="int32"))
        vectors = model.user_output(model.user_hidden(ops.concatenate([ids, pooled], axis=-1)))
        return vectors @ ops.transpose(model.item_vectors(ops.arange(model.num_items, dtype="int32")))

    note = "score drop when one target history item is removed from the user tower's mean"
    return HistoryReader(TARGET, np.asarray(model.target_history.numpy())[user], model.num_items, 0, score, note)


def dann_reader(model: Any, user: int) -> HistoryReader:
    """The history of the view that serves the user: the target view with target history, else the source view."""
    from keras import ops

    target_history = np.asarray(model.target_history.numpy())[user]
    warm = bool(np.any(target_history != model.padding_item))
    start, end = model.num_source_items, model.padding_item

    def score(variants: np.ndarray) -> Any:
        pooled = mean_pooled(model.item_embedding, variants, model.padding_item)
        shared = model.shared_user_embedding(ops.full((len(variants),), user, dtype="int32"))
        vectors = model.encoder_output(model.encoder_hidden(ops.concatenate([shared, pooled], axis=-1)))
        return vectors @ ops.transpose(model.item_embedding.embeddings[start:end]) + ops.reshape(model.item_bias.embeddings[start:end], (1, -1))

    view = "target" if warm else "source"
    note = f"score drop when one {view} history item is removed from the {view} view's mean (dann)"
    history = target_history if warm else np.asarray(model.source_history.numpy())[user]
    return HistoryReader(TARGET if warm else SOURCE, history, model.padding_item, start if warm else 0, score, note)


@dataclass(frozen=True)
class ContentExplainer:
    """The content model's inputs rebuilt from the data (xdt.methods.content): TF-IDF rows of both domains' items."""

    vectors: dict[str, sparse.csr_matrix]
    histories: dict[str, sparse.csr_matrix]

    @classmethod
    def of(cls, dataset: PreparedDataset) -> ContentExplainer:
        """Vectors exactly as `content_model` fits them."""
        from xdt.methods.content import titles_of
        from xdt.models.fusion import tfidf_matrix

        target_titles = titles_of(dataset.items(TARGET))
        source_titles = titles_of(dataset.items(SOURCE))
        if source_titles is None:
            source_titles = np.full(dataset.n_items(SOURCE), "", dtype=object)
        vectors = tfidf_matrix(list(source_titles) + list(target_titles if target_titles is not None else []))
        return cls(
            {SOURCE: vectors[: len(source_titles)].tocsr(), TARGET: vectors[len(source_titles) :].tocsr()},
            {domain: dataset.interaction_matrix(domain, "train") for domain in (SOURCE, TARGET)},
        )

    def profile(self, user: int) -> np.ndarray:
        """The unnormalised profile: the sum of the TF-IDF rows of the user's training items of both domains."""
        rows = [np.asarray(self.vectors[domain][self.histories[domain][user].indices].sum(axis=0)).ravel() for domain in (SOURCE, TARGET)]
        return rows[0] + rows[1]

    def attribution(self, user: int, candidates: np.ndarray) -> Attribution:
        """Occlusion: cosine of the L2-normalised profile with and without each history item's TF-IDF row."""
        full = self.profile(user)
        items = self.vectors[TARGET][candidates].toarray()
        score = items @ normalised(full)
        terms = []
        for domain in (SOURCE, TARGET):
            history = self.histories[domain][user].indices
            without = full[None, :] - self.vectors[domain][history].toarray()
            terms.append(Terms(domain, history, score[:, None] - items @ normalised(without).T))
        return Attribution(OCCLUSION, "score drop when one history item's title is removed from the TF-IDF profile", tuple(terms))

    def without(self, user: int, removals: Sequence[Sequence[tuple[str, int]]]) -> np.ndarray:
        """Cosine scores `(len(removals), n_items)` of profiles with each removal's item rows subtracted."""
        full = self.profile(user)
        profiles = np.stack([full - sum((self.vectors[domain][item].toarray().ravel() for domain, item in removal), np.zeros_like(full)) for removal in removals])
        return normalised(profiles) @ self.vectors[TARGET].toarray().T


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
