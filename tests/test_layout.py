"""The shape of the code: what the two tiers promise a reader, checked on every run.

- In the assignment tier no function is longer than a screen (60 code lines).
- The forward and backward bodies of the layers are the formulas: no checks,
  no casts (validation happens once, at the MLP's entry and in the losses).
- The modules import each other in one direction: no cycles.
- The root holds the assignment tier and the entry points, nothing else of the lab.
- What ``cifar10_utils.py`` needs of the lab imports nothing of the assignment tier.
"""
import ast

import pytest

from conftest import REPO

ASSIGNMENT_TIER = ('modules.py', 'mlp_numpy.py', 'mlp_pytorch.py', 'train_mlp_numpy.py',
                   'train_mlp_pytorch.py', 'cifar10_utils.py', 'unittests.py')
MAX_CODE_LINES = 60
FORMULA_LAYERS = ('LinearModule', 'ELUModule', 'SoftMaxModule')


def code_lines(node, source_lines):
    """Lines of ``node`` that hold code: no blank lines, comments or docstrings."""
    docstring_lines = set()
    for inner in ast.walk(node):
        body = getattr(inner, 'body', None)
        if (isinstance(body, list) and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            docstring_lines.update(range(body[0].lineno, body[0].end_lineno + 1))
    return [number for number in range(node.lineno, node.end_lineno + 1)
            if number not in docstring_lines
            and source_lines[number - 1].strip()
            and not source_lines[number - 1].strip().startswith('#')]


def functions_of(path):
    source = path.read_text()
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node, source.splitlines()


@pytest.mark.parametrize('file_name', ASSIGNMENT_TIER)
def test_no_function_of_the_assignment_tier_is_longer_than_a_screen(file_name):
    too_long = {node.name: len(code_lines(node, lines))
                for node, lines in functions_of(REPO / file_name)
                if len(code_lines(node, lines)) > MAX_CODE_LINES}
    assert not too_long, f"{file_name}: functions over {MAX_CODE_LINES} code lines: {too_long}"


@pytest.mark.parametrize('layer', FORMULA_LAYERS)
def test_forward_and_backward_bodies_are_the_formulas(layer):
    tree = ast.parse((REPO / 'modules.py').read_text())
    cls = next(node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == layer)
    for method in (node for node in cls.body if isinstance(node, ast.FunctionDef)
                   and node.name in ('forward', 'backward')):
        for node in ast.walk(method):
            assert not isinstance(node, ast.Raise), f"{layer}.{method.name} raises"
            if isinstance(node, ast.Call) and isinstance(node.func, (ast.Attribute, ast.Name)):
                name = getattr(node.func, 'attr', getattr(node.func, 'id', ''))
                assert name != 'astype' and not name.startswith('_check'), (
                    f"{layer}.{method.name} calls {name}")


def project_modules():
    """Every importable module of the repository: top-level files and the ``lab`` package."""
    modules = {path.stem: path for path in REPO.glob('*.py')}
    for path in (REPO / 'lab').rglob('*.py'):
        parts = path.relative_to(REPO).with_suffix('').parts
        if parts[-1] == '__init__':
            parts = parts[:-1]
        modules['.'.join(parts)] = path
    return modules


def imports_of(path, known):
    """The project modules ``path`` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name in known}


def test_no_import_cycles():
    modules = project_modules()
    graph = {name: imports_of(path, modules) - {name} for name, path in modules.items()}
    # Depth-first search for a back edge.
    state, stack = {}, []

    def visit(name):
        state[name] = 'open'
        stack.append(name)
        for target in sorted(graph[name]):
            if state.get(target) == 'open':
                cycle = stack[stack.index(target):] + [target]
                pytest.fail(f"import cycle: {' -> '.join(cycle)}")
            if target not in state:
                visit(target)
        stack.pop()
        state[name] = 'done'

    for name in sorted(graph):
        if name not in state:
            visit(name)
    assert graph['lab.fileio'] == set(), "fileio is the ground floor: it imports nothing of ours"


def test_the_pytorch_side_imports_nothing_of_the_numpy_implementation():
    """Only mirror.py bridges the two MLPs, on purpose."""
    modules = project_modules()
    for name in ('mlp_pytorch', 'train_mlp_pytorch'):
        imported = imports_of(modules[name], modules)
        assert not imported & {'modules', 'mlp_numpy', 'lab.optimizers', 'lab.mirror'}, (
            name, imported)


ENTRY_POINTS = ('benchmark.py', 'experiments.py', 'grade.py')


def test_the_root_holds_the_assignment_tier_and_the_entry_points_only():
    lab_files = {path.name for path in REPO.glob('*.py')} - set(ASSIGNMENT_TIER) - set(ENTRY_POINTS)
    assert not lab_files, f"lab code at the root (move it into lab/): {sorted(lab_files)}"


def test_the_lab_code_under_cifar10_utils_imports_nothing_of_the_assignment_tier():
    modules = project_modules()
    assignment = {name[:-len('.py')] for name in ASSIGNMENT_TIER}
    below = set()
    todo = [name for name in imports_of(modules['cifar10_utils'], modules) if name in modules]
    while todo:
        name = todo.pop()
        if name not in below:
            below.add(name)
            todo.extend(imports_of(modules[name], modules))
    assert below, "cifar10_utils imports no lab module: this check would check nothing"
    assert not below & assignment, f"cifar10_utils reaches back into {sorted(below & assignment)}"

