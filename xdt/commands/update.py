"""`xdt update RUN --feedback FILE`: a new run warm-started from RUN and trained on the feedback (see xdt.update).

A plain function added to the app by `register(app)`; TensorFlow is imported inside the command.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from xdt.errors import XdtError


def update(
    run: Annotated[Path | None, typer.Argument(help="The run to update (omit with --resume).")] = None,
    feedback: Annotated[Path | None, typer.Option("--feedback", help="New interactions: CSV, Parquet, JSON lines or a RecBole .inter file.")] = None,
    reader: Annotated[str | None, typer.Option("--reader", help="Reader of the feedback file (default: from its suffix).")] = None,
    options: Annotated[
        str | None, typer.Option("--options", help='Reader options as JSON, e.g. \'{"columns": {"user": "uid", "item": "iid"}}\'.')
    ] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", min=1, help="Update epochs (default: the run's update.epochs).")] = None,
    replay_ratio: Annotated[
        float | None, typer.Option("--replay-ratio", min=0.0, help="Old rows replayed per feedback row (default: the run's update.replay_ratio).")
    ] = None,
    resume: Annotated[Path | None, typer.Option(help="Continue an interrupted update run.")] = None,
) -> None:
    """Train a new run on feedback, warm-started from RUN's model and optimiser; new users and items grow the id maps."""
    from xdt.cli import fail, reporter, stdout
    from xdt.runs import open_run, vanished_run_error

    try:
        if resume is not None:
            resumed = open_run(resume)
            parent = open_run(resumed.info()["parent"])
        elif run is None:
            raise XdtError("update needs RUN (the run to update) and --feedback FILE, or --resume UPDATE_RUN")
        else:
            resumed, parent = None, open_run(run)
        reader_options = parse_options(options)
        from xdt.update import update_run

        settings = {name: value for name, value in (("epochs", epochs), ("replay_ratio", replay_ratio)) if value is not None}
        updated = update_run(parent, feedback, reader=reader, options=reader_options, reporter=reporter(), resume=resumed, settings=settings)
    except XdtError as error:
        fail(error)
    except OSError as error:
        fail(vanished_run_error(error))
    info = updated.info()["feedback"]
    stdout.print(
        f"updated run: {updated.path} (parent {parent.path.name}; {info['rows_added']:,} feedback rows, "
        f"{info['new_users']:,} new users, {info['new_items']:,} new items)"
    )


def parse_options(text: str | None) -> dict:
    """The --options JSON object, or {}."""
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise XdtError(f"--options: not valid JSON at column {error.colno} ({error.msg}). Received: {text!r}") from None
    if not isinstance(value, dict):
        raise XdtError(f"--options: expected a JSON object of reader options. Received: {text!r}")
    return value


def register(app: typer.Typer) -> None:
    """Add `update` to `app`."""
    app.command("update")(update)
