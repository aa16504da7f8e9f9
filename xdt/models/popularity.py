"""Popularity: every user gets items ranked by their number of training interactions."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="xdt")
class Popularity(keras.Model):
    """score(u, i) = training count of item i, the same for every user."""

    def __init__(self, num_items: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_items = num_items
        self.item_scores = self.add_weight(shape=(num_items,), initializer="zeros", trainable=False, name="item_scores")
        self.built = True

    def set_counts(self, counts: np.ndarray) -> None:
        """Set the item training counts."""
        self.item_scores.assign(counts.astype("float32"))

    def call(self, users: Any) -> Any:
        """Alias of `score_all`."""
        return self.score_all(users)

    def score_all(self, users: Any) -> Any:
        """`(batch, num_items)` scores."""
        batch = ops.shape(users)[0]
        return ops.broadcast_to(ops.reshape(self.item_scores, (1, -1)), (batch, self.num_items))

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments, for serialisation."""
        return {**super().get_config(), "num_items": self.num_items}
