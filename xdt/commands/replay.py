"""`xdt replay RUN`: the replay protocol (xdt.replay) from a finished run, into a new run with its tables and plot.

A plain function added to the app by `register(app)`; TensorFlow is imported inside the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from xdt.errors import XdtError


def replay(
    run: Annotated[Path, typer.Argument(help="A finished updatable ranking run (target_mf, finetune, cmf) on a temporal dataset.")],
    windows: Annotated[
        int | None, typer.Option("--windows", min=1, help="Feedback windows (default: the run's update.feedback_windows).")
    ] = None,
) -> None:
    """Per time window of the target test rows: score no update, `xdt update` and a full retrain, then feed the window back."""
    from xdt.cli import fail, reporter, stdout
    from xdt.runs import open_run, vanished_run_error

    try:
        from xdt.replay import REPLAY_MARKDOWN, replay_run

        replayed = replay_run(open_run(run), windows_count=windows, reporter=reporter())
    except XdtError as error:
        fail(error)
    except OSError as error:
        fail(vanished_run_error(error))
    stdout.print((replayed.path / REPLAY_MARKDOWN).read_text(), markup=False, highlight=False)
    stdout.print(f"replay run: {replayed.path} (replay.json, replay.md, replay.png)")


def register(app: typer.Typer) -> None:
    """Add `replay` to `app`."""
    app.command("replay")(replay)
