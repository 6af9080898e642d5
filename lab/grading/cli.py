"""The command line of ``grade.py``: one submission, a folder of them, or the template.

    python grade.py PATH                  # one folder or .zip: print its report
    python grade.py PATH --format json    # the report as one JSON object
    python grade.py PATH --format gradescope --out /autograder/results
    python grade.py SUBMISSIONS/ --jobs 2 --out grades/
    python grade.py --template practice/
    python grade.py --watch practice/     # grade again at each save
    python grade.py --compare OLD/grades.csv NEW/grades.csv

Exit codes: 0 when graded (whatever the score), 2 for a path, a zip or a rubric
that cannot be used (one line saying why), 130 after Ctrl-C, 143 after SIGTERM.

Everything a student wrote (file and folder names, exception messages) reaches the
outputs through ``printable``: bytes that are not UTF-8 and control characters (escape
codes) become backslash escapes, and a grades.csv cell that a spreadsheet would take
for a formula starts with an apostrophe.
"""
import argparse
import concurrent.futures
import contextlib
import lzma
import multiprocessing
import os
import re
import shutil
import signal
import stat
import sys
import tempfile
import time
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from lab.cli import ArgumentParser, ReaderSafeStream
from lab.fileio import atomic_write
from lab.grading.report import (class_summary, format_class_summary, format_json,
                                format_text, gradescope_results, write_grades_csv, write_json)
from lab.grading.sandbox import MAX_SOURCE_BYTES, Limits, bubblewrap_works, signals_held
from lab.grading.template import write_template

STUDENT_FILES = ('modules.py', 'mlp_numpy.py', 'mlp_pytorch.py')
YEARS = (2023, 2024, 2025)
MAX_ZIP_MEMBERS = 2000
MAX_ZIP_BYTES = 20 * 2 ** 20
"""What is extracted of a zip, in all: its .py files only, each at most MAX_SOURCE_BYTES."""
MAX_NAME_BYTES = 255
"""The longest file or folder name Linux file systems take."""
FORMULA_STARTS = ('=', '+', '-', '@', '\t', '\r')
"""A spreadsheet takes a cell starting with one of these for a formula."""
NO_SANDBOX_WARNING = (
    "--no_sandbox: student code runs without bubblewrap's namespaces: it can reach the "
    "network and read every file its user id may read (this repository, anything "
    "world-readable); as root it still runs under a user id of its own")
ROOT_WITHOUT_SANDBOX_WARNING = (
    "bubblewrap is missing (or cannot make namespaces here): student code runs under a user "
    "id of its own, but can reach the network and read every world-readable file, this "
    "repository included; install the package 'bubblewrap' to close that")


class SubmissionError(ValueError):
    """A submission that cannot be graded at all (an unreadable or unsafe zip)."""


def extract_zip(archive, folder):
    """Extract the ``.py`` files of ``archive`` into ``folder``; return the folder to grade.

    Safe against hostile archives, and all or nothing: every member is checked before any
    is extracted, and a member refused (a path that is absolute or climbs out with ``..``,
    a link, an encrypted member, a name too long, a file and a folder of the same name)
    refuses the whole zip, as does damaged data met while extracting; ``folder`` is then
    left empty. Bytes are counted as they are decompressed (the sizes the archive
    announces are not trusted), so a zip bomb stops at ``MAX_SOURCE_BYTES`` per file and
    ``MAX_ZIP_BYTES`` in all. Returns the extracted folder holding most of the student's
    files (a zip often holds one folder with them), the top when none is there.

    Raises
    ------
    SubmissionError
        For a file that is not a zip, or one that is unsafe or damaged, in one line
        naming the member.
    """
    folder = Path(folder)
    name = printable(Path(archive).name)
    try:
        with zipfile.ZipFile(archive) as bundle:
            members = bundle.infolist()
            if len(members) > MAX_ZIP_MEMBERS:
                raise SubmissionError(f"{name} holds {len(members)} files, more than "
                                      f"{MAX_ZIP_MEMBERS}: not a submission")
            targets = _member_targets(members, folder)
            extracted = 0
            for member, target in targets:
                extracted += _extract_member(bundle, member, target, MAX_ZIP_BYTES - extracted)
    except SubmissionError:
        _empty(folder)
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError,
            zlib.error, lzma.LZMAError, OSError, RuntimeError, ValueError) as error:
        _empty(folder)
        raise SubmissionError(f"{name} cannot be read as a zip, or its data is damaged "
                              f"({type(error).__name__}: {printable(error)})") from None
    return _submission_folder(folder)


