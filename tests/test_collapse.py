"""The collapse check: hand-made validation metrics and loss curves, and one untrained model end to end."""

from pathlib import Path

import numpy as np

from tests.conftest import TINY_CONFIG, write_config
from xdt.collapse import Knobs, PairedValidation, collapse_warnings, memorised_training_rows, within_noise_of_popularity
from xdt.config import load_config
from xdt.experiment import run_experiment


def test_paired_difference_is_the_mean_gap_and_its_standard_error() -> None:
    paired = PairedValidation("ndcg@10", np.array([0.5, 0.3, 0.4]), np.array([0.1, 0.2, 0.1]))
    mean, error = paired.difference()
    # gaps 0.4, 0.1, 0.3: mean 0.8/3, sample std 0.1528, s.e. 0.1528/sqrt(3) = 0.0882
    assert np.isclose(mean, 0.8 / 3) and np.isclose(error, np.std([0.4, 0.1, 0.3], ddof=1) / np.sqrt(3))


def test_a_model_that_beats_popularity_by_more_than_two_standard_errors_is_healthy() -> None:
    assert within_noise_of_popularity("target_mf", PairedValidation("ndcg@10", np.array([0.5, 0.3, 0.4]), np.array([0.1, 0.2, 0.1]))) is None


def test_a_model_within_noise_of_popularity_gets_a_warning_naming_the_knobs() -> None:
    model = np.array([0.30, 0.10, 0.20, 0.25])
    popularity = np.array([0.10, 0.30, 0.20, 0.20])  # gaps +0.2, -0.2, 0, +0.05: mean 0.0125, far inside 2 s.e.
    warning = within_noise_of_popularity("emcdr", PairedValidation("ndcg@10", model, popularity))
    assert warning.startswith("emcdr may have collapsed: validation ndcg@10 0.2125 is within noise of popularity's 0.2000 on the same 4 users")
    assert "transfer.l2 (now 0; the shipped CDRIB configs use 0.01)" in warning and "transfer.epochs (now 20)" in warning
    tuned = within_noise_of_popularity("emcdr", PairedValidation("ndcg@10", model, popularity), Knobs(l2=0.01, epochs=15))
    assert "a larger transfer.l2 (now 0.01)" in tuned and "transfer.epochs (now 15)" in tuned


def epochs(losses: list[float], scores: list[float] | None = None) -> list[dict]:
    records = [{"stage": "target", "epoch": index + 1, "loss": loss} for index, loss in enumerate(losses)]
    for record, score in zip(records, scores or []):
        record["valid_score"] = score
    return records


def test_a_loss_under_the_floor_while_validation_falls_is_memorisation() -> None:
    warning = memorised_training_rows("target_mf", epochs([0.4, 0.1, 0.02], [0.03, 0.05, 0.04]), "bpr")
    assert warning.startswith("target_mf may have collapsed: the target training loss fell to 0.0200 (bpr floor 0.05) while validation fell from 0.05000 to 0.04000")


def test_a_loss_under_the_floor_with_validation_still_rising_is_fine() -> None:
    assert memorised_training_rows("target_mf", epochs([0.4, 0.1, 0.02], [0.03, 0.04, 0.05]), "bpr") is None


def test_a_loss_above_the_floor_is_fine_and_the_floor_depends_on_the_loss() -> None:
    assert memorised_training_rows("target_mf", epochs([0.4, 0.08]), "bpr") is None
    assert "bce floor 0.1" in memorised_training_rows("target_mf", epochs([0.4, 0.08]), "bce")


def test_without_validation_a_loss_under_the_floor_suggests_a_validation_split() -> None:
    warning = memorised_training_rows("finetune", epochs([0.3, 0.01]), "bpr")
    assert "with no validation split to stop on" in warning and "dataset.given_valid: leave_one_out" in warning


def test_collapse_warnings_collects_both_checks() -> None:
    paired = PairedValidation("ndcg@10", np.array([0.1, 0.1]), np.array([0.2, 0.2]))
    assert len(collapse_warnings("dann", history=epochs([0.3, 0.01]), loss="bpr", paired=paired)) == 2
    assert collapse_warnings("dann", history=[], loss="bpr", paired=None) == []


def test_an_untrained_model_is_reported_as_collapsed_in_run_json(tmp_path: Path) -> None:
    loaded = load_config(
        write_config(tmp_path, TINY_CONFIG),
        ["transfer.methods=[popularity, target_mf]", "transfer.optimizer.learning_rate=0.0", "transfer.epochs=1"],
    )
    (outcome,) = run_experiment(loaded.config, config_text=loaded.text)
    (warning,) = outcome.transfer_runs["target_mf"].info()["warnings"]
    assert warning.startswith("target_mf may have collapsed: validation ndcg@10")
    assert outcome.transfer_runs["popularity"].info()["warnings"] == []
