"""Score fusion: a weighted sum of per-user standardised component scores, and a sparse TF-IDF content scorer.

`FusionModel` holds its components (any models with `score_all`) as sub-models, so the blend
saves and loads as one `.keras` file. Each component's scores for a user are z-scored over all
target items (mean 0, std 1; a constant row becomes 0), so weights compare like with like:
an MF's dot products and a neighbourhood model's cosine sums live on unrelated scales.

`ContentModel` scores target items by the TF-IDF cosine between a user's profile (the sum of
the TF-IDF vectors of their training items in both domains, L2-normalised) and each target
item's TF-IDF vector. Both are stored as CSR weights (user → term weights, term → item
weights), so the work per user is the number of non-zeros touched.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import scipy.sparse as sparse
import tensorflow as tf


def standardise(scores: tf.Tensor) -> tf.Tensor:
    """Z-score each row of `(batch, items)` float64 scores; rows with zero spread become 0.

    E.g. [1, 2, 3] → mean 2, std √(2/3) → [-1.2247, 0, 1.2247].
    """
    mean = tf.reduce_mean(scores, axis=1, keepdims=True)
    centred = scores - mean
    spread = tf.sqrt(tf.reduce_mean(tf.square(centred), axis=1, keepdims=True))
    return tf.where(spread > 0, centred / tf.where(spread > 0, spread, 1.0), tf.zeros_like(centred))


def blend(standardised: Sequence[tf.Tensor | None], weights: Sequence[float]) -> tf.Tensor:
    """`Σ weight_c · z_c` in float64, returned as float32 (components with weight 0 may be None)."""
    total = None
    for scores, weight in zip(standardised, weights):
        if weight == 0.0:
            continue
        term = float(weight) * scores
        total = term if total is None else total + term
    assert total is not None, "blend needs at least one non-zero weight"
    return tf.cast(total, tf.float32)


def component_scores(component: keras.Model, users: Any) -> tf.Tensor:
    """A component's raw scores as float64 (exact float64 for neighbourhood models)."""
    if hasattr(component, "score_all_float64"):
        return tf.cast(component.score_all_float64(users), tf.float64)
    return tf.cast(component.score_all(users), tf.float64)


