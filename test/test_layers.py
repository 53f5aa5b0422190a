"""The package's layers: imports point one way, with no circles, and the core runs without ROS."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / 'lma_perception'

# Lowest first: a unit may import only units of lower layers (and its own modules).
LAYERS = (
    ('lma_perception', 'labels', 'codecs', 'continuity'),
    ('memory',),
    ('models',),
    ('arguments',),
    ('data',),
    ('synthetic',),
    ('runtime',),
    ('eval',),
    ('train',),
    ('ros',),
    ('benchmarks', 'rig'),
    ('commands',),
    ('cli',),
)
LAYER_OF = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix('').parts
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def _imports(path: Path) -> set[str]:
    """Every lma_perception module `path` imports, at the top or inside functions."""
    module = _module_name(path)
    package = module if path.name == '__init__.py' else module.rpartition('.')[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                anchor = package.split('.')[: len(package.split('.')) - node.level + 1]
                base = '.'.join([*anchor, base] if base else anchor)
            found.add(base)
            # `from package import module` imports the module.
            found |= {f'{base}.{alias.name}' for alias in node.names}
    return {name for name in found if name.split('.')[0] == 'lma_perception'}


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(path): path for path in PACKAGE.rglob('*.py')}
    return {name: {m for m in _imports(path) if m in modules and m != name}
            for name, path in modules.items()}


def _unit(module: str) -> str:
    parts = module.split('.')
    return parts[1] if len(parts) > 1 else parts[0]


def test_every_unit_has_a_layer():
    assert {_unit(module) for module in _graph()} <= set(LAYER_OF)


def test_imports_only_point_down():
    upward = sorted(
        f'{module} → {target}'
        for module, targets in _graph().items() for target in targets
        if _unit(target) != _unit(module) and LAYER_OF[_unit(target)] >= LAYER_OF[_unit(module)]
        and _unit(target) != 'lma_perception'  # the package's own __init__ (its version)
    )
    assert not upward, 'imports against the layers:\n' + '\n'.join(upward)


def test_no_import_circles():
    graph = _graph()
    state: dict[str, str] = {}
    circles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 'open'
        for target in sorted(graph[module]):
            if state.get(target) == 'open':
                circles.append(' → '.join([*path[path.index(target):], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 'done'

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not circles, 'import circles:\n' + '\n'.join(circles)


def test_every_module_outside_ros_imports_with_rclpy_hidden():
    # A meta-path finder that refuses ROS proves the core never needs it.
    modules = sorted(m for m in _graph() if _unit(m) != 'ros')
    code = (
        'import importlib, sys\n'
        'class Block:\n'
        '    def find_spec(self, name, path=None, target=None):\n'
        '        if name.split(".")[0] in ("rclpy", "sensor_msgs", "std_msgs", "std_srvs",\n'
        '                                  "diagnostic_msgs", "rcl_interfaces"):\n'
        '            raise ImportError(f"ROS hidden for this test: {name}")\n'
        'sys.meta_path.insert(0, Block())\n'
        f'for m in {modules!r}:\n'
        '    importlib.import_module(m)\n'
        'from lma_perception.cli import build_parser\n'
        'build_parser()\n'
    )
    result = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert len(modules) > 40
