"""Content-based baseline: TF-IDF cosine between a user's history text (both domains) and each target item's title.

TF-IDF is fitted on the titles of both domains' items (source items without titles count as
empty documents); a user's profile is the L2-normalised sum of the TF-IDF rows of their source
and target training items, so cold-start users are scored from their source history alone.
Nothing is trained; `fusion` reuses the same scorer as one of its components.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sparse

from xdt.data.dataset import PreparedDataset
from xdt.data.protocols import SOURCE, TARGET
from xdt.errors import DataError
from xdt.methods.context import MethodContext
from xdt.models.fusion import ContentModel, normalise_rows, tfidf_matrix

MISSING_TARGET_TITLES = "the target items have no titles (items_target.parquet has no non-empty 'title' column)"


def titles_of(items: pd.DataFrame) -> np.ndarray | None:
    """The item titles of an id map, or None when it has no non-empty `title` column."""
    if "title" not in items.columns:
        return None
    titles = items["title"].fillna("").astype(str).to_numpy()
    return titles if any(title.strip() for title in titles) else None


def content_model(dataset: PreparedDataset) -> ContentModel | None:
    """TF-IDF content scorer over both domains' training histories, or None without target item titles."""
    target_titles = titles_of(dataset.items(TARGET))
    if target_titles is None:
        return None
    source_titles = titles_of(dataset.items(SOURCE))
    if source_titles is None:
        source_titles = np.full(dataset.n_items(SOURCE), "", dtype=object)
    vectors = tfidf_matrix(list(source_titles) + list(target_titles))
    source_vectors, target_vectors = vectors[: len(source_titles)], vectors[len(source_titles) :]
    histories = sparse.hstack([dataset.interaction_matrix(SOURCE, "train"), dataset.interaction_matrix(TARGET, "train")]).tocsr()
    profiles = normalise_rows((histories.astype(np.float64) @ sparse.vstack([source_vectors, target_vectors])).tocsr())
    return ContentModel.from_matrices(profiles, target_vectors, name="content")


def train(context: MethodContext) -> ContentModel:
    """Build the TF-IDF profiles and target item vectors; fail clearly without target item titles."""
    with context.strategy.scope():
        model = content_model(context.dataset)
    if model is None:
        raise DataError(
            f"content needs item text, but in dataset {context.dataset.manifest['name']!r} {MISSING_TARGET_TITLES}. "
            "Prepare it with a reader that keeps item titles, or choose another method."
        )
    context.run.append_metrics({"stage": "content", "terms": model.num_terms, "profile_nnz": model.profile_nnz, "item_nnz": model.item_nnz})
    context.reporter.status(f"content: TF-IDF over item titles, {model.num_terms} terms")
    return model
