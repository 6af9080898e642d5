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

from conftest import REPO, code_lines, imported_modules

ASSIGNMENT_TIER = ('modules.py', 'mlp_numpy.py', 'mlp_pytorch.py', 'train_mlp_numpy.py',
                   'train_mlp_pytorch.py', 'cifar10_utils.py', 'unittests.py')
MAX_CODE_LINES = 60


def layer_classes():
    """Every class of ``modules.py`` with a ``forward`` or ``backward`` method, by name."""
    tree = ast.parse((REPO / 'modules.py').read_text())
    return {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)
            and {'forward', 'backward'} & {item.name for item in node.body
                                           if isinstance(item, ast.FunctionDef)}}


LAYERS = sorted(layer_classes())


def functions_of(path):
    """Every function of a Python file, with the file's source."""
    source = path.read_text()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node, source


@pytest.mark.parametrize('file_name', ASSIGNMENT_TIER)
def test_no_function_of_the_assignment_tier_is_longer_than_a_screen(file_name):
    too_long = {node.name: len(code_lines(source, node))
                for node, source in functions_of(REPO / file_name)
                if len(code_lines(source, node)) > MAX_CODE_LINES}
    assert not too_long, f"{file_name}: functions over {MAX_CODE_LINES} code lines: {too_long}"


def test_every_layer_of_the_mlps_is_checked_below():
    """The layers the MLPs and losses are built from are all found, so none escapes."""
    assert set(LAYERS) >= {
        'LinearModule', 'ReLUModule', 'LeakyReLUModule', 'ELUModule', 'SigmoidModule',
        'TanhModule', 'BatchNormModule', 'DropoutModule', 'SoftMaxModule',
        'CrossEntropyModule', 'SoftmaxCrossEntropyModule', 'MSEModule'}


@pytest.mark.parametrize('layer', LAYERS)
def test_forward_and_backward_bodies_are_the_formulas(layer):
    methods = [node for node in layer_classes()[layer].body
               if isinstance(node, ast.FunctionDef) and node.name in ('forward', 'backward')]
    assert methods
    for method in methods:
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


def test_no_import_cycles():
    modules = project_modules()
    graph = {name: imported_modules(path, modules) - {name} for name, path in modules.items()}
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
        imported = imported_modules(modules[name], modules)
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
    todo = [name for name in imported_modules(modules['cifar10_utils'], modules) if name in modules]
    while todo:
        name = todo.pop()
        if name not in below:
            below.add(name)
            todo.extend(imported_modules(modules[name], modules))
    assert below, "cifar10_utils imports no lab module: this check would check nothing"
    assert not below & assignment, f"cifar10_utils reaches back into {sorted(below & assignment)}"

