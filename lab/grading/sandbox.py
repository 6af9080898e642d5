"""Running a student's code in a process of its own, with limits, and reading back only data.

The grader never imports a submission. ``StudentSession`` (and ``run_isolated``,
for a script that runs to its end) copies the submission's ``.py`` files into a
fresh run folder and runs the student-side server beside them in a new Python
process (``start_process``, the one way this module starts student code) that:

* starts with ``python -I -B`` from the copy: neither this repository nor the
  current folder is on its import path, and ``PYTHON*`` variables are ignored;
* gets a scrubbed environment (a whitelist: ``PATH``, ``HOME`` and ``TMPDIR``
  inside the run folder, one BLAS thread), no stdin, pipes for stdout and
  stderr (never the grader's own), no controlling terminal and a session of its
  own, and SIGKILL when the grader's thread that started it dies;
* when the grader runs as root, runs under a user id of its own (``StudentUser``:
  a free id of systemd's dynamic-user range, locked for the run, so two runs of a
  batch never share one), with no supplementary groups: it can neither signal,
  trace nor read the grader or another run, and its run folder is readable by that
  id alone;
* runs under resource limits: CPU seconds, address space, file size, core dumps
  off, a process count for its user id, and, where this process may make control
  groups (``RunCgroup``), the memory and the process count of all its processes
  together; as root its run folder is a tmpfs of ``Limits.disk_bytes``, so what
  it writes in all is bounded;
* is stopped, with all its descendants, after a wall-clock timeout, when it
  prints more than a cap, or when it has more processes than a cap: its control
  group, every process of its user id, and every descendant found through
  ``/proc`` (this process is a "child subreaper", so a grandchild that left the
  group is still found) are killed, until none is left.

By default, where bubblewrap (``bwrap``) is installed and works, the process also
runs in namespaces of its own: no network, its own process IDs (all of them die
with it), its own ``/dev/shm`` and ``/tmp``, and a file system holding only the
Python runtime, the system libraries and the run folder.

What comes back is the values the student's functions return, over a private
pipe, each answer checked against the wire's limits (:mod:`lab.grading.spec`);
of stdout and stderr only the tails are kept. The verdicts are computed from
those values in the grader's process, so nothing the student's code does to
its own process (patching NumPy, exiting early) can change them.
"""
import contextlib
import ctypes
import fcntl
import functools
import importlib.util
import json
import math
import os
import pwd
import resource
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

GiB, MiB = 2 ** 30, 2 ** 20
MAX_SOURCE_BYTES = MiB
"""A student's .py file larger than this is neither copied nor read (no real solution comes
close: ours are under 40 kB); the report says so."""
MAX_SOURCE_FILES = 50
TAIL_CHARACTERS = 8000
POLL_SECONDS = 0.05
PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER = 1, 36
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_BIND, MS_REC, MS_PRIVATE = 2, 4, 8, 4096, 16384, 1 << 18
MNT_DETACH, CLONE_NEWNS = 2, 0x00020000
EXIT_GRACE_SECONDS = 1.0
"""How long a student process that closed its answer pipe has to end, before it is stopped."""
RUN_MARK = 'GRADING_RUN'
"""The environment variable that marks every process of one run."""
STUDENT_UIDS = range(61184, 65520)
"""User ids for student code when the grader runs as root: systemd's range for dynamic users,
ids that no account owns. Each run locks one (``StudentUser``), so two runs of a batch never
share an id and one cannot signal, trace or read the other."""
UID_LOCK_FOLDERS = (Path('/run/grading-uids'), Path(tempfile.gettempdir()) / 'grading-uids')
"""Where the locks of the student user ids live: the first that is root's alone."""
SHARED_WRITABLE_FOLDERS = ('/dev/shm', '/tmp', '/var/tmp')
"""Folders anyone may write to: a run without bubblewrap is cleared out of them when it ends."""