def _empty(folder):
    """Remove whatever an extraction refused half-way left in ``folder``."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)


def _member_targets(members, folder):
    """[(member, where it goes)] for the members to extract; raises SubmissionError for the
    first member that refuses the zip."""
    targets, files, folders = [], set(), set()
    for member in members:
        target = _member_target(member, folder)
        path = PurePosixPath(member.filename.replace('\\', '/'))
        if member.is_dir():
            folders.add(path)
        else:
            files.add(path)
            folders.update(path.parents)
        if target is not None:
            targets.append((member, target))
    clash = files & folders
    if clash:
        raise SubmissionError(f"the zip holds a file and a folder both named "
                              f"{printable(min(clash))!r}: refused")
    return targets


def _member_target(member, folder):
    """Where a zip member goes in ``folder``, or None for one that is skipped; raises
    SubmissionError for one that refuses the whole zip."""
    shown = printable(member.filename)[:120]
    path = PurePosixPath(member.filename.replace('\\', '/'))
    if path.is_absolute() or '..' in path.parts or re.match(r'^[A-Za-z]:', member.filename):
        raise SubmissionError(f"the zip member {shown!r} would land outside the folder: "
                              f"refused")
    if stat.S_ISLNK(member.external_attr >> 16):
        raise SubmissionError(f"the zip member {shown!r} is a link: refused")
    if member.flag_bits & 0x1:
        raise SubmissionError(f"the zip member {shown!r} is encrypted: refused (zip it "
                              f"without a password)")
    if any(len(os.fsencode(part)) > MAX_NAME_BYTES for part in path.parts):
        raise SubmissionError(f"the zip member {shown!r}... has a name longer than "
                              f"{MAX_NAME_BYTES} bytes: refused")
    if (member.is_dir() or path.suffix != '.py' or '__MACOSX' in path.parts
            or any(part.startswith('.') for part in path.parts)):
        return None
    return folder.joinpath(*path.parts)


def _extract_member(bundle, member, target, budget):
    """Copy one member, counting its bytes; return how many were written."""
    target.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with bundle.open(member) as source, open(target, 'wb') as sink:
        while chunk := source.read(65536):
            written += len(chunk)
            if written > MAX_SOURCE_BYTES or written > budget:
                raise SubmissionError(
                    f"the zip member {printable(member.filename)[:120]!r} unpacks to more "
                    f"than {min(MAX_SOURCE_BYTES, budget) // 2 ** 10} KiB: refused (a zip "
                    f"bomb, or a file over the cap?)")
            sink.write(chunk)
    return written


def _submission_folder(root):
    """The folder under ``root`` that holds most of the student's files, shallowest first."""
    candidates = [root, *(path for path in sorted(root.rglob('*')) if path.is_dir())]
    return max(candidates, key=lambda folder: (sum((folder / name).is_file()
                                                   for name in STUDENT_FILES),
                                               -len(folder.parts)))


def is_batch(path):
    """Whether ``path`` is a folder of submissions rather than one submission.

    One submission holds ``.py`` files (or nothing at all); a folder of them
    holds sub-folders or zips and no ``.py`` file of its own.
    """
    path = Path(path)
    if not path.is_dir() or any(path.glob('*.py')):
        return False
    return bool(batch_entries(path))


def batch_entries(folder):
    """The submissions in ``folder``: its sub-folders and zips, by name."""
    return [entry for entry in sorted(Path(folder).iterdir())
            if not entry.name.startswith(('.', '__'))
            and (entry.is_dir() or entry.suffix.lower() == '.zip')]


def submission_name(path, taken=()):
    """A submission's name: its folder's or zip's name without the extension, or with it
    where a folder of ``taken`` names already has that name; ``printable``."""
    path = Path(path)
    if path.suffix.lower() == '.zip' and path.stem not in taken:
        return printable(path.stem)
    return printable(path.resolve().name)


def printable(text, keep_newlines=False):
    """``text`` safe to print, write to a CSV and use as a file name: bytes that are not
    UTF-8 (a name from a Windows zip) and control characters (escape codes) become
    backslash escapes; with ``keep_newlines``, line breaks stay."""
    text = str(text).encode('utf-8', 'surrogateescape').decode('utf-8', 'backslashreplace')
    return ''.join(character if character.isprintable() or (keep_newlines and character == '\n')
                   else character.encode('unicode_escape').decode('ascii')
                   for character in text)


