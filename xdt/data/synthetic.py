"""The embedded default data: a seeded two-domain generator with shared user tastes.

Each user has a shared taste vector and one private taste vector per domain; their taste in a
domain is `sqrt(shared_taste) * shared + sqrt(1 - shared_taste) * private`. With
`shared_taste = 0` the two domains are independent, so no transfer method can help; with
`shared_taste = 1` a user's source behaviour fully predicts their target taste. Item popularity
follows a power law (Zipf with `popularity_exponent`). Users are overlapping (both domains),
source-only or target-only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from xdt.config import SyntheticConfig

USER_CHUNK = 512


@dataclass(frozen=True)
class SyntheticDomains:
    """Generated interactions of both domains in the standard frame layout."""

    source: pd.DataFrame
    target: pd.DataFrame
    source_items: pd.DataFrame
    target_items: pd.DataFrame


def generate(config: SyntheticConfig, seed: int) -> SyntheticDomains:
    """Generate both domains; the same config and seed always give the same frames."""
    rng = np.random.default_rng([seed, 7919])
    dim = config.latent_dim
    shared = rng.standard_normal((config.users, dim))
    weight = np.sqrt(config.shared_taste)
    private_weight = np.sqrt(1.0 - config.shared_taste)
    source_taste = weight * shared + private_weight * rng.standard_normal((config.users, dim))
    target_taste = weight * shared + private_weight * rng.standard_normal((config.users, dim))

    overlap_count = int(round(config.overlap_fraction * config.users))
    source_only_count = int(round(config.source_only_fraction * config.users))
    groups = rng.permutation(config.users)
    overlap = groups[:overlap_count]
    source_only = groups[overlap_count : overlap_count + source_only_count]
    target_only = groups[overlap_count + source_only_count :]
    source_users = np.sort(np.concatenate([overlap, source_only]))
    target_users = np.sort(np.concatenate([overlap, target_only]))

    source = sample_domain(rng, source_taste[source_users], source_users, config.source_items, config.source_interactions, config, "s")
    target = sample_domain(rng, target_taste[target_users], target_users, config.target_items, config.target_interactions, config, "t")
    return SyntheticDomains(
        source=source,
        target=target,
        source_items=item_titles(config.source_items, "s", "book"),
        target_items=item_titles(config.target_items, "t", "movie"),
    )


def sample_domain(
    rng: np.random.Generator,
    tastes: np.ndarray,
    users: np.ndarray,
    n_items: int,
    mean_interactions: float,
    config: SyntheticConfig,
    prefix: str,
) -> pd.DataFrame:
    """Sample each user's items without replacement from softmax(taste·item + log popularity)."""
    dim = tastes.shape[1]
    item_vectors = rng.standard_normal((n_items, dim)) / np.sqrt(dim)
    popularity_rank = rng.permutation(n_items) + 1
    log_popularity = -config.popularity_exponent * np.log(popularity_rank)
    # Activity is heavy-tailed (log-normal) with at least 3 items, so leave-one-out leaves training data.
    activity = np.clip(np.round(rng.lognormal(np.log(mean_interactions), 0.6, size=len(users))), 3, n_items // 2).astype(int)
    user_rows, item_rows, order_rows = [], [], []
    for start in range(0, len(users), USER_CHUNK):
        stop = min(start + USER_CHUNK, len(users))
        logits = config.taste_sharpness * tastes[start:stop] @ item_vectors.T + log_popularity
        # Gumbel top-n draws n items without replacement, in proportion to softmax(logits).
        keys = logits + rng.gumbel(size=logits.shape)
        ranked = np.argsort(-keys, axis=1)
        for offset, count in enumerate(activity[start:stop]):
            chosen = ranked[offset, :count]
            user_rows.append(np.full(count, users[start + offset]))
            item_rows.append(chosen)
            order_rows.append(rng.permutation(count))
    user_index = np.concatenate(user_rows)
    item_index = np.concatenate(item_rows)
    return pd.DataFrame(
        {
            "user": pd.array([f"u{u:05d}" for u in user_index], dtype="string"),
            "item": pd.array([f"{prefix}{i:05d}" for i in item_index], dtype="string"),
            "rating": np.ones(len(user_index)),
            "timestamp": pd.array(np.concatenate(order_rows), dtype="Int64"),
            "split": "",
        }
    )


def item_titles(n_items: int, prefix: str, noun: str) -> pd.DataFrame:
    """Readable placeholder titles for generated items."""
    return pd.DataFrame(
        {
            "item": pd.array([f"{prefix}{i:05d}" for i in range(n_items)], dtype="string"),
            "title": [f"Synthetic {noun} #{i}" for i in range(n_items)],
        }
    )
