"""Grade one submission: read its files, ask its functions, judge every item.

``grade_submission(folder)`` is the whole job for one student's folder:

1. read the three files as text, without running them, for file-level problems (a
   missing file, a syntax error, a merge-conflict marker, a stray import, a name
   removed in NumPy 2) and for the assignment's year (``ELUModule()`` is 2023's,
   ``ELUModule(alpha)`` 2024's and 2025's);
2. start the student's processes (:class:`lab.grading.judge.Student`: one where
   PyTorch cannot be imported for the NumPy part, one for the PyTorch MLP), which
   only answer calls to the student's own functions;
3. judge each item of the rubric (:mod:`lab.grading.functions`, :mod:`lab.grading.judge`)
   on the values asked for, in this process.
"""
import ast
import re
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lab.grading import spec
from lab.grading.judge import Student, Verdict, judge
from lab.grading.rubric import load_rubric

PARSING = threading.Lock()
"""CPython 3.11's parser can fail with a SystemError when threads parse at once (the batch's
tests grade in threads): one parse at a time."""


def parse(source, filename='<unknown>'):
    with PARSING:
        return ast.parse(source, filename=filename)


MERGE_MARKER = re.compile(r'^(<{7}|>{7})( |$)|^={7}$')
AUTO_IMPORT_MODULES = {'filecmp', 'turtle', 'tkinter', 'pydoc', 'idlelib', 'this', 'doctest',
                       'unittest.mock', 'pyexpat', 'xml.dom', 'email', 'curses', 'ast',
                       'numpy.lib.function_base', 'sre_constants', 'builtins'}
"""Modules an editor's auto-import tends to pull a name from; nothing here needs them."""

ASSIGNMENT_NAMES = {'clear_cache', 'forward', 'backward', 'MLP', 'LinearModule', 'ELUModule',
                    'SoftMaxModule', 'CrossEntropyModule', 'params', 'grads'}
REMOVED_NUMPY_NAMES = {'float_': 'np.float64', 'NaN': 'np.nan', 'Inf': 'np.inf',
                       'NINF': '-np.inf', 'PINF': 'np.inf', 'product': 'np.prod',
                       'cumproduct': 'np.cumprod', 'alltrue': 'np.all', 'sometrue': 'np.any',
                       'asfarray': 'np.asarray(x, dtype=float)', 'float': 'float',
                       'int': 'int', 'bool': 'bool', 'object': 'object', 'complex_':
                       'np.complex128', 'string_': 'np.bytes_', 'unicode_': 'np.str_',
                       'row_stack': 'np.vstack', 'in1d': 'np.isin', 'trapz': 'np.trapezoid'}
"""NumPy names that NumPy 2 (or 1.24) removed, and what to write instead."""


@dataclass
class ItemResult:
    """One graded item of one submission; ``mistake`` a short stable name ('' if passed),
    ``evidence`` the inputs and values that show it, ``doc`` the section deriving it."""
    id: str
    name: str
    points: float
    max_points: float
    passed: bool
    diagnosis: str
    visibility: str = 'visible'
    mistake: str = ''
    evidence: str = ''
    doc: str = ''


@dataclass
class Report:
    """The grade of one submission: every item, the total and file-level problems."""
    items: list
    total: float
    max_total: float
    year: int
    problems: list = field(default_factory=list)
    submission: str = ''
    elapsed_s: float = 0.0
    year_source: str = 'detected'

    def to_json(self):
        """A dict of plain JSON values (``json.dumps(report.to_json())``)."""
        return {'submission': self.submission, 'year': self.year,
                'year_source': self.year_source, 'total': self.total,
                'max_total': self.max_total, 'problems': list(self.problems),
                'elapsed_s': round(self.elapsed_s, 3),
                'items': [asdict(item) for item in self.items]}


# -- reading the files -----------------------------------------------------------------------

def file_problems(folder):
    """File-level problems of a submission, one line each, found without running it."""
    problems = []
    for name in spec.STUDENT_FILES.values():
        path = Path(folder) / name
        unusable = unusable_file(path)
        if unusable:
            problems.append(f'{unusable}: the items that need it get 0 points')
            continue
        try:
            source = path.read_text(encoding='utf-8')
        except (OSError, UnicodeDecodeError) as error:
            problems.append(f'{name} cannot be read as UTF-8 text: {error}')
            continue
        problems.extend(source_problems(name, source))
    return problems


def unusable_file(path):
    """Why the student's file ``path`` is neither read nor run (one line), or None.

    A symbolic link is not followed (it could point at another student's file or the
    reference), and a file over ``MAX_SOURCE_BYTES`` is not read: the sandbox copies
    neither, so the grader reads neither.
    """
    from lab.grading.sandbox import MAX_SOURCE_BYTES
    if path.is_symlink():
        return (f'{path.name} is a symbolic link: not read and not run (hand in the file '
                f'itself)')
    if not path.is_file():
        return f'{path.name} is missing'
    size = path.stat().st_size
    if size > MAX_SOURCE_BYTES:
        return (f'{path.name} is {size / 2 ** 20:.1f} MiB, over the cap of '
                f'{MAX_SOURCE_BYTES / 2 ** 20:g} MiB: not read and not run')
    return None


