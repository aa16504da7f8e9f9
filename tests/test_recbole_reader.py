"""The RecBole atomic-file reader: fields by header name, items from the .item file, the genre rule, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reader_samples import recbole_sample, write_text
from xdt.data.readers import read_domain
from xdt.errors import DataError


def test_reads_interactions_items_and_counts_every_line(tmp_path: Path) -> None:
    sample = recbole_sample(tmp_path)
    result = read_domain("recbole", tmp_path, on_bad_rows="skip")
    frame = result.interactions
    assert frame[["user", "item"]].values.tolist() == [["u1", "Heat (1995)"], ["u1", "Up (2009)"], ["u2", "Heat (1995)"]]
    assert frame["rating"].tolist() == [5.0, 4.0, 2.0]
    assert frame["timestamp"].tolist() == [100, 101, 102]
    assert result.items.values.tolist() == [["Heat (1995)", "Heat", "Action|Crime"], ["Up (2009)", "Up", "Animation"]]
    inter, items = result.lines
    assert inter.file == str(sample.files[0])
    assert inter.counts == {"rows": 3, "blank_lines": 1, "bad_rows": 1, "header": 1, "other_domain_lines": 0}
    assert items.counts == {"rows": 2, "blank_lines": 0, "bad_rows": 0, "header": 1, "missing_items": 0, "duplicate_items": 1}
    ((bad),) = result.bad_rows
    assert (bad.line, bad.reason) == (5, "expected 4 '\\t'-separated fields (user_id, item_id, rating, timestamp), found 3")


def test_short_row_is_an_error_with_file_and_line(tmp_path: Path) -> None:
    sample = recbole_sample(tmp_path)
    with pytest.raises(DataError, match=rf"{sample.files[0]}:5: expected 4 "):
        read_domain("recbole", sample.files[0])


def test_bad_rating_names_file_and_line(tmp_path: Path) -> None:
    path = write_text(tmp_path / "x.inter", "user_id:token\titem_id:token\trating:float\na\tb\t5\na\tc\tfive\n")
    with pytest.raises(DataError, match=rf"{path}:3: rating 'five' is not a number"):
        read_domain("recbole", path)


def test_fields_are_found_by_name_in_any_order_and_rating_is_optional(tmp_path: Path) -> None:
    path = write_text(tmp_path / "x.inter", "timestamp:float\titem_id:token\tuser_id:token\n7\tb\ta\n")
    frame = read_domain("recbole", path).interactions
    assert frame[["user", "item"]].values.tolist() == [["a", "b"]]
    assert frame["timestamp"].tolist() == [7] and frame["rating"].isna().all()


def test_header_without_types_is_refused(tmp_path: Path) -> None:
    path = write_text(tmp_path / "x.inter", "user_id\titem_id\na\tb\n")
    with pytest.raises(DataError, match=rf"{path}:1: header field 'user_id' is not name:type"):
        read_domain("recbole", path)


def test_missing_user_field_names_the_fields_found(tmp_path: Path) -> None:
    path = write_text(tmp_path / "x.inter", "uid:token\titem_id:token\na\tb\n")
    with pytest.raises(DataError, match=r"no field 'user_id'. Fields found: uid, item_id"):
        read_domain("recbole", path)
    assert read_domain("recbole", path, options={"user_field": "uid"}).interactions["user"].tolist() == ["a"]


def test_folder_with_two_inter_files_is_ambiguous(tmp_path: Path) -> None:
    write_text(tmp_path / "a.inter", "user_id:token\titem_id:token\na\tb\n")
    write_text(tmp_path / "b.inter", "user_id:token\titem_id:token\na\tb\n")
    with pytest.raises(DataError, match="exactly one <name>.inter file.*found: a.inter, b.inter"):
        read_domain("recbole", tmp_path)


def test_categories_rule_splits_domains_and_counts_the_rest(tmp_path: Path) -> None:
    recbole_sample(tmp_path)
    action = read_domain("recbole", tmp_path, options={"categories_any": ["Action"]}, on_bad_rows="skip")
    assert action.interactions["item"].tolist() == ["Heat (1995)", "Heat (1995)"]
    assert action.lines[0].counts["other_domain_lines"] == 1 and action.lines[0].counts["rows"] == 2
    rest = read_domain("recbole", tmp_path, options={"categories_none": ["Action"]}, on_bad_rows="skip")
    assert rest.interactions["item"].tolist() == ["Up (2009)"]
    assert rest.lines[0].counts["other_domain_lines"] == 2


def test_categories_rule_needs_an_item_file(tmp_path: Path) -> None:
    path = write_text(tmp_path / "x.inter", "user_id:token\titem_id:token\na\tb\n")
    with pytest.raises(DataError, match="need a .item file with a categories field"):
        read_domain("recbole", path, options={"categories_any": ["Action"]})
