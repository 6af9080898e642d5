"""A batch as course staff run it: Ctrl-C at any moment, hostile submissions among honest
ones, and names that are not UTF-8.

The Ctrl-C test does not grade: its driver is ``grade.py``'s command line with the grading
of one submission replaced by a short student process run through the sandbox (0.3 s), so
twenty tries stay affordable while the signal handling, the workers and the student
processes are the real ones.
"""
import csv
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import REPO

STUDENT_FILES = ('modules.py', 'mlp_numpy.py', 'mlp_pytorch.py')

QUICK_DRIVER = textwrap.dedent("""\
    import sys
    sys.path.insert(0, {repo!r})
    try:
        import tempfile
        from pathlib import Path
        from lab.grading import cli
        from lab.grading.sandbox import Limits, run_isolated

        def quick_grade_path(path, year=None, rubric_path=None, limits=None, name=None):
            work = Path(tempfile.mkdtemp(prefix='quick-grade-'))
            outcome = run_isolated(Path(__file__).with_name('sleeper.py'), [], path,
                                   Limits(wall_s=20), work)
            passed = outcome['returncode'] == 0
            return {{'submission': name, 'year': 2024, 'total': float(passed),
                     'max_total': 1.0, 'problems': [], 'elapsed_s': outcome['elapsed_s'],
                     'items': [{{'name': 'quick', 'points': float(passed), 'max_points': 1.0,
                                'passed': passed, 'diagnosis': ''}}]}}

        cli.grade_path = quick_grade_path  # also in the workers, which import this file
    except KeyboardInterrupt:
        print('interrupted while loading', file=sys.stderr)
        sys.exit(130)

    if __name__ == '__main__':
        sys.exit(cli.main())
    """)


@pytest.mark.slow
def test_ctrl_c_during_a_batch_stops_it_within_2_s_in_one_line_20_times(tmp_path):
    batch = tmp_path / 'submissions'
    for index in range(16):
        (batch / f'student{index:02}').mkdir(parents=True)
        (batch / f'student{index:02}' / 'modules.py').write_text('x = 1\n')
    (tmp_path / 'sleeper.py').write_text('import time\ntime.sleep(0.3)\n')
    driver = tmp_path / 'driver.py'
    driver.write_text(QUICK_DRIVER.format(repo=str(REPO)))
    seed = random.randrange(10 ** 6)
    moments = random.Random(seed).sample([0.05 * step for step in range(0, 30)], 20)
    interrupted, failures = 0, []
    for attempt, moment in enumerate(moments):
        out = tmp_path / f'grades{attempt}'
        grading = subprocess.Popen([sys.executable, str(driver), str(batch), '--jobs', '2',
                                    '--out', str(out), '--no_progress'], cwd=tmp_path,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   start_new_session=True)
        # A moment after the first submission was graded, while others are (a Ctrl-C while
        # Python itself is still starting, before grade.py runs, gets Python's traceback).
        deadline = time.monotonic() + 60
        while not list(out.glob('feedback/*.json')) and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(moment)
        sent = time.monotonic()
        os.killpg(grading.pid, signal.SIGINT)  # as a terminal sends Ctrl-C: to the group
        try:
            _, stderr = grading.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(grading.pid, signal.SIGKILL)
            grading.communicate()
            failures.append((moment, 'hung'))
            continue
        took = time.monotonic() - sent
        lines = [line for line in stderr.splitlines() if line.strip()]
        if grading.returncode == 0:
            continue  # finished before the signal: nothing to check
        interrupted += 1
        graded = sorted(path.stem for path in (out / 'feedback').glob('*.json')) if (
            out / 'feedback').exists() else []
        rows = []
        if (out / 'grades.csv').exists():
            with open(out / 'grades.csv', newline='') as handle:
                rows = sorted(row['submission'] for row in csv.DictReader(handle))
        if (grading.returncode != 130 or took > 2.0 or len(lines) != 1
                or 'Traceback' in stderr or rows != graded):
            failures.append((moment, grading.returncode, round(took, 2), stderr[-600:],
                             rows, graded))
    assert not failures, (seed, failures)
    assert interrupted >= 15, (seed, interrupted)


def our_submission(folder, modules=None):
    folder.mkdir(parents=True)
    for name in STUDENT_FILES:
        shutil.copyfile(REPO / name, folder / name)
    if modules is not None:
        (folder / 'modules.py').write_text(modules)
    return folder


