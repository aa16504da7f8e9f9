"""`xdt recommend` for a sequential transfer run: every target item scored as the next item after each user's whole history."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf

from xdt.config import ExperimentConfig
from xdt.data.dataset import PreparedDataset
from xdt.data.protocols import TARGET
from xdt.runs import RunDirectory
from xdt.sequential.data import left_pad, user_sequences
from xdt.sequential.experiment import HISTORY, load_sequence_model, sequence_view


def next_item_scorer(run: RunDirectory, config: ExperimentConfig, dataset: PreparedDataset) -> Callable[[Any], Any]:
    """Next-item scores `(batch, n_target_items)` for user indices `(batch,)`.

    The history is every row of the run method's history domains (`HISTORY`), all splits, by
    timestamp, cut to the newest `sequence.max_length` items; a user without one gets an empty
    (all-padding) history.
    """
    model = load_sequence_model(run)
    interactions, vocabulary = sequence_view(dataset)
    sequences = user_sequences(interactions, vocabulary, domains=HISTORY[run.info()["method"]], splits=("train", "valid", "test"))
    positions = {int(user): index for index, user in enumerate(sequences.users)}
    max_length = config.sequence.max_length
    candidates = tf.range(*vocabulary.token_range(TARGET))

    def score_all(users: Any) -> Any:
        windows = np.zeros((len(users), max_length), dtype=np.int32)
        for row, user in enumerate(np.asarray(users, dtype=np.int64)):
            if int(user) in positions:
                windows[row] = left_pad(sequences.sequence(positions[int(user)]), max_length)
        return model.score_tokens({"items": windows, "domains": vocabulary.domain_ids(windows)}, candidates)

    return score_all