def printable_report(report):
    """The report with every text a student could have put in it made ``printable``."""
    report = dict(report)
    report['submission'] = printable(report.get('submission', ''))
    report['problems'] = [printable(problem) for problem in report.get('problems', [])]
    report['items'] = [{**item, **{key: printable(item[key], keep_newlines=True)
                                   for key in ('diagnosis', 'mistake') if key in item}}
                       for item in report.get('items', [])]
    return report


def spreadsheet_safe(report):
    """The report with its submission name and first problem unable to start a formula
    in a spreadsheet (an apostrophe in front, as spreadsheets themselves write it)."""
    def cell(text):
        return "'" + text if text.startswith(FORMULA_STARTS) else text
    problems = list(report.get('problems', []))
    return {**report, 'submission': cell(report['submission']),
            'problems': [cell(problems[0]), *problems[1:]] if problems else []}


def grade_path(path, year=None, rubric_path=None, limits=None, name=None):
    """Grade one submission, a folder or a zip; return its report as a JSON-ready dict,
    named ``name`` (by default ``submission_name(path)``).

    A zip that cannot be used is graded as an empty submission (0 points,
    each item naming its missing file), with the reason among its problems.
    """
    from lab.grading.grader import grade_submission  # the grader imports torch: only here
    from lab.grading.rubric import load_rubric
    rubric = load_rubric(rubric_path) if rubric_path else None
    path = Path(path)
    with tempfile.TemporaryDirectory(prefix='submission-') as scratch:
        folder, problems = path, []
        if path.is_file():
            try:
                folder = extract_zip(path, Path(scratch))
            except SubmissionError as error:
                folder, problems = Path(scratch), [str(error)]
        report = grade_submission(folder, year=year, rubric=rubric, limits=limits).to_json()
    report['submission'] = name or submission_name(path)
    report['problems'] = problems + list(report.get('problems', []))
    return printable_report(report)


_GRADING = False
"""Whether this batch worker is grading now (its SIGTERM must then kill the student code)."""


def _grade_in_worker(path, name, year, rubric_path, limits):
    """A batch's unit of work: never raises, so one submission cannot stop the batch. Stopped
    by SIGTERM, it kills the student code it runs, then ends the worker without a word."""
    global _GRADING
    started = time.monotonic()
    try:
        _GRADING = True
        return grade_path(path, year, rubric_path, limits, name)
    except Terminated:
        os._exit(143)
    except Exception as error:  # a grader bug must cost one row, not the batch
        return {'submission': name, 'year': year, 'total': 0, 'max_total': 0,
                'items': [], 'elapsed_s': time.monotonic() - started,
                'problems': [printable(f"the grader failed on this submission: "
                                       f"{type(error).__name__}: {error}")]}
    finally:
        _GRADING = False


def _start_worker():
    """SIGTERM stops a worker: while it grades, as Ctrl-C would (killing the student code);
    between submissions, at once. Ctrl-C itself reaches it blocked (see ``grade_batch``)."""
    signal.signal(signal.SIGTERM, _stop_worker)


def _stop_worker(signum, frame):
    if _GRADING:
        raise Terminated()
    os._exit(143)


def grade_batch(folder, out_dir, jobs, year=None, rubric_path=None, limits=None,
                output_format='json', progress=True):
    """Grade every submission in ``folder`` with ``jobs`` processes; write the results.

    Writes into ``out_dir``: ``grades.csv``, ``feedback/<submission>.json``
    for each submission (as soon as it is graded), ``class_summary.txt`` and
    ``class_summary.json``; after Ctrl-C or SIGTERM, those of the submissions
    graded so far. Returns the reports, in the order of the names.

    Ctrl-C from a terminal reaches the whole process group: the workers are started with
    SIGINT blocked (a blocked signal stays blocked across exec), so only this process sees
    it; it then stops the workers with SIGTERM (each kills the student code it runs) and
    writes what was graded with SIGINT blocked, so a late Ctrl-C cannot cut that short.
    """
    from tqdm import tqdm
    entries = batch_entries(folder)
    folders = {entry.name for entry in entries if entry.is_dir()}
    names = {entry: submission_name(entry, folders) for entry in entries}
    out_dir = Path(out_dir)
    (out_dir / 'feedback').mkdir(parents=True, exist_ok=True)
    reports = {}
    context = multiprocessing.get_context('spawn')  # no fork of a process holding threads
    pool = concurrent.futures.ProcessPoolExecutor(max_workers=jobs, mp_context=context,
                                                  initializer=_start_worker)
    try:
        with signals_held(signal.SIGINT):
            futures = {pool.submit(_grade_in_worker, entry, names[entry], year, rubric_path,
                                   limits): entry for entry in entries}
        for future in tqdm(concurrent.futures.as_completed(futures), total=len(futures),
                           unit='submission', disable=not progress):
            report = future.result()
            reports[futures[future]] = report
            feedback = gradescope_results(report) if output_format == 'gradescope' else report
            write_json(out_dir / 'feedback' / f"{report['submission']}.json", feedback)
        pool.shutdown()
    except BaseException:
        _stop_workers(pool)
        raise
    finally:
        with signals_held(signal.SIGINT, signal.SIGTERM):
            graded = [reports[entry] for entry in entries if entry in reports]
            write_grades_csv(out_dir / 'grades.csv', [spreadsheet_safe(report)
                                                      for report in graded])
            summary = class_summary(graded)
            write_json(out_dir / 'class_summary.json', summary)
            text = format_class_summary(summary) + '\n'
            atomic_write(out_dir / 'class_summary.txt',
                         lambda temporary: Path(temporary).write_text(text))
    return graded


