"""One-way layers, between modules and between packages: no import cycles; `generation` never imports
`dataset_builder`; the `pain3d` command sits above both; the model side and the metric module import nothing of the
project; importing the data or model side never loads the renderer; the model side's and the metric module's copies
of the AU facts agree with `generation.facs`."""

import ast
import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("generation", "dataset_builder", "modeling_vitpain", "pain3d")


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
    assert "generation.writer" in graph["pain3d.cli"]  # imported inside cmd_generate


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


# package -> the project packages its modules may import (at any level, function-level imports included)
ALLOWED = {
    "modeling_vitpain": set(),  # travels alone as remote code
    "generation": set(),  # below the data side: never reaches up into dataset_builder
    "dataset_builder": {"generation"},  # the data side duck-types the model (never imports modeling_vitpain)
    "pain3d": {"generation", "dataset_builder", "modeling_vitpain"},  # the command, above everything
}
# contract leaves: the facts both generation and dataset_builder read; they import only other leaves
LEAVES = {"generation", "generation.facs", "generation.demographics", "generation.views", "generation.rng",
          "generation.errors", "generation.columns", "generation.manifest"}


def package_violations(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{name} imports {target}" for name, targets in graph.items() for target in targets
        if target.split(".")[0] != name.split(".")[0] and target.split(".")[0] not in ALLOWED[name.split(".")[0]]
    )


def test_package_layers_are_one_way():
    assert package_violations(import_graph()) == []


def test_package_check_catches_generation_importing_dataset_builder():
    graph = {"generation.writer": {"dataset_builder.card"}, "dataset_builder.card": {"generation.facs"}}
    assert package_violations(graph) == ["generation.writer imports dataset_builder.card"]


def test_contract_leaves_import_only_leaves():
    graph = import_graph()
    for leaf in LEAVES - {"generation"}:
        assert graph[leaf] <= LEAVES, (leaf, graph[leaf] - LEAVES)


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
    """modeling_vitpain/ and the metric module travel alone (Hub model folder, evaluate module), so they keep their own
    copies of the AU names and pain thresholds; these must equal the one owner, generation.facs."""
    import importlib.util

    from generation.facs import PAIN_AUS, PAIN_THRESHOLDS, PSPI_MAX
    from modeling_vitpain import DEFAULT_AU_NAMES, DEFAULT_PAIN_THRESHOLDS, ViTPainConfig

    assert tuple(DEFAULT_AU_NAMES) == PAIN_AUS
    assert tuple(DEFAULT_PAIN_THRESHOLDS) == tuple(float(t) for t in PAIN_THRESHOLDS)
    config = ViTPainConfig()
    assert tuple(config.au_names) == PAIN_AUS and config.pspi_max == PSPI_MAX

    spec = importlib.util.spec_from_file_location("pain_metrics", ROOT / "dataset_builder" / "pain_metrics.py")
    metrics = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(metrics)
    assert inspect.signature(metrics.pain_metrics).parameters["thresholds"].default == PAIN_THRESHOLDS
    assert f"0-{PSPI_MAX}" in metrics._KWARGS_DESCRIPTION
