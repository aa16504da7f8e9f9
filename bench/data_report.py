"""Read every shared benchmark dataset with xdt's readers and check the figures its README states.

    .venv/bin/python bench/data_report.py [--shared ../shared/data] [--json out.json]

Prints users / items / rows per domain and split, then each figure stated in
../shared/data/README.md next to what the readers measured (OK / MISMATCH). Exits 1 on any
mismatch, 0 otherwise, and 0 with "skipped: ..." when the data folder is absent.
"""

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from xdt.data.readers import ReadResult, read_domain

DEFAULT_SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# Reference figures, each quoted from ../shared/data/README.md (the section named in the key).
EXPECTED: dict[tuple[str, str, str], int] = {
    # douban/: "Book: 96,041 ratings, 2,110 users, 6,777 items. Music: 69,709 ratings, 1,672 users,
    # 5,567 items. 1,566 users rated in both."
    ("douban", "book", "rows"): 96_041,
    ("douban", "book", "users"): 2_110,
    ("douban", "book", "items"): 6_777,
    ("douban", "music", "rows"): 69_709,
    ("douban", "music", "users"): 1_672,
    ("douban", "music", "items"): 5_567,
    ("douban", "book+music", "overlapping users"): 1_566,
    # cdrib/: "Game: 24,799 train users, 12,319 items, 155,036 train rows; test 212 users (1,304
    # rows). Video: 19,240 train users, 8,751 items, 156,091 train rows; test 216 users (1,458
    # rows)." and "C = 2,179 overlapping users".
    ("cdrib", "game", "train users"): 24_799,
    ("cdrib", "game", "items"): 12_319,
    ("cdrib", "game", "train rows"): 155_036,
    ("cdrib", "game", "test users"): 212,
    ("cdrib", "game", "test rows"): 1_304,
    ("cdrib", "video", "train users"): 19_240,
    ("cdrib", "video", "items"): 8_751,
    ("cdrib", "video", "train rows"): 156_091,
    ("cdrib", "video", "test users"): 216,
    ("cdrib", "video", "test rows"): 1_458,
    ("cdrib", "game+video", "overlapping users"): 2_179,
    # disencdr/: "4,998 users, every one in both domains, same ids. Phone 13,655 items / 42,446
    # train rows; Sport 20,845 items / 50,558 train rows." and "test_original.txt: exactly one
    # held-out item per user".
    ("disencdr", "phone", "users"): 4_998,
    ("disencdr", "phone", "train items"): 13_655,
    ("disencdr", "phone", "train rows"): 42_446,
    ("disencdr", "phone", "test_original rows"): 4_998,
    ("disencdr", "phone", "test_original users"): 4_998,
    ("disencdr", "sport", "users"): 4_998,
    ("disencdr", "sport", "train items"): 20_845,
    ("disencdr", "sport", "train rows"): 50_558,
    ("disencdr", "sport", "test_original rows"): 4_998,
    ("disencdr", "sport", "test_original users"): 4_998,
    ("disencdr", "phone+sport", "overlapping users"): 4_998,
    # llmcdsr/: "nA = 8,661 (Food, domain A) and nB = 27,637 (Kitchen, domain B)"; "train_A: 5,472
    # Food-only users; train_B: 38,191 Kitchen-only users; train_overlap: 7,501 users with mixed
    # sequences; valid 960 / test 937 overlapping users whose last item is the target."
    ("llmcdsr", "food", "items (titles)"): 8_661,
    ("llmcdsr", "kitchen", "items (titles)"): 27_637,
    ("llmcdsr", "food", "domain-only users (train_A)"): 5_472,
    ("llmcdsr", "kitchen", "domain-only users (train_B)"): 38_191,
    ("llmcdsr", "food+kitchen", "train_overlap users"): 7_501,
    ("llmcdsr", "food+kitchen", "valid users"): 960,
    ("llmcdsr", "food+kitchen", "test users"): 937,
}


@dataclass(frozen=True)
class DomainSpec:
    """One shared folder (or file) to read as one domain."""

    dataset: str
    domain: str
    reader: str
    relative_path: str
    options: dict


DOMAINS = (
    DomainSpec("douban", "book", "douban", "douban/book", {}),
    DomainSpec("douban", "music", "douban", "douban/music", {}),
    DomainSpec("cdrib", "game", "cdrib", "cdrib/game_video", {}),
    DomainSpec("cdrib", "video", "cdrib", "cdrib/video_game", {}),
    DomainSpec("disencdr", "phone", "disencdr", "disencdr/phone_sport", {}),
    DomainSpec("disencdr", "sport", "disencdr", "disencdr/sport_phone", {}),
    DomainSpec("llmcdsr", "food", "llmcdsr", "llmcdsr/food-kitchen", {"side": "A"}),
    DomainSpec("llmcdsr", "kitchen", "llmcdsr", "llmcdsr/food-kitchen", {"side": "B"}),
)


def split_statistics(result: ReadResult) -> list[dict]:
    """Users, items and rows for the whole domain and for each split it carries."""
    frame = result.interactions
    groups = [("all", frame)] + [(split or "(none)", part) for split, part in frame.groupby("split", sort=False)]
    if len(groups) == 2:  # a single split: the "all" row says it already
        groups = groups[:1]
    return [
        {"split": name, "users": part["user"].nunique(), "items": part["item"].nunique(), "rows": len(part)}
        for name, part in groups
    ]


def bare_users(frame: pd.DataFrame) -> set[str]:
    """Users without a "<prefix>:" (the ones shared across the two domains of a pair)."""
    users = frame["user"].dropna().unique()
    return {user for user in users if ":" not in user}