_LIBC = ctypes.CDLL(None, use_errno=True)


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
        Address space (RLIMIT_AS) of each of its processes and, where a control group
        can be made, the memory of all of them together (files in its tmpfs folders and
        ``/dev/shm`` included); importing torch alone takes about 0.8 GB.
    file_bytes : int
        Largest file it may write (RLIMIT_FSIZE).
    disk_bytes : int
        Bytes its run folder may hold in all (a tmpfs of this size, as root).
    output_bytes : int
        Bytes of stdout and stderr together before it is stopped.
    max_processes : int
        Processes it may have at once before it is stopped (a fork bomb); the kernel's
        own bound, for its user id and its control group, is four times this in tasks
        (threads count).
    sandbox : bool or None
        Run it under bubblewrap: no network, its own process IDs, and a file system of
        the Python runtime and its own folder only. None (the default): wherever
        bubblewrap is installed and works.
    """
    wall_s: float = 60.0
    cpu_s: int = 120
    memory_bytes: int = 4 * GiB
    file_bytes: int = 64 * MiB
    disk_bytes: int = 256 * MiB
    output_bytes: int = 8 * MiB
    max_processes: int = 32
    sandbox: bool | None = None


class ResultsError(ValueError):
    """A results file that is not what ``probes.py`` writes."""


def bubblewrap():
    """The path of ``bwrap``, or None where bubblewrap is not installed."""
    return shutil.which('bwrap')


@functools.cache
def bubblewrap_works():
    """Whether bubblewrap is installed and can make its namespaces here, as the student's
    user would run it (a container may forbid user namespaces)."""
    if bubblewrap() is None:
        return False
    user = StudentUser.allocate() if os.getuid() == 0 else None
    try:
        command = [*sandbox_command(Path(tempfile.gettempdir())), '/bin/true']
        with signals_held(signal.SIGINT, signal.SIGTERM):  # none may land in the fork's hooks
            return subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, timeout=30,
                                  preexec_fn=_limit_resources(Limits(), None, user)
                                  ).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        if user is not None:
            user.release()


def use_sandbox(limits):
    """Whether a run with ``limits`` goes under bubblewrap; raises RuntimeError where it was
    asked for (``sandbox=True``) and cannot."""
    if limits.sandbox is None:
        return bubblewrap_works()
    if limits.sandbox and not bubblewrap_works():
        raise RuntimeError("the sandbox needs bubblewrap (bwrap) able to make user namespaces: "
                           "install the package 'bubblewrap', or grade with --no_sandbox")
    return limits.sandbox


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


# -- a user id of its own, a control group, a run folder -----------------------------------

def _process_files(name):
    """(pid, the bytes of /proc/<pid>/<name>) for every process that can be read now."""
    for entry in os.scandir('/proc'):
        if entry.name.isdigit():
            try:
                with open(f'/proc/{entry.name}/{name}', 'rb') as file:
                    yield int(entry.name), file.read()
            except OSError:
                continue


def _user_ids():
    """{pid: the set of its user ids (real, effective, saved, file system)}, from /proc."""
    users = {}
    for pid, status in _process_files('status'):
        for line in status.splitlines():
            if line.startswith(b'Uid:'):
                with contextlib.suppress(ValueError):
                    users[pid] = {int(value) for value in line.split()[1:]}
                break
    return users


def pids_of_user(uid):
    """Every process (zombies included) that runs with ``uid`` as any of its user ids."""
    return [pid for pid, uids in _user_ids().items() if uid in uids]


def _uid_lock_folder():
    """The first of ``UID_LOCK_FOLDERS`` that is a folder of root's alone (made if missing)."""
    for folder in UID_LOCK_FOLDERS:
        try:
            folder.mkdir(mode=0o700, exist_ok=True)
            info = os.lstat(folder)
        except OSError:
            continue
        if stat.S_ISDIR(info.st_mode) and info.st_uid == 0 and not info.st_mode & 0o077:
            return folder
    raise RuntimeError(f"no folder for the locks of student user ids: {UID_LOCK_FOLDERS[0]} "
                       f"must be a folder of root's alone (mode 700)")