def source_problems(name, source):
    """Merge markers, syntax errors, stray imports and removed NumPy names in ``source``."""
    problems = []
    for number, line in enumerate(source.splitlines(), start=1):
        if MERGE_MARKER.match(line):
            problems.append(f'{name} line {number}: a merge-conflict marker '
                            f'{line.strip()[:20]!r}: resolve the conflict and delete the '
                            f'marker lines')
            break
    try:
        tree = parse(source, filename=name)
    except SyntaxError as error:
        if not problems:
            problems.append(f'{name} line {error.lineno}: syntax error: {error.msg}')
        return problems
    except (RecursionError, MemoryError):
        problems.append(f'{name}: an expression nested too deeply for Python to parse '
                        f'(a very long or deeply nested line?)')
        return problems
    for node in ast.walk(tree):
        problems.extend(import_problems(name, node))
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in ('np', 'numpy') and node.attr in REMOVED_NUMPY_NAMES):
            problems.append(f'{name} line {node.lineno}: np.{node.attr} is gone in NumPy 2 '
                            f'(or 1.24); use {REMOVED_NUMPY_NAMES[node.attr]}')
    return problems


def import_problems(name, node):
    """A stray import of torch in modules.py, or an editor's auto-import, in ``node``."""
    if isinstance(node, ast.Import):
        imported = [alias.name for alias in node.names]
        names = []
    elif isinstance(node, ast.ImportFrom):
        imported = [node.module or '']
        names = [alias.name for alias in node.names]
    else:
        return []
    problems = []
    if name == 'modules.py' and any(module.split('.')[0] == 'torch' for module in imported):
        problems.append(f'{name} line {node.lineno}: imports torch; the NumPy layers must '
                        f'not need PyTorch (a stray import: delete it)')
    module = imported[0]
    if names and (module in AUTO_IMPORT_MODULES or set(names) & ASSIGNMENT_NAMES) and not (
            module in ('modules', 'mlp_numpy', 'numpy', 'torch') or module.startswith('torch')):
        problems.append(f'{name} line {node.lineno}: `from {module} import '
                        f'{", ".join(names)}` looks like an editor\'s auto-import; delete it')
    return problems


def detect_year(folder):
    """The assignment's year from ELUModule's constructor: 2023 without alpha, else 2025.

    2024 and 2025 share their templates, so 2025 stands for both. Returns
    ``(year, how)`` with ``how`` a few words for the report.
    """
    path = Path(folder) / 'modules.py'
    if unusable_file(path):
        return spec.DEFAULT_YEAR, 'assumed: modules.py cannot be read'
    try:
        tree = parse(path.read_text(encoding='utf-8'))
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError, RecursionError, MemoryError):
        return spec.DEFAULT_YEAR, 'assumed: modules.py cannot be read'
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == 'ELUModule':
            init = next((item for item in node.body if isinstance(item, ast.FunctionDef)
                         and item.name == '__init__'), None)
            if init is None:
                return 2023, 'detected: ELUModule() takes no alpha'
            arguments = [argument.arg for argument in init.args.args[1:]]
            arguments += [argument.arg for argument in init.args.kwonlyargs]
            if arguments:
                return spec.DEFAULT_YEAR, 'detected: ELUModule(alpha), as in 2024 and 2025'
            return 2023, 'detected: ELUModule() takes no alpha'
    return spec.DEFAULT_YEAR, 'assumed: modules.py defines no ELUModule'


# -- grading ---------------------------------------------------------------------------------

def grade_submission(path, year=None, rubric=None, limits=None):
    """Grade the submission in folder ``path``; return a :class:`Report`.

    Parameters
    ----------
    path : str or Path
        A folder holding the student's modules.py, mlp_numpy.py and mlp_pytorch.py
        (any may be missing). Zip files are unpacked by the caller.
    year : int, optional
        2023, 2024 or 2025; detected from ELUModule's signature when None.
    rubric : Rubric, optional
        ``load_rubric()`` when None.
    limits : sandbox.Limits, optional
        The sandbox's defaults when None; ``wall_s`` bounds the whole submission.
    """
    from lab.grading import sandbox
    started = time.perf_counter()
    folder = Path(path)
    rubric = load_rubric() if rubric is None else rubric
    limits = sandbox.Limits() if limits is None else limits
    if year is None:
        year, year_source = detect_year(folder)
    else:
        year_source = 'given'
    problems = file_problems(folder)
    needs_torch = any(set(item.graded.files) & set(spec.TORCH_FILES) for item in rubric.items)
    student = Student(folder, limits, time.monotonic() + limits.wall_s,
                      torch_soon=needs_torch and (folder / 'mlp_pytorch.py').is_file())
    verdicts = {}
    try:
        student.start()
        for item in sorted(rubric.items, key=lambda item: bool(
                set(item.graded.files) & set(spec.TORCH_FILES))):
            try:
                verdicts[item.id] = judge(item.graded, student, year)
            except Exception as error:  # the grader's own bug must not pass an item
                verdicts[item.id] = Verdict(False, f'{item.id}: the grader could not judge '
                                                   f'the answers ({type(error).__name__}: '
                                                   f'{error})', 'not judged')
    finally:
        student.stop()
    problems += sorted(student.notes)
    report_items = [ItemResult(item.id, item.name, item.points if verdicts[item.id].passed
                               else 0.0, item.points, verdicts[item.id].passed,
                               verdicts[item.id].diagnosis, item.visibility,
                               verdicts[item.id].mistake, verdicts[item.id].evidence,
                               verdicts[item.id].doc)
                    for item in rubric.items]
    return Report(items=report_items, total=sum(item.points for item in report_items),
                  max_total=rubric.max_total, year=year, problems=problems,
                  submission=folder.name, elapsed_s=time.perf_counter() - started,
                  year_source=year_source)
