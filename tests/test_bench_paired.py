"""bench/sequential_quality.py's paired comparison: (seed, user) pairs pooled over seeds, on generated rows."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest


def load_bench():
    path = Path(__file__).resolve().parents[1] / "bench" / "sequential_quality.py"
    spec = importlib.util.spec_from_file_location("sequential_quality", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def row(setting: str, method: str, values: list[float]) -> dict:
    return {"setting": setting, "method": method, "test_per_user_ndcg@10": values}


def test_paired_comparison_pools_seeds_and_matches_each_model_with_its_baseline() -> None:
    bench = load_bench()
    runs = [
        {"seed": 0, "rows": [
            row("a: overlap", "seq_transformer (Kitchen only)", [0.0, 1.0, 0.5]),
            row("a: overlap", "seq_finetune (mixed pretrain → mixed Kitchen fine-tune)", [1.0, 1.0, 0.0]),
            row("b: no overlap", "seq_transformer (train_B only)", [0.2, 0.2, 0.2]),
        ]},
        {"seed": 1, "rows": [
            row("a: overlap", "seq_transformer (Kitchen only)", [0.0, 0.0, 0.0]),
            row("a: overlap", "seq_finetune (mixed pretrain → mixed Kitchen fine-tune)", [0.5, 0.0, 0.0]),
        ]},
    ]
    (comparison,) = bench.paired_comparisons(runs)
    assert comparison["method"] == "seq_finetune (mixed pretrain → mixed Kitchen fine-tune)"
    assert comparison["baseline"] == "seq_transformer (Kitchen only)"
    assert comparison["seeds"] == [0, 1]
    assert comparison["users"] == 6
    # Differences 1, 0, -0.5, 0.5, 0, 0: mean 1/6; model mean 2.5/6, baseline mean 1.5/6.
    assert comparison["mean_difference"] == pytest.approx(1 / 6)
    assert comparison["mean_a"] == pytest.approx(2.5 / 6)
    assert comparison["mean_b"] == pytest.approx(1.5 / 6)
    assert comparison["ci_low"] <= 1 / 6 <= comparison["ci_high"]
    # Part b has a baseline but no text bridge: nothing to compare there.
    assert not [entry for entry in bench.paired_comparisons(runs) if entry["setting"] == "b: no overlap"]


def test_each_fine_tune_variant_is_compared_with_the_kitchen_only_model_and_the_food_free_control() -> None:
    bench = load_bench()
    runs = [{"seed": 0, "rows": [
        row("a: overlap", "seq_transformer (Kitchen only)", [0.0, 0.5]),
        row("a: overlap", "seq_finetune, Kitchen history (mixed pretrain → Kitchen fine-tune)", [1.0, 0.5]),
        row("a: overlap", "seq_finetune (mixed pretrain → mixed Kitchen fine-tune)", [0.0, 0.0]),
        row("a: overlap", "seq_finetune, Kitchen history (Kitchen pretrain, no Food → Kitchen fine-tune)", [0.5, 0.25]),
        row("a: overlap", "seq_finetune, Kitchen history (mixed pretrain → Kitchen fine-tune, lr 0.0005)", [0.75, 1.0]),
    ]}]
    differences = {(entry["method"], entry["baseline"]): entry["mean_difference"] for entry in bench.paired_comparisons(runs)}
    kitchen_only, mixed, with_food, control = (
        "seq_transformer (Kitchen only)",
        "seq_finetune (mixed pretrain → mixed Kitchen fine-tune)",
        "seq_finetune, Kitchen history (mixed pretrain → Kitchen fine-tune)",
        "seq_finetune, Kitchen history (Kitchen pretrain, no Food → Kitchen fine-tune)",
    )
    with_food_lower_rate = "seq_finetune, Kitchen history (mixed pretrain → Kitchen fine-tune, lr 0.0005)"
    assert differences == {
        (mixed, kitchen_only): pytest.approx(-0.25),
        (with_food, kitchen_only): pytest.approx(0.5),
        (control, kitchen_only): pytest.approx(0.125),
        (with_food, control): pytest.approx(0.375),
        (with_food_lower_rate, kitchen_only): pytest.approx(0.625),
        (with_food_lower_rate, control): pytest.approx(0.5),
    }


def test_a_fine_tuning_rate_of_its_own_is_named_in_the_method() -> None:
    bench = load_bench()

    def note(finetune: float) -> str:
        return bench.SequentialBench.finetune_note(SimpleNamespace(arguments=SimpleNamespace(learning_rate=2e-3, finetune_learning_rate=finetune)))

    assert note(0.0) == "" and note(2e-3) == ""
    assert note(5e-4) == ", lr 0.0005"


def test_merge_runs_combines_rows_by_seed_and_refuses_disagreeing_duplicates() -> None:
    bench = load_bench()
    baseline = {**row("b: no overlap", "seq_transformer (train_B only)", [0.5]), "input": "kitchen", "test": {"ndcg@10": 0.5}}
    control = {**row("b: no overlap", "control", [0.25]), "input": "kitchen", "test": {"ndcg@10": 0.25}}
    first = [{"seed": 1, "rows": [baseline], "cold_items": None}, {"seed": 0, "rows": [baseline], "cold_items": None}]
    second = [{"seed": 0, "rows": [baseline, control], "cold_items": {"examples": 3}}]
    merged = bench.merge_runs([first, second])
    assert [run["seed"] for run in merged] == [0, 1]
    assert [entry["method"] for entry in merged[0]["rows"]] == ["seq_transformer (train_B only)", "control"]
    assert merged[0]["cold_items"] == {"examples": 3} and merged[1]["cold_items"] is None
    changed = {**baseline, "test": {"ndcg@10": 0.4}}
    with pytest.raises(ValueError, match=r"Expected identical results for seed 0 .*0\.5.*0\.4"):
        bench.merge_runs([first, [{"seed": 0, "rows": [changed]}]])


def test_cold_item_tables_end_with_the_mean_over_seeds() -> None:
    bench = load_bench()

    def cold(recall: float) -> dict:
        return {
            "held_out_items": 10, "examples": 4,
            "random": {"recall@10 among held-out": 1.0, "recall@10 among all": 0.1},
            "models": {"text_bridge": {"recall@10 among held-out": recall, "ndcg@10 among held-out": recall / 2,
                                       "recall@10 among all": 0.0, "mrr among all": 0.0}},
        }

    settings = {"seeds": "0,1", "width": 8, "layers": 1, "heads": 2, "max_length": 6, "batch_size": 4, "loss": "full",
                "learning_rate": 0.01, "epochs": 1, "pretrain_epochs": 1, "freeze_epochs": 0, "text_temperature": 0.0}
    report = {"settings": settings, "text_encoder": "hashed", "text_encode_seconds": 0.0, "machine": "test", "wall_seconds": 1.0,
              "summary": [], "paired": [], "runs": [{"seed": 0, "rows": [], "cold_items": cold(0.2)}, {"seed": 1, "rows": [], "cold_items": cold(0.4)}]}
    markdown = bench.render_markdown(report)
    assert "## c: cold items, mean ± std over seeds 0, 1" in markdown
    assert "| text_bridge | 0.3000 ± 0.1000 | 0.1500 ± 0.0500 |" in markdown