def _has_account(uid):
    try:
        pwd.getpwuid(uid)
        return True
    except KeyError:
        return False


@dataclass
class StudentUser:
    """A user id (and the group id of the same number) for one run's processes, locked
    until ``release`` so that no other run, in this process or another, takes it.

    Only root can use one. An id is free when no account owns it, no process runs with
    it and no run holds its lock (a ``flock``, released by the kernel if the grader dies).
    """
    uid: int
    lock: int = field(repr=False)

    @classmethod
    def allocate(cls):
        folder = _uid_lock_folder()
        running = set().union(*_user_ids().values())
        first = os.getpid() % len(STUDENT_UIDS)
        for offset in range(len(STUDENT_UIDS)):
            uid = STUDENT_UIDS[(first + offset) % len(STUDENT_UIDS)]
            if uid in running or _has_account(uid):
                continue
            lock = os.open(folder / f'{uid}.lock',
                           os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(lock)
                continue
            if pids_of_user(uid):  # started between the look and the lock
                os.close(lock)
                continue
            return cls(uid, lock)
        raise RuntimeError(f"no free user id for student code in {STUDENT_UIDS.start}-"
                           f"{STUDENT_UIDS.stop - 1}: are that many runs going on?")

    def release(self):
        os.close(self.lock)


class RunCgroup:
    """A control group of one run: bounds the memory (files in tmpfs and ``/dev/shm``
    included) and the tasks of all its processes together, and kills them all at once.

    cgroup v2 where ``/sys/fs/cgroup`` is the unified hierarchy with the memory and pids
    controllers and writable; else cgroup v1's ``memory`` and ``pids`` hierarchies.
    ``create`` returns None where neither can be written (not root, or a read-only
    ``/sys/fs/cgroup``, as in most containers).
    """
    ROOT = Path('/sys/fs/cgroup')

    def __init__(self, folders, version):
        self.folders, self.version = folders, version

    @classmethod
    def create(cls, name, memory_bytes, max_tasks):
        for make in (cls._create_v2, cls._create_v1):
            try:
                group = make(name, memory_bytes, max_tasks)
            except OSError:
                continue
            if group is not None:
                return group
        return None

    @classmethod
    def _create_v2(cls, name, memory_bytes, max_tasks):
        controllers = cls.ROOT / 'cgroup.controllers'
        if not controllers.is_file() or not {'memory', 'pids'} <= set(
                controllers.read_text().split()):
            return None
        subtree = cls.ROOT / 'cgroup.subtree_control'
        if not {'memory', 'pids'} <= set(subtree.read_text().split()):
            subtree.write_text('+memory +pids')
        group = cls([cls.ROOT / name], 2)
        group.folders[0].mkdir()
        try:
            group._write('memory.max', memory_bytes)
            group._write('memory.swap.max', 0, optional=True)
            group._write('pids.max', max_tasks)
        except OSError:
            group.remove()
            raise
        return group

    @classmethod
    def _create_v1(cls, name, memory_bytes, max_tasks):
        memory, pids = cls.ROOT / 'memory', cls.ROOT / 'pids'
        if not ((memory / 'memory.limit_in_bytes').is_file()
                and (pids / 'cgroup.procs').is_file()):
            return None
        group = cls([memory / name, pids / name], 1)
        try:
            for folder in group.folders:
                folder.mkdir()
            group._write('memory.limit_in_bytes', memory_bytes)
            group._write('memory.memsw.limit_in_bytes', memory_bytes, optional=True)
            group._write('pids.max', max_tasks)
        except OSError:
            group.remove()
            raise
        return group

    @classmethod
    def remove_leftovers(cls, uid):
        """Remove the groups an earlier run of user id ``uid`` left behind (its grader was
        killed while undoing it); the caller holds the lock of ``uid``, so none is in use."""
        for hierarchy in (cls.ROOT, cls.ROOT / 'memory', cls.ROOT / 'pids'):
            for folder in hierarchy.glob(f'grading-{uid}-*'):
                cls([folder], 2 if hierarchy == cls.ROOT else 1).remove()

    def _write(self, name, value, optional=False):
        for folder in self.folders:
            if (folder / name).exists():
                (folder / name).write_text(str(value))
                return
        if not optional:
            raise FileNotFoundError(f"no {name} in the control group {self.folders[0]}")

    def join(self):
        """Move the calling process into the group (the child, before it drops root)."""
        for folder in self.folders:
            with open(folder / 'cgroup.procs', 'w') as procs:
                procs.write(str(os.getpid()))

    def pids(self):
        found = set()
        for folder in self.folders:
            try:
                found.update(int(line) for line in (folder / 'cgroup.procs').read_text().split())
            except (OSError, ValueError):
                continue
        return found

    def kill(self):
        """SIGKILL every process in the group (at once, where cgroup.kill exists)."""
        if self.version == 2 and (self.folders[0] / 'cgroup.kill').exists():
            with contextlib.suppress(OSError):
                (self.folders[0] / 'cgroup.kill').write_text('1')
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    def out_of_memory(self):
        """Whether the kernel killed a process of the group for its memory limit."""
        events = 'memory.events' if self.version == 2 else 'memory.oom_control'
        for folder in self.folders:
            with contextlib.suppress(OSError, ValueError):
                for line in (folder / events).read_text().splitlines():
                    key, _, value = line.partition(' ')
                    if key == 'oom_kill' and int(value) > 0:
                        return True
        return False

    def remove(self):
        """Kill what is left in the group and remove it."""
        for _ in range(100):
            self.kill()
            for folder in self.folders:
                with contextlib.suppress(FileNotFoundError, OSError):
                    folder.rmdir()
            if not any(folder.exists() for folder in self.folders):
                return
            time.sleep(0.02)


def _mount_tmpfs(folder, size_bytes):
    """Mount a tmpfs of ``size_bytes`` (no devices, set-uid or executables) on ``folder``;
    return whether it worked (root only)."""
    options = f'size={size_bytes},mode=0711'.encode()
    return _LIBC.mount(b'tmpfs', os.fsencode(folder), b'tmpfs',
                       MS_NOSUID | MS_NODEV | MS_NOEXEC, options) == 0


def _unmount(folder):
    _LIBC.umount2(os.fsencode(folder), MNT_DETACH)


def runtime_folders():
    """The folders of the Python runtime the student's process needs: the interpreter's and
    the installation's (its site-packages with NumPy and torch)."""
    return sorted({Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(),
                   Path(sys.executable).resolve().parent})


def _walls_in_the_way(folders):
    """[(folder, the topmost folder above it that other users cannot enter)] for each of
    ``folders`` hidden so from a user with no rights (Python installed under /root)."""
    hidden = []
    for folder in folders:
        if any(other in folder.parents for other in folders):
            continue  # comes with the folder above it
        blocked = [parent for parent in folder.parents
                   if not os.stat(parent).st_mode & stat.S_IXOTH]
        if blocked:
            hidden.append((folder, blocked[-1]))
    return hidden


def _reveal(hidden):
    """In a mount namespace of the calling process's own: cover each wall of ``hidden`` with
    an empty tmpfs and bind the folder behind it back in place (root only; the student's
    process, before it drops root, so that its user reaches the runtime and nothing else
    behind those walls)."""
    _check(_LIBC.unshare(CLONE_NEWNS))
    _check(_LIBC.mount(None, b'/', None, MS_REC | MS_PRIVATE, None))
    handles = [(folder, os.open(folder, os.O_PATH | os.O_DIRECTORY)) for folder, _ in hidden]
    for wall in sorted({wall for _, wall in hidden}, key=lambda path: len(path.parts)):
        _check(_LIBC.mount(b'tmpfs', os.fsencode(wall), b'tmpfs', MS_NOSUID | MS_NODEV,
                           b'mode=0755'))
    for folder, handle in handles:
        os.makedirs(folder, exist_ok=True)
        _check(_LIBC.mount(f'/proc/self/fd/{handle}'.encode(), os.fsencode(folder), None,
                           MS_BIND | MS_REC, None))
        os.close(handle)


def _check(result):
    if result != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))


