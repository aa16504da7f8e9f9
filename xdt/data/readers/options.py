"""Checking a reader's options: unknown names get a did-you-mean, wrong types name the value."""

import difflib
from collections.abc import Collection, Mapping
from typing import Any

from xdt.errors import DataError


def suggestion(name: str, choices: Collection[str]) -> str:
    """The text " Did you mean 'x'?" naming the closest choice, or "" when none is close."""
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def check_options(reader: str, options: Mapping[str, Any], allowed: Collection[str]) -> None:
    """Fail on any option the reader does not know, listing the ones it does."""
    for name in options:
        if name not in allowed:
            known = ", ".join(sorted(allowed)) or "none"
            raise DataError(
                f"Unknown option {name!r} for the {reader} reader.{suggestion(name, allowed)} "
                f"Options it accepts: {known}."
            )


def text_option(reader: str, options: Mapping[str, Any], name: str, default: str | None) -> str | None:
    """The option as a string, or default when absent."""
    value = options.get(name, default)
    if value is not None and not isinstance(value, str):
        raise DataError(f"Expected option {name} of the {reader} reader to be text. Received: {name}={value!r}")
    return value


def integer_option(reader: str, options: Mapping[str, Any], name: str, default: int) -> int:
    """The option as a non-negative integer, or default when absent."""
    value = options.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise DataError(
            f"Expected option {name} of the {reader} reader to be an integer >= 0. Received: {name}={value!r}"
        )
    return value


def flag_option(reader: str, options: Mapping[str, Any], name: str, default: bool) -> bool:
    """The option as a boolean, or default when absent."""
    value = options.get(name, default)
    if not isinstance(value, bool):
        raise DataError(
            f"Expected option {name} of the {reader} reader to be true or false. Received: {name}={value!r}"
        )
    return value


def require_domain(reader: str, domain: str | None) -> str:
    """The domain name, which readers with domain-private users need to prefix those users."""
    if not domain:
        raise DataError(
            f"The {reader} reader needs the domain name to tell domain-private users apart "
            f"(they are written as '<domain>:<id>'). Received: domain={domain!r}"
        )
    return domain
