"""`xdt prepare`: read → clean → link users → index → split → write `data/<name>/` with a manifest."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from xdt.config import DatasetConfig, DomainConfig, ExperimentConfig
from xdt.data import protocols
from xdt.data.protocols import SOURCE, SPLITS, TARGET
from xdt.data.readers.result import BLANK_LINES, ReadResult
from xdt.errors import DataError
from xdt.runs import file_sha256, write_json_atomic

MANIFEST = "manifest.json"
FORMAT_VERSION = 2
DOMAINS = (SOURCE, TARGET)


@dataclass(frozen=True)
class DomainFrames:
    """One domain's cleaned interactions, its item texts and what reading it dropped.

    `interactions` holds user and item as integer codes into `raw_users` / `raw_items` (cleaning
    and splitting on integers is many times faster than on strings).
    """

    interactions: pd.DataFrame
    items: pd.DataFrame | None
    drops: list[dict[str, Any]]
    inputs: dict[str, str]
    rows_read: int
    raw_users: np.ndarray
    raw_items: np.ndarray
    input_lines: dict[str, dict[str, int]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def encode_ids(frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Replace raw user and item ids by integer codes (missing ids become <NA>); return the raw id arrays."""
    columns = {}
    uniques = []
    for column in ("user", "item"):
        codes, raw = pd.factorize(frame[column])
        columns[column] = pd.arrays.IntegerArray(codes.astype(np.int64), mask=codes < 0)
        uniques.append(np.asarray(raw, dtype=object))
    return frame.assign(**columns), uniques[0], uniques[1]


@dataclass(frozen=True)
class IndexedFrame:
    """Both domains with dense integer ids: users global (sorted raw ids), items per domain."""

    frame: pd.DataFrame  # domain (str), user, item (int32), rating (float32), timestamp (int64, -1 unknown), split
    users: np.ndarray
    source_items: np.ndarray
    target_items: np.ndarray


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
    """Prepare the configured dataset, publish `data/<name>/` in one rename, and return its manifest.

    One prepare per dataset name runs at a time (a lock file beside the folder); a prepare that
    had to wait for another and then finds the dataset up to date returns that one's manifest.
    """
    folder = dataset_dir(config)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with dataset_lock(folder, progress) as waited:
        if waited and is_up_to_date(config):
            progress("up to date: prepared by the process this one waited for")
            return json.loads((folder / MANIFEST).read_text())
        recover_interrupted(folder)
        return build_and_publish(config, folder, progress)


def build_and_publish(config: ExperimentConfig, folder: Path, progress: Callable[[str], None]) -> dict[str, Any]:
    """Read, clean, link, index and split, then write everything and publish it (the caller holds the lock)."""
    dataset = config.dataset
    progress("reading")
    if dataset.synthetic is not None:
        source, target = read_synthetic(config)
    else:
        assert dataset.source is not None and dataset.target is not None
        source = read_real_domain(dataset.source, dataset)
        target = read_real_domain(dataset.target, dataset)
    links: dict[str, Any] = {"by": "raw user id"}
    if dataset.link_file is not None:
        progress("linking users")
        assert dataset.target is not None
        target, links = link_users(source, target, Path(dataset.link_file), target_name=dataset.target.name)
    progress("indexing")
    indexed = index_domains(source, target)
    progress("splitting")
    frame, summary = apply_protocol(indexed, dataset, seed=config.seed)
    warnings = list(dict.fromkeys([*source.warnings, *target.warnings, *check_premises(frame, summary, dataset.protocol)]))
    for warning in warnings:
        progress(f"warning: {warning}")
    progress("writing")
    interactions = order_rows(frame)
    manifest = build_manifest(config, indexed, interactions, summary, source, target, links)
    manifest["warnings"] = warnings

    def write(staging: Path) -> None:
        write_interactions(interactions, staging / "interactions.parquet")
        users = indexed.users
        pd.DataFrame({"user": np.arange(len(users), dtype=np.int32), "raw_user": users.astype(str)}).to_parquet(
            staging / "users.parquet", index=False
        )
        write_items(staging / "items_source.parquet", indexed.source_items, source.items)
        write_items(staging / "items_target.parquet", indexed.target_items, target.items)
        manifest["files"] = {name: file_sha256(staging / name) for name in DATA_FILES}
        write_json_atomic(staging / MANIFEST, manifest)

    publish(folder, write)
    return manifest