@keras.saving.register_keras_serializable(package="xdt")
class FusionModel(keras.Model):
    """score(u, ·) = Σ_c weight_c · zscore(component_c.score_all(u)); components are sub-models."""

    def __init__(self, components: Sequence[Any], blend_weights: Sequence[float], component_names: Sequence[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not (len(components) == len(blend_weights) == len(component_names)) or not components:
            raise ValueError(
                f"Expected as many components, blend_weights and component_names (at least one). Received: "
                f"{len(components)}, {len(blend_weights)}, {len(component_names)}"
            )
        if not any(weight != 0.0 for weight in blend_weights):
            raise ValueError(f"Expected at least one non-zero blend weight. Received: blend_weights={list(blend_weights)}")
        self.components = [
            component if isinstance(component, keras.Model) else keras.saving.deserialize_keras_object(component) for component in components
        ]
        self.blend_weights = [float(weight) for weight in blend_weights]
        self.component_names = [str(name) for name in component_names]
        self.build()

    def build(self, input_shape: Any = None) -> None:
        """Build every component that is not built yet (a deserialised MF has no tables until built)."""
        for component in self.components:
            if not component.built:
                component.build()
        self.built = True

    def standardised_components(self, users: Any, *, only_weighted: bool = True) -> list[tf.Tensor | None]:
        """Each component's z-scored float64 scores `(batch, items)`; None for zero-weight components when `only_weighted`."""
        return [
            standardise(component_scores(component, users)) if (weight != 0.0 or not only_weighted) else None
            for component, weight in zip(self.components, self.blend_weights)
        ]

    def call(self, users: Any) -> Any:
        """Alias of `score_all`."""
        return self.score_all(users)

    def score_all(self, users: Any) -> tf.Tensor:
        """Blended scores of every target item, `(batch, items)` float32."""
        return blend(self.standardised_components(users), self.blend_weights)

    def get_config(self) -> dict[str, Any]:
        """Components serialised in full (their weights are saved as sub-model weights)."""
        return {
            **super().get_config(),
            "components": [serialise_component(component) for component in self.components],
            "blend_weights": self.blend_weights,
            "component_names": self.component_names,
        }


def serialise_component(component: keras.Model) -> dict[str, Any]:
    """A component's Keras config without its compile state (a trained MF carries its optimiser and ranking loss)."""
    config = keras.saving.serialize_keras_object(component)
    config.pop("compile_config", None)
    return config


def tokenise(title: str) -> list[str]:
    """Lower-case word tokens of a title."""
    return re.findall(r"\w+", str(title).lower())


def tfidf_matrix(titles: Sequence[str]) -> sparse.csr_matrix:
    """Rows of L2-normalised TF-IDF (sublinear tf 1 + log count, smooth idf log((1 + n)/(1 + df)) + 1).

    E.g. titles ["a b", "a"]: vocabulary (a, b), df (2, 1), idf (1, log(3/2) + 1 = 1.405);
    row 0 = (1, 1.405)/|·| = (0.580, 0.815), row 1 = (1, 0).
    """
    vocabulary: dict[str, int] = {}
    rows, columns, counts = [], [], []
    for row, title in enumerate(titles):
        words = tokenise(title)
        tokens, frequencies = np.unique(words, return_counts=True) if words else ([], [])
        for token, frequency in zip(tokens, frequencies):
            rows.append(row)
            columns.append(vocabulary.setdefault(str(token), len(vocabulary)))
            counts.append(frequency)
    term_frequency = sparse.csr_matrix(
        (1.0 + np.log(np.asarray(counts, dtype=np.float64)), (rows, columns)), shape=(len(titles), len(vocabulary))
    )
    document_frequency = np.bincount(np.asarray(columns, dtype=np.int64), minlength=len(vocabulary))
    inverse = np.log((1.0 + len(titles)) / (1.0 + document_frequency)) + 1.0
    weighted = (term_frequency @ sparse.diags(inverse)).tocsr()
    return normalise_rows(weighted)


def normalise_rows(matrix: sparse.csr_matrix) -> sparse.csr_matrix:
    """Each row divided by its L2 norm (zero rows stay zero)."""
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    scale = np.where(norms > 0, 1.0 / np.where(norms > 0, norms, 1.0), 0.0)
    result = (sparse.diags(scale) @ matrix).tocsr()
    result.eliminate_zeros()
    result.sort_indices()
    return result


@keras.saving.register_keras_serializable(package="xdt")
class ContentModel(keras.Model):
    """score(u, i) = profile_u · item_i: `profiles` (users × terms) and `item_terms` (terms × items) as CSR weights."""

    def __init__(self, num_users: int, num_items: int, num_terms: int, profile_nnz: int, item_nnz: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_users, self.num_items, self.num_terms = int(num_users), int(num_items), int(num_terms)
        self.profile_nnz, self.item_nnz = int(profile_nnz), int(item_nnz)
        weight = lambda shape, dtype, name: self.add_weight(shape=shape, dtype=dtype, initializer="zeros", trainable=False, name=name)  # noqa: E731
        self.profile_splits = weight((self.num_users + 1,), "int64", "profile_splits")
        self.profile_terms = weight((self.profile_nnz,), "int64", "profile_terms")
        self.profile_values = weight((self.profile_nnz,), "float64", "profile_values")
        self.term_splits = weight((self.num_terms + 1,), "int64", "term_splits")
        self.term_items = weight((self.item_nnz,), "int64", "term_items")
        self.term_values = weight((self.item_nnz,), "float64", "term_values")
        self.built = True

    @classmethod
    def from_matrices(cls, profiles: sparse.csr_matrix, target_items: sparse.csr_matrix, **kwargs: Any) -> ContentModel:
        """`profiles` users × terms, `target_items` target items × terms (both TF-IDF rows)."""
        profiles = sparse.csr_matrix(profiles, dtype=np.float64)
        profiles.sort_indices()
        item_terms = sparse.csr_matrix(target_items.T, dtype=np.float64)
        item_terms.sort_indices()
        model = cls(profiles.shape[0], target_items.shape[0], profiles.shape[1], profiles.nnz, item_terms.nnz, **kwargs)
        for variable, values in (
            (model.profile_splits, profiles.indptr),
            (model.profile_terms, profiles.indices),
            (model.term_splits, item_terms.indptr),
            (model.term_items, item_terms.indices),
        ):
            variable.assign(values.astype(np.int64))
        model.profile_values.assign(profiles.data)
        model.term_values.assign(item_terms.data)
        return model

    def call(self, users: Any) -> Any:
        """Alias of `score_all`."""
        return self.score_all(users)

    def score_all_float64(self, users: Any) -> tf.Tensor:
        """Cosine of each user's profile with every target item, `(batch, items)` float64."""
        value = tf.convert_to_tensor
        users = tf.cast(tf.reshape(users, [-1]), tf.int64)
        batch = tf.shape(users, out_type=tf.int64)[0]
        terms = tf.gather(tf.RaggedTensor.from_row_splits(value(self.profile_terms), value(self.profile_splits), validate=False), users)
        weights = tf.gather(tf.RaggedTensor.from_row_splits(value(self.profile_values), value(self.profile_splits), validate=False), users)
        items = tf.gather(tf.RaggedTensor.from_row_splits(value(self.term_items), value(self.term_splits), validate=False), terms.flat_values)
        values = tf.gather(tf.RaggedTensor.from_row_splits(value(self.term_values), value(self.term_splits), validate=False), terms.flat_values)
        pair = items.value_rowids()
        rows = tf.gather(terms.value_rowids(), pair)
        contributions = values.flat_values * tf.gather(weights.flat_values, pair)
        indices = tf.stack([rows, items.flat_values], axis=1)
        return tf.scatter_nd(indices, contributions, tf.stack([batch, self.num_items]))

    def score_all(self, users: Any) -> tf.Tensor:
        """`(batch, items)` float32 scores."""
        return tf.cast(self.score_all_float64(users), tf.float32)

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments, for serialisation."""
        return {
            **super().get_config(),
            "num_users": self.num_users,
            "num_items": self.num_items,
            "num_terms": self.num_terms,
            "profile_nnz": self.profile_nnz,
            "item_nnz": self.item_nnz,
        }