def _stop_workers(pool, grace_s=1.0):
    """SIGTERM the pool's workers, SIGKILL those still there after ``grace_s``, and drop the
    pool without waiting for its queue (ProcessPoolExecutor has no public way before 3.14)."""
    processes = list(getattr(pool, '_processes', {}).values())
    manager = getattr(pool, '_executor_manager_thread', None)  # shutdown forgets it
    with contextlib.suppress(OSError):  # its wake-up pipe may already be closed (3.11)
        pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()
    deadline = time.monotonic() + grace_s
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.exitcode is None:
            process.kill()
            process.join(1.0)
    # Its manager thread ends once the workers are gone. Python 3.11's exit hook wakes every
    # such thread without a lock and can write to the pipe the thread is closing (a printed
    # traceback): this pool is taken off its list, and its thread, ending, is joined by
    # Python's own shutdown of threads.
    if manager is not None:
        manager.join(1.0)
        concurrent.futures.process._threads_wakeups.pop(manager, None)


def build_parser():
    parser = ArgumentParser(
        prog='grade.py', description="Grade the assignment's modules.py, mlp_numpy.py and "
                                     "mlp_pytorch.py, naming each mistake.")
    parser.add_argument('path', nargs='?', metavar='PATH',
                        help='a submission (a folder or a .zip), or a folder of submissions')
    parser.add_argument('--year', type=int, choices=YEARS, default=None,
                        help="the assignment's year (default: detected from the signatures)")
    parser.add_argument('--format', dest='output_format', default='text',
                        choices=('text', 'json', 'gradescope'),
                        help='text: the report to read; json: one JSON object; gradescope: '
                             'results.json in --out (default: text)')
    parser.add_argument('--jobs', type=_positive_int, default=1,
                        help='submissions graded at once, for a folder of them (default: 1)')
    parser.add_argument('--out', default=None, metavar='DIR',
                        help='where a batch writes grades.csv, feedback/ and the class '
                             'summary (default: grades/), and where gradescope writes '
                             'results.json (default: the current folder)')
    parser.add_argument('--rubric', default=None, metavar='FILE',
                        help='a rubric.toml with the items and their points (default: '
                             "the grader's own)")
    parser.add_argument('--timeout', type=float, default=Limits.wall_s, metavar='SECONDS',
                        help=f'wall-clock seconds a submission may run (default: '
                             f'{Limits.wall_s:g})')
    walls = parser.add_mutually_exclusive_group()
    walls.add_argument('--sandbox', dest='sandbox', action='store_true', default=None,
                       help='require bubblewrap (the default wherever it is installed and '
                            'works): no network, and a file system of only the Python '
                            'runtime and the submission')
    walls.add_argument('--no_sandbox', dest='sandbox', action='store_false',
                       help='run student code without bubblewrap (see docs/grading.md for '
                            'what that gives up)')
    parser.add_argument('--template', default=None, metavar='OUT',
                        help="write the student's starting files into OUT and exit")
    parser.add_argument('--no_progress', dest='progress', action='store_false',
                        help='no progress bar for a batch')
    parser.add_argument('--compare_with', action='append', default=[], metavar='DIR',
                        help='a batch also lists submissions that copy one in DIR (a folder '
                             'of submissions, or of one solution); repeatable')
    parser.add_argument('--compare', nargs=2, default=None, metavar=('OLD', 'NEW'),
                        help='print what changed between two grades.csv files and exit')
    parser.add_argument('--watch', action='store_true',
                        help='grade PATH (a folder) again each time one of its three files '
                             'is saved, printing what changed; Ctrl-C stops')
    return parser


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    sys.stdout = ReaderSafeStream(sys.stdout)  # `... | head` ends the output, not the grading
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        return run(parser, args)
    except KeyboardInterrupt:
        print('\ninterrupted: the submissions graded so far are written', file=sys.stderr)
        sys.exit(130)
    except Terminated:
        print('\nterminated: the submissions graded so far are written', file=sys.stderr)
        sys.exit(143)