HOSTILE = textwrap.dedent("""\
    import os, signal, sys

    def parents():
        found = {}
        for entry in os.listdir('/proc'):
            try:
                with open(f'/proc/{entry}/stat', 'rb') as stat:
                    found[int(entry)] = int(stat.read().rsplit(b')', 1)[1].split()[1])
            except (OSError, ValueError):
                pass
        return found

    # Stop or kill the grader and everything it runs (its workers, the other students), found
    # from grade.py above this process. Only that tree: where the walls are missing, a script
    # that signalled every process it saw would take the machine down.
    tree, grader, pid = parents(), None, os.getpid()
    while pid in tree and pid > 1:
        try:
            if b'grade.py' in open(f'/proc/{pid}/cmdline', 'rb').read():
                grader = pid
        except OSError:
            pass
        pid = tree[pid]
    victims = [grader] if grader else []
    for victim in victims:
        victims += [child for child, parent in tree.items() if parent == victim]
    for victim in victims:
        if victim != os.getpid():
            for sent in (signal.SIGSTOP, signal.SIGKILL):
                try:
                    os.kill(victim, sent)
                except OSError:
                    pass
    # Leave a process behind, out of its session, and files in shared places.
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.execve('/bin/sleep', ['sleep', '120'], {})
        os._exit(0)
    for folder in ('/dev/shm', '/tmp'):
        try:
            with open(os.path.join(folder, f'left-by-{os.getpid()}'), 'w') as left:
                left.write('x' * 1000)
        except OSError:
            pass
    # Write a forged grade wherever the grader's output might be.
    for path in (f'/proc/{os.getppid()}/fd/1', '/dev/tty'):
        try:
            with open(path, 'w') as out:
                out.write('{"total": 46}\\n')
        except OSError:
            pass
    raise SystemExit(0)
    """)

SMALL_RUBRIC = textwrap.dedent("""\
    [[item]]
    id = "linear_forward"
    name = "LinearModule.forward"
    points = 2
    visibility = "visible"

    [[item]]
    id = "linear_dbias"
    name = "LinearModule.backward: db"
    points = 1
    visibility = "visible"

    [[item]]
    id = "elu_backward"
    name = "ELUModule.backward"
    points = 2
    visibility = "visible"
    """)


def grade(*arguments, cwd):
    return subprocess.run([sys.executable, str(REPO / 'grade.py'), *map(str, arguments)],
                          cwd=cwd, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
@pytest.mark.parametrize('mode', [[], ['--no_sandbox']], ids=['default', 'no_sandbox'])
def test_hostile_submissions_in_a_batch_change_nobody_elses_grade(tmp_path, mode):
    rubric = tmp_path / 'rubric.toml'
    rubric.write_text(SMALL_RUBRIC)
    batch = tmp_path / 'submissions'
    our_submission(batch / 'alice')
    wrong = (REPO / 'modules.py').read_text().replace(
        "self.grads['bias'] = dout.sum(axis=0)", "self.grads['bias'] = dout.mean(axis=0)")
    our_submission(batch / 'bob', modules=wrong)
    our_submission(batch / 'mallory', modules=HOSTILE)
    our_submission(batch / 'mallory2', modules=HOSTILE)
    our_submission(batch / os.fsdecode(b'zo\xeb'))
    out = tmp_path / 'grades'
    result = grade(batch, '--jobs', '2', '--out', out, '--no_progress', '--rubric', rubric,
                   *mode, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert '"total": 46' not in result.stdout
    with open(out / 'grades.csv', newline='') as handle:
        rows = {row['submission']: row for row in csv.DictReader(handle)}
    assert sorted(rows) == ['alice', 'bob', 'mallory', 'mallory2', 'zo\\xeb']
    assert json.loads((out / 'class_summary.json').read_text())['submissions'] == 5
    for name in ('alice', 'bob'):
        alone = grade(batch / name, '--format', 'json', '--rubric', rubric, *mode,
                      cwd=tmp_path)
        expected = json.loads(alone.stdout)
        in_batch = json.loads((out / 'feedback' / f'{name}.json').read_text())
        assert [(item['name'], item['points'], item['diagnosis'])
                for item in in_batch['items']] == [
            (item['name'], item['points'], item['diagnosis']) for item in expected['items']]
    assert float(rows['alice']['total']) == 5 and float(rows['bob']['total']) == 4
    assert float(rows['zo\\xeb']['total']) == 5
    assert not [name for name in os.listdir('/dev/shm') if name.startswith('left-by-')]
