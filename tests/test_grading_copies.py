"""The copy check: near-identical submissions and copies of a known solution are listed,
independent solutions are not, whatever the names, the layout and the order of methods.

The fixtures in ``tests/copies/`` are two solutions written for these tests in two
styles; the disguised copy is made here, by an ``ast`` rewrite that renames every name
the student chose, reverses the order of the methods of every class and re-lays the code.
"""
import ast
import builtins
import shutil
import zipfile
from pathlib import Path

import numpy
import pytest

from conftest import REPO
from lab.grading.copies import (SOLUTION_NAME, THRESHOLD, find_copies, read_sources,
                                reference_folders, source_lines)

FIXTURES = Path(__file__).parent / 'copies'
KEPT_NAMES = set(dir(builtins)) | {'np', 'numpy', 'math', 'self', 'modules', 'forward',
                                   'backward', 'clear_cache', 'params', 'grads', 'weight',
                                   'bias', '__init__', 'LinearModule', 'ELUModule',
                                   'SoftMaxModule', 'CrossEntropyModule', 'MLP'}
"""Names a copier cannot change: the assignment's API, NumPy's and Python's."""
LIBRARY_ATTRIBUTES = set(dir(numpy)) | set(dir(numpy.ndarray)) | set(dir(dict))


class Disguise(ast.NodeTransformer):
    """Rename every name the student chose and reverse the methods of every class."""

    def __init__(self):
        self.names = {}

    def new(self, name):
        if name in KEPT_NAMES or name.startswith('__'):
            return name
        return self.names.setdefault(name, f"renamed_{len(self.names)}")

    def visit_Name(self, node):
        node.id = self.new(node.id)
        return node

    def visit_arg(self, node):
        node.arg = self.new(node.arg)
        return node

    def visit_Attribute(self, node):
        self.generic_visit(node)
        if node.attr not in LIBRARY_ATTRIBUTES:
            node.attr = self.new(node.attr)
        return node

    def visit_FunctionDef(self, node):
        self.generic_visit(node)
        node.name = self.new(node.name)
        return node

    def visit_ClassDef(self, node):
        self.generic_visit(node)
        node.name = self.new(node.name)
        node.body.reverse()
        return node

    def visit_Constant(self, node):
        if isinstance(node.value, str):
            node.value = self.new(node.value)
        return node


def disguised_copy(source, target):
    """Write a copy of the submission ``source`` into ``target``, disguised."""
    target.mkdir(parents=True)
    disguise = Disguise()
    for file in sorted(source.glob('*.py')):
        tree = disguise.visit(ast.parse(file.read_text()))
        (target / file.name).write_text(ast.unparse(tree))
    return target


def pair_of(pairs, a, b):
    return [pair for pair in pairs if {pair['a'], pair['b']} == {a, b}]


def test_a_renamed_and_reordered_copy_is_found_and_independent_solutions_are_not(tmp_path):
    original = FIXTURES / 'vectorised'
    copy = disguised_copy(original, tmp_path / 'copier')
    assert 'renamed_' in (copy / 'modules.py').read_text()
    assert (copy / 'modules.py').read_text().count('def ') == \
        (original / 'modules.py').read_text().count('def ')
    submissions = {'original': original, 'copier': copy, 'independent': FIXTURES / 'loops',
                   'ours': REPO}
    pairs = find_copies(submissions, {}, threshold=0.0)
    found = pair_of(pairs, 'original', 'copier')[0]
    assert found['similarity'] >= THRESHOLD
    for a, b in [('original', 'independent'), ('copier', 'independent'),
                 ('original', 'ours'), ('independent', 'ours')]:
        assert all(pair['similarity'] < THRESHOLD / 2 for pair in pair_of(pairs, a, b)), (a, b)
    flagged = find_copies(submissions, {})
    assert [(pair['a'], pair['b']) for pair in flagged] == [('original', 'copier')]


def test_the_matching_lines_stand_side_by_side(tmp_path):
    original = FIXTURES / 'vectorised'
    copy = disguised_copy(original, tmp_path / 'copier')
    [pair] = find_copies({'original': original, 'copier': copy}, {})
    assert pair['matches']
    softmax = [match for match in pair['matches'] if match['file'] == 'modules.py'
               and 'keepdims=True' in source_lines(original, 'modules.py', match['lines_a'])
               and 'e.sum' in source_lines(original, 'modules.py', match['lines_a'])]
    assert softmax, "the softmax's body is a shared stretch"
    beside = source_lines(copy, 'modules.py', softmax[0]['lines_b'])
    assert 'keepdims=True' in beside and 'np.exp' in beside and 'e.sum' not in beside
    assert source_lines(original, 'modules.py', softmax[0]['lines_a']).count('\n') == \
        pytest.approx(beside.count('\n'), abs=2)


