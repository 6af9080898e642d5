"""Running a student's code in a process of its own, with limits, and reading back only data.

The grader never imports a submission. ``StudentSession`` (and ``run_isolated``,
for a script that runs to its end) copies the submission's ``.py`` files into a
fresh temporary folder and runs the student-side server beside them in a new
Python process that:

* starts with ``python -I -B`` from the copy: neither this repository nor the
  current folder is on its import path, and ``PYTHON*`` variables are ignored;
* gets a scrubbed environment (a whitelist: ``PATH``, ``HOME`` and ``TMPDIR``
  inside the temporary folder, one BLAS thread) and no stdin;
* runs under resource limits: CPU seconds, address space, file size, core
  dumps off, and (for a user other than root, who is exempt) a process count;
* is stopped, with all its descendants, after a wall-clock timeout, when it
  prints more than a cap, or when it has more processes than a cap. The
  descendants are found through ``/proc``; this process is made a "child
  subreaper", so a grandchild whose parent died (or which left the process
  group with ``setsid``) is still ours to find and kill.

With ``Limits(sandbox=True)`` and bubblewrap (``bwrap``) installed, the process
also runs in namespaces of its own: no network, its own process IDs (all of
them die with it), and a file system holding only the Python runtime, the
system libraries and the temporary folder.

What comes back is the values the student's functions return, over a private
pipe, each answer checked against the wire's limits (:mod:`lab.grading.spec`);
of stdout and stderr only the tails are kept. The verdicts are computed from
those values in the grader's process, so nothing the student's code does to
its own process (patching NumPy, exiting early) can change them.
"""
import contextlib
import ctypes
import importlib.util
import json
import math
import os
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

GiB, MiB = 2 ** 30, 2 ** 20
MAX_SOURCE_BYTES = 2 * MiB
"""A student's .py file larger than this is not copied (no real solution comes close)."""
MAX_SOURCE_FILES = 50
TAIL_CHARACTERS = 8000
POLL_SECONDS = 0.05
PR_SET_CHILD_SUBREAPER = 36
RUN_MARK = 'GRADING_RUN'
"""The environment variable that marks every process of one run."""


@dataclass(frozen=True)
class Limits:
    """What one run of a submission may use.

    Attributes
    ----------
    wall_s : float
        Wall-clock seconds before the run is stopped.
    cpu_s : int
        CPU seconds (RLIMIT_CPU) of each of its processes.
    memory_bytes : int
        Address space (RLIMIT_AS) of each of its processes; importing torch
        alone takes about 0.8 GB.
    file_bytes : int
        Largest file it may write (RLIMIT_FSIZE).
    output_bytes : int
        Bytes of stdout and stderr together before it is stopped.
    max_processes : int
        Processes it may have at once before it is stopped (a fork bomb).
    sandbox : bool
        Run it under bubblewrap: no network, its own process IDs, and a file
        system of the Python runtime and its own folder only.
    """
    wall_s: float = 60.0
    cpu_s: int = 120
    memory_bytes: int = 4 * GiB
    file_bytes: int = 64 * MiB
    output_bytes: int = 8 * MiB
    max_processes: int = 32
    sandbox: bool = False


class ResultsError(ValueError):
    """A results file that is not what ``probes.py`` writes."""


def bubblewrap():
    """The path of ``bwrap``, or None where bubblewrap is not installed."""
    return shutil.which('bwrap')


def copy_sources(submission_dir, destination):
    """Copy the submission's top-level ``*.py`` files into ``destination``; return their names.

    Symbolic links are skipped (one could point at another student's folder
    or a system file), and so are files over ``MAX_SOURCE_BYTES``; the
    original folder is only read.
    """
    copied = []
    for path in sorted(Path(submission_dir).glob('*.py')):
        if len(copied) == MAX_SOURCE_FILES:
            break
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_SOURCE_BYTES:
            continue
        shutil.copyfile(path, destination / path.name, follow_symlinks=False)
        copied.append(path.name)
    return copied


def scrubbed_environment(work_dir, run_mark=''):
    """The whole environment of the student's process: a whitelist, nothing inherited."""
    return {
        RUN_MARK: run_mark,
        'PATH': '/usr/bin:/bin',
        'HOME': str(work_dir / 'home'),
        'TMPDIR': str(work_dir / 'tmp'),
        'LANG': 'C.UTF-8',
        'LC_ALL': 'C.UTF-8',
        'OMP_NUM_THREADS': '1',
        'OPENBLAS_NUM_THREADS': '1',
        'MKL_NUM_THREADS': '1',
        'MPLBACKEND': 'Agg',
    }