class Terminated(BaseException):
    """SIGTERM arrived: stop as Ctrl-C would, with the submissions graded so far written."""


def _raise_terminated(signum, frame):
    raise Terminated()


def run(parser, args):
    """Do what the parsed command line asks."""
    if args.template is not None:
        if args.path is not None:
            parser.error('--template writes the starting files; give it no PATH')
        try:
            written = write_template(args.template)
        except (FileExistsError, OSError) as error:
            parser.error(f"--template: {error}")
        print(f"wrote {', '.join(str(path) for path in written)}: fill them in, then run "
              f"python grade.py {args.template}")
        return 0
    if args.compare is not None:
        from lab.grading.compare import GradesError, compare_grades, printable
        try:
            print('\n'.join(compare_grades(*args.compare)))
        except GradesError as error:
            parser.error(f"--compare: {printable(error)}")
        return 0
    if args.path is None:
        parser.error('give a submission (a folder or a .zip) or a folder of them, or '
                     '--template OUT')
    path = Path(args.path)
    if not path.exists():
        parser.error(f"{path} does not exist; give a submission folder, a .zip or a folder "
                     f"of submissions")
    if path.is_file() and not zipfile.is_zipfile(path):
        parser.error(f"{path} is neither a folder nor a .zip file")
    if args.rubric is not None:
        from lab.grading.rubric import RubricError, load_rubric
        try:
            load_rubric(args.rubric)
        except RubricError as error:
            parser.error(f"--rubric: {error}")
    if args.timeout <= 0:
        parser.error(f"--timeout must be more than 0 seconds, got {args.timeout:g}")
    if args.sandbox and not bubblewrap_works():
        parser.error("--sandbox needs bubblewrap (bwrap) able to make namespaces here: install "
                     "the package 'bubblewrap', or grade with --no_sandbox")
    if args.sandbox is False:
        print(NO_SANDBOX_WARNING, file=sys.stderr)
    elif os.getuid() == 0 and not bubblewrap_works():
        print(ROOT_WITHOUT_SANDBOX_WARNING, file=sys.stderr)
    limits = Limits(wall_s=args.timeout, sandbox=args.sandbox)
    for folder in args.compare_with:
        if not Path(folder).is_dir():
            parser.error(f"--compare_with {folder}: not a folder; give a folder of "
                         f"submissions or of one solution")
    if args.watch:
        if not path.is_dir() or is_batch(path):
            parser.error(f"--watch needs the folder of one submission, with its "
                         f"{', '.join(STUDENT_FILES)}")
        from lab.grading.compare import printable
        from lab.grading.watch import watch
        return watch(path, lambda folder: grade_path(folder, args.year, args.rubric, limits),
                     printable=printable)
    if is_batch(path):
        out_dir = Path(args.out or 'grades')
        reports = grade_batch(path, out_dir, args.jobs, args.year, args.rubric, limits,
                              args.output_format, args.progress)
        print(format_class_summary(class_summary(reports)))
        from lab.grading.class_report import write_class_report
        entries = batch_entries(path)
        folders = {entry.name for entry in entries if entry.is_dir()}
        try:
            page = write_class_report(out_dir, reports, {submission_name(entry, folders): entry
                                                         for entry in entries}, args.compare_with)
        except OSError as error:
            parser.exit(1, f"grade.py: {out_dir / 'class_report.html'} could not be written "
                           f"({error.strerror}); grades.csv, feedback/ and the summary "
                           f"are written\n")
        print(f"\nwrote {out_dir / 'grades.csv'}, {out_dir / 'feedback'}/, "
              f"{out_dir / 'class_summary.txt'}, {out_dir / 'class_summary.json'} and {page}")
        return 0
    report = grade_path(path, args.year, args.rubric, limits)
    if args.output_format == 'json':
        print(format_json(report))
    elif args.output_format == 'gradescope':
        out_dir = Path(args.out or '.')
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json(out_dir / 'results.json', gradescope_results(report))
        print(f"wrote {out_dir / 'results.json'}: {report['total']:g} / "
              f"{report['max_total']:g}")
    else:
        print(format_text(report))
    return 0
