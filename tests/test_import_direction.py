"""Imports run one way: toolkit/ may import export/ and runtime/; export/ may import runtime/; runtime/ neither,
and the runtime (what a Raspberry Pi installs) never imports TensorFlow, Keras, tf2onnx, onnx or matplotlib.

Read from the source with ``ast``, so every import counts: module level, inside functions (the lazy ones),
under ``if TYPE_CHECKING``, relative imports, and ``importlib.import_module("...")`` / ``__import__("...")``
with a literal name. A fresh-process ``sys.modules`` check (tests/runtime/test_runtime_import.py) sees only
what one run happens to import; this sees every line.

And no module reaches for another's private names (``from edgekit.x.y import _helper``): what two modules share
is public in one of them. The tests, benchmarks and scripts neither (nor ``module._helper``): what they need is public.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LAYERS = ("toolkit", "export", "runtime")  # top to bottom: a layer may import itself and the layers below it
RUNTIME_FORBIDDEN = ("tensorflow", "keras", "tf_keras", "tf2onnx", "onnx", "matplotlib", "tflite_support")


def imported_names(source: str, module: str) -> list[tuple[int, str]]:
    """(line, absolute module name) for every import in ``source``; ``module`` (e.g. ``edgekit.export.tflite``)
    resolves relative imports."""
    package = module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            # `from edgekit import export` imports edgekit.export: count each imported name as a submodule too
            found.append((node.lineno, name))
            found += [(node.lineno, f"{name}.{alias.name}") for alias in node.names if alias.name != "*"]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            f = node.func
            called = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
            if called in ("import_module", "__import__"):
                found.append((node.lineno, node.args[0].value))
    return found


def violations(layer: str, module: str, source: str) -> list[str]:
    """What ``source`` (module ``module`` of ``layer``) imports against the direction."""
    allowed = LAYERS[LAYERS.index(layer):]
    problems, seen = [], set()
    for line, name in imported_names(source, module):
        if line in seen:  # one line per import statement is enough
            continue
        parts = name.split(".")
        if parts[0] == "edgekit" and len(parts) > 1 and parts[1] in LAYERS and parts[1] not in allowed:
            problems.append(f"{module}:{line} imports {name}: {layer}/ may import only {', '.join(allowed)}")
            seen.add(line)
        elif layer == "runtime" and parts[0] in RUNTIME_FORBIDDEN:
            problems.append(f"{module}:{line} imports {name}: the runtime never imports {parts[0]}")
            seen.add(line)
    return problems


# Private names still imported across modules, each with the reason it stays (empty this list, never grow it).
PRIVATE_ALLOWED: set[tuple[str, str]] = set()


def private_imports(source: str, module: str) -> list[str]:
    """``from edgekit.<other module> import _name`` in ``source``, as problems."""
    problems = []
    for line, name in imported_names(source, module):
        parts = name.split(".")
        if parts[0] != "edgekit" or not parts[-1].startswith("_") or parts[-1].startswith("__"):
            continue
        owner = ".".join(parts[:-1])
        if owner != module and (module, name) not in PRIVATE_ALLOWED:
            problems.append(f"{module}:{line} imports {name}, a private name of {owner}: make it public there or move it")
    return problems


def edgekit_module(name: str) -> bool:
    """Whether ``name`` (``edgekit.runtime.collect``) is one of edgekit's modules or packages."""
    parts = name.split(".")
    if parts[0] != "edgekit" or len(parts) < 2 or parts[1] not in LAYERS:
        return False
    path = REPO.joinpath(*parts[1:])
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def private_uses(source: str, module: str) -> list[str]:
    """``private_imports``, and ``alias._name`` where ``alias`` is an edgekit module imported by name
    (``from edgekit.runtime import collect as rc`` ... ``rc._helper``), as problems."""
    problems = private_imports(source, module)
    tree = ast.parse(source)
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            aliases.update({a.asname: a.name for a in node.names if a.asname and edgekit_module(a.name)})
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            aliases.update({a.asname or a.name: f"{node.module}.{a.name}" for a in node.names
                            if edgekit_module(f"{node.module}.{a.name}")})
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases \
                and node.attr.startswith("_") and not node.attr.startswith("__"):
            owner = aliases[node.value.id]
            problems.append(f"{module}:{node.lineno} uses {owner}.{node.attr}, a private name of {owner}: "
                            "make it public there or test through what is")
    return problems


