"""``grade.py --watch``: grade once, then again at each save of one of the three files,
printing the total and only the items whose verdict changed; a file that does not parse
is one line and watching goes on; Ctrl-C ends it with one line.

The in-process tests inject a fake grading function (it reads which items pass from the
file), so that they test the watching and not the grader; the command-line test runs the
real grader on a rubric of one item."""
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from conftest import REPO
from lab.grading.watch import describe, watch

ITEMS = [('linear_forward', 'LinearModule.forward', 2), ('elu_forward', 'ELUModule.forward', 2),
         ('softmax_forward', 'SoftMaxModule.forward', 2)]


def fake_grade(folder):
    """Items listed in modules.py as ``PASSES = [...]`` pass; the others name a mistake."""
    namespace = {}
    exec((folder / 'modules.py').read_text(), namespace)
    passing = namespace.get('PASSES', [])
    items = [{'id': id_, 'name': name, 'max_points': points,
              'points': points if id_ in passing else 0, 'passed': id_ in passing,
              'diagnosis': '' if id_ in passing else f"{name} forgets the bias; expected 1",
              'mistake': '' if id_ in passing else 'no bias', 'visibility': 'visible'}
             for id_, name, points in ITEMS]
    return {'submission': folder.name, 'year': 2025, 'problems': [], 'items': items,
            'total': sum(item['points'] for item in items), 'max_total': 6}


def save(folder, text):
    """Save as an editor does: write a new file, then rename it over the old one."""
    temporary = folder / '.modules.py.swp'
    temporary.write_text(text)
    os.replace(temporary, folder / 'modules.py')


def wait_for(lines, text, count=1, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(text in line for line in list(lines)) >= count:
            return
        time.sleep(0.05)
    pytest.fail(f"{text!r} not printed {count} time(s) within {timeout} s: {lines}")


def test_it_grades_at_each_save_and_prints_only_what_changed(tmp_path):
    folder = tmp_path / 'practice'
    folder.mkdir()
    save(folder, "PASSES = ['linear_forward']\n")
    lines, stop = [], threading.Event()
    watcher = threading.Thread(target=watch, args=(folder, fake_grade),
                               kwargs={'out': lines.append, 'stop_event': stop,
                                       'debounce_ms': 100})
    watcher.start()
    try:
        wait_for(lines, 'watching')
        assert lines[0] == 'Total: 2 / 6'
        assert [line.split()[1] for line in lines if 'LOST' in line] == ['ELUModule.forward',
                                                                          'SoftMaxModule.forward']
        start = len(lines)
        save(folder, "PASSES = ['linear_forward', 'elu_forward']\n")
        wait_for(lines, 'Total: 4 / 6 (was 2)')
        wait_for(lines, 'now ok')
        assert lines[start:] == ['-- saved modules.py', 'Total: 4 / 6 (was 2)',
                                 '  now ok  ELUModule.forward  2 / 2']
        start = len(lines)
        save(folder, "PASSES = ['linear_forward', 'elu_forward'\n")  # mid-edit
        wait_for(lines, 'not graded; still watching')
        assert lines[start:] == ['-- saved modules.py', "modules.py line 1: '[' was never "
                                 "closed (not graded; still watching)"]
        start = len(lines)
        (folder / 'notes.txt').write_text('not one of the three files')
        save(folder, "PASSES = ['elu_forward']\n")
        wait_for(lines, 'Total: 2 / 6 (was 4)')
        wait_for(lines, 'forgets the bias', count=3)
        assert lines[start:] == ['-- saved modules.py', 'Total: 2 / 6 (was 4)',
                                 '  LOST    LinearModule.forward  0 / 2',
                                 '          LinearModule.forward forgets the bias; expected 1']
    finally:
        stop.set()
        watcher.join(timeout=10)
    assert not watcher.is_alive()


def test_a_grade_that_changes_nothing_says_so():
    before = {'total': 2, 'max_total': 6, 'problems': ['mlp_pytorch.py is missing'], 'items': [
        {'id': 'a', 'name': 'A', 'passed': True, 'points': 2, 'max_points': 2}]}
    assert describe(None, before) == ['Total: 2 / 6', '  ! mlp_pytorch.py is missing']
    assert describe(before, before) == ['Total: 2 / 6', '  no verdict changed']
    blank = {**before['items'][0], 'passed': False, 'points': 0, 'diagnosis': '  \n'}
    assert describe(before, {**before, 'items': [blank], 'total': 0}) == [
        'Total: 0 / 6 (was 2)', '  LOST    A  0 / 2']


def test_ctrl_c_ends_it_with_one_line(tmp_path):
    (tmp_path / 'modules.py').write_text('x = 1\n')

    def interrupted():
        yield set()  # nothing saved: no grade
        (tmp_path / 'mlp_numpy.py').write_text('y = 2\n')
        yield set()
        raise KeyboardInterrupt

    lines = []
    grades = []
    code = watch(tmp_path, lambda folder: grades.append(folder) or {
        'total': 0, 'max_total': 0, 'problems': [], 'items': []},
        out=lines.append, changes=interrupted())
    assert code == 130 and lines[-1] == 'stopped watching' and len(grades) == 2
    assert '-- saved mlp_numpy.py' in lines


@pytest.mark.slow
def test_the_command_line_with_the_real_grader(tmp_path):
    """A real session: the template graded, one function filled in, then Ctrl-C."""
    practice = tmp_path / 'practice'
    subprocess.run([sys.executable, 'grade.py', '--template', str(practice)], cwd=REPO,
                   check=True, capture_output=True, timeout=120)
    rubric = tmp_path / 'rubric.toml'
    rubric.write_text('[[item]]\nid = "elu_forward"\nname = "ELUModule.forward"\n'
                      'points = 2\nvisibility = "visible"\n')
    process = subprocess.Popen([sys.executable, '-u', 'grade.py', '--watch', str(practice),
                                '--rubric', str(rubric)], cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
    reader.start()
    try:
        wait_for(lines, 'watching', timeout=120)
        assert 'Total: 0 / 2' in lines[0]
        modules = practice / 'modules.py'
        source = modules.read_text()
        marker = 'raise NotImplementedError("ELUModule.forward: not implemented yet")'
        assert marker in source
        modules.write_text(source.replace(
            marker, 'self.cache = x\n        return np.where(x > 0, x, self.alpha * '
                    '(np.exp(x) - 1))'))
        wait_for(lines, 'now ok', timeout=120)
        os.killpg(process.pid, signal.SIGINT)
        assert process.wait(timeout=30) == 130
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    reader.join(timeout=5)
    assert lines[-1].strip() == 'stopped watching'
    assert not [line for line in lines if 'Traceback' in line]


def test_long_diagnoses_are_cut():
    lost = {'id': 'a', 'name': 'A', 'passed': False, 'points': 0, 'max_points': 2,
            'mistake': 'sign', 'diagnosis': 'A has the wrong sign; ' + 'expected 1.5, ' * 200}
    after = {'total': 0, 'max_total': 2, 'problems': [], 'items': [lost]}
    first = describe(None, after)
    assert first[:2] == ['Total: 0 / 2', '  LOST    A  0 / 2'] and len(first) == 3
    assert first[2].startswith('          A has the wrong sign') and first[2].endswith('…')
    before = {**after, 'items': [{**lost, 'mistake': 'not implemented'}]}
    assert len(describe(before, after)) == 2 + 4
