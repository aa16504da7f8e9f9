"""Groups of CLI commands that register themselves on the `xdt` Typer app (see `analysis.register`)."""