# The tests, benchmarks and scripts use edgekit through its public names, as a user would; the exceptions, each
# with its reason (empty this list, never grow it).
OUTSIDE_PRIVATE_ALLOWED: set[str] = set()


def outside_files() -> list[tuple[str, Path]]:
    return [(path.relative_to(REPO).with_suffix("").as_posix().replace("/", "."), path)
            for folder in ("tests", "benchmarks", "scripts") for path in sorted((REPO / folder).rglob("*.py"))]


def modules() -> list[tuple[str, str, Path]]:
    return [(layer, f"edgekit.{layer}.{path.stem}" if path.stem != "__init__" else f"edgekit.{layer}", path)
            for layer in LAYERS for path in sorted((REPO / layer).rglob("*.py"))]


def test_every_import_runs_one_way():
    found = modules()
    for layer in LAYERS:  # a check that read nothing checked nothing
        assert sum(1 for lay, _, _ in found if lay == layer) >= 3, f"too few modules found under {layer}/"
    problems = [p for layer, module, path in found for p in violations(layer, module, path.read_text("utf-8"))]
    assert not problems, "\n".join(problems)


def test_no_module_imports_another_modules_private_names():
    problems = [p for _, module, path in modules() for p in private_imports(path.read_text("utf-8"), module)]
    assert not problems, "\n".join(problems)


def test_tests_benchmarks_and_scripts_use_no_private_names():
    found = outside_files()
    assert len(found) >= 30, "too few test, benchmark and script files found"  # a check that read nothing checked nothing
    problems = [p for module, path in found for p in private_uses(path.read_text("utf-8"), module)
                if not any(f" {owner}._" in p for owner in OUTSIDE_PRIVATE_ALLOWED)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("source, found", [
    ("from edgekit.runtime import collect as rc\nrc._hidden()\n", True),
    ("import edgekit.toolkit.fonts as fonts\nfonts._bitmap\n", True),
    ("from edgekit.toolkit import fonts\nfonts.dejavu_bitmap\n", False),
    ("from edgekit.runtime.classifier import Classifier\nClassifier._runner\n", False),  # a class's, not a module's
])
def test_the_check_finds_private_names_used_through_a_module(source, found):
    assert bool(private_uses(source, "tests.mod")) == found


@pytest.mark.parametrize("source, found", [
    ("from edgekit.toolkit.cli_runtime import _roi, serve_address\n", True),
    ("def f():\n    from edgekit.toolkit.train import _metrics\n", True),
    ("from .synthetic import _glyph\n", True),
    ("from edgekit.toolkit.cli_options import parse_roi_option\n", False),
    ("from edgekit.toolkit.mod import _own\n", False),  # its own name (a re-import) is not another's
    ("from __future__ import annotations\n", False),
])
def test_the_check_finds_private_imports(source, found):
    assert bool(private_imports(source, "edgekit.toolkit.mod")) == found


@pytest.mark.parametrize("layer, source, bad", [
    ("export", "def f():\n    from edgekit.toolkit.data import load_mnist\n", "edgekit.toolkit.data"),
    ("export", "import edgekit.toolkit\n", "edgekit.toolkit"),
    ("export", "from edgekit import toolkit\n", "edgekit.toolkit"),
    ("export", "from ..toolkit import data\n", "edgekit.toolkit"),
    ("runtime", "from edgekit.export.metadata import edgekit_version\n", "edgekit.export.metadata"),
    ("runtime", "def f():\n    import keras\n", "keras"),
    ("runtime", "if True:\n    import tensorflow as tf\n", "tensorflow"),
    ("runtime", "import onnx.helper\n", "onnx.helper"),
    ("runtime", "from matplotlib import pyplot\n", "matplotlib"),
    ("runtime", "import importlib\nm = importlib.import_module('tf2onnx')\n", "tf2onnx"),
])
def test_the_check_finds_imports_against_the_direction(layer, source, bad):
    problems = violations(layer, f"edgekit.{layer}.mod", source)
    assert any(f"imports {bad}" in p for p in problems), problems


@pytest.mark.parametrize("layer, source", [
    ("toolkit", "from edgekit.export import export_model\nfrom edgekit.runtime import Classifier\nimport tensorflow\n"),
    ("export", "from edgekit.runtime.files import sha256_file\nfrom . import formats\n"),
    ("runtime", "import onnxruntime\nfrom ai_edge_litert.interpreter import Interpreter\nfrom .errors import DataError\n"),
])
def test_the_check_lets_allowed_imports_pass(layer, source):
    assert violations(layer, f"edgekit.{layer}.mod", source) == []
