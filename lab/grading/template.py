"""The student's starting files, made from this repository's own assignment files.

``write_template(folder)`` reads ``modules.py``, ``mlp_numpy.py`` and
``mlp_pytorch.py`` at the repository's root and writes them into ``folder``
with the body of every function a student writes replaced by a "your code
here" block that raises ``NotImplementedError``. The transformation uses
``ast`` only to find where each body starts and ends; the text around it
(imports, signatures, docstrings, comments of the code that stays) is copied
character for character. So there are no markers in our files and no second
copy to keep in sync: the template follows the solution by construction.
"""
import ast
from pathlib import Path

from lab.fileio import atomic_write

REPOSITORY = Path(__file__).resolve().parents[2]

STUDENT_WORK = {
    'modules.py': {
        'Module': ('clear_cache',),
        'LinearModule': ('__init__', 'forward', 'backward'),
        '*Module': ('forward', 'backward'),
    },
    'mlp_numpy.py': {'MLP': ('__init__', 'forward', 'backward', 'clear_cache')},
    'mlp_pytorch.py': {'MLP': ('__init__', 'forward')},
}
"""Per file, per class, the methods whose bodies the student writes. ``'*Module'`` stands
for every class whose name ends in ``Module``: each layer's forward and backward."""


class TemplateError(RuntimeError):
    """A method listed in ``STUDENT_WORK`` that the file does not have, or cannot be cut."""


def methods_to_blank(tree, work):
    """The ``FunctionDef`` nodes of ``tree`` whose bodies become "your code here"."""
    found, wanted = [], {name: set(methods) for name, methods in work.items()}
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        names = set(wanted.get(node.name, ()))
        if node.name.endswith('Module') and node.name != 'Module':
            names |= set(wanted.get('*Module', ()))
        for method in node.body:
            if isinstance(method, ast.FunctionDef) and method.name in names:
                found.append((node.name, method))
                wanted.get(node.name, set()).discard(method.name)
    missing = {name: sorted(methods) for name, methods in wanted.items()
               if methods and name != '*Module'}
    if missing:
        raise TemplateError(f"the solution lacks methods the template blanks: {missing}")
    return found


def _docstring_of(function):
    first = function.body[0]
    if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str)):
        return first
    return None


def _body_lines(function, lines):
    """(first, last) 1-based line numbers of the body after the docstring, with comments."""
    docstring = _docstring_of(function)
    if docstring is not None:
        if len(function.body) == 1:
            return None  # nothing but the docstring
        return docstring.end_lineno + 1, function.end_lineno
    first = function.body[0].lineno
    if first == function.lineno:
        raise TemplateError(f"{function.name} has its body on the line of its signature; "
                            f"the template needs it on lines of its own")
    while first - 1 > function.lineno and lines[first - 2].strip().startswith('#'):
        first -= 1
    return first, function.end_lineno


def blank_bodies(source, work):
    """``source`` with each student method's body replaced by a "your code here" block."""
    lines = source.splitlines(keepends=True)
    cuts = []
    for class_name, function in methods_to_blank(ast.parse(source), work):
        span = _body_lines(function, lines)
        if span is None:
            continue
        indent = ' ' * function.body[0].col_offset
        stub = (f"{indent}# Your code here.\n"
                f"{indent}raise NotImplementedError("
                f"\"{class_name}.{function.name}: not implemented yet\")\n")
        cuts.append((span, stub))
    for (first, last), stub in sorted(cuts, reverse=True):
        lines[first - 1:last] = [stub]
    return ''.join(lines)


def template_sources(repository=REPOSITORY):
    """{file name: template text} for the three files a student writes."""
    return {name: blank_bodies((Path(repository) / name).read_text(), work)
            for name, work in STUDENT_WORK.items()}


def write_template(folder, repository=REPOSITORY):
    """Write the starting files into ``folder`` (made if absent); return their paths.

    Raises
    ------
    FileExistsError
        If ``folder`` already holds one of the files: a student's work is never
        overwritten.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sources = template_sources(repository)
    existing = [name for name in sources if (folder / name).exists()]
    if existing:
        raise FileExistsError(f"{folder} already holds {', '.join(existing)}: the template "
                              f"never overwrites work; choose an empty folder")
    written = []
    for name, text in sources.items():
        atomic_write(folder / name, lambda path, text=text: Path(path).write_text(text))
        written.append(folder / name)
    return written
