"""Seeded byte-level mutations of small valid inputs: every reader either reads them with every line
accounted for, or stops with an XdtError (a message, exit code 2) — never another exception."""

from __future__ import annotations

import gzip
import random
import zlib
from pathlib import Path

import pytest

from tests.reader_samples import SAMPLES, Sample, text_of
from tests.test_reader_accounting import check_accounting, read_sample
from xdt.errors import XdtError

CASES_PER_SAMPLE = 14  # x 22 samples ≈ 300 cases
SPECIAL_BYTES = b'\n\r\t,:|"{}[]\\ \x00\xff\xe9'


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One to three random edits: flip, insert or delete bytes, or truncate."""
    data = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        kind = rng.choice(("flip", "insert", "delete", "truncate"))
        position = rng.randrange(len(data) + 1)
        byte = rng.choice(SPECIAL_BYTES) if rng.random() < 0.7 else rng.randrange(256)
        if kind == "flip" and position < len(data):
            data[position] = byte
        elif kind == "insert":
            data[position:position] = bytes([byte]) * rng.randint(1, 3)
        elif kind == "delete":
            del data[position : position + rng.randint(1, 4)]
        elif kind == "truncate":
            del data[position:]
    return bytes(data)


def mutate_file(path: Path, rng: random.Random) -> None:
    """Mutate a file's bytes; a gzip file has either its compressed bytes or its text mutated."""
    data = path.read_bytes()
    if path.suffix == ".gz" and rng.random() < 0.5:
        path.write_bytes(gzip.compress(mutate(gzip.decompress(data), rng)))
    else:
        path.write_bytes(mutate(data, rng))


def decodable(sample: Sample) -> bool:
    """Whether every file still decompresses and decodes (otherwise the reader must refuse it)."""
    for file in sample.files:
        if file.suffix == ".parquet":
            continue
        try:
            text_of(file, sample.encoding)
        except (UnicodeDecodeError, OSError, EOFError, zlib.error):
            return False
    return True


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_mutated_inputs_read_or_raise_xdt_errors(tmp_path: Path, name: str) -> None:
    rng = random.Random(f"xdt-fuzz-{name}")
    for case in range(CASES_PER_SAMPLE):
        sample = SAMPLES[name](tmp_path / f"case{case}")
        mutate_file(rng.choice(sample.files), rng)
        policy = "skip" if case % 4 else "error"
        try:
            result = read_sample(sample, policy)
        except XdtError:
            continue
        assert decodable(sample), f"case {case}: read a file that does not decode"
        check_accounting(sample, result)
