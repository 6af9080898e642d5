"""Practice as you type: ``python grade.py --watch practice/``.

Grades the folder once, then again each time one of the three files is saved
(watchfiles tells when: the operating system's file events, with a short debounce
so that an editor's save of several writes is one change). After each grade it
prints the total and only the items whose verdict changed since the grade before,
each with its diagnosis. A file that does not parse (a save mid-edit) is one line,
and watching goes on. Ctrl-C ends it with one line.
"""
import ast
import textwrap
from pathlib import Path

STUDENT_FILES = ('modules.py', 'mlp_numpy.py', 'mlp_pytorch.py')
WIDTH = 100
DIAGNOSIS_LINES = 4


def syntax_problem(folder):
    """One line naming the first of the three files that does not parse, or ''."""
    for name in STUDENT_FILES:
        file = Path(folder) / name
        try:
            source = file.read_bytes()
        except FileNotFoundError:
            continue
        except OSError as error:
            return f"{name}: cannot be read ({error.strerror})"
        try:
            ast.parse(source, filename=name)
        except SyntaxError as error:
            return f"{name} line {error.lineno}: {error.msg}"
        except (RecursionError, MemoryError, ValueError) as error:
            return f"{name}: cannot be parsed ({type(error).__name__})"
    return ''


def verdict(item):
    """What an item's verdict is: passed or not, its points, its mistake."""
    return bool(item['passed']), item['points'], item.get('mistake') or ''


def changed_items(before, after):
    """The items of ``after`` whose verdict differs from ``before`` (all, when there is
    no report before), in the rubric's order."""
    previous = {item['id']: verdict(item) for item in (before or {}).get('items', [])}
    return [item for item in after.get('items', [])
            if before is None and not item['passed']
            or before is not None and previous.get(item['id']) != verdict(item)]


def describe(before, after, printable=str):
    """The lines printed after a grade: the total, the problems that are new, then
    each changed item.

    A diagnosis is cut at ``DIAGNOSIS_LINES`` lines (one line at the first grade, where
    every lost item is new); ``python grade.py FOLDER`` prints them whole."""
    lines = [f"Total: {after['total']:g} / {after['max_total']:g}"
             + (f" (was {before['total']:g})" if before and before['total'] != after['total']
                else '')]
    problems = [problem for problem in after.get('problems', [])
                if problem not in (before or {}).get('problems', [])]
    lines += [f"  ! {printable(problem)}" for problem in problems]
    for item in changed_items(before, after):
        if item['passed']:
            lines.append(f"  now ok  {item['name']}  {item['points']:g} / {item['max_points']:g}")
            continue
        lines.append(f"  LOST    {item['name']}  {item['points']:g} / {item['max_points']:g}")
        diagnosis = printable((str(item.get('diagnosis') or '').strip().splitlines()
                               or [''])[0])
        wrapped = textwrap.wrap(diagnosis, WIDTH, initial_indent='          ',
                                subsequent_indent='          ', break_on_hyphens=False)
        shown = DIAGNOSIS_LINES if before is not None else 1
        if len(wrapped) > shown:
            wrapped = wrapped[:shown - 1] + [wrapped[shown - 1][:WIDTH - 1] + '…']
        lines += wrapped
    if before is not None and len(lines) == 1 + len(problems):
        lines.append('  no verdict changed')
    return lines


def watch(folder, grade, out=print, printable=str, stop_event=None, debounce_ms=400,
          changes=None):
    """Grade ``folder`` now and after each save of one of its three files.

    Parameters
    ----------
    grade : callable
        ``grade(folder) -> report`` (a JSON-ready dict, as ``Report.to_json()``).
    out : callable
        Prints one line.
    stop_event : threading.Event, optional
        Set it to stop watching (tests); otherwise Ctrl-C stops.
    changes : iterable, optional
        When to look at the files again (tests); by default at each of watchfiles'
        events for the folder and every half second without one. A grade follows
        where a file's time or size changed since the last.

    Returns
    -------
    int
        The exit code: 0 when stopped, 130 after Ctrl-C.
    """
    folder = Path(folder)
    previous = None
    try:
        graded = stamps(folder)
        previous = _grade_and_print(folder, grade, previous, out, printable)
        out(f"watching {printable(folder)} for saves of {', '.join(STUDENT_FILES)} "
            f"(Ctrl-C to stop)")
        if changes is None:
            from watchfiles import watch as file_events
            changes = file_events(folder, watch_filter=lambda change, path:
                                  Path(path).name in STUDENT_FILES,
                                  debounce=debounce_ms, step=50, stop_event=stop_event,
                                  recursive=False, rust_timeout=500, yield_on_timeout=True)
        for _ in changes:  # an event, or half a second without one
            now = stamps(folder)
            if now == graded:
                continue  # also catches a save made before the watch began
            saved = [name for name in STUDENT_FILES if now[name] != graded[name]]
            out(f"-- saved {', '.join(saved)}")
            graded = now
            previous = _grade_and_print(folder, grade, previous, out, printable)
    except KeyboardInterrupt:
        out('stopped watching')
        return 130
    return 0


def stamps(folder):
    """Each of the three files' modification time and size (None where it is missing)."""
    found = {}
    for name in STUDENT_FILES:
        try:
            status = (Path(folder) / name).stat()
            found[name] = (status.st_mtime_ns, status.st_size)
        except OSError:
            found[name] = None
    return found


def _grade_and_print(folder, grade, previous, out, printable):
    """Grade once and print what changed; return the report to compare the next with."""
    problem = syntax_problem(folder)
    if problem:
        out(f"{printable(problem)} (not graded; still watching)")
        return previous
    report = grade(folder)
    for line in describe(previous, report, printable):
        out(line)
    return report