def _user_task_count():
    """How many processes and threads this user runs now (what RLIMIT_NPROC counts)."""
    uid, count = os.getuid(), 0
    for entry in os.scandir('/proc'):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    count += len(os.listdir(f'/proc/{entry.name}/task'))
            except OSError:
                continue
    return count


def _limit_resources(limits, task_limit):
    """The ``preexec_fn`` of the student's process: a session of its own, and rlimits."""
    def apply():
        os.setsid()
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 5))
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if task_limit is not None:
            resource.setrlimit(resource.RLIMIT_NPROC, (task_limit, task_limit))
    return apply


def _become_subreaper():
    """Make orphaned descendants of this process its children (Linux), so none escapes."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # elsewhere the process group is the only handle on the descendants


def _parent_ids():
    """{pid: parent pid} of every process on the machine, read from /proc."""
    parents = {}
    for entry in os.scandir('/proc'):
        if not entry.name.isdigit():
            continue
        try:
            with open(f'/proc/{entry.name}/stat', 'rb') as stat:
                fields = stat.read().rsplit(b')', 1)[1].split()
            parents[int(entry.name)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue
    return parents


def descendants(root_pid, parents=None):
    """The pids of every living descendant of ``root_pid`` (itself excluded)."""
    parents = _parent_ids() if parents is None else parents
    children = {}
    for pid, parent in parents.items():
        children.setdefault(parent, []).append(pid)
    found, todo = [], list(children.get(root_pid, []))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


_ACTIVE_RUNS = set()
"""Pids of the student processes this process is running now (one per thread)."""


def _run_tree(process):
    """Every living process of a run: the descendants of its first process, and the orphans
    re-parented to this process (the subreaper) that carry the run's mark, with theirs."""
    parents = _parent_ids()
    tree = descendants(process.pid, parents)
    for pid, parent in parents.items():
        if parent == os.getpid() and pid not in _ACTIVE_RUNS and _is_of_run(pid, process):
            tree += [pid, *descendants(pid, parents)]
    return tree


def _is_of_run(pid, process):
    """Whether ``pid`` was started by the run of ``process``: in its session, or with its mark
    in the environment it started with (a child that left the session keeps that)."""
    try:
        with open(f'/proc/{pid}/stat', 'rb') as stat:
            session = int(stat.read().rsplit(b')', 1)[1].split()[3])
        if session == process.pid:
            return True
        with open(f'/proc/{pid}/environ', 'rb') as environ:
            return f'{RUN_MARK}={process.run_mark}'.encode() in environ.read().split(b'\0')
    except (OSError, IndexError, ValueError):
        return False


