"""`xdt recommend`: top-k target items with raw ids, titles and scores for raw user ids.

TensorFlow is imported only when scoring, so that a bad --users file fails at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from xdt.config import ExperimentConfig
from xdt.data.dataset import PreparedDataset
from xdt.data.protocols import TARGET
from xdt.errors import XdtError
from xdt.runs import RunDirectory, check_model_run


def recommend(run: RunDirectory, raw_users: Sequence[str], *, k: int) -> pd.DataFrame:
    """Rows (user, rank, item, title, score, cohort), excluding every target item each user already has.

    Works for cold-start users known only from the source domain; unknown ids raise. Scores
    come from the run's task (`target_scorer`).
    """
    if k < 1:
        raise XdtError(f"Expected k >= 1. Received: k={k}")
    from xdt.evaluate import rank_items
    from xdt.session import load_run_config, open_dataset

    config = load_run_config(run)
    check_model_run(run, config.task, "recommend")
    dataset = open_dataset(config)
    lookup = pd.Index(dataset.raw_users.astype(str))
    users = lookup.get_indexer(pd.Index([str(user) for user in raw_users]))
    unknown = [str(user) for user, index in zip(raw_users, users) if index < 0]
    if unknown:
        raise XdtError(
            f"Unknown user id{'s' if len(unknown) > 1 else ''} {', '.join(repr(user) for user in unknown[:5])}"
            f"{' …' if len(unknown) > 5 else ''}: not in either domain of dataset {dataset.manifest['name']!r} "
            f"({dataset.n_users} users, e.g. {', '.join(dataset.raw_users[:3].astype(str))})"
        )
    seen = dataset.interaction_matrix(TARGET, "train", "valid", "test")
    score_all = target_scorer(run, config, dataset)
    ranking = rank_items(score_all, users.astype(np.int64), seen=seen, relevant=None, k=k, batch_size=config.evaluate.batch_size)
    items = dataset.items(TARGET)
    titles = items["title"].to_numpy() if "title" in items.columns else np.full(len(items), "")
    cohorts = np.where(dataset.target_train_counts[users] == 0, "cold-start", "warm")
    rows = []
    for row, user in enumerate(raw_users):
        for rank in range(ranking.top_items.shape[1]):
            score = float(ranking.top_scores[row, rank])
            if not np.isfinite(score):
                break
            item = int(ranking.top_items[row, rank])
            rows.append(
                {"user": str(user), "rank": rank + 1, "item": items["raw_item"].iat[item], "title": titles[item], "score": score, "cohort": cohorts[row]}
            )
    return pd.DataFrame(rows, columns=["user", "rank", "item", "title", "score", "cohort"])


def with_explanations(run: RunDirectory, frame: pd.DataFrame, *, top: int = 3) -> pd.DataFrame:
    """The recommendations with an `explanation_method` and an `explanation` column (see xdt.explain).

    `explanation` lists the top history items as `domain:item (contribution)`, separated by `; `, so a
    CSV stays one row per recommendation; the full explanations are in `frame.attrs["explanations"]`.
    """
    from xdt.explain import explain_recommendations

    rows = [row.to_dict() for row in explain_recommendations(run, frame, top=top)]
    explained = frame.copy()
    explained["explanation_method"] = [row["method"] for row in rows]
    explained["explanation"] = [
        "; ".join(f"{part['domain']}:{part['item']} ({part['contribution']:.4g})" for part in row["contributions"]) or row["note"] for row in rows
    ]
    explained.attrs["explanations"] = [{**row, "rank": rank} for row, rank in zip(rows, frame["rank"])]
    return explained


def target_scorer(run: RunDirectory, config: ExperimentConfig, dataset: PreparedDataset) -> Callable[[Any], Any]:
    """Scores `(batch, n_target_items)` for user indices `(batch,)`, by the run's task (xdt.tasks).

    ranking: the model's `score_all`; rating: the predicted rating (xdt.rating.recommendation);
    sequential: the next-item score after the user's history (xdt.sequential.recommendation).
    """
    from xdt.tasks import get_task

    return get_task(config.task).scorer(run, config, dataset)


def requested_users(ids: Sequence[str], users_file: Path | None) -> list[str]:
    """The users to serve: the --user ids, then the --users file's, each once in first-seen order.

    Serving a user twice would only repeat their rows in the output. An empty file is refused by
    its path, since "needs --user or --users" would be wrong when --users was given.
    """
    from_file = read_user_file(str(users_file)) if users_file is not None else []
    if users_file is not None and not from_file:
        raise XdtError(f"--users: {users_file} holds no user ids (expected one raw user id per line, or a CSV with a 'user' column)")
    requested = list(dict.fromkeys([*ids, *from_file]))
    if not requested:
        raise XdtError("recommend needs --user ID or --users FILE")
    return requested


def read_user_file(path: str) -> list[str]:
    """Raw user ids from a file: one per line, or a CSV with a `user` column."""
    file = Path(path)
    if not file.is_file():
        raise XdtError(f"--users: file not found: {path}")
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise XdtError(f"--users: {path}: expected UTF-8 text, but byte offset {error.start} is not valid UTF-8") from None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if lines and lines[0].split(",")[0] == "user":
        return [line.split(",")[0] for line in lines[1:]]
    return lines
