"""`xdt export RUN`: a TensorFlow SavedModel with a `recommend` endpoint that serves without xdt.

The exported module holds everything serving needs: the model's variables (its `score_all` is
traced into the graph, so cold-start users are served from their source history exactly as in
`xdt recommend`), a `tf.lookup.StaticHashTable` from raw user id to user index, the raw target
item ids, and every user's target items (train + valid + test, as `xdt recommend` excludes) as a
CSR pair of variables. Loading needs only TensorFlow:

```python
import tensorflow as tf
served = tf.saved_model.load("runs/quickstart/<run-id>/saved_model")
out = served.recommend(tf.constant(["u00001", "u00002"]), tf.constant(5))
out["items"]   # (2, 5) raw item ids (b"" where fewer than k unseen items exist)
out["scores"]  # (2, 5) float32 scores (-inf in those padded places)
```

A scalar user id gives outputs of shape `(k,)`. The same function is also exported as the
serving signature "recommend" (for TF Serving and `saved_model_cli`).

kNN runs (itemknn, xknn) also get an `explain` endpoint and signature: the exact term
similarity(h, item) of every history item h behind one (user, item) score, largest first, as
`xdt explain` computes them (see xdt.explain):

```python
out = served.explain(tf.constant("u00001"), tf.constant("t00042"))
out["history_items"], out["domains"]  # (n,) raw ids and b"source" / b"target"
out["contributions"]                  # (n,) float64 terms; out["score"] = Σ terms + out["prior"]
```

Other methods have no exact per-item decomposition that fits in a graph, so they export
`recommend` only (xdt_export.json says which endpoints exist).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sparse
import tensorflow as tf

from xdt.data.protocols import TARGET
from xdt.errors import XdtError
from xdt.runs import RunDirectory

EXPORT_DIR = "saved_model"
ENDPOINT = "recommend"
EXPLAIN_ENDPOINT = "explain"
DESCRIPTION_FILE = "xdt_export.json"


class RecommendModule(tf.Module):
    """Raw user ids and k → top-k raw item ids and scores, with each user's target items excluded."""

    def __init__(self, model: Any, raw_users: np.ndarray, raw_items: np.ndarray, seen: sparse.csr_matrix) -> None:
        super().__init__(name="xdt_recommend")
        if seen.shape != (len(raw_users), len(raw_items)):
            raise ValueError(f"Expected seen of shape (users, items) = {(len(raw_users), len(raw_items))}. Received: shape={seen.shape}")
        # Tracked so tf.saved_model.save writes them; `score_all` below reads exactly these.
        self.model_variables = list(model.variables)
        self.user_table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(np.asarray(raw_users, dtype=str).astype(object), dtype=tf.string),
                tf.range(len(raw_users), dtype=tf.int64),
            ),
            default_value=-1,
        )
        self.item_ids = tf.Variable(np.asarray(raw_items, dtype=str).astype(object), dtype=tf.string, trainable=False, name="item_ids")
        self.seen_row_splits = tf.Variable(seen.indptr.astype(np.int64), trainable=False, name="seen_row_splits")
        self.seen_items = tf.Variable(seen.indices.astype(np.int64), trainable=False, name="seen_items")
        self.num_items = int(len(raw_items))
        score_all = model.score_all  # a closure, not an attribute: the Keras model itself is not exported

        @tf.function(
            input_signature=[tf.TensorSpec(shape=None, dtype=tf.string, name="user"), tf.TensorSpec(shape=[], dtype=tf.int32, name="k")]
        )
        def recommend(user: tf.Tensor, k: tf.Tensor) -> dict[str, tf.Tensor]:
            """`user` scalar or `(batch,)` raw ids, `k` → {"items", "scores"} of shape `user.shape + (k,)`."""
            users = tf.reshape(user, [-1])
            indices = self.user_table.lookup(users)
            unknown = tf.boolean_mask(users, indices < 0)
            checks = [
                tf.debugging.Assert(tf.size(unknown) == 0, ["Unknown user ids (in neither domain):", unknown], summarize=5),
                tf.debugging.Assert(k >= 1, ["Expected k >= 1. Received: k=", k]),
            ]
            # Every use of the indices waits for the checks: an op outside this block (the seen-items
            # gather did) may run first and fail on index -1 with a message that names no user.
            with tf.control_dependencies(checks):
                indices = tf.identity(indices)
            scores = tf.cast(score_all(tf.cast(indices, tf.int32)), tf.float32)
            seen_rows = tf.gather(tf.RaggedTensor.from_row_splits(self.seen_items, self.seen_row_splits, validate=False), indices)
            coordinates = tf.stack([seen_rows.value_rowids(), seen_rows.flat_values], axis=1)
            scores = tf.tensor_scatter_nd_update(scores, coordinates, tf.fill([tf.shape(coordinates)[0]], -np.inf))
            values, top = tf.math.top_k(scores, k=tf.minimum(k, self.num_items))
            items = tf.where(tf.math.is_finite(values), tf.gather(self.item_ids, top), tf.constant(""))
            shape = tf.concat([tf.shape(user), tf.shape(values)[-1:]], axis=0)
            return {"items": tf.reshape(items, shape), "scores": tf.reshape(values, shape)}

        self.recommend = recommend