def measure(results: dict[tuple[str, str], ReadResult], shared: Path) -> dict[tuple[str, str, str], int]:
    """Every figure that EXPECTED names, measured from the read results."""
    measured: dict[tuple[str, str, str], int] = {}

    def frame_of(dataset: str, domain: str) -> pd.DataFrame:
        return results[dataset, domain].interactions

    for domain in ("book", "music"):
        frame = frame_of("douban", domain)
        measured["douban", domain, "rows"] = len(frame)
        measured["douban", domain, "users"] = frame["user"].nunique()
        measured["douban", domain, "items"] = frame["item"].nunique()
    book_users = set(frame_of("douban", "book")["user"])
    measured["douban", "book+music", "overlapping users"] = len(book_users & set(frame_of("douban", "music")["user"]))

    for domain in ("game", "video"):
        frame = frame_of("cdrib", domain)
        train, test = frame[frame["split"] == "train"], frame[frame["split"] == "test"]
        measured["cdrib", domain, "train users"] = train["user"].nunique()
        measured["cdrib", domain, "items"] = frame["item"].nunique()
        measured["cdrib", domain, "train rows"] = len(train)
        measured["cdrib", domain, "test users"] = test["user"].nunique()
        measured["cdrib", domain, "test rows"] = len(test)
    game_users = bare_users(frame_of("cdrib", "game"))
    measured["cdrib", "game+video", "overlapping users"] = len(game_users & bare_users(frame_of("cdrib", "video")))

    for domain, folder in (("phone", "phone_sport"), ("sport", "sport_phone")):
        frame = frame_of("disencdr", domain)
        train = frame[frame["split"] == "train"]
        measured["disencdr", domain, "users"] = frame["user"].nunique()
        measured["disencdr", domain, "train items"] = train["item"].nunique()
        measured["disencdr", domain, "train rows"] = len(train)
        original = read_domain(
            "disencdr", shared / "disencdr" / folder, domain=domain, options={"test_file": "test_original.txt"}
        ).interactions
        original_test = original[original["split"] == "test"]
        measured["disencdr", domain, "test_original rows"] = len(original_test)
        measured["disencdr", domain, "test_original users"] = original_test["user"].nunique()
    phone_users = set(frame_of("disencdr", "phone")["user"])
    sport_users = set(frame_of("disencdr", "sport")["user"])
    measured["disencdr", "phone+sport", "overlapping users"] = len(phone_users & sport_users)

    food, kitchen = frame_of("llmcdsr", "food"), frame_of("llmcdsr", "kitchen")
    both = pd.concat([food, kitchen], ignore_index=True)
    measured["llmcdsr", "food", "items (titles)"] = len(results["llmcdsr", "food"].items)
    measured["llmcdsr", "kitchen", "items (titles)"] = len(results["llmcdsr", "kitchen"].items)
    for domain, frame in (("food", food), ("kitchen", kitchen)):
        domain_only = frame["user"][frame["user"].str.startswith(f"{domain}:")]
        file = "train_A" if domain == "food" else "train_B"
        measured["llmcdsr", domain, f"domain-only users ({file})"] = domain_only.nunique()
    measured["llmcdsr", "food+kitchen", "train_overlap users"] = len(bare_users(both))
    measured["llmcdsr", "food+kitchen", "valid users"] = both.loc[both["split"] == "valid", "user"].nunique()
    measured["llmcdsr", "food+kitchen", "test users"] = both.loc[both["split"] == "test", "user"].nunique()
    return {key: int(value) for key, value in measured.items()}


def main(argv: list[str] | None = None) -> int:
    """Print the report, write JSON if asked, and return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED, help="the shared data folder")
    parser.add_argument("--json", type=Path, default=None, help="write the figures and checks here")
    arguments = parser.parse_args(argv)
    console = Console()
    if not arguments.shared.is_dir():
        console.print(f"skipped: {arguments.shared} not found")
        return 0

    results = {
        (spec.dataset, spec.domain): read_domain(
            spec.reader, arguments.shared / spec.relative_path, domain=spec.domain, options=spec.options
        )
        for spec in DOMAINS
    }
    statistics_table = Table(title="Shared datasets as read by xdt")
    for column in ("dataset", "domain", "split", "users", "items", "rows"):
        statistics_table.add_column(column, justify="right" if column in ("users", "items", "rows") else "left")
    statistics = []
    for (dataset, domain), result in results.items():
        for row in split_statistics(result):
            statistics.append({"dataset": dataset, "domain": domain, **row})
            counts = (f"{row[name]:,}" for name in ("users", "items", "rows"))
            statistics_table.add_row(dataset, domain, row["split"], *counts)
    console.print(statistics_table)

    measured = measure(results, arguments.shared)
    checks_table = Table(title="Figures stated in ../shared/data/README.md")
    for column in ("dataset", "domain", "figure", "measured", "expected", "status"):
        checks_table.add_column(column, justify="right" if column in ("measured", "expected") else "left")
    checks = []
    for (dataset, domain, figure), expected in EXPECTED.items():
        value = measured[dataset, domain, figure]
        status = "OK" if value == expected else "MISMATCH"
        checks.append(
            {
                "dataset": dataset,
                "domain": domain,
                "figure": figure,
                "measured": value,
                "expected": expected,
                "status": status,
            }
        )
        style = "green" if status == "OK" else "bold red"
        checks_table.add_row(dataset, domain, figure, f"{value:,}", f"{expected:,}", f"[{style}]{status}[/{style}]")
    console.print(checks_table)

    mismatches = sum(check["status"] == "MISMATCH" for check in checks)
    console.print(f"{len(checks) - mismatches} OK, {mismatches} MISMATCH")
    if arguments.json is not None:
        report = {"shared": str(arguments.shared), "statistics": statistics, "checks": checks, "mismatches": mismatches}
        arguments.json.write_text(json.dumps(report, indent=2) + "\n")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
