"""The walls between student code, the grader, other students and the person grading.

Each test runs a small hostile script through ``run_isolated`` from a "grader" of its own
(a short Python process, ``GRADER``), so that an attack that works kills or stops that
process, not pytest, and so that its stdout, stdin and environment are the grader's to
attack. The script gets the grader's pid as its first argument (under bubblewrap it could
not even find it). Run as root, as an autograder runs; without root the user-id walls
do not exist and those tests are skipped.
"""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import REPO
from lab.grading.sandbox import (STUDENT_UIDS, Limits, RunCgroup, StudentUser,
                                 bubblewrap_works, ended_problem, pids_of_user, run_isolated)

AS_ROOT = pytest.mark.skipif(os.getuid() != 0, reason='a user id of its own needs root')
MODES = [pytest.param(False, id='no_sandbox'),
         pytest.param(True, id='sandbox', marks=pytest.mark.skipif(
             not bubblewrap_works(), reason='bubblewrap cannot make namespaces here'))]

GRADER = textwrap.dedent("""\
    import json, os, sys, tempfile
    from pathlib import Path
    sys.path.insert(0, {repo!r})
    from lab.grading.sandbox import Limits, run_isolated
    script, sandbox, limits = sys.argv[1], sys.argv[2] == 'True', json.loads(sys.argv[3])
    work = Path(tempfile.mkdtemp(prefix='grader-test-'))
    outcome = run_isolated(script, [os.getpid()], Path(script).parent / 'sources',
                           Limits(sandbox=sandbox, **limits), work)
    print('OUTCOME', json.dumps(outcome))
    """)


def run_grader(tmp_path, student, sandbox, stdin=subprocess.DEVNULL, timeout=60, **limits):
    """Run ``student`` (a script's text) through a grader process of its own; return
    (the grader's CompletedProcess, the run's outcome or None)."""
    (tmp_path / 'sources').mkdir(exist_ok=True)
    script = tmp_path / 'student.py'
    script.write_text(textwrap.dedent(student))
    grader = tmp_path / 'grader.py'
    grader.write_text(GRADER.format(repo=str(REPO)))
    result = subprocess.run([sys.executable, str(grader), str(script), str(sandbox),
                             json.dumps({'wall_s': 20, **limits})],
                            stdin=stdin, capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, 'FOO_TOKEN': 'xyz-secret'})
    outcome = None
    for line in result.stdout.splitlines():
        if line.startswith('OUTCOME '):
            outcome = json.loads(line.removeprefix('OUTCOME '))
    return result, outcome


@AS_ROOT
@pytest.mark.parametrize('sandbox', MODES)
def test_student_code_runs_under_its_own_user_id_without_a_terminal(tmp_path, sandbox):
    result, outcome = run_grader(tmp_path, """\
        import ctypes, os
        print('uid', os.getuid(), os.geteuid(), 'groups', os.getgroups())
        print('session leader', os.getsid(0) == os.getpid())
        try:
            open('/dev/tty')
            print('terminal: yes')
        except OSError:
            print('terminal: no')
        """, sandbox)
    assert outcome is not None and outcome['returncode'] == 0, (result.stderr, outcome)
    out = outcome['stdout_tail']
    uid = int(out.split()[1])
    assert uid in STUDENT_UIDS and f'uid {uid} {uid} groups []' in out
    assert 'terminal: no' in out
    if not sandbox:  # under bubblewrap its own init is the session leader
        assert 'session leader True' in out


@AS_ROOT
def test_the_parent_death_signal_survives_the_change_of_user(tmp_path):
    # A change of user id clears PR_SET_PDEATHSIG: it must be set after dropping root.
    result, outcome = run_grader(tmp_path, """\
        import ctypes
        value = ctypes.c_int()
        ctypes.CDLL(None).prctl(2, ctypes.byref(value))  # PR_GET_PDEATHSIG
        print('pdeathsig', value.value)
        """, False)
    assert f'pdeathsig {int(signal.SIGKILL)}' in outcome['stdout_tail'], (result.stderr, outcome)


@AS_ROOT
@pytest.mark.parametrize('sandbox', MODES)
@pytest.mark.parametrize('attack', ['SIGKILL', 'SIGSTOP'])
def test_the_student_cannot_kill_or_stop_the_grader(tmp_path, sandbox, attack):
    result, outcome = run_grader(tmp_path, f"""\
        import os, signal, sys
        for target in (int(sys.argv[1]), os.getppid()):
            try:
                os.kill(target, signal.{attack})
                print('sent to', target)
            except OSError as error:
                print('refused:', error)
        """, sandbox, timeout=60)
    # The grader lived on and reported; without bubblewrap the kernel refused both signals
    # (under it, the grader's pid does not exist and the parent is bubblewrap's own init).
    assert result.returncode == 0 and outcome is not None, (result.returncode, result.stderr)
    if not sandbox:
        assert 'sent to' not in outcome['stdout_tail'], outcome['stdout_tail']


