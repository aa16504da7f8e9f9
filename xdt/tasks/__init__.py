"""Tasks as plug-ins: ranking (implicit feedback), rating (explicit ratings), sequential (next item).

Each task module defines `TASK`, a `xdt.tasks.base.Task`; the stages and the CLI look it up with
`get_task(config.task)` and never branch on the task's name. To add a task: one module here with
its `TASK`, a line in `xdt.tasks.registry.TASK_MODULES`, and its tests.
"""

from xdt.tasks.base import Task
from xdt.tasks.registry import TASK_NAMES, explainable_task_names, get_task, staged_task_names

__all__ = ["TASK_NAMES", "Task", "explainable_task_names", "get_task", "staged_task_names"]
