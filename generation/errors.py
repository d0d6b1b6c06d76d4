"""The project's one error family. `Pain3DError` means "the user asked for something that cannot be done as asked":
every error the project raises for bad input derives from it, and the `pain3d` command prints it as one line naming
the problem and the fix, without a traceback. A contract leaf: it imports nothing.

(`modeling_vitpain` travels alone as remote code and imports nothing of the project, so its few errors derive from
`ValueError` only.)"""


class Pain3DError(Exception):
    """Base of every project error: one line that names the problem and the fix."""


class ConfigError(Pain3DError, ValueError):
    """An invalid generation parameter (count, size, view, split fractions, backend name, ...)."""


class OutputError(Pain3DError, RuntimeError):
    """The output folder cannot be used as asked (not empty, unwritable, or from different parameters)."""
