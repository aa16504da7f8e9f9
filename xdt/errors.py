"""User-facing errors: the CLI prints their message verbatim and exits with code 2."""


class XdtError(Exception):
    """An error caused by the user's input, shown without a traceback."""


class DataError(XdtError):
    """Input data that cannot be read or does not have the expected shape."""


class ConfigError(XdtError):
    """A configuration file or override that does not match the schema."""


class DamagedRunError(XdtError):
    """A run file that exists but cannot be read or parsed (truncated, edited by hand, not UTF-8)."""


class RunVanishedError(XdtError):
    """A run directory deleted or moved while this process was still writing into it."""
