"""Errors that mean "the user asked for something that cannot be done as asked": the CLI prints them as one
line naming the problem and the fix, without a traceback."""


class ConfigError(ValueError):
    """An invalid generation parameter (count, size, view, split fractions, backend name, ...)."""


class OutputError(RuntimeError):
    """The output folder cannot be used as asked (not empty, unwritable, or from different parameters)."""