DATA_FILES = ("interactions.parquet", "users.parquet", "items_source.parquet", "items_target.parquet")


@contextmanager
def dataset_lock(folder: Path, progress: Callable[[str], None]) -> Iterator[bool]:
    """Hold data/.<name>.lock (flock) while preparing; yield whether another prepare had to be waited for.

    The lock file stays in place: deleting it would let a third process lock a new file while
    a second still waits on the old one.
    """
    lock_path = folder.parent / f".{folder.name}.lock"
    with open(lock_path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            waited = False
        except BlockingIOError:
            progress(f"waiting for another prepare of {folder.name} to finish (lock {lock_path})")
            fcntl.flock(handle, fcntl.LOCK_EX)
            waited = True
        try:
            yield waited
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def recover_interrupted(folder: Path) -> None:
    """Undo what a prepare killed mid-publish left: restore a folder renamed aside, drop staging folders."""
    asides = sorted(folder.parent.glob(f".{folder.name}.old-*"), key=lambda path: path.stat().st_mtime)
    if asides and not folder.exists():
        os.rename(asides.pop(), folder)
    for stale in [*asides, *folder.parent.glob(f".{folder.name}.tmp-*")]:
        shutil.rmtree(stale, ignore_errors=True)


def publish(folder: Path, write: Callable[[Path], None]) -> None:
    """Write into a staging sibling, fsync it, and rename it over folder, so the folder is always complete.

    A failure leaves the old folder (or none) untouched and removes the staging folder. Entries
    of the old folder that prepare does not write (caches such as text_cache/) move into the new one.
    """
    staging = folder.parent / f".{folder.name}.tmp-{secrets.token_hex(4)}"
    staging.mkdir()
    try:
        write(staging)
        for path in staging.iterdir():
            fsync_path(path)
        fsync_path(staging)
        aside = folder.parent / f".{folder.name}.old-{secrets.token_hex(4)}"
        if folder.exists():
            os.rename(folder, aside)
        try:
            os.rename(staging, folder)
        except OSError:
            if aside.exists():
                os.rename(aside, folder)
            raise
        fsync_path(folder.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if aside.exists():
        for entry in aside.iterdir():
            if entry.name not in (*DATA_FILES, MANIFEST):
                os.rename(entry, folder / entry.name)
        shutil.rmtree(aside)


def fsync_path(path: Path) -> None:
    """Flush a file's or folder's content to disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def read_synthetic(config: ExperimentConfig) -> tuple[DomainFrames, DomainFrames]:
    """Generate the embedded default data."""
    from xdt.data.synthetic import generate

    assert config.dataset.synthetic is not None
    domains = generate(config.dataset.synthetic, config.seed)
    inputs = {"synthetic": dataset_fingerprint(config)}
    frames = []
    for interactions, items in ((domains.source, domains.source_items), (domains.target, domains.target_items)):
        encoded, raw_users, raw_items = encode_ids(interactions)
        frames.append(DomainFrames(encoded, items, [], inputs, len(interactions), raw_users, raw_items))
    return frames[0], frames[1]


def read_real_domain(domain: DomainConfig, dataset: DatasetConfig) -> DomainFrames:
    """Read one domain with its configured reader and clean it, counting every dropped row."""
    from xdt.data import cleaning
    from xdt.data.readers import read_domain

    path = Path(domain.path)
    result = read_domain(
        domain.reader, path, domain=domain.name, options=domain.options, on_bad_rows=dataset.cleaning.on_bad_rows
    )
    drops = reading_drops(domain.name, result)
    frame, raw_users, raw_items = encode_ids(result.interactions)
    rows_read = len(frame) + sum(drop["rows"] for drop in drops)
    steps: list[tuple[Callable[..., Any], dict[str, Any]]] = [(cleaning.drop_missing, {})]
    if domain.rating_range is not None:
        if len(domain.rating_range) != 2:
            raise DataError(f"dataset.{domain.name}.rating_range: expected [low, high]. Received: {domain.rating_range}")
        steps.append((cleaning.drop_out_of_range, {"low": domain.rating_range[0], "high": domain.rating_range[1]}))
    steps.append((deduplicate_duplicated_rows, {"policy": dataset.cleaning.duplicates}))
    if dataset.cleaning.min_rating is not None:
        steps.append((cleaning.apply_rating_threshold, {"min_rating": dataset.cleaning.min_rating}))
    if dataset.cleaning.user_core or dataset.cleaning.item_core:
        steps.append((cleaning.k_core, {"user_k": dataset.cleaning.user_core, "item_k": dataset.cleaning.item_core}))
    for step, arguments in steps:
        frame, records = step(frame, domain=domain.name, **arguments)
        drops.extend(asdict(record) for record in records)
    if frame.empty:
        raise DataError(
            f"dataset domain {domain.name!r}: no rows left after cleaning ({rows_read:,} read from {path}). "
            "Check the reader, its columns option and the cleaning settings."
        )
    inputs = {str(file): file_sha256(file) for file in result.files}
    input_lines = {account.file: {"lines": account.lines, **account.counts} for account in result.lines}
    return DomainFrames(frame, result.items, drops, inputs, rows_read, raw_users, raw_items, input_lines, result.warnings)


def reading_drops(domain: str, result: ReadResult) -> list[dict[str, Any]]:
    """Drop records for the lines a reader skipped: bad rows (on_bad_rows: skip) and blank lines.

    Together with the cleaning steps they account for every line read: rows_read minus all drops
    is the rows kept.
    """
    drops: list[dict[str, Any]] = []
    if result.bad_rows:
        drops.append(
            {
                "domain": domain,
                "step": "bad_rows",
                "reason": "unparseable or malformed lines (on_bad_rows: skip)",
                "rows": len(result.bad_rows),
                "examples": [asdict(bad) for bad in result.bad_rows[:5]],
            }
        )
    blank = sum(account.counts.get(BLANK_LINES, 0) for account in result.lines)
    if blank:
        reason = "blank lines (empty, or only spaces and separators)"
        drops.append({"domain": domain, "step": "blank_lines", "reason": reason, "rows": blank})
    return drops


def deduplicate_duplicated_rows(frame: pd.DataFrame, *, domain: str, policy: str) -> tuple[pd.DataFrame, list[Any]]:
    """`cleaning.deduplicate` applied only to the rows whose (user, item) pair repeats; the same result, faster.

    Each policy decides per pair, so rows without a repeat pass unchanged and the others are
    deduplicated among themselves; survivors stay in file order.
    """
    from xdt.data import cleaning

    repeated = frame.duplicated(subset=["user", "item"], keep=False).to_numpy()
    subset = frame[repeated].assign(_position=np.flatnonzero(repeated))
    kept, records = cleaning.deduplicate(subset, domain=domain, policy=policy)
    kept_positions = kept["_position"].to_numpy()
    keep = ~repeated
    keep[kept_positions] = True
    result = frame[keep]
    if policy == "mean" and len(kept):
        rating = result["rating"].to_numpy(dtype=np.float64, copy=True)
        rating[np.searchsorted(np.flatnonzero(keep), kept_positions)] = kept["rating"].to_numpy(dtype=np.float64)
        result = result.assign(rating=rating)
    return result.reset_index(drop=True), records


def read_links(path: Path) -> pd.DataFrame:
    """A link file: `source_user,target_user` per line (comma or tab; that header optional), one-to-one."""
    if not path.is_file():
        raise DataError(f"dataset.link_file: file not found: {path}")
    pairs = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = [value.strip() for value in line.split("\t" if "\t" in line else ",")]
        if len(fields) != 2 or not all(fields):
            raise DataError(
                f"{path}:{number}: expected two columns source_user,target_user. Received: {line[:200]!r}"
            )
        if not pairs and fields == ["source_user", "target_user"]:
            continue
        pairs.append(fields)
    links = pd.DataFrame(pairs, columns=["source_user", "target_user"], dtype=object)
    for column in links.columns:
        repeated = links[column][links[column].duplicated()]
        if len(repeated):
            raise DataError(
                f"{path}: each user may be linked once, but {column} {repeated.iloc[0]!r} appears more than once "
                f"({len(repeated)} repeats in that column)"
            )
    return links


def link_users(
    source: DomainFrames, target: DomainFrames, link_file: Path, *, target_name: str
) -> tuple[DomainFrames, dict[str, Any]]:
    """Rename target users through the link file: linked users take their source id, others become '<target>:<id>'.

    Prefixing the unlinked target users keeps a raw id that happens to occur in both domains from
    linking two different people.
    """
    links = read_links(link_file)
    mapping = pd.Series(links["source_user"].to_numpy(), index=links["target_user"].to_numpy())
    raw_target = pd.Series(target.raw_users, dtype=object)
    linked = raw_target.map(mapping)
    renamed = linked.where(linked.notna(), target_name + ":" + raw_target.astype(str))
    target_users = set(present_ids(target.interactions["user"], target.raw_users))
    source_users = set(present_ids(source.interactions["user"], source.raw_users))
    used = links["target_user"].isin(target_users) & links["source_user"].isin(source_users)
    facts = {
        "by": "link file",
        "link_file": str(link_file),
        "link_file_sha256": file_sha256(link_file),
        "links": int(len(links)),
        "links_with_rows_in_both_domains": int(used.sum()),
    }
    inputs = {**target.inputs, str(link_file): facts["link_file_sha256"]}
    renamed_users = renamed.astype(str).to_numpy(dtype=object)
    return replace(target, inputs=inputs, raw_users=renamed_users), facts


def present_ids(codes: pd.Series, raw: np.ndarray) -> np.ndarray:
    """The raw ids that the (cleaned) rows still use."""
    used = np.bincount(codes.to_numpy(dtype=np.int64), minlength=len(raw)) > 0
    return raw[used]


def index_domains(source: DomainFrames, target: DomainFrames) -> IndexedFrame:
    """Stack both domains and give dense indices: users global sorted by raw id, items per domain sorted by raw id."""
    source_users, source_user_codes = used_ids(source.interactions["user"], source.raw_users)
    target_users, target_user_codes = used_ids(target.interactions["user"], target.raw_users)
    global_codes, users = pd.factorize(np.concatenate([source_users, target_users]), sort=True)
    user = np.concatenate(
        [global_codes[: len(source_users)][source_user_codes], global_codes[len(source_users) :][target_user_codes]]
    )
    source_items, source_item_codes = used_ids(source.interactions["item"], source.raw_items, sort=True)
    target_items, target_item_codes = used_ids(target.interactions["item"], target.raw_items, sort=True)
    source_frame, target_frame = source.interactions, target.interactions
    is_target = np.zeros(len(source_frame) + len(target_frame), dtype=bool)
    is_target[len(source_frame) :] = True
    rating = np.concatenate([numeric(source_frame["rating"]), numeric(target_frame["rating"])])
    timestamp = np.concatenate([numeric(source_frame["timestamp"]), numeric(target_frame["timestamp"])])
    split = pd.Categorical.from_codes(
        np.concatenate([split_codes(source_frame), split_codes(target_frame)]), categories=list(SPLITS)
    )
    frame = pd.DataFrame(
        {
            "domain": pd.Categorical.from_codes(is_target.astype(np.int8), categories=list(DOMAINS)),
            "user": user.astype(np.int32),
            "item": np.concatenate([source_item_codes, target_item_codes]).astype(np.int32),
            "rating": np.where(np.isnan(rating), 1.0, rating).astype(np.float32),  # implicit feedback: 1
            "timestamp": np.where(np.isnan(timestamp), -1, timestamp).astype(np.int64),  # -1: unknown
            "split": split,
        }
    )
    return IndexedFrame(frame, np.asarray(users, dtype=object), source_items, target_items)


def used_ids(codes: pd.Series, raw: np.ndarray, *, sort: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The raw ids the rows use (sorted by raw id when asked) and each row's code into them."""
    codes = codes.to_numpy(dtype=np.int64)
    used = np.flatnonzero(np.bincount(codes, minlength=len(raw)) > 0)
    names = raw[used]
    if sort:
        order = np.argsort(names.astype(str), kind="stable")
        used, names = used[order], names[order]
    remap = np.full(len(raw), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    return np.asarray(names, dtype=object), remap[codes]


def numeric(values: pd.Series) -> np.ndarray:
    """A float64 array of a numeric column, NaN where it has no value."""
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def split_codes(frame: pd.DataFrame) -> np.ndarray:
    """The reader's split column as int8 codes into SPLITS; -1 where the format carries none ("")."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if "split" not in frame.columns:
        return np.full(len(frame), -1, dtype=np.int8)
    codes = pc.index_in(pa.array(frame["split"].array, type=pa.string(), from_pandas=True), value_set=pa.array(SPLITS))
    return pc.fill_null(codes, -1).to_numpy(zero_copy_only=False).astype(np.int8)


def apply_protocol(indexed: IndexedFrame, dataset: DatasetConfig, *, seed: int) -> tuple[pd.DataFrame, protocols.ProtocolSummary]:
    """Assign train/valid/test to every row with the configured protocol."""
    frame = indexed.frame
    if dataset.protocol == "given":
        return protocols.split_given(frame, given_valid=dataset.given_valid, seed=seed)
    if dataset.protocol == "cold_users":
        test_users = None
        if dataset.test_users_file:
            test_users = index_test_users(read_user_list(Path(dataset.test_users_file)), indexed)
        return protocols.split_cold_users(
            frame,
            cold_fraction=dataset.cold_fraction,
            valid_cold_fraction=dataset.valid_cold_fraction,
            warm_holdout=dataset.warm_holdout,
            seed=seed,
            test_users=test_users,
            fold=dataset.fold,
            folds=dataset.folds,
        )
    if dataset.protocol == "leave_one_out":
        return protocols.split_leave_one_out(frame, seed=seed)
    if dataset.protocol == "temporal":
        return protocols.split_temporal(
            frame.assign(timestamp=frame["timestamp"].where(frame["timestamp"] >= 0)),
            test_cutoff=dataset.test_cutoff,
            test_quantile=dataset.test_quantile,
            valid_cutoff=dataset.valid_cutoff,
            valid_quantile=dataset.valid_quantile,
        )
    if dataset.protocol == "ratio":
        return protocols.split_ratio(frame, fractions=dataset.ratio_fractions, seed=seed)
    raise DataError(f"dataset.protocol: unknown protocol {dataset.protocol!r}")


TRANSFER_PROTOCOLS = ("cold_users", "given")  # evaluated on users whose target history comes from the source


def check_premises(frame: pd.DataFrame, summary: protocols.ProtocolSummary, protocol: str) -> list[str]:
    """Refuse a split whose protocol cannot mean what it says; return warnings for the softer cases.

    Hard: a transfer protocol with no user in both domains, or whose cold-start valid/test users
    all lack source rows. Soft: other protocols with no overlap, some cold-start users without
    source rows, target test items that training never shows.
    """
    warnings = []
    is_target = (frame["domain"] == TARGET).to_numpy()
    users = frame["user"].to_numpy()
    if summary.overlap_users == 0:
        message = (
            f"protocol {protocol!r}: no user has rows in both domains, so there is nothing to transfer through. "
            "Expected user ids shared across the domains' files: check the readers' user ids, dataset.link_file, "
            "or reader options such as cdrib's shared_users."
        )
        if protocol in TRANSFER_PROTOCOLS:
            raise DataError(message)
        warnings.append(message)
    cold = np.unique(np.asarray([*summary.cold_test_users, *summary.cold_valid_users], dtype=np.int64))
    without_source = int(np.count_nonzero(~np.isin(cold, users[~is_target])))
    if len(cold) and without_source == len(cold) and protocol in TRANSFER_PROTOCOLS:
        raise DataError(
            f"protocol {protocol!r}: none of the {len(cold):,} cold-start valid/test users (target rows only in "
            "valid/test) has source rows, so no method can transfer anything to them. Expected them to be users of "
            "both domains: check that user ids match across the domains (reader options such as cdrib's "
            "shared_users, or dataset.link_file)."
        )
    if without_source:
        warnings.append(
            f"{without_source:,} of the {len(cold):,} cold-start valid/test users have no source rows; "
            "only non-transfer baselines can score them."
        )
    warnings += unseen_test_items(frame, is_target)
    return warnings


def unseen_test_items(frame: pd.DataFrame, is_target: np.ndarray) -> list[str]:
    """A warning when target test items never occur in target training rows (no model learns them)."""
    codes = protocols.split_codes(frame)
    items = frame["item"].to_numpy()
    test_items = items[is_target & (codes == protocols.TEST)]
    unseen = ~np.isin(test_items, items[is_target & (codes == protocols.TRAIN)])
    if not unseen.any():
        return []
    return [
        f"{len(np.unique(test_items[unseen])):,} of the {len(np.unique(test_items)):,} target test items "
        f"({int(unseen.sum()):,} of {len(test_items):,} test rows) never occur in target training rows; "
        "no model learns them, so they can only be ranked by chance."
    ]


def read_user_list(path: Path) -> list[str]:
    """Raw user ids, one per line."""
    if not path.is_file():
        raise DataError(f"dataset.test_users_file: file not found: {path}")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def index_test_users(raw_test_users: list[str], indexed: IndexedFrame) -> list[int]:
    """Indices of the given cold-start test users, which must be overlapping users."""
    codes = pd.Index(indexed.users).get_indexer(raw_test_users)
    overlap = set(protocols.overlapping_users(indexed.frame).tolist())
    not_overlapping = [user for user, code in zip(raw_test_users, codes) if code < 0 or code not in overlap]
    if not_overlapping:
        raise DataError(
            f"dataset.test_users_file: {len(not_overlapping)} of the {len(raw_test_users)} test users are not "
            f"users of both domains, e.g. {not_overlapping[:5]}"
        )
    return sorted(set(codes.tolist()))


def order_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows sorted by domain, user, time, item; domain as `is_target`, split as int8 codes into SPLITS."""
    is_target = (frame["domain"] == TARGET).to_numpy()
    user = frame["user"].to_numpy()
    item = frame["item"].to_numpy()
    times, time_rank = np.unique(frame["timestamp"].to_numpy(), return_inverse=True)
    user_bits = int(user.max(initial=0)).bit_length() + 1  # + the domain bit
    time_bits = len(times).bit_length()
    item_bits = int(item.max(initial=0)).bit_length()
    if user_bits + time_bits + item_bits <= 63:
        # One sort of a packed key (domain, user | time rank | item) beats lexsort over three keys.
        key = ((is_target.astype(np.int64) << (user_bits - 1)) | user.astype(np.int64)) << (time_bits + item_bits)
        key |= time_rank.astype(np.int64) << item_bits
        key |= item.astype(np.int64)
        order = np.argsort(key)  # keys are unique: (user, item) pairs are after deduplication
    else:
        user_key = user.astype(np.int64) + is_target * np.int64(1 << 32)
        order = np.lexsort((item, time_rank, user_key))
    return pd.DataFrame(
        {
            "is_target": is_target[order],
            "user": frame["user"].to_numpy()[order],
            "item": frame["item"].to_numpy()[order],
            "rating": frame["rating"].to_numpy()[order],
            "timestamp": frame["timestamp"].to_numpy()[order],
            "split": protocols.split_codes(frame)[order],
        }
    )


def write_interactions(ordered: pd.DataFrame, path: Path) -> None:
    """interactions.parquet: domain, user, item, rating, timestamp, split (domain and split as text)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    def text(codes: np.ndarray, names: tuple[str, ...]) -> pa.Array:
        return pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int8)), pa.array(names)).cast(pa.string())

    table = pa.table(
        {
            "domain": text(ordered["is_target"].to_numpy(), DOMAINS),
            "user": pa.array(ordered["user"].to_numpy(np.int32)),
            "item": pa.array(ordered["item"].to_numpy(np.int32)),
            "rating": pa.array(ordered["rating"].to_numpy(np.float32)),
            "timestamp": pa.array(ordered["timestamp"].to_numpy(np.int64)),
            "split": text(ordered["split"].to_numpy(), SPLITS),
        }
    )
    pq.write_table(table, path)


def write_items(path: Path, raw_items: np.ndarray, items: pd.DataFrame | None) -> None:
    """Write the item id map, with titles where the reader found them."""
    frame = pd.DataFrame({"item": np.arange(len(raw_items), dtype=np.int32), "raw_item": raw_items.astype(str)})
    if items is not None and "title" in items.columns:
        titles = items.drop_duplicates("item").set_index("item")["title"]
        frame["title"] = titles.reindex(frame["raw_item"]).fillna("").astype(str).to_numpy()
    frame.to_parquet(path, index=False)


def count_distinct(values: np.ndarray) -> int:
    """Number of distinct non-negative integers in values."""
    return int(np.count_nonzero(np.bincount(values))) if len(values) else 0


def split_counts(users: np.ndarray, items: np.ndarray, other_domain_users: np.ndarray, train_users: np.ndarray) -> dict[str, Any]:
    """Users, items, rows, density, overlapping users and cold-start users of one domain's split.

    `other_domain_users` and `train_users` are boolean masks over all user indices.
    """
    present = np.zeros(len(other_domain_users), dtype=bool)
    present[users] = True
    n_users, n_items = int(present.sum()), count_distinct(items)
    return {
        "users": n_users,
        "items": n_items,
        "rows": int(len(users)),
        "density": float(len(users) / (n_users * n_items)) if n_users and n_items else 0.0,
        "overlap_users": int((present & other_domain_users).sum()),
        "cold_users": int((present & ~train_users).sum()),
    }


def build_manifest(
    config: ExperimentConfig,
    indexed: IndexedFrame,
    interactions: pd.DataFrame,
    summary: protocols.ProtocolSummary,
    source: DomainFrames,
    target: DomainFrames,
    links: dict[str, Any],
) -> dict[str, Any]:
    """Counts per domain and split, cohorts, overlap, drops, input hashes and the config used."""
    dataset = config.dataset
    names = {SOURCE: dataset.source.name, TARGET: dataset.target.name} if dataset.source and dataset.target else {}
    is_target = interactions["is_target"].to_numpy()
    split = interactions["split"].to_numpy()
    user = interactions["user"].to_numpy()
    item = interactions["item"].to_numpy()
    n_users = len(indexed.users)
    in_domain = {SOURCE: ~is_target, TARGET: is_target}
    domain_users = {domain: np.bincount(user[mask], minlength=n_users) > 0 for domain, mask in in_domain.items()}
    domains = {}
    for domain, frames in ((SOURCE, source), (TARGET, target)):
        mask = in_domain[domain]
        other_users = domain_users[TARGET if domain == SOURCE else SOURCE]
        train_users = np.bincount(user[mask & (split == 0)], minlength=n_users) > 0
        domains[domain] = {
            "name": names.get(domain, domain),
            "users": int(domain_users[domain].sum()),
            "items": int(len(indexed.source_items if domain == SOURCE else indexed.target_items)),
            "rows": int(mask.sum()),
            "rows_read": int(frames.rows_read),
            "input_lines": frames.input_lines,
            "overlap_users": int((domain_users[domain] & other_users).sum()),
            "splits": {
                name: split_counts(user[mask & (split == code)], item[mask & (split == code)], other_users, train_users)
                for code, name in enumerate(SPLITS)
            },
        }
    content = hashlib.sha256()
    for column in ("user", "item", "rating", "timestamp"):
        content.update(np.ascontiguousarray(interactions[column].to_numpy()).tobytes())
    content.update(is_target.tobytes())
    content.update(split.astype(np.int8).tobytes())
    return {
        "format_version": FORMAT_VERSION,
        "name": dataset.name,
        "fingerprint": dataset_fingerprint(config),
        "content_hash": content.hexdigest()[:16],
        "protocol": summary.name,
        "protocol_details": summary.details,
        "seed": config.seed,
        "users": int(len(indexed.users)),
        "overlap_users": summary.overlap_users,
        "user_links": links,
        "cold_test_users": len(summary.cold_test_users),
        "cold_valid_users": len(summary.cold_valid_users),
        "users_too_short_for_holdout": summary.users_too_short_for_holdout,
        "domains": domains,
        "drops": source.drops + target.drops,
        "inputs": {**source.inputs, **target.inputs},
        "config": asdict(dataset),
    }
