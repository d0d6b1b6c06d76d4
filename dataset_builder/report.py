"""The problem log shared by the loaders' reports: every affected file or frame is listed under a known kind, never
dropped silently."""

from __future__ import annotations

from typing import ClassVar


class ProblemLog:
    """Methods for a report dataclass with a `problems: dict[str, list[str]]` field. `KINDS` maps each problem kind
    to its description; kinds in `NOT_COUNTED` are listed but do not count as problems (e.g. `.DS_Store` files)."""

    KINDS: ClassVar[dict[str, str]] = {}
    NOT_COUNTED: ClassVar[tuple[str, ...]] = ()
    problems: dict[str, list[str]]

    def add(self, kind: str, item: str) -> None:
        if kind not in self.KINDS:
            raise KeyError(f"unknown problem kind {kind!r}; known: {', '.join(self.KINDS)}")
        self.problems.setdefault(kind, []).append(item)

    def count(self, kind: str) -> int:
        return len(self.problems.get(kind, ()))

    @property
    def num_problems(self) -> int:
        return sum(len(items) for kind, items in self.problems.items() if kind not in self.NOT_COUNTED)

    def problem_lines(self, examples: int = 3) -> list[str]:
        """One indented line per kind that occurred: its count, description and the first `examples` items."""
        lines = []
        for kind, description in self.KINDS.items():
            items = self.problems.get(kind)
            if items:
                shown = "; ".join(items[:examples]) + ("; ..." if len(items) > examples else "")
                lines.append(f"  {len(items)} {description}: {shown}")
        return lines