def _remove_files_of(uid):
    """Delete what ``uid`` left in the folders anyone may write to (links are not followed)."""
    for shared in SHARED_WRITABLE_FOLDERS:
        try:
            entries = list(os.scandir(shared))
        except OSError:
            continue
        for entry in entries:
            with contextlib.suppress(OSError):
                if entry.stat(follow_symlinks=False).st_uid != uid:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    os.unlink(entry.path)


@dataclass
class RunSetup:
    """A prepared run: its folder, the copy of the script it runs, and its walls.

    Attributes
    ----------
    work_dir : Path
        The run folder: ``submission/`` (the copy, its working folder), ``runner/``
        (the script), ``home/``, ``tmp/`` and ``results/``.
    runner : Path
        The copy of the script the run executes.
    user : StudentUser or None
        The run's own user id (as root), else None: it runs as the grader's user.
    cgroup : RunCgroup or None
        The run's control group, where one could be made.
    sandboxed : bool
        Whether it runs under bubblewrap.
    mounted : bool
        Whether ``work_dir`` is a tmpfs of ``limits.disk_bytes``.
    """
    work_dir: Path
    runner: Path
    limits: Limits
    user: StudentUser | None
    cgroup: RunCgroup | None
    sandboxed: bool
    mounted: bool


@contextlib.contextmanager
def prepared_run(script, sources, limits, work_dir, runner_files=None):
    """Prepare a run of ``script`` on a copy of ``sources`` in ``work_dir``; yield its
    ``RunSetup``; on leaving, whatever happened, kill every process of the run and undo it
    all (the user id, the control group, the files it left in shared folders, the mount).
    ``runner_files`` ({name: path}) are copied beside the script (modules it imports).

    As root the run gets a user id of its own, its run folder is readable by that id alone
    (subfolders of mode 700 in a folder of mode 711), and, where the kernel allows, a tmpfs
    of ``limits.disk_bytes`` and a control group of ``limits.memory_bytes``.
    """
    work_dir = Path(work_dir)
    sandboxed = use_sandbox(limits)
    user = StudentUser.allocate() if os.getuid() == 0 else None
    cgroup, mounted = None, False
    try:
        if user is not None:
            mounted = _mount_tmpfs(work_dir, limits.disk_bytes)
            os.chmod(work_dir, 0o711)
            RunCgroup.remove_leftovers(user.uid)
            cgroup = RunCgroup.create(f'grading-{user.uid}-{os.getpid()}', limits.memory_bytes,
                                      4 * limits.max_processes)
        owner = user.uid if user is not None else os.getuid()
        for name in ('submission', 'home', 'tmp', 'results'):
            (work_dir / name).mkdir(mode=0o700, exist_ok=True)
        copy_sources(sources, work_dir / 'submission')
        for path in [*(work_dir / 'submission').iterdir(), *(work_dir / name for name in (
                'submission', 'home', 'tmp', 'results'))]:
            os.chown(path, owner, owner, follow_symlinks=False)
        (work_dir / 'runner').mkdir(mode=0o755, exist_ok=True)
        for name, path in {Path(script).name: script, **(runner_files or {})}.items():
            shutil.copyfile(path, work_dir / 'runner' / name)
            os.chmod(work_dir / 'runner' / name, 0o644)
        runner = work_dir / 'runner' / Path(script).name
        yield RunSetup(work_dir, runner, limits, user, cgroup, sandboxed, mounted)
    finally:
        with signals_held(signal.SIGINT, signal.SIGTERM):  # Ctrl-C must not leave half of it
            if cgroup is not None:
                cgroup.remove()
            if user is not None:
                _kill_user(user.uid)
                if not sandboxed:
                    _remove_files_of(user.uid)
            if mounted:
                _keep_results_and_unmount(work_dir)
            if user is not None:
                user.release()


