"""Task registry: `config.task` → its `Task` plug-in. Importing it never imports TensorFlow."""

from __future__ import annotations

import difflib
import importlib

from xdt.errors import ConfigError
from xdt.tasks.base import Task

# name → the module whose TASK is the plug-in; adding a task is one module plus a line here.
TASK_MODULES: dict[str, str] = {
    "ranking": "xdt.tasks.ranking",
    "rating": "xdt.tasks.rating",
    "sequential": "xdt.tasks.sequential",
}
TASK_NAMES: tuple[str, ...] = tuple(TASK_MODULES)


def get_task(name: str) -> Task:
    """The task plug-in called `name`; a miss lists the known tasks."""
    if name not in TASK_MODULES:
        close = difflib.get_close_matches(name, TASK_NAMES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"Unknown task {name!r}.{hint} Known tasks: {', '.join(TASK_NAMES)}")
    return importlib.import_module(TASK_MODULES[name]).TASK


def staged_task_names() -> list[str]:
    """The tasks whose stages run one at a time (`xdt pretrain-source`, `xdt transfer`)."""
    return [name for name in TASK_NAMES if get_task(name).staged]


def explainable_task_names() -> list[str]:
    """The tasks whose runs `xdt explain` can attribute to history items."""
    return [name for name in TASK_NAMES if get_task(name).explainable]
