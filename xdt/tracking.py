"""Optional MLflow tracking: copy a finished run directory into an MLflow tracking store, post hoc.

Training code never talks to MLflow; `xdt run` (with `tracking: {mlflow: true}`) and `xdt track RUN`
read what a run directory already holds and log it:

- params: resolved.json flattened to dotted keys (`transfer.epochs` → "3");
- per-epoch metrics: metrics.jsonl as `<stage>/<field>` at step = epoch (`target/loss`,
  `target/valid_score`); rows without an epoch (e.g. EMCDR's `mapping`) at step 0;
- final metrics: results.json flattened, cohorts next to `all` (`test/all/ndcg_at_10`,
  `test/cold/ndcg_at_10`, `test/activity/51plus/hr_at_5`, `beyond_accuracy/coverage_at_10`);
  MLflow names allow only letters, digits, `_ - . /` and spaces, so `@k` becomes `_at_k`;
- artifacts: config.yaml, results.json, report.md, the PNG plots and per_user.parquet;
- tags: the xdt run id, kind, method, seed, status, parent run id, dataset content hash, git commit
  and run path; a transfer run whose pretrain run is already tracked is nested under it.

MLflow is an optional extra (`pip install 'xdt[mlflow]'`, i.e. mlflow-skinny) imported only here.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xdt.errors import XdtError
from xdt.runs import STATUS_COMPLETE, STATUS_FAILED, RunDirectory

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from xdt.config import TrackingConfig

MISSING_MLFLOW = "MLflow tracking needs the optional extra: pip install 'xdt[mlflow]'"
ARTIFACT_NAMES = ("config.yaml", "results.json", "report.md", "per_user.parquet")
# Characters every MLflow version since 2.x accepts in param and metric names.
INVALID_NAME_CHARACTERS = re.compile(r"[^0-9A-Za-z_\-. /]")
MAX_KEY_LENGTH = 250
# mlflow.utils.validation.MAX_PARAM_VAL_LENGTH, when that module does not say.
DEFAULT_MAX_PARAM_LENGTH = 500
FILE_STORE_OPT_IN = "MLFLOW_ALLOW_FILE_STORE"


def require_mlflow() -> Any:
    """The `mlflow` module, or an XdtError naming the extra to install."""
    try:
        import mlflow
    except ImportError:
        raise XdtError(MISSING_MLFLOW) from None
    return mlflow


def resolve_tracking_uri(uri: str) -> str:
    """A plain path (`mlruns`, `/tmp/mlruns`) becomes an absolute `file:` URI; other URIs pass through."""
    if not uri:
        raise XdtError(f"Expected a tracking URI or folder. Received: uri={uri!r}")
    if ":" in uri or uri == "databricks":
        return uri
    return Path(uri).expanduser().resolve().as_uri()


@contextlib.contextmanager
def file_store_allowed(tracking_uri: str) -> Iterator[None]:
    """Let MLflow 3 open a local `file:` store, for this block only.

    Recent MLflow refuses the file store ("in maintenance mode") unless MLFLOW_ALLOW_FILE_STORE=true,
    and its sqlite backend needs SQLAlchemy and Alembic, which mlflow-skinny leaves out. The store is
    cached per URI, so a client made inside this block keeps working after it.
    `tests/test_tracking.py::test_mlflow_still_refuses_the_file_store_without_opt_in` fails once
    MLflow stops refusing it, so that this can go.
    """
    if not tracking_uri.startswith("file:") or FILE_STORE_OPT_IN in os.environ:
        yield
        return
    os.environ[FILE_STORE_OPT_IN] = "true"
    try:
        yield
    finally:
        os.environ.pop(FILE_STORE_OPT_IN, None)


def open_tracking_client(tracking_uri: str) -> MlflowClient:
    """An MlflowClient on `tracking_uri` (a folder becomes a local file store)."""
    require_mlflow()
    from mlflow.tracking import MlflowClient

    uri = resolve_tracking_uri(tracking_uri)
    with file_store_allowed(uri):
        return MlflowClient(tracking_uri=uri)  # opens (and caches) the store now, while the opt-in holds


def log_run_to_mlflow(run: RunDirectory, *, tracking_uri: str, experiment: str | None = None) -> str:
    """Log one run directory to MLflow (experiment = the xdt experiment); returns the MLflow run id."""
    require_mlflow()
    from mlflow.entities import Metric, Param
    from mlflow.exceptions import MlflowException

    uri = resolve_tracking_uri(tracking_uri)
    info = run.info()
    name = experiment or info.get("experiment") or run.experiment
    try:
        with file_store_allowed(uri):
            client = open_tracking_client(uri)
            experiment_id = experiment_id_for(client, name)
            tags = run_tags(run, info)
            parent = tracked_run_id(client, experiment_id, tags.get("xdt.parent_run_id"))
            if parent is not None:
                tags["mlflow.parentRunId"] = parent
            mlflow_run_id = client.create_run(experiment_id, run_name=run.run_id, tags=tags).info.run_id
            try:
                params = [Param(key, value) for key, value in run_params(run).items()]
                metrics = [Metric(key, value, timestamp, step) for key, value, step, timestamp in run_metrics(run)]
                client.log_batch(mlflow_run_id, metrics=metrics, params=params)
                for artifact in run_artifacts(run):
                    client.log_artifact(mlflow_run_id, str(artifact))
            except BaseException:
                client.set_terminated(mlflow_run_id, "FAILED")
                raise
            client.set_terminated(mlflow_run_id, mlflow_status(info.get("status")))
    except (MlflowException, OSError) as error:
        raise XdtError(
            f"Could not log run {run.path} to MLflow at {uri}: {error}. "
            f"The run directory is complete; log it later with `xdt track {run.path} --uri ...`"
        ) from error
    return mlflow_run_id


def experiment_id_for(client: MlflowClient, name: str) -> str:
    """The id of MLflow experiment `name`, created when missing (safe against a concurrent creation)."""
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is None:
        try:
            return client.create_experiment(name)
        except MlflowException:
            found = client.get_experiment_by_name(name)
            if found is None:
                raise
    if found.lifecycle_stage == "deleted":
        raise XdtError(f"MLflow experiment {name!r} is deleted; restore it in MLflow or pass another experiment name")
    return found.experiment_id


def tracked_run_id(client: MlflowClient, experiment_id: str, xdt_run_id: str | None) -> str | None:
    """The MLflow run (latest first) that logged xdt run `xdt_run_id`, if any."""
    if not xdt_run_id:
        return None
    found = client.search_runs(
        [experiment_id], filter_string=f"tags.`xdt.run_id` = '{xdt_run_id}'", max_results=1, order_by=["attributes.start_time DESC"]
    )
    return found[0].info.run_id if found else None


def run_tags(run: RunDirectory, info: dict[str, Any]) -> dict[str, str]:
    """Tags naming where the run came from: xdt ids, kind, method, dataset hash, git commit, path."""
    data = optional_json(run, "data.json")
    environment = optional_json(run, "env.json")
    parent = optional_json(run, "parent.json").get("run_id") or (Path(info["parent"]).name if info.get("parent") else None)
    tags = {
        "xdt.run_id": run.run_id,
        "xdt.experiment": info.get("experiment") or run.experiment,
        "xdt.kind": info.get("kind"),
        "xdt.method": info.get("method"),
        "xdt.seed": info.get("seed"),
        "xdt.status": info.get("status"),
        "xdt.parent_run_id": parent,
        "xdt.dataset": data.get("name"),
        "xdt.dataset_hash": data.get("content_hash"),
        "xdt.git_commit": environment.get("git_commit"),
        "xdt.run_path": str(run.path.resolve()),
        "mlflow.source.git.commit": environment.get("git_commit"),
    }
    return {key: str(value) for key, value in tags.items() if value is not None}


def run_params(run: RunDirectory) -> dict[str, str]:
    """resolved.json as dotted keys → strings, cut to MLflow's length limit (`transfer.epochs` → "3")."""
    limit = max_param_length()
    params = {}
    for key, value in flatten_config(run.read_json("resolved.json")):
        text = value if isinstance(value, str) else json_text(value)
        params[metric_name(key)] = text if len(text) <= limit else text[: limit - 3] + "..."
    return params