def test_copies_of_our_solution_and_of_a_given_folder_are_named(tmp_path):
    ours = tmp_path / 'class' / 'mallory'
    ours.mkdir(parents=True)
    for name in ('modules.py', 'mlp_numpy.py', 'mlp_pytorch.py'):
        shutil.copy(REPO / name, ours)
    last_year = tmp_path / 'last_year'
    disguised_copy(FIXTURES / 'loops', last_year / 'trudy')
    with zipfile.ZipFile(tmp_path / 'class' / 'oscar.zip', 'w') as bundle:
        for file in sorted((FIXTURES / 'loops').glob('*.py')):
            bundle.write(file, f"oscar/{file.name}")
    submissions = {'mallory': ours, 'oscar': tmp_path / 'class' / 'oscar.zip',
                   'walter': FIXTURES / 'vectorised'}
    pairs = find_copies(submissions, reference_folders([last_year]))
    assert [(pair['a'], pair['b'], pair['reference']) for pair in pairs] == [
        ('mallory', SOLUTION_NAME, True), ('oscar', 'last_year/trudy', True)]
    assert pairs[0]['similarity'] == 1.0


def test_a_copy_of_part_of_our_solution_is_found(tmp_path):
    """The assignment's four layers taken from our modules.py, which holds many more
    (ReLU, batch norm, dropout...), with the MLP of one's own."""
    ours = (REPO / 'modules.py').read_text()
    tree = ast.parse(ours)
    taken = [ast.get_source_segment(ours, node) for node in tree.body
             if isinstance(node, ast.ClassDef) and node.name in (
                 'Module', 'LinearModule', 'ELUModule', 'SoftMaxModule', 'CrossEntropyModule')]
    folder = tmp_path / 'mallory'
    folder.mkdir()
    (folder / 'modules.py').write_text('import numpy as np\n\n\n' + '\n\n\n'.join(taken))
    shutil.copy(FIXTURES / 'loops' / 'mlp_numpy.py', folder)
    [pair] = find_copies({'mallory': folder, 'walter': FIXTURES / 'vectorised'},
                         reference_folders())
    assert (pair['a'], pair['b']) == ('mallory', SOLUTION_NAME)
    assert pair['similarity_a'] >= THRESHOLD > pair['similarity_b']


def test_unreadable_or_oversized_files_are_left_out(tmp_path):
    (tmp_path / 'broken.zip').write_bytes(b'PK\x03\x04 not a zip')
    assert read_sources(tmp_path / 'broken.zip') == {}
    folder = tmp_path / 'huge'
    folder.mkdir()
    (folder / "modules.py").write_text("x = 1\n" * 40_000)
    (folder / 'mlp_numpy.py').write_bytes(b'caf\xe9 = 1\n')
    assert read_sources(folder) == {'mlp_numpy.py': 'caf\ufffd = 1\n'}


def test_a_few_shared_lines_are_not_a_copy(tmp_path):
    """Two students who handed in the course's starting files untouched share every
    line and copied nothing; what is left of such files once the template's and the
    class's common fingerprints go is a line or two (30 tokens in a real batch of 60),
    too little to count. Here: two identical submissions of two lines, then of many."""
    few = 'import numpy as np\n\ndef shift(logits):\n    return logits - logits.max(1)[:, None]\n'
    many = few + ''.join(f"\ndef step_{i}(w, g, lr={i}):\n    w -= lr * g / (np.abs(g) + {i})"
                         f"\n    return w * {i} + np.tanh(g) ** {i}\n" for i in range(1, 6))
    for text, flagged in ((few, False), (many, True)):
        submissions = {}
        for name in ('ann', 'ben'):
            (tmp_path / str(flagged) / name).mkdir(parents=True)
            (tmp_path / str(flagged) / name / 'modules.py').write_text(text)
            submissions[name] = tmp_path / str(flagged) / name
        assert bool(find_copies(submissions, {})) == flagged
