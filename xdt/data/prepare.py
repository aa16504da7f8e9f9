"""`xdt prepare`: read → clean → split → index → write `data/<name>/` with a manifest."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from xdt.config import DatasetConfig, DomainConfig, ExperimentConfig
from xdt.data import protocols
from xdt.data.protocols import SOURCE, SPLITS, TARGET
from xdt.errors import DataError
from xdt.runs import file_sha256, write_json_atomic

MANIFEST = "manifest.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class DomainFrames:
    """One domain's standard interactions frame, its item texts and what reading it dropped."""

    interactions: pd.DataFrame
    items: pd.DataFrame | None
    drops: list[dict[str, Any]]
    inputs: dict[str, str]


def dataset_dir(config: ExperimentConfig) -> Path:
    """Folder of the prepared dataset named in the config."""
    return Path(config.runtime.data_dir) / config.dataset.name


def dataset_fingerprint(config: ExperimentConfig) -> str:
    """Hash of everything that decides the prepared data (dataset section + seed)."""
    payload = json.dumps({"dataset": asdict(config.dataset), "seed": config.seed, "format": FORMAT_VERSION}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def is_up_to_date(config: ExperimentConfig) -> bool:
    """True when `data/<name>/` was prepared from this exact dataset config and seed."""
    manifest = dataset_dir(config) / MANIFEST
    if not manifest.is_file():
        return False
    return json.loads(manifest.read_text()).get("fingerprint") == dataset_fingerprint(config)


def prepare_dataset(config: ExperimentConfig, progress: Callable[[str], None] = lambda message: None) -> dict[str, Any]:
    """Prepare the configured dataset and return its manifest."""
    dataset = config.dataset
    progress("reading")
    if dataset.synthetic is not None:
        source, target = read_synthetic(config)
    else:
        assert dataset.source is not None and dataset.target is not None
        source = read_real_domain(dataset.source, dataset)
        target = read_real_domain(dataset.target, dataset)
    frame = pd.concat(
        [source.interactions.assign(domain=SOURCE), target.interactions.assign(domain=TARGET)], ignore_index=True
    )
    progress("splitting")
    frame, summary = apply_protocol(frame, dataset, seed=config.seed)
    progress("indexing")
    users = np.array(sorted(frame["user"].unique()), dtype=object)
    source_items = np.array(sorted(frame.loc[frame["domain"] == SOURCE, "item"].unique()), dtype=object)
    target_items = np.array(sorted(frame.loc[frame["domain"] == TARGET, "item"].unique()), dtype=object)
    interactions = index_interactions(frame, users, source_items, target_items)
    progress("writing")
    folder = dataset_dir(config)
    folder.mkdir(parents=True, exist_ok=True)
    interactions.to_parquet(folder / "interactions.parquet", index=False)
    pd.DataFrame({"user": np.arange(len(users), dtype=np.int32), "raw_user": users.astype(str)}).to_parquet(
        folder / "users.parquet", index=False
    )
    write_items(folder / "items_source.parquet", source_items, source.items)
    write_items(folder / "items_target.parquet", target_items, target.items)
    manifest = build_manifest(config, interactions, summary, source, target, users)
    write_json_atomic(folder / MANIFEST, manifest)
    return manifest


def read_synthetic(config: ExperimentConfig) -> tuple[DomainFrames, DomainFrames]:
    """Generate the embedded default data."""
    from xdt.data.synthetic import generate

    assert config.dataset.synthetic is not None
    domains = generate(config.dataset.synthetic, config.seed)
    inputs = {"synthetic": dataset_fingerprint(config)}
    return (
        DomainFrames(domains.source, domains.source_items, [], inputs),
        DomainFrames(domains.target, domains.target_items, [], inputs),
    )


def read_real_domain(domain: DomainConfig, dataset: DatasetConfig) -> DomainFrames:
    """Read one domain with its configured reader and clean it, counting every dropped row."""
    from xdt.data import cleaning
    from xdt.data.readers import read_domain

    path = Path(domain.path)
    result = read_domain(
        domain.reader, path, domain=domain.name, options=domain.options, on_bad_rows=dataset.cleaning.on_bad_rows
    )
    drops: list[dict[str, Any]] = []
    if result.bad_rows:
        drops.append(
            {
                "domain": domain.name,
                "step": "bad_rows",
                "reason": "unparseable or malformed lines (on_bad_rows: skip)",
                "rows": len(result.bad_rows),
                "examples": [asdict(bad) for bad in result.bad_rows[:5]],
            }
        )
    frame = result.interactions
    steps: list[tuple[Callable[..., Any], dict[str, Any]]] = [(cleaning.drop_missing, {})]
    if domain.rating_range is not None:
        if len(domain.rating_range) != 2:
            raise DataError(f"dataset.{domain.name}.rating_range: expected [low, high]. Received: {domain.rating_range}")
        steps.append((cleaning.drop_out_of_range, {"low": domain.rating_range[0], "high": domain.rating_range[1]}))
    steps.append((cleaning.deduplicate, {"policy": dataset.cleaning.duplicates}))
    if dataset.cleaning.min_rating is not None:
        steps.append((cleaning.apply_rating_threshold, {"min_rating": dataset.cleaning.min_rating}))
    if dataset.cleaning.user_core or dataset.cleaning.item_core:
        steps.append((cleaning.k_core, {"user_k": dataset.cleaning.user_core, "item_k": dataset.cleaning.item_core}))
    for step, arguments in steps:
        frame, records = step(frame, domain=domain.name, **arguments)
        drops.extend(asdict(record) for record in records)
    inputs = {str(file): file_sha256(file) for file in result.files}
    return DomainFrames(frame, result.items, drops, inputs)


def apply_protocol(frame: pd.DataFrame, dataset: DatasetConfig, *, seed: int) -> tuple[pd.DataFrame, protocols.ProtocolSummary]:
    """Assign train/valid/test to every row with the configured protocol."""
    if dataset.protocol == "given":
        return protocols.split_given(frame)
    if dataset.protocol == "cold_users":
        test_users = read_user_list(Path(dataset.test_users_file)) if dataset.test_users_file else None
        return protocols.split_cold_users(
            frame,
            cold_fraction=dataset.cold_fraction,
            valid_cold_fraction=dataset.valid_cold_fraction,
            warm_holdout=dataset.warm_holdout,
            seed=seed,
            test_users=test_users,
        )
    if dataset.protocol == "leave_one_out":
        return protocols.split_leave_one_out(frame, seed=seed)
    raise DataError(f"dataset.protocol: {dataset.protocol!r} is not implemented yet. Use given, cold_users or leave_one_out.")


def read_user_list(path: Path) -> list[str]:
    """Raw user ids, one per line."""
    if not path.is_file():
        raise DataError(f"dataset.test_users_file: file not found: {path}")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def index_interactions(frame: pd.DataFrame, users: np.ndarray, source_items: np.ndarray, target_items: np.ndarray) -> pd.DataFrame:
    """Replace raw ids by dense integer indices (users global, items per domain)."""
    user_index = pd.Index(users)
    is_source = (frame["domain"] == SOURCE).to_numpy()
    item = np.empty(len(frame), dtype=np.int32)
    item[is_source] = pd.Index(source_items).get_indexer(frame.loc[is_source, "item"])
    item[~is_source] = pd.Index(target_items).get_indexer(frame.loc[~is_source, "item"])
    rating = pd.to_numeric(frame["rating"], errors="coerce").astype("float32").fillna(1.0)
    timestamp = pd.to_numeric(frame["timestamp"], errors="coerce").astype("float64").fillna(-1).astype("int64")
    indexed = pd.DataFrame(
        {
            "domain": frame["domain"].to_numpy(),
            "user": user_index.get_indexer(frame["user"]).astype(np.int32),
            "item": item,
            "rating": rating.to_numpy(),
            "timestamp": timestamp.to_numpy(),
            "split": frame["split"].to_numpy(),
        }
    )
    return indexed.sort_values(["domain", "user", "timestamp", "item"], kind="mergesort").reset_index(drop=True)


def write_items(path: Path, raw_items: np.ndarray, items: pd.DataFrame | None) -> None:
    """Write the item id map, with titles where the reader found them."""
    frame = pd.DataFrame({"item": np.arange(len(raw_items), dtype=np.int32), "raw_item": raw_items.astype(str)})
    if items is not None and "title" in items.columns:
        titles = items.drop_duplicates("item").set_index("item")["title"]
        frame["title"] = titles.reindex(frame["raw_item"]).fillna("").astype(str).to_numpy()
    frame.to_parquet(path, index=False)


def build_manifest(
    config: ExperimentConfig,
    interactions: pd.DataFrame,
    summary: protocols.ProtocolSummary,
    source: DomainFrames,
    target: DomainFrames,
    users: np.ndarray,
) -> dict[str, Any]:
    """Counts per domain and split, cohorts, overlap, drops, input hashes and the config used."""
    domains = {}
    for domain, n_items in ((SOURCE, interactions.loc[interactions["domain"] == SOURCE, "item"].max() + 1),
                            (TARGET, interactions.loc[interactions["domain"] == TARGET, "item"].max() + 1)):
        rows = interactions[interactions["domain"] == domain]
        per_split = {}
        for split in SPLITS:
            part = rows[rows["split"] == split]
            n_users = int(part["user"].nunique())
            n_part_items = int(part["item"].nunique())
            per_split[split] = {
                "users": n_users,
                "items": n_part_items,
                "rows": int(len(part)),
                "density": float(len(part) / (n_users * n_part_items)) if n_users and n_part_items else 0.0,
            }
        domains[domain] = {
            "name": (config.dataset.source.name if domain == SOURCE else config.dataset.target.name)
            if config.dataset.source is not None and config.dataset.target is not None
            else domain,
            "users": int(rows["user"].nunique()),
            "items": int(n_items),
            "rows": int(len(rows)),
            "splits": per_split,
        }
    content = hashlib.sha256()
    for column in ("user", "item", "rating", "timestamp"):
        content.update(np.ascontiguousarray(interactions[column].to_numpy()).tobytes())
    content.update("".join(interactions["domain"].str[0] + interactions["split"].str[0]).encode())
    return {
        "format_version": FORMAT_VERSION,
        "name": config.dataset.name,
        "fingerprint": dataset_fingerprint(config),
        "content_hash": content.hexdigest()[:16],
        "protocol": summary.name,
        "seed": config.seed,
        "users": int(len(users)),
        "overlap_users": summary.overlap_users,
        "cold_test_users": len(summary.cold_test_users),
        "cold_valid_users": len(summary.cold_valid_users),
        "users_too_short_for_holdout": summary.users_too_short_for_holdout,
        "domains": domains,
        "drops": source.drops + target.drops,
        "inputs": {**source.inputs, **target.inputs},
        "config": asdict(config.dataset),
    }
