"""Readable tables: what their titles say about the masking, and which columns they show."""

import pandas as pd
from rich.console import Console

from xdt.tables import exclusion_note, recommendations_table, results_table


def render(table) -> str:  # noqa: ANN001
    console = Console(width=200, record=True)
    console.print(table)
    return console.export_text()


def results(test_excludes: list[str]) -> dict:
    values = {"users": 3, "ndcg@10": 0.5, "recall@10": 0.4, "hr@10": 0.6, "precision@10": 0.1, "mrr": 0.3}
    return {"method": "popularity", "ks": [10], "test_excludes": test_excludes, "test": {"all": values, "cohorts": {}}}


def test_exclusion_note_names_the_masked_splits_of_the_run() -> None:
    assert exclusion_note(results(["train"])) == "each user's train items excluded"
    assert exclusion_note(results(["train", "valid"])) == "each user's train and valid items excluded"
    assert exclusion_note(results(["train", "valid"]), split="valid") == "each user's train items excluded"


def test_results_table_title_follows_test_excludes() -> None:
    text = render(results_table({"popularity": results(["train"])}, ks=[10]))
    assert "each user's train items excluded" in text and "seen items" not in text


def recommendations(titles: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {"user": ["u1", "u1"], "cohort": ["cold", "cold"], "rank": [1, 2], "item": ["i9", "i3"], "title": titles, "score": [0.9, 0.8]}
    )


def test_recommendations_table_drops_the_title_column_when_no_item_has_one() -> None:
    table = recommendations_table(recommendations(["", ""]))
    assert [column.header for column in table.columns] == ["user", "cohort", "rank", "item", "score"]
    assert "i9" in render(table)


def test_recommendations_table_keeps_titles_when_some_item_has_one() -> None:
    table = recommendations_table(recommendations(["Heat (1995)", ""]))
    assert [column.header for column in table.columns] == ["user", "cohort", "rank", "item", "title", "score"]
    assert "Heat (1995)" in render(table)
