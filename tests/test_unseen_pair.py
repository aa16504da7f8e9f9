"""A CDRIB-layout pair the project has never seen, run with the shipped CDRIB config changing only names and paths.

The issue's bar: learned methods land above popularity on validation, or the collapse check says
why not. The pair is generated here (shared users with one taste in both domains); no ../shared.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from xdt.config import load_config
from xdt.experiment import run_experiment

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
LEARNED = ("target_mf", "finetune", "emcdr")


def write_rows(path: Path, rows: list[tuple[int, int]]) -> None:
    path.write_text("".join(f"{user}\t{item}\n" for user, item in rows))


def cdrib_pair(root: Path, *, shared: int = 160, only: int = 120, items: int = 60, seed: int = 0) -> tuple[Path, Path]:
    """Folders book_movie (source) and movie_book (target) in CDRIB's layout.

    Users 0..shared-1 are in both domains with one latent taste; the last fifth of them are the
    target's cold-start users: their target rows are split between valid.txt and test.txt, none in
    train.txt. Domain-only users follow the shared ids, as in CDRIB.
    """
    rng = np.random.default_rng(seed)
    taste = rng.normal(size=(shared + only, 4))
    cold = set(range(shared - shared // 5, shared))
    folders = []
    for name, other in (("book", "movie"), ("movie", "book")):
        folder = root / f"{name}_{other}"
        folder.mkdir(parents=True)
        vectors = rng.normal(size=(items, 4))
        splits: dict[str, list[tuple[int, int]]] = {"train": [], "valid": [], "test": []}
        for user in range(shared + only):
            scores = taste[user] @ vectors.T + rng.gumbel(size=items) * 0.5
            liked = np.argsort(-scores)[:8]
            if name == "movie" and user in cold:
                splits["valid" if user % 2 else "test"] += [(user, int(item)) for item in liked]
            else:
                splits["train"] += [(user, int(item)) for item in liked]
        for split, rows in splits.items():
            write_rows(folder / f"{split}.txt", rows)
        write_rows(folder / "common_new_reindex.txt", [(user, 0) for user in range(shared)])
        folders.append(folder)
    return folders[0], folders[1]


@pytest.mark.slow
def test_the_shipped_cdrib_config_on_an_unseen_pair_beats_popularity_or_says_why(tmp_path: Path) -> None:
    source, target = cdrib_pair(tmp_path / "raw")
    raw = yaml.safe_load((CONFIGS / "cdrib-game-video.yaml").read_text())
    raw["experiment"] = "book-to-movie"
    raw["dataset"]["name"] = "cdrib-book-movie"
    raw["dataset"]["source"].update(name="book", path=str(source))
    raw["dataset"]["target"].update(name="movie", path=str(target))
    raw["runtime"] = {"data_dir": str(tmp_path / "data"), "runs_dir": str(tmp_path / "runs")}
    path = tmp_path / "book-movie.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    loaded = load_config(path, [f"transfer.methods=[popularity, {', '.join(LEARNED)}]"])
    (outcome,) = run_experiment(loaded.config, config_text=loaded.text)
    popularity = outcome.results["popularity"]["valid"]["all"]["ndcg@10"]
    for method in LEARNED:
        valid = outcome.results[method]["valid"]["all"]["ndcg@10"]
        warnings = outcome.transfer_runs[method].info()["warnings"]
        assert valid > popularity or warnings, f"{method}: validation NDCG@10 {valid:.4f} vs popularity {popularity:.4f} and no warning"
    # The transfer methods reach the cold-start validation users through their source rows.
    assert outcome.results["finetune"]["valid"]["all"]["ndcg@10"] > popularity