@AS_ROOT
@pytest.mark.parametrize('sandbox', MODES)
def test_the_student_cannot_read_or_trace_the_grader(tmp_path, sandbox):
    result, outcome = run_grader(tmp_path, """\
        import ctypes, os, sys
        grader = sys.argv[1]
        for name in ('environ', 'cwd', 'root', 'fd', 'mem'):
            path = f'/proc/{grader}/{name}'
            try:
                if name in ('cwd', 'root', 'fd'):
                    data = os.listdir(path)
                else:
                    data = open(path, 'rb').read(4096)
                print(name, 'READ', data)
            except OSError as error:
                print(name, 'denied')
        print('ptrace', ctypes.CDLL(None).ptrace(16, int(grader), 0, 0))  # PTRACE_ATTACH
        """, sandbox)
    assert outcome is not None, result.stderr
    out = outcome['stdout_tail']
    assert 'READ' not in out and 'xyz-secret' not in out, out
    assert 'ptrace -1' in out


@AS_ROOT
@pytest.mark.parametrize('sandbox', MODES)
def test_nothing_the_student_writes_reaches_the_graders_stdout(tmp_path, sandbox):
    result, outcome = run_grader(tmp_path, """\
        import os, sys
        forged = b'{"total": 46, "max_total": 46}\\n'
        for path in (f'/proc/{sys.argv[1]}/fd/1', f'/proc/{os.getppid()}/fd/1', '/dev/stdout'):
            try:
                with open(path, 'wb') as out:
                    out.write(forged)
            except OSError:
                pass
        for fd in range(3, 64):
            try:
                os.write(fd, forged)
            except OSError:
                pass
        """, sandbox)
    assert outcome is not None, result.stderr
    assert result.stdout.startswith('OUTCOME '), result.stdout[:200]
    assert '"total": 46' not in result.stdout.replace(outcome['stdout_tail'], '')


@AS_ROOT
@pytest.mark.parametrize('sandbox', MODES)
def test_the_student_cannot_type_into_the_graders_terminal(tmp_path, sandbox):
    master, slave = os.openpty()
    try:
        result, outcome = run_grader(tmp_path, """\
            import fcntl, os, sys, termios
            for path in ('/dev/tty', f'/proc/{sys.argv[1]}/fd/0', f'/proc/{os.getppid()}/fd/0'):
                try:
                    fd = os.open(path, os.O_RDWR)
                    for character in b'echo pwned\\n':
                        fcntl.ioctl(fd, termios.TIOCSTI, bytes([character]))
                    print('typed into', path)
                except OSError as error:
                    print('refused', path, error.errno)
            """, sandbox, stdin=slave)
        assert outcome is not None, result.stderr
        assert 'typed into' not in outcome['stdout_tail'], outcome['stdout_tail']
        os.set_blocking(slave, False)
        try:
            typed = os.read(slave, 1024)
        except BlockingIOError:
            typed = b''
        assert b'pwned' not in typed
    finally:
        os.close(master)
        os.close(slave)


@AS_ROOT
@pytest.mark.parametrize('sandbox', MODES)
def test_no_process_outlives_its_run_however_it_escapes(tmp_path, sandbox):
    # fork, setsid, fork, exec with an empty environment, and the first process exits at once.
    result, outcome = run_grader(tmp_path, """\
        import os, time
        print('uid', os.getuid(), flush=True)
        for _ in range(5):
            if os.fork() == 0:
                os.setsid()
                if os.fork() == 0:
                    os.execve('/bin/sleep', ['sleep', '60'], {})
                os._exit(0)
        time.sleep(0.05)
        """, sandbox)
    assert outcome is not None and outcome['returncode'] == 0, (result.stderr, outcome)
    uid = int(outcome['stdout_tail'].split()[1])
    assert pids_of_user(uid) == [], 'a process of the run outlived it'


def marked_processes(prefix):
    """Pids of the processes whose environment holds a run mark starting with ``prefix``."""
    found = []
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                with open(f'/proc/{entry}/environ', 'rb') as environ:
                    if f'GRADING_RUN={prefix}'.encode() in environ.read():
                        found.append(int(entry))
            except OSError:
                continue
    return found