def _start_time(pid):
    """When ``pid`` started (clock ticks since boot), or None if it is gone: a pid and its
    start time name one process, even after the pid is reused."""
    try:
        with open(f'/proc/{pid}/stat', 'rb') as stat:
            return int(stat.read().rsplit(b')', 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _remember(process, pids):
    """Add ``pids`` to the processes seen in the run, with their start times."""
    for pid in pids:
        if pid not in process.seen:
            process.seen[pid] = _start_time(pid)


def _orphaned_bubblewraps():
    """Reap the dead bubblewrap processes re-parented to this one (the subreaper); return the
    pids of those still alive.

    bubblewrap's inner process can end after a short run's last look at its tree, and as a
    zombie it no longer shows whose run it was. This process starts bubblewrap for runs only,
    so a bubblewrap child that is not a run's own first process is a run's leftover.
    """
    alive = []
    for pid, parent in _parent_ids().items():
        if parent != os.getpid() or pid in _ACTIVE_RUNS:
            continue
        try:
            with open(f'/proc/{pid}/stat', 'rb') as stat:
                text = stat.read()
        except OSError:
            continue
        name = text[text.index(b'(') + 1:text.rindex(b')')]
        state = text.rsplit(b')', 1)[1].split()[0]
        if name != b'bwrap':
            continue
        if state == b'Z':
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
        else:
            alive.append(pid)
    return alive


def _kill_all(process):
    """SIGKILL the student's process group and every process of the run, until none is left.

    Every process seen in the run is killed and, once it is this process's child (an
    orphan re-parented to the subreaper), reaped, even when, as a zombie, it no longer
    shows the run's mark.
    """
    for _ in range(100):
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        _remember(process, _run_tree(process))
        alive = [pid for pid, started in process.seen.items()
                 if started is not None and _start_time(pid) == started]
        for pid in alive:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        waiting = False
        for pid in alive:
            try:
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    process.seen[pid] = None
                else:
                    waiting = True
            except ChildProcessError:
                waiting = True  # its parent, also killed, is about to hand it to us
        if process.poll() is not None and not waiting and not _orphaned_bubblewraps():
            return
        time.sleep(0.02)


class BoundedReader(threading.Thread):
    """Reads a pipe to its end, keeping only the last characters and counting the bytes."""

    def __init__(self, pipe, counter):
        super().__init__(daemon=True)
        self.pipe, self.counter = pipe, counter
        self.tail = deque(maxlen=TAIL_CHARACTERS)

    def run(self):
        while chunk := self.pipe.read1(65536):
            self.counter.add(len(chunk))
            self.tail.extend(chunk.decode('utf-8', errors='replace')[-TAIL_CHARACTERS:])

    def text(self):
        return ''.join(self.tail)


class ByteCounter:
    """Bytes read from both pipes together, shared by their readers."""

    def __init__(self):
        self.total, self.lock = 0, threading.Lock()

    def add(self, count):
        with self.lock:
            self.total += count


def sandbox_command(work_dir):
    """The bubblewrap prefix: no network, own pids, and only the runtime and ``work_dir``."""
    runtime = {Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(),
               Path(sys.executable).resolve().parent}
    command = [bubblewrap(), '--unshare-net', '--unshare-pid', '--unshare-ipc',
               '--unshare-uts', '--die-with-parent', '--new-session',
               '--ro-bind', '/usr', '/usr', '--symlink', 'usr/lib', '/lib',
               '--symlink', 'usr/lib64', '/lib64', '--symlink', 'usr/bin', '/bin',
               '--ro-bind-try', '/etc/ld.so.cache', '/etc/ld.so.cache',
               '--proc', '/proc', '--dev', '/dev', '--tmpfs', '/tmp']
    for folder in sorted(runtime):
        command += ['--ro-bind', str(folder), str(folder)]
    return command + ['--bind', str(work_dir), str(work_dir)]


def run_isolated(script, arguments, sources, limits, work_dir):
    """Run ``script`` with ``arguments`` on a copy of ``sources`` in ``work_dir``.

    ``work_dir`` receives ``submission/`` (the copy, and the process's working
    folder), ``runner/`` (the script), ``home/`` and ``tmp/``.

    Returns
    -------
    dict with ``returncode``, ``timed_out``, ``stdout_tail``, ``stderr_tail``,
    ``elapsed_s`` and ``problem`` (one line, or None).
    """
    work_dir = Path(work_dir)
    for name in ('submission', 'runner', 'home', 'tmp', 'results'):
        (work_dir / name).mkdir(mode=0o700, exist_ok=True)
    copy_sources(sources, work_dir / 'submission')
    runner = work_dir / 'runner' / Path(script).name
    shutil.copyfile(script, runner)
    command = [sys.executable, '-I', '-B', str(runner), *map(str, arguments)]
    if limits.sandbox:
        if bubblewrap() is None:
            raise RuntimeError("--sandbox needs bubblewrap: install the package 'bubblewrap' "
                               "(bwrap), or grade without --sandbox")
        command = [*sandbox_command(work_dir), '--chdir', str(work_dir / 'submission'),
                   *command]
    task_limit = None if os.getuid() == 0 else _user_task_count() + 4 * limits.max_processes
    _become_subreaper()
    started = time.monotonic()
    run_mark = f'{os.getpid()}-{time.monotonic_ns()}'
    process = subprocess.Popen(command, cwd=work_dir / 'submission', stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=scrubbed_environment(work_dir, run_mark),
                               preexec_fn=_limit_resources(limits, task_limit))
    process.run_mark, process.seen = run_mark, {}
    _ACTIVE_RUNS.add(process.pid)
    try:
        return _supervise(process, limits, started)
    except BaseException:  # Ctrl-C or SIGTERM while it runs: it must not outlive us
        _kill_all(process)
        raise
    finally:
        _ACTIVE_RUNS.discard(process.pid)


def _supervise(process, limits, started):
    """Read the process's output, stop it at a limit, and kill whatever it leaves behind."""
    counter = ByteCounter()
    readers = [BoundedReader(process.stdout, counter), BoundedReader(process.stderr, counter)]
    for reader in readers:
        reader.start()
    problem, timed_out = _watch(process, counter, limits, started)
    _kill_all(process)
    for reader in readers:
        reader.join(timeout=5)
    elapsed = time.monotonic() - started
    returncode = process.returncode
    if problem is None:
        problem = _exit_problem(returncode, limits)
    return dict(returncode=returncode, timed_out=timed_out, stdout_tail=readers[0].text(),
                stderr_tail=readers[1].text(), elapsed_s=elapsed, problem=problem)


def _watch(process, counter, limits, started):
    """Wait for the process; stop it at a limit. Returns (problem line or None, timed out)."""
    # A tree of processes is counted less often than the clock is read: it reads /proc.
    next_count = started
    while process.poll() is None:
        now = time.monotonic()
        if now - started > limits.wall_s:
            return (f"stopped after {limits.wall_s:g} s of wall-clock time (an endless loop, "
                    f"or code far too slow?)"), True
        if counter.total > limits.output_bytes:
            return (f"printed more than {limits.output_bytes / MiB:g} MiB, the limit: "
                    f"stopped (print less, or not in a loop)"), False
        if now >= next_count:
            next_count = now + 0.2
            tree = _run_tree(process)
            _remember(process, tree)
            running = len(tree) + 1
            if running > limits.max_processes:
                return (f"started more than {limits.max_processes} processes at once "
                        f"(a fork bomb?): stopped"), False
        time.sleep(POLL_SECONDS)
    return None, False


def _exit_problem(returncode, limits):
    """One line for a process that ended by itself but not well; None for a clean exit."""
    if returncode == -signal.SIGXCPU:
        return f"used more than {limits.cpu_s} s of CPU time, the limit: stopped"
    if returncode == -signal.SIGXFSZ:
        return (f"wrote a file larger than {limits.file_bytes / MiB:g} MiB, the limit: "
                f"stopped")
    if returncode is not None and returncode < 0:
        return f"killed by signal {signal.Signals(-returncode).name}"
    return None


MAX_RESULTS_BYTES = 256 * MiB
MAX_RESULT_ARRAYS = 5000
MAX_META_CHARACTERS = 4 * MiB


def load_results(path):
    """Read a results file of ``probes.py`` as plain data, trusting nothing in it.

    Returns
    -------
    arrays : dict of str to ndarray
        Every array but ``__meta__``: numbers or booleans only.
    meta : dict
        ``__meta__``, a JSON object.

    Raises
    ------
    ResultsError
        For a file that is too large, not an ``.npz`` without pickles, holds too
        many arrays or arrays of another kind, or whose ``__meta__`` is not a
        JSON object.
    """
    path = Path(path)
    if path.is_symlink() or not path.is_file():
        raise ResultsError(f"the results file {path.name} is missing or not a plain file")
    if path.stat().st_size > MAX_RESULTS_BYTES:
        raise ResultsError(f"the results file is larger than {MAX_RESULTS_BYTES // MiB} MiB")
    _check_array_sizes(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            if len(archive.files) > MAX_RESULT_ARRAYS:
                raise ResultsError(f"the results file holds {len(archive.files)} arrays, "
                                   f"more than {MAX_RESULT_ARRAYS}")
            arrays = {name: archive[name] for name in archive.files}
    except ResultsError:
        raise
    except Exception as error:  # a damaged or forged file: say so, whatever it was
        raise ResultsError(f"the results file cannot be read as a NumPy .npz without "
                           f"pickles: {type(error).__name__}: {error}") from None
    meta = _meta_of(arrays.pop('__meta__', None))
    for name, value in arrays.items():
        if value.dtype.kind not in 'biuf':
            raise ResultsError(f"result {name!r} holds {value.dtype} values, not numbers")
    return arrays, meta


def _check_array_sizes(path):
    """Refuse an archive whose arrays would unpack to more than ``MAX_RESULTS_BYTES``.

    Each array's header (shape and dtype) is read before any array is, so a
    compressed archive that claims a huge array is refused without allocating it.
    """
    total = 0
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            if len(members) > MAX_RESULT_ARRAYS + 1:
                raise ResultsError(f"the results file holds {len(members)} arrays, more "
                                   f"than {MAX_RESULT_ARRAYS}")
            for member in members:
                with archive.open(member) as stream:
                    version = np.lib.format.read_magic(stream)
                    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                   else np.lib.format.read_array_header_2_0)
                    shape, _, dtype = read_header(stream)
                total += dtype.itemsize * math.prod(shape)
                if total > MAX_RESULTS_BYTES:
                    raise ResultsError(f"the results file unpacks to more than "
                                       f"{MAX_RESULTS_BYTES // MiB} MiB")
    except ResultsError:
        raise
    except Exception as error:  # a damaged or forged file: say so, whatever it was
        raise ResultsError(f"the results file cannot be read as a NumPy .npz without "
                           f"pickles: {type(error).__name__}: {error}") from None


def _meta_of(value):
    """The ``__meta__`` entry as a dict, from a 0-d string array."""
    if value is None:
        return {}
    if value.dtype.kind != 'U' or value.ndim != 0 or len(str(value)) > MAX_META_CHARACTERS:
        raise ResultsError("__meta__ is not one JSON string of a sensible size")
    try:
        meta = json.loads(str(value), parse_constant=lambda name: None)
    except ValueError as error:
        raise ResultsError(f"__meta__ is not valid JSON: {error}") from None
    if not isinstance(meta, dict):
        raise ResultsError(f"__meta__ is a JSON {type(meta).__name__}, not an object")
    return meta


# -- a live student process that answers calls -----------------------------------------------

SERVER_SCRIPT = Path(__file__).with_name('student_server.py')
SPEC_MODULE = Path(__file__).with_name('spec.py')


class SessionEnded(RuntimeError):
    """The student's process is gone or was stopped; the message says why, in one line."""


class StudentSession:
    """The student's process, started like ``run_isolated``'s, answering calls over a pipe.

    The requests go through a private pipe and the answers come back through another
    (the process's stdout and stderr are only counted and kept as tails, as in
    ``run_isolated``). A watcher thread stops the process at the wall-clock deadline,
    at the output cap or at the process cap; ``stop`` kills it and everything it started.

    Parameters
    ----------
    sources : Path
        The submission's folder (only read: its ``.py`` files are copied).
    limits : Limits
    deadline : float
        ``time.monotonic()`` at which the run of the whole submission must end.
    numpy_only : bool
        Start the NumPy process: PyTorch cannot be imported in it (under bubblewrap
        its folder is not even there).
    """

    def __init__(self, sources, limits, deadline, numpy_only):
        from lab.grading import spec
        self.spec, self.limits, self.deadline = spec, limits, deadline
        self.work_dir = Path(tempfile.mkdtemp(prefix='grading-'))
        self.problem = None
        for name in ('submission', 'runner', 'home', 'tmp'):
            (self.work_dir / name).mkdir(mode=0o700)
        copy_sources(sources, self.work_dir / 'submission')
        runner = self.work_dir / 'runner'
        shutil.copyfile(SERVER_SCRIPT, runner / 'student_server.py')
        shutil.copyfile(SPEC_MODULE, runner / 'grading_spec.py')
        request_read, self.request_fd = os.pipe()
        self.answer_fd, answer_write = os.pipe()
        command = [sys.executable, '-I', '-B', str(runner / 'student_server.py'),
                   str(request_read), str(answer_write), str(self.work_dir / 'submission')]
        if numpy_only:
            command.append('--numpy-only')
        if limits.sandbox:
            if bubblewrap() is None:
                raise RuntimeError("--sandbox needs bubblewrap: install the package "
                                   "'bubblewrap' (bwrap), or grade without --sandbox")
            hidden = []
            torch_spec = importlib.util.find_spec('torch') if numpy_only else None
            for folder in (torch_spec.submodule_search_locations or []) if torch_spec else []:
                hidden += ['--tmpfs', folder]
            command = [*sandbox_command(self.work_dir), *hidden, '--chdir',
                       str(self.work_dir / 'submission'), *command]
        task_limit = None if os.getuid() == 0 else _user_task_count() + 4 * limits.max_processes
        _become_subreaper()
        run_mark = f'{os.getpid()}-{time.monotonic_ns()}'
        limit = _limit_resources(limits, task_limit)
        # Ctrl-C or SIGTERM while Popen waits for the exec would leave a process no one
        # holds: they wait until it is held, then arrive inside the try below.
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})

        def preexec():
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
            limit()
        try:
            self.process = subprocess.Popen(
                command, cwd=self.work_dir / 'submission', stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                pass_fds=(request_read, answer_write),
                env=scrubbed_environment(self.work_dir, run_mark), preexec_fn=preexec)
            self.process.run_mark, self.process.seen = run_mark, {}
        except BaseException:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
            raise
        try:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
            self._supervise(run_mark, request_read, answer_write)
        except BaseException:  # Ctrl-C or SIGTERM as it starts: it must not outlive us
            _kill_all(self.process)
            raise

    def _supervise(self, run_mark, request_read, answer_write):
        os.close(request_read)
        os.close(answer_write)
        self.process.run_mark, self.process.seen = run_mark, {}
        _ACTIVE_RUNS.add(self.process.pid)
        self.counter = ByteCounter()
        self.readers = [BoundedReader(self.process.stdout, self.counter),
                        BoundedReader(self.process.stderr, self.counter)]
        for reader in self.readers:
            reader.start()
        self.stopped = threading.Event()
        self.watcher = threading.Thread(target=self._watch, daemon=True)
        self.watcher.start()

    def _watch(self):
        next_count = 0.0
        while not self.stopped.wait(POLL_SECONDS):
            if self.process.poll() is not None:
                return
            now = time.monotonic()
            if now > self.deadline:
                self._end(f"stopped after {self.limits.wall_s:g} s of wall-clock time (an "
                          f"endless loop, or code far too slow?)")
            elif self.counter.total > self.limits.output_bytes:
                self._end(f"printed more than {self.limits.output_bytes / MiB:g} MiB, the "
                          f"limit: stopped (print less, or not in a loop)")
            elif now >= next_count:
                next_count = now + 0.2
                tree = _run_tree(self.process)
                _remember(self.process, tree)
                if len(tree) + 1 > self.limits.max_processes:
                    self._end(f"started more than {self.limits.max_processes} processes at "
                              f"once (a fork bomb?): stopped")

    def _end(self, problem):
        if self.problem is None:
            self.problem = problem
        _kill_all(self.process)

    @property
    def alive(self):
        return self.problem is None and self.process.poll() is None

    def call(self, op, seconds, **args):
        """Send one request; return the answer's value (the wire's checks passed).

        Raises
        ------
        SessionEnded
            The process was stopped, died, broke the protocol, or did not answer within
            ``seconds`` plus a grace (it is then stopped): the message says which.
        """
        if not self.alive:
            raise SessionEnded(self.why_ended())
        header, blobs = self.spec.pack({'op': op, 'seconds': seconds, 'args': args})
        try:
            for part in (header, *blobs):
                view = memoryview(part)
                while view:
                    view = view[os.write(self.request_fd, view):]
        except OSError:
            self._end(None)
            raise SessionEnded(self.why_ended()) from None
        until = min(time.monotonic() + seconds + self.spec.GRACE_SECONDS, self.deadline + 1)

        def read(count):
            while True:
                left = until - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                ready, _, _ = select.select([self.answer_fd], [], [], min(left, 0.5))
                if ready:
                    return os.read(self.answer_fd, count)
                if self.process.poll() is not None or self.problem is not None:
                    return b''
        try:
            return self.spec.unpack(read)
        except TimeoutError:
            if time.monotonic() >= self.deadline:
                self._end(f"stopped after {self.limits.wall_s:g} s of wall-clock time (an "
                          f"endless loop, or code far too slow?)")
            else:
                self._end(f"a call ran past its time budget of {seconds:g} s and ignored "
                          f"the alarm: stopped (an infinite loop?)")
        except self.spec.WireError as error:
            if self.process.poll() is None and self.problem is None:
                self._end(f"its answers could not be read: {error}")
        raise SessionEnded(self.why_ended())

    def why_ended(self):
        """One line: why the process no longer answers."""
        if self.problem:
            return self.problem
        self.process.wait(timeout=5)
        returncode = self.process.returncode
        stderr = self.readers[1].text()
        if 'MemoryError' in stderr:
            return f"ran out of memory: the limit is {self.limits.memory_bytes / GiB:g} GiB"
        return _exit_problem(returncode, self.limits) or (
            f"the process ended (exit code {returncode}) without answering: does the code "
            f"call sys.exit or os._exit when it is imported?")

    def stop(self):
        """Kill the process and all it started; remove its folder."""
        self.stopped.set()
        try:
            _kill_all(self.process)
        finally:
            _ACTIVE_RUNS.discard(self.process.pid)
            for fd in (self.request_fd, self.answer_fd):
                with contextlib.suppress(OSError):
                    os.close(fd)
            for reader in self.readers:
                reader.join(timeout=5)
            shutil.rmtree(self.work_dir, ignore_errors=True)