class KnnExplainer(tf.Module):
    """Raw user and target item ids → the exact kNN term of each of the user's history items (an `explain` endpoint)."""

    def __init__(self, module: RecommendModule, model: Any, domains: tuple[str, ...], raw_items: dict[str, np.ndarray]) -> None:
        super().__init__(name="xdt_explain")
        self.item_table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(np.asarray(raw_items[TARGET], dtype=str).astype(object), dtype=tf.string),
                tf.range(len(raw_items[TARGET]), dtype=tf.int64),
            ),
            default_value=-1,
        )
        self.history_ids = [
            tf.Variable(np.asarray(raw_items[domain], dtype=str).astype(object), dtype=tf.string, trainable=False, name=f"{domain}_item_ids")
            for domain in domains
        ]
        channels = list(zip(model.channel_weights, domains, self.history_ids))
        prior = model.item_prior

        @tf.function(
            input_signature=[tf.TensorSpec(shape=[], dtype=tf.string, name="user"), tf.TensorSpec(shape=[], dtype=tf.string, name="item")]
        )
        def explain(user: tf.Tensor, item: tf.Tensor) -> dict[str, tf.Tensor]:
            """Scalar raw user and target item ids → history_items, domains, contributions (largest first), prior, score."""
            user_index = module.user_table.lookup(user)
            item_index = self.item_table.lookup(item)
            checks = [
                tf.debugging.Assert(user_index >= 0, ["Unknown user id (in neither domain):", user]),
                tf.debugging.Assert(item_index >= 0, ["Unknown target item id:", item]),
            ]
            with tf.control_dependencies(checks):
                user_index, item_index = tf.identity(user_index), tf.identity(item_index)
            ids, labels, terms = [], [], []
            for weights, domain, names in channels:
                items, values = history_terms(weights, user_index, item_index)
                ids.append(tf.gather(names, items))
                labels.append(tf.fill(tf.shape(items), domain))
                terms.append(values)
            contributions = tf.concat(terms, axis=0)
            order = tf.argsort(contributions, direction="DESCENDING", stable=True)
            item_prior = tf.gather(tf.convert_to_tensor(prior), item_index)
            return {
                "history_items": tf.gather(tf.concat(ids, axis=0), order),
                "domains": tf.gather(tf.concat(labels, axis=0), order),
                "contributions": tf.gather(contributions, order),
                "prior": item_prior,
                "score": tf.reduce_sum(contributions) + item_prior,
            }

        self.explain = explain


