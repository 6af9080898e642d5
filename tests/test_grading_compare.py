"""``grade.py --compare OLD NEW``: per student and per item what changed between two
batches, and one summary line; students whose points did not change are not listed."""
import csv
import subprocess
import sys

from conftest import REPO
from lab.grading.compare import compare_grades

HEADER = ['submission', 'year', 'LinearModule.forward', 'ELUModule.backward', 'total',
          'max_total', 'problems']


def write_csv(path, header, rows):
    with open(path, 'w', newline='') as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_changes_per_student_and_item(tmp_path):
    old = write_csv(tmp_path / 'old.csv', HEADER, [
        ['alice', 2025, 2, 0, 2, 4, ''],
        ['bob', 2025, 2, 2, 4, 4, ''],
        ['carol', 2025, 0, 2, 2, 4, ''],
        ['dave', 2025, 0, 0, 0, 4, 'modules.py is missing'],
        ['erin\x1b[2J', 2024, 2, 0, 2, 4, '']])
    new = write_csv(tmp_path / 'new.csv', HEADER[:3] + ['ELUModule.forward'] + HEADER[3:], [
        ['alice', 2025, 2, 1, 2, 5, 6, ''],
        ['bob', 2025, 2, 1, 2, 5, 6, ''],
        ['carol', 2025, 0, 1, 0, 1, 6, ''],
        ['erin\x1b[2J', 2024, 2, 1, 0, 3, 6, ''],
        ['frank', 2025, 2, 1, 2, 5, 6, '']])
    lines = compare_grades(old, new)
    assert lines[:3] == ['alice: total 2 -> 5', '    ELUModule.backward: 0 -> 2',
                         '    ELUModule.forward: - -> 1']
    assert 'bob: total 4 -> 5' in lines
    carol = lines.index('carol: total 2 -> 1')
    assert lines[carol + 1:carol + 3] == ['    ELUModule.backward: 2 -> 0',
                                          '    ELUModule.forward: - -> 1']
    assert 'erin\\x1b[2J: total 2 -> 3' in lines
    assert f'dave: only in {old} (total 0)' in lines
    assert f'frank: only in {new} (total 5)' in lines
    assert lines[-1] == ('4 of 4 students changed (3 up, 1 down, 0 with the same total), '
                         '0 unchanged, 1 added, 1 removed')


def test_unchanged_students_are_not_listed(tmp_path):
    rows = [['alice', 2025, 2, 0, 2, 4, ''], ['bob', 2025, 2, 2, 4, 4, '']]
    old = write_csv(tmp_path / 'old.csv', HEADER, rows)
    new = write_csv(tmp_path / 'new.csv', HEADER, [rows[0], ['bob', 2025, 0, 2, 2, 4, '']])
    lines = compare_grades(old, new)
    assert lines == ['bob: total 4 -> 2', '    LinearModule.forward: 2 -> 0',
                     '1 of 2 students changed (0 up, 1 down, 0 with the same total), '
                     '1 unchanged, 0 added, 0 removed']


def test_the_command_line(tmp_path):
    old = write_csv(tmp_path / 'old.csv', HEADER, [['alice', 2025, 2, 0, 2, 4, '']])
    new = write_csv(tmp_path / 'new.csv', HEADER, [['alice', 2025, 2, 2, 4, 4, '']])
    run = subprocess.run([sys.executable, 'grade.py', '--compare', str(old), str(new)],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == ['alice: total 2 -> 4', '    ELUModule.backward: 0 -> 2',
                                       '1 of 1 students changed (1 up, 0 down, 0 with the '
                                       'same total), 0 unchanged, 0 added, 0 removed']
    (tmp_path / 'notes.txt').write_text('hello\n')
    run = subprocess.run([sys.executable, 'grade.py', '--compare', str(old),
                          str(tmp_path / 'notes.txt')],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert 'is not a grades.csv' in run.stderr.splitlines()[-1]
    assert 'Traceback' not in run.stderr