def _keep_results_and_unmount(work_dir):
    """Unmount the run's tmpfs, keeping the plain files of ``results/`` (each at most
    ``MAX_RESULTS_BYTES``): copied out to the grader's own folder, then back in place."""
    results = work_dir / 'results'
    with tempfile.TemporaryDirectory(prefix='grading-results-') as keep:
        kept = []
        with contextlib.suppress(OSError):
            for entry in os.scandir(results):
                info = entry.stat(follow_symlinks=False)
                if stat.S_ISREG(info.st_mode) and info.st_size <= MAX_RESULTS_BYTES:
                    shutil.copyfile(entry.path, Path(keep) / entry.name, follow_symlinks=False)
                    kept.append(entry.name)
        _unmount(work_dir)
        results.mkdir(mode=0o700, exist_ok=True)
        for name in kept:
            shutil.move(Path(keep) / name, results / name)


def _kill_user(uid):
    """SIGKILL every process of ``uid`` until none is left, reaping those that are ours."""
    for _ in range(200):
        pids = pids_of_user(uid)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
        time.sleep(0.01)


def _limit_resources(limits, task_limit, user=None, cgroup=None, extra_folders=()):
    """The ``preexec_fn`` of the student's process: a session of its own (so no controlling
    terminal), its control group, rlimits, its own user id with no groups, and SIGKILL when
    the thread that started it ends.

    Where the Python runtime (or one of ``extra_folders``) lies behind a folder that other
    users cannot enter, the process gets a mount namespace of its own in which that folder
    is an empty tmpfs with only the runtime bound back in (``_reveal``).

    The parent-death signal is set last: a change of user id clears it. It follows the
    thread that calls ``Popen``: start student processes from a thread that outlives them.
    """
    parent = os.getpid()
    hidden = _walls_in_the_way([*runtime_folders(), *extra_folders]) if user else []

    def apply():
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
        os.setsid()
        if cgroup is not None:
            cgroup.join()
        if hidden:
            _reveal(hidden)
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 5))
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if user is not None:
            resource.setrlimit(resource.RLIMIT_NPROC, (4 * limits.max_processes,) * 2)
            os.setgroups([])
            os.setresgid(user.uid, user.uid, user.uid)
            os.setresuid(user.uid, user.uid, user.uid)
        elif task_limit is not None:
            resource.setrlimit(resource.RLIMIT_NPROC, (task_limit, task_limit))
        os.umask(0o077)
        if hasattr(_LIBC, 'prctl'):  # Linux; elsewhere the kill after the run is all there is
            _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the grader died before the signal was set
            os._exit(1)
    return apply


