"""One error family: every exception class the project defines for bad input derives from `Pain3DError`, which the
`pain3d` command catches and prints as one line (modeling_vitpain travels alone as remote code and is the exception:
it imports nothing of the project)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def error_classes():
    for folder in ("generation", "dataset_builder", "pain3d", "scripts", "demo"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ClassDef) and node.name.endswith(("Error", "Missing")):
                    yield path.relative_to(ROOT), node


def test_every_project_error_derives_from_the_one_base():
    import importlib
    import sys

    from generation.errors import Pain3DError

    sys.path[:0] = [str(ROOT / "scripts"), str(ROOT / "demo")]
    found = []
    for path, node in error_classes():
        if node.name == "Pain3DError":
            continue
        module = ".".join(path.with_suffix("").parts)
        if path.parts[0] in ("scripts", "demo"):
            module = path.stem
        cls = getattr(importlib.import_module(module), node.name)
        found.append(node.name)
        assert issubclass(cls, Pain3DError), f"{path}: {node.name} does not derive from Pain3DError"
    assert {"ConfigError", "OutputError", "ManifestError", "FaceModelError", "ActionUnitError", "AuditError"} <= set(found)
