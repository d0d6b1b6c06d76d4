"""One-way layers: no import cycles among the project's modules; the data side and the model side never load the
renderer; the model side's and the metric module's copies of the AU facts agree with `generation.facs`."""

import ast
import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("generation", "dataset_builder", "modeling_vitpain", "metrics")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}


def resolve(importer: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph() -> dict[str, set[str]]:
    """Module -> project modules it imports (anywhere in the file: top level or inside functions), except imports
    under `if TYPE_CHECKING:`, which never run."""
    modules = project_modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        skipped = {
            id(child) for node in ast.walk(tree)
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for child in ast.walk(node)
        }
        targets = set()
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            if isinstance(node, ast.Import):
                candidates = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = resolve(name, path.name == "__init__.py", node)
                candidates = [f"{base}.{alias.name}" for alias in node.names] + [base]
            else:
                continue
            for candidate in candidates:  # `from pkg import module` imports pkg.module, `from m import f` imports m
                if candidate in modules:
                    targets.add(candidate)
                    break
        graph[name] = targets - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return stack[stack.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_graph_sees_relative_and_function_level_imports():
    graph = import_graph()
    assert "generation.face.model" in graph["generation.render"]
    assert "generation.texture.diffusion" in graph["generation.texture"]  # the registry imports its backends
    assert "generation.writer" in graph["generation.cli"]  # imported inside cmd_generate


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_data_and_model_sides_import_only_their_layers():
    leaves = {"generation", "generation.facs", "generation.demographics", "generation.views", "generation.rng",
              "generation.manifest"}
    for name, targets in import_graph().items():
        if name.startswith("dataset_builder"):
            assert {t for t in targets if t.startswith("generation")} <= leaves, name
            assert not {t for t in targets if t.startswith("modeling_vitpain")}, name  # the data side duck-types
        if name.startswith(("modeling_vitpain", "metrics")):
            assert not {t for t in targets if t.startswith(("generation", "dataset_builder"))}, name
    for leaf in leaves - {"generation"}:  # leaves import no other project module except other leaves
        assert import_graph()[leaf] <= leaves, leaf


@pytest.mark.parametrize("package", ["dataset_builder", "modeling_vitpain", "generation"])
def test_import_does_not_load_the_renderer(package):
    code = (
        f"import json, sys; import {package}; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('pyrender', 'OpenGL', 'trimesh') "
        "or m == 'generation.render')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_model_side_copies_of_the_au_facts_match_generation_facs():
    """modeling_vitpain/ and metrics/ travel alone (Hub model folder, evaluate module), so they keep their own
    copies of the AU names and pain thresholds; these must equal the one owner, generation.facs."""
    import importlib.util

    from generation.facs import PAIN_AUS, PAIN_THRESHOLDS, PSPI_MAX
    from modeling_vitpain import DEFAULT_AU_NAMES, DEFAULT_PAIN_THRESHOLDS, ViTPainConfig

    assert tuple(DEFAULT_AU_NAMES) == PAIN_AUS
    assert tuple(DEFAULT_PAIN_THRESHOLDS) == tuple(float(t) for t in PAIN_THRESHOLDS)
    config = ViTPainConfig()
    assert tuple(config.au_names) == PAIN_AUS and config.pspi_max == PSPI_MAX

    spec = importlib.util.spec_from_file_location("pain_metrics", ROOT / "metrics" / "pain_metrics" / "pain_metrics.py")
    metrics = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(metrics)
    assert inspect.signature(metrics.pain_metrics).parameters["thresholds"].default == PAIN_THRESHOLDS
    assert f"0-{PSPI_MAX}" in metrics._KWARGS_DESCRIPTION