def flatten_config(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, leaf) pairs of nested mappings; lists and empty mappings are leaves."""
    if isinstance(value, dict) and value:
        for key, child in value.items():
            yield from flatten_config(child, f"{prefix}.{key}" if prefix else str(key))
    elif prefix:
        yield prefix, value


def run_metrics(run: RunDirectory) -> list[tuple[str, float, int, int]]:
    """(name, value, step, timestamp in ms): per-epoch history, then final results at step 0."""
    timestamp = int((run.path / "run.json").stat().st_mtime * 1000)
    metrics = []
    for row in run.metrics_history():
        stage = str(row.get("stage", "run"))
        step = int(row["epoch"]) if isinstance(row.get("epoch"), int) else 0
        for field, value in row.items():
            if field in ("stage", "epoch") or not is_number(value):
                continue
            metrics.append((metric_name(f"{stage}/{field}"), float(value), step, timestamp))
    if (run.path / "results.json").is_file():
        for name, value in flatten_results(run.read_json("results.json")):
            metrics.append((metric_name(name), float(value), 0, timestamp))
    return metrics


def flatten_results(value: Any, prefix: str = "", suffix: str = "") -> Iterator[tuple[str, float]]:
    """Numeric leaves of results.json: `cohorts` folded away, `@k` sections moved onto the leaf name.

    {"test": {"all": {"ndcg@10": x}, "cohorts": {"cold": {"ndcg@10": y}}}, "beyond_accuracy": {"@10": {"coverage": z}}}
    → test/all/ndcg@10 = x, test/cold/ndcg@10 = y, beyond_accuracy/coverage@10 = z.
    """
    if isinstance(value, dict):
        for key, child in value.items():
            key = str(key)
            if key == "cohorts":
                yield from flatten_results(child, prefix, suffix)
            elif key.startswith("@"):
                yield from flatten_results(child, prefix, suffix + key)
            else:
                yield from flatten_results(child, f"{prefix}/{key}" if prefix else key, suffix)
    elif is_number(value) and prefix:
        yield prefix + suffix, float(value)


def metric_name(name: str) -> str:
    """A name MLflow accepts: `ndcg@10` → `ndcg_at_10`, `51+` → `51plus`, other odd characters → `_`."""
    name = name.replace("@", "_at_").replace("+", "plus")
    return INVALID_NAME_CHARACTERS.sub("_", name)[:MAX_KEY_LENGTH]


def run_artifacts(run: RunDirectory) -> list[Path]:
    """The files worth keeping next to the numbers: config, results, report, plots, per-user metrics."""
    named = [run.path / name for name in ARTIFACT_NAMES if (run.path / name).is_file()]
    return named + sorted(run.path.glob("*.png"))


def mlflow_status(status: str | None) -> str:
    """MLflow's run status for an xdt run status (an unfinished run counts as killed)."""
    return {STATUS_COMPLETE: "FINISHED", STATUS_FAILED: "FAILED"}.get(status or "", "KILLED")


def max_param_length() -> int:
    """The longest param value this MLflow accepts (6000 in recent versions)."""
    try:
        from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH
    except ImportError:
        return DEFAULT_MAX_PARAM_LENGTH
    return int(MAX_PARAM_VAL_LENGTH)


def optional_json(run: RunDirectory, name: str) -> dict[str, Any]:
    """One JSON file of the run, or {} when the run has none."""
    if not (run.path / name).is_file():
        return {}
    payload = run.read_json(name)
    return payload if isinstance(payload, dict) else {}


def json_text(value: Any) -> str:
    """A config value as text: `3`, `0.02`, `true`, `null`, `["popularity", "emcdr"]`."""
    return json.dumps(value, default=str)


def is_number(value: Any) -> bool:
    """An int or float that is not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def track_run(run: RunDirectory, tracking: TrackingConfig) -> str | None:
    """Log a finished run to MLflow when `tracking.mlflow` is on; returns the MLflow run id."""
    if not tracking.mlflow:
        return None
    return log_run_to_mlflow(run, tracking_uri=tracking.uri)