def history_terms(weights: dict[str, Any], user: tf.Tensor, item: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """One channel's history items of `user` and their similarity to `item` (0 where the sparse row has no entry)."""
    value = tf.convert_to_tensor
    history = tf.RaggedTensor.from_row_splits(value(weights["history_items"]), value(weights["history_splits"]), validate=False)[user]
    columns = tf.RaggedTensor.from_row_splits(value(weights["similarity_columns"]), value(weights["similarity_splits"]), validate=False)
    values = tf.RaggedTensor.from_row_splits(value(weights["similarity_values"]), value(weights["similarity_splits"]), validate=False)
    matches = tf.cast(tf.equal(tf.gather(columns, history), item), tf.float64) * tf.gather(values, history)
    return history, tf.reduce_sum(matches, axis=1)


def knn_explainer(module: RecommendModule, model: Any, method: str | None, dataset: Any) -> KnnExplainer | None:
    """The `explain` endpoint for a kNN run's model, or None for a model without exact per-item terms."""
    from xdt.explain import KNN_CHANNEL_DOMAINS
    from xdt.models.neighbourhood import NeighbourhoodModel

    if not isinstance(model, NeighbourhoodModel) or method not in KNN_CHANNEL_DOMAINS:
        return None
    domains = KNN_CHANNEL_DOMAINS[method]
    raw_items = {domain: dataset.items(domain)["raw_item"].to_numpy().astype(str) for domain in (*domains, TARGET)}
    return KnnExplainer(module, model, domains, raw_items)


def export_run(run: RunDirectory, path: Path | str | None = None) -> Path:
    """Write the run's SavedModel (default `<run>/saved_model`) with a `recommend` endpoint; return its folder.

    An earlier export at `path` is replaced; any other non-empty folder is refused.
    """
    from xdt.session import check_same_data, load_model, load_run_config, open_dataset

    info = run.info()
    if info.get("kind") != "transfer":
        raise XdtError(f"export expects a transfer run (a trained target model); {run.path} is a {info.get('kind')} run")
    target = Path(path) if path is not None else run.path / EXPORT_DIR
    if target.exists() and (not target.is_dir() or (any(target.iterdir()) and not (target / "saved_model.pb").is_file())):
        raise XdtError(f"--output {target} exists and is not an earlier export; choose an empty or new folder")
    config = load_run_config(run)
    dataset = open_dataset(config)
    check_same_data(run, dataset)
    model = load_model(run)
    seen = dataset.interaction_matrix(TARGET, "train", "valid", "test")
    module = RecommendModule(model, dataset.raw_users.astype(str), dataset.items(TARGET)["raw_item"].to_numpy().astype(str), seen)

    staging = target.with_name(f".{target.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.parent.mkdir(parents=True, exist_ok=True)
    signatures = {ENDPOINT: module.recommend.get_concrete_function()}
    explainer = knn_explainer(module, model, info.get("method"), dataset)
    if explainer is not None:
        module.explainer = explainer
        module.explain = explainer.explain
        signatures[EXPLAIN_ENDPOINT] = explainer.explain.get_concrete_function()
    tf.saved_model.save(module, str(staging), signatures=signatures)
    (staging / DESCRIPTION_FILE).write_text(
        json.dumps(
            {
                "run": str(run.path),
                "method": info.get("method"),
                "dataset": dataset.manifest["name"],
                "content_hash": dataset.manifest["content_hash"],
                "users": dataset.n_users,
                "items": module.num_items,
                "endpoint": {
                    "name": ENDPOINT,
                    "inputs": {"user": "tf.string, scalar or (batch,)", "k": "tf.int32 scalar"},
                    "outputs": {"items": "tf.string user.shape + (k,)", "scores": "tf.float32 user.shape + (k,)"},
                    "excluded": "each user's target items in train, valid and test",
                },
                "explain": None
                if explainer is None
                else {
                    "name": EXPLAIN_ENDPOINT,
                    "method": "exact kNN terms",
                    "inputs": {"user": "tf.string scalar", "item": "tf.string scalar (target item)"},
                    "outputs": {
                        "history_items": "tf.string (n,)",
                        "domains": "tf.string (n,)",
                        "contributions": "tf.float64 (n,), largest first",
                        "prior": "tf.float64 scalar",
                        "score": "tf.float64 scalar = sum(contributions) + prior",
                    },
                },
            },
            indent=2,
        )
        + "\n"
    )
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target
