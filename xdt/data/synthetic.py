"""The embedded default data: a seeded two-domain generator with shared user tastes.

Each user has a shared taste vector and one private taste vector per domain; their taste in a
domain is `sqrt(shared_taste) * shared + sqrt(1 - shared_taste) * private`. With
`shared_taste = 0` the two domains are independent, so no transfer method can help; with
`shared_taste = 1` a user's source behaviour fully predicts their target taste. Item popularity
follows a power law (Zipf with `popularity_exponent`). Users are overlapping (both domains),
source-only or target-only.

Planted structure (`planted_sources: N`, off at 0): a ground truth for explanations. Each target
item t gets a known set P(t) of N distinct source items, drawn in proportion to source
popularity (so planted items occur in histories often enough to be learned from). The source
domain is generated exactly as without the knob; the target domain is then drawn from the
source histories instead of tastes: user u picks target items without replacement from
softmax(PLANTED_STRENGTH × |P(t) ∩ H_u| + log popularity_t), H_u the user's source items. So a
target item is relevant to u exactly through the planted source items u has, and an
explanation of a recommended t should name items of P(t). `SyntheticDomains.planted` holds
P as {raw target item: [raw source items]}. With the knob at 0 no random draw changes, so
existing data stay byte-identical.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from xdt.config import SyntheticConfig

USER_CHUNK = 512
# Logit added per planted source item in a user's history: e^3 ≈ 20 times the odds of an unplanted item.
PLANTED_STRENGTH = 3.0


@dataclass(frozen=True)
class SyntheticDomains:
    """Generated interactions of both domains in the standard frame layout."""

    source: pd.DataFrame
    target: pd.DataFrame
    source_items: pd.DataFrame
    target_items: pd.DataFrame
    planted: dict[str, list[str]] | None = None  # raw target item → its planted raw source items


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
    planted = None
    if config.planted_sources > 0:
        target, planted = planted_target(np.random.default_rng([seed, 7919, 1]), source, target_users, config)
    return SyntheticDomains(
        source=source,
        target=target,
        source_items=item_titles(config.source_items, "s", "book"),
        target_items=item_titles(config.target_items, "t", "movie"),
        planted=planted,
    )


def planted_target(
    rng: np.random.Generator, source: pd.DataFrame, users: np.ndarray, config: SyntheticConfig
) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """The target domain drawn from planted source items (module docstring), and the planted sets.

    A separate generator keeps the knob from shifting any draw of the default data.
    """
    n_source, n_target = config.source_items, config.target_items
    source_users = source["user"].str[1:].astype(int).to_numpy()
    source_items = source["item"].str[1:].astype(int).to_numpy()
    popularity = np.bincount(source_items, minlength=n_source) + 1.0
    count = min(config.planted_sources, n_source)
    planted = np.stack([rng.choice(n_source, size=count, replace=False, p=popularity / popularity.sum()) for _ in range(n_target)])
    membership = np.zeros((n_source, n_target))
    np.add.at(membership, (planted.ravel(), np.repeat(np.arange(n_target), count)), 1.0)
    history = np.zeros((config.users, n_source))
    history[source_users, source_items] = 1.0
    log_popularity = -config.popularity_exponent * np.log(rng.permutation(n_target) + 1)
    activity = np.clip(np.round(rng.lognormal(np.log(config.target_interactions), 0.6, size=len(users))), 3, n_target // 2).astype(int)
    logits = PLANTED_STRENGTH * history[users] @ membership + log_popularity
    ranked = np.argsort(-(logits + rng.gumbel(size=logits.shape)), axis=1)
    user_index = np.concatenate([np.full(n, user) for user, n in zip(users, activity)])
    item_index = np.concatenate([ranked[row, :n] for row, n in enumerate(activity)])
    frame = pd.DataFrame(
        {
            "user": pd.array([f"u{u:05d}" for u in user_index], dtype="string"),
            "item": pd.array([f"t{i:05d}" for i in item_index], dtype="string"),
            "rating": np.ones(len(user_index)),
            "timestamp": pd.array(np.concatenate([rng.permutation(n) for n in activity]), dtype="Int64"),
            "split": "",
        }
    )
    sets = {f"t{t:05d}": [f"s{s:05d}" for s in sorted(planted[t])] for t in range(n_target)}
    return frame, sets


def planted_sets(config: SyntheticConfig, seed: int) -> dict[str, list[str]]:
    """P(t) for every target item of a planted config: {raw target item: [raw source items]}."""
    if config.planted_sources < 1:
        raise ValueError(f"Expected planted_sources >= 1. Received: planted_sources={config.planted_sources}")
    planted = generate(config, seed).planted
    assert planted is not None
    return planted


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