@pytest.mark.slow
@AS_ROOT
def test_two_runs_at_once_get_two_user_ids_and_cannot_signal_each_other(tmp_path):
    first, second = StudentUser.allocate(), StudentUser.allocate()
    try:
        assert first.uid != second.uid
    finally:
        first.release()
        second.release()
    # The attack names its targets (the other run's processes) explicitly: a script that
    # signalled every process it saw would, where the walls are missing, kill the machine.
    (tmp_path / 'victim').mkdir()
    victim_script = tmp_path / 'victim' / 'student.py'
    victim_script.write_text('import time\ntime.sleep(4)\nprint("survived")\n')
    (tmp_path / 'victim' / 'sources').mkdir()
    (tmp_path / 'victim' / 'grader.py').write_text(GRADER.format(repo=str(REPO)))
    victim = subprocess.Popen([sys.executable, str(tmp_path / 'victim' / 'grader.py'),
                               str(victim_script), 'False', json.dumps({'wall_s': 20})],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while not marked_processes(f'{victim.pid}-') and time.monotonic() < deadline:
            time.sleep(0.05)
        targets = marked_processes(f'{victim.pid}-')
        assert targets, 'the victim never started'
        (tmp_path / 'attacker' / 'sources').mkdir(parents=True)
        (tmp_path / 'attacker' / 'sources' / 'targets.py').write_text(f'PIDS = {targets}\n')
        _, attack = run_grader(tmp_path / 'attacker', """\
            import os, signal, sys
            sys.path.insert(0, os.getcwd())
            from targets import PIDS
            hits = 0
            for pid in PIDS:
                for sent in (signal.SIGSTOP, signal.SIGKILL):
                    try:
                        os.kill(pid, sent)
                        hits += 1
                    except OSError:
                        pass
                try:
                    open(f'/proc/{pid}/environ', 'rb').read()
                    hits += 1
                except OSError:
                    pass
            print('hits', hits)
            """, False)
        out, _ = victim.communicate(timeout=30)
    finally:
        victim.kill()
    assert 'hits 0' in attack['stdout_tail'], attack
    assert 'survived' in out, out


@AS_ROOT
@pytest.mark.parametrize('sandbox', MODES)
def test_a_fork_bomb_meets_the_process_count_of_its_user(tmp_path, sandbox):
    result, outcome = run_grader(tmp_path, """\
        import os, time
        for _ in range(200):
            if os.fork() == 0:
                os.write(1, b'+')  # one mark per process that started
                time.sleep(30)
                os._exit(0)
        """, sandbox, max_processes=8)
    assert outcome is not None, result.stderr
    # Never more than the kernel's bound for its user id (4 x 8 tasks, itself included),
    # however fast it forks; the grader's own count stops it as well.
    assert 0 < outcome['stdout_tail'].count('+') < 32, outcome


@AS_ROOT
@pytest.mark.parametrize('sandbox', MODES)
def test_the_files_a_run_writes_are_bounded_in_all(tmp_path, sandbox):
    result, outcome = run_grader(tmp_path, """\
        written = 0
        try:
            for index in range(20):
                with open(f'part{index}.bin', 'wb') as part:
                    part.write(b'x' * 2 ** 20 * 8)
                written += 8
        except OSError as error:
            print('refused', error.errno)
        print('written MiB', written, flush=True)
        """, sandbox, disk_bytes=32 * 2 ** 20, file_bytes=16 * 2 ** 20)
    assert outcome is not None, result.stderr
    out = outcome['stdout_tail']
    assert 'refused' in out and int(out.split('written MiB')[-1]) <= 32, out


def memory_cgroup_available():
    if os.getuid() != 0:
        return False
    group = RunCgroup.create(f'grading-test-{os.getpid()}', 2 ** 30, 64)
    if group is not None:
        group.remove()
    return group is not None


needs_cgroup = pytest.mark.skipif(not memory_cgroup_available(),
                                  reason='no writable memory control group here')


@needs_cgroup
@pytest.mark.parametrize('sandbox', MODES)
def test_the_memory_of_all_its_processes_and_dev_shm_together_is_bounded(tmp_path, sandbox):
    # Four children of 200 MiB each, and 200 MiB in /dev/shm, under 400 MiB for the whole run.
    hoard = f'hoard-{os.getpid()}-{time.monotonic_ns()}'
    result, outcome = run_grader(tmp_path, """\
        import os
        children = []
        for _ in range(4):
            pid = os.fork()
            if pid == 0:
                block = bytearray(200 * 2 ** 20)
                for index in range(0, len(block), 4096):
                    block[index] = 1
                os._exit(0)
            children.append(pid)
        print('children', [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children],
              flush=True)
        with open('/dev/shm/HOARD', 'wb') as hoard:
            for _ in range(50):
                hoard.write(b'x' * 2 ** 22)
        print('shm written', flush=True)
        """.replace('HOARD', hoard), sandbox, memory_bytes=400 * 2 ** 20,
        disk_bytes=512 * 2 ** 20)
    assert outcome is not None, result.stderr
    out = outcome['stdout_tail']
    killed = out.split('children')[-1].split(']')[0].count('-9')
    assert killed >= 1, out
    assert not os.path.exists(f'/dev/shm/{hoard}'), 'the run left its /dev/shm files behind'


def test_out_of_memory_is_decided_from_the_exit_status_not_the_text():
    limits = Limits(memory_bytes=2 ** 30)
    traceback = 'Traceback (most recent call last):\n  File "modules.py"\nMemoryError\n'
    assert ended_problem(0, 'MemoryError\n', limits) is None  # printed it, exited 0
    assert 'ran out of memory' in ended_problem(1, traceback, limits)
    assert 'ran out of memory' not in (ended_problem(1, 'MemoryError: just a message\nValueError',
                                                     limits) or '')


@needs_cgroup
def test_groups_left_by_a_killed_grader_are_removed_when_their_user_id_is_next_used():
    user = StudentUser.allocate()
    try:
        left = RunCgroup.create(f'grading-{user.uid}-999999', 2 ** 30, 64)
        assert all(folder.exists() for folder in left.folders)
        RunCgroup.remove_leftovers(user.uid)
        assert not any(folder.exists() for folder in left.folders)
    finally:
        user.release()