class signals_held:
    """Hold ``signals`` back in this thread (and in the processes it starts) while inside;
    one that arrived meanwhile is delivered on leaving. For work that must not be cut
    short: undoing a run, writing the outputs."""

    def __init__(self, *signals):
        self.signals = set(signals)

    def __enter__(self):
        self.previous = signal.pthread_sigmask(signal.SIG_BLOCK, self.signals)

    def __exit__(self, *exception):
        signal.pthread_sigmask(signal.SIG_SETMASK, self.previous)


def _become_subreaper():
    """Make orphaned descendants of this process its children (Linux), so none escapes."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # elsewhere the process group is the only handle on the descendants


def _parent_ids():
    """{pid: parent pid} of every process on the machine, read from /proc."""
    parents = {}
    for pid, line in _process_files('stat'):
        with contextlib.suppress(IndexError, ValueError):
            parents[pid] = int(line.rsplit(b')', 1)[1].split()[1])
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
    """SIGKILL every process of the run, until none is left: its control group and user id
    (where it has them), its process group, and every process seen in the run.

    Every process seen in the run is killed and, once it is this process's child (an
    orphan re-parented to the subreaper), reaped, even when, as a zombie, it no longer
    shows the run's mark.
    """
    for _ in range(100):
        if process.cgroup is not None:
            process.cgroup.kill()
        if process.user is not None:
            _kill_user(process.user.uid)
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


def sandbox_command(work_dir, limits=None):
    """The bubblewrap prefix: no network, own pids, and only the runtime and ``work_dir``;
    ``/tmp`` and ``/dev/shm`` are its own tmpfs of ``limits.disk_bytes`` each."""
    size = str((limits or Limits()).disk_bytes)
    command = [bubblewrap(), '--unshare-user', '--unshare-net', '--unshare-pid',
               '--unshare-ipc', '--unshare-uts', '--die-with-parent', '--new-session',
               '--ro-bind', '/usr', '/usr', '--symlink', 'usr/lib', '/lib',
               '--symlink', 'usr/lib64', '/lib64', '--symlink', 'usr/bin', '/bin',
               '--ro-bind-try', '/etc/ld.so.cache', '/etc/ld.so.cache',
               '--proc', '/proc', '--dev', '/dev', '--size', size, '--tmpfs', '/dev/shm',
               '--size', size, '--tmpfs', '/tmp']
    for folder in runtime_folders():
        command += ['--ro-bind', str(folder), str(folder)]
    return command + ['--bind', str(work_dir), str(work_dir)]


def start_process(setup, arguments, pass_fds=(), hidden_folders=()):
    """Start ``python -I -B`` on the run's script with ``arguments``, behind every wall of
    ``setup``: the one way student code is started.

    Its stdin is nothing and its stdout and stderr are pipes (never this process's own);
    ``pass_fds`` are more file descriptors it keeps (the pipes of a protocol). Under
    bubblewrap each of ``hidden_folders`` is an empty folder.

    Returns the ``Popen``, with ``run_mark``, ``seen``, ``user`` and ``cgroup`` set for
    ``_kill_all``.
    """
    work_dir, limits = setup.work_dir, setup.limits
    command = [sys.executable, '-I', '-B', str(setup.runner), *map(str, arguments)]
    if setup.sandboxed:
        hidden = [argument for folder in hidden_folders for argument in ('--tmpfs', str(folder))]
        command = [*sandbox_command(work_dir, limits), *hidden, '--chdir',
                   str(work_dir / 'submission'), *command]
    task_limit = None if setup.user is not None else (
        _user_task_count() + 4 * limits.max_processes)
    _become_subreaper()
    run_mark, process = f'{os.getpid()}-{time.monotonic_ns()}', None
    try:
        with signals_held(signal.SIGINT, signal.SIGTERM):  # none may land in the fork's hooks
            process = subprocess.Popen(
                command, cwd=work_dir / 'submission', stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=pass_fds,
                env=scrubbed_environment(work_dir, run_mark),
                preexec_fn=_limit_resources(limits, task_limit, setup.user, setup.cgroup,
                                            [work_dir.resolve()]))
            process.run_mark, process.seen = run_mark, {}
            process.user, process.cgroup = setup.user, setup.cgroup
    except BaseException:  # Ctrl-C or SIGTERM held during the start lands here, on leaving
        if process is not None:
            _kill_all(process)
        raise
    return process


def run_isolated(script, arguments, sources, limits, work_dir):
    """Run ``script`` with ``arguments`` on a copy of ``sources`` in ``work_dir``.

    ``work_dir`` receives ``submission/`` (the copy, and the process's working
    folder), ``runner/`` (the script), ``home/``, ``tmp/`` and ``results/``; of what the
    run writes, only the plain files of ``results/`` stay after it.

    Returns
    -------
    dict with ``returncode``, ``timed_out``, ``stdout_tail``, ``stderr_tail``,
    ``elapsed_s``, ``problem`` (one line, or None) and ``out_of_memory``.
    """
    with prepared_run(script, sources, limits, work_dir) as setup:
        started = time.monotonic()
        process = start_process(setup, arguments)
        try:
            _ACTIVE_RUNS.add(process.pid)
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
    out_of_memory = process.cgroup is not None and process.cgroup.out_of_memory()
    if problem is None:
        problem = ended_problem(returncode, readers[1].text(), limits, process.cgroup)
    return dict(returncode=returncode, timed_out=timed_out, stdout_tail=readers[0].text(),
                stderr_tail=readers[1].text(), elapsed_s=elapsed, problem=problem,
                out_of_memory=out_of_memory)


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


def ended_problem(returncode, stderr, limits, cgroup=None):
    """One line for a process that ended by itself but not well, None for a clean exit:
    decided from its exit status and the kernel's records, never from its text alone (a
    process that prints "MemoryError" and exits 0 did not run out of memory)."""
    if cgroup is not None and cgroup.out_of_memory():
        return (f"ran out of memory: its processes together may use "
                f"{limits.memory_bytes / GiB:g} GiB: stopped")
    if returncode not in (0, None) and _ends_with_memory_error(stderr):
        return (f"ran out of memory: the limit is {limits.memory_bytes / GiB:g} GiB of "
                f"address space")
    return _exit_problem(returncode, limits)


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


def _ends_with_memory_error(stderr):
    """Whether a traceback's last line is an uncaught MemoryError (an allocation refused by
    the address-space limit); text alone never decides it, the exit status comes first."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    return bool(lines) and lines[-1].startswith('MemoryError')


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
        self.run = contextlib.ExitStack()  # the run's walls, undone by ``stop``
        hidden = []
        torch_spec = importlib.util.find_spec('torch') if numpy_only else None
        if torch_spec is not None:
            hidden = list(torch_spec.submodule_search_locations or [])
        try:
            self.setup = self.run.enter_context(prepared_run(
                SERVER_SCRIPT, sources, limits, self.work_dir,
                runner_files={'grading_spec.py': SPEC_MODULE}))
            request_read, self.request_fd = os.pipe()
            self.answer_fd, answer_write = os.pipe()
            arguments = [request_read, answer_write, self.work_dir / 'submission',
                         *(['--numpy-only'] if numpy_only else [])]
            try:
                self.process = start_process(self.setup, arguments,
                                             pass_fds=(request_read, answer_write),
                                             hidden_folders=hidden)
            finally:
                os.close(request_read)
                os.close(answer_write)
            _ACTIVE_RUNS.add(self.process.pid)
            self.counter = ByteCounter()
            self.readers = [BoundedReader(self.process.stdout, self.counter),
                            BoundedReader(self.process.stderr, self.counter)]
            for reader in self.readers:
                reader.start()
            self.stopped = threading.Event()
            self.watcher = threading.Thread(target=self._watch, daemon=True)
            self.watcher.start()
        except BaseException:  # Ctrl-C or SIGTERM while it starts: nothing may outlive it
            if getattr(self, 'process', None) is not None:
                _kill_all(self.process)
                _ACTIVE_RUNS.discard(self.process.pid)
            self.run.close()
            shutil.rmtree(self.work_dir, ignore_errors=True)
            raise

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
                self._end(f"ran one call past its time budget of {seconds:g} s and ignored "
                          f"the alarm: stopped (an infinite loop?)")
        except self.spec.WireError as error:
            if self.problem is None and not self._exits_within(EXIT_GRACE_SECONDS):
                self._end(f"sent answers that could not be read: {error}")
        raise SessionEnded(self.why_ended())

    def _exits_within(self, seconds):
        """Whether the process ends within ``seconds``: one that closed its pipe as it exited
        (under bubblewrap its exit reaches this process a moment later) is not a forger."""
        try:
            self.process.wait(timeout=seconds)
            return True
        except subprocess.TimeoutExpired:
            return False

    def why_ended(self):
        """One line: why the process no longer answers."""
        if self.problem:
            return self.problem
        self.process.wait(timeout=5)
        returncode = self.process.returncode
        return ended_problem(returncode, self.readers[1].text(), self.limits,
                             self.setup.cgroup) or (
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
            self.run.close()
            shutil.rmtree(self.work_dir, ignore_errors=True)
