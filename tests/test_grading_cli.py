"""``python grade.py``: one submission, a folder of them, zips, the outputs and the template.

The slow tests run grade.py as a user does, in a fresh interpreter: our own
files get full marks, the template and an empty folder get 0 with a reason on
every item, and a batch with ``--jobs 2`` writes grades.csv, the feedback and
the class summary. The quick ones check the pieces: zips, the template's
transformation, the report formats and the usage errors.
"""
import ast
import csv
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
import tomllib
import zipfile

import pytest

from conftest import REPO
from lab.grading.cli import SubmissionError, extract_zip, is_batch
from lab.grading.report import (class_summary, format_class_summary, format_text,
                                gradescope_results, write_grades_csv)
from lab.grading.template import STUDENT_WORK, template_sources, write_template

STUDENT_FILES = ('modules.py', 'mlp_numpy.py', 'mlp_pytorch.py')


def grade(*arguments, cwd, timeout=600):
    return subprocess.run([sys.executable, str(REPO / 'grade.py'), *map(str, arguments)],
                          cwd=cwd, capture_output=True, text=True, timeout=timeout)


def our_submission(folder, files=STUDENT_FILES, replace=None):
    """Our own files in ``folder``; ``replace`` maps a file to (old, new) text to swap."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in files:
        text = (REPO / name).read_text()
        if replace and name in replace:
            old, new = replace[name]
            assert old in text, old
            text = text.replace(old, new)
        (folder / name).write_text(text)
    return folder


def as_2023(folder):
    """2023's template: ``ELUModule()`` without alpha, and the MLP building it so."""
    return our_submission(folder, replace={
        'modules.py': ('    def __init__(self, alpha=1.0):\n        super().__init__()\n'
                       '        # A Python float: a NumPy float64 scalar would promote float32 '
                       'data.\n        self.alpha = float(alpha)',
                       '    def __init__(self):\n        super().__init__()\n'
                       '        self.alpha = 1.0')})


def zip_folder(folder, archive, inside='submission'):
    with zipfile.ZipFile(archive, 'w') as bundle:
        for path in sorted(folder.iterdir()):
            bundle.write(path, f'{inside}/{path.name}')
    return archive


# -- one submission, end to end -------------------------------------------------------------

MODES = [pytest.param([], id='default'), pytest.param(['--no_sandbox'], id='no_sandbox')]


@pytest.mark.slow
@pytest.mark.parametrize('mode', MODES)
def test_our_own_files_get_full_marks_as_json(tmp_path, mode):
    folder = our_submission(tmp_path / 'ours')
    result = grade(folder, '--format', 'json', *mode, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report['total'] == report['max_total'] > 0, [
        (item['name'], item['diagnosis']) for item in report['items'] if not item['passed']]
    for entry in report['items']:
        assert {'name', 'points', 'max_points', 'passed', 'diagnosis'} <= set(entry)
        assert entry['passed'] and entry['points'] == entry['max_points']


@pytest.mark.slow
@pytest.mark.parametrize('mode', MODES)
def test_the_template_grades_zero_with_not_implemented_yet_on_every_item(tmp_path, mode):
    result = grade('--template', tmp_path / 'practice', cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    result = grade(tmp_path / 'practice', *mode, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert 'Total: 0 / ' in result.stdout and 'Traceback' not in result.stdout + result.stderr
    item_lines = [line for line in result.stdout.splitlines() if line.startswith('LOST')]
    assert item_lines and not [line for line in result.stdout.splitlines()
                               if line.startswith('ok ')]
    result = grade(tmp_path / 'practice', '--format', 'json', *mode, cwd=tmp_path)
    for entry in json.loads(result.stdout)['items']:
        assert 'not implemented yet' in entry['diagnosis'], entry


@pytest.mark.slow
def test_an_empty_folder_gets_zero_and_each_item_names_its_missing_file(tmp_path):
    (tmp_path / 'empty').mkdir()
    result = grade(tmp_path / 'empty', '--format', 'gradescope', '--out', tmp_path / 'gs',
                   cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    results = json.loads((tmp_path / 'gs' / 'results.json').read_text())
    assert results['score'] == 0
    assert {'score', 'execution_time', 'output', 'visibility', 'tests'} <= set(results)
    for test in results['tests']:
        assert set(test) == {'name', 'score', 'max_score', 'output', 'visibility'}
        assert test['score'] == 0 and test['max_score'] > 0
        assert test['visibility'] in ('visible', 'hidden', 'after_due_date', 'after_published')
        assert any(f'{name} is missing' in test['output'] for name in STUDENT_FILES), test


@pytest.mark.slow
def test_a_batch_with_two_jobs_writes_grades_feedback_and_the_class_summary(tmp_path):
    batch = tmp_path / 'submissions'
    as_2023(batch / 'student_2023')
    zip_folder(our_submission(tmp_path / 'zipped_2024'), batch / 'student_2024.zip')
    our_submission(batch / 'fused_gradient', replace={'modules.py': (
        "        return -targets / (len(x) * np.maximum(x, np.finfo(x.dtype).tiny))",
        "        return (x - targets) / len(x)")})
    our_submission(batch / 'quitter', replace={'modules.py': (
        'import numpy as np\n', 'import os\nos._exit(0)\nimport numpy as np\n')})
    (batch / 'not_a_zip.zip').write_text('these are not the files you are looking for')
    out = tmp_path / 'grades'
    result = grade(batch, '--jobs', '2', '--out', out, '--no_progress', cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    names = ['fused_gradient', 'not_a_zip', 'quitter', 'student_2023', 'student_2024']
    with open(out / 'grades.csv', newline='') as handle:
        rows = list(csv.DictReader(handle))
    assert [row['submission'] for row in rows] == names
    totals = {row['submission']: float(row['total']) for row in rows}
    full = float(rows[0]['max_total'])
    assert totals['student_2023'] == totals['student_2024'] == full
    assert {row['submission']: row['year'] for row in rows}['student_2023'] == '2023'
    assert 0 < totals['fused_gradient'] < full
    assert totals['not_a_zip'] == 0 and 'cannot be read as a zip' in rows[1]['problems']
    assert totals['quitter'] < full
    for name in names:
        feedback = json.loads((out / 'feedback' / f'{name}.json').read_text())
        assert feedback['submission'] == name and 'items' in feedback
    fused = json.loads((out / 'feedback' / 'fused_gradient.json').read_text())
    lost = [entry for entry in fused['items'] if not entry['passed']]
    assert any(entry['name'].startswith('CrossEntropyModule.backward') for entry in lost)
    summary = json.loads((out / 'class_summary.json').read_text())
    assert summary['submissions'] == 5
    backward = next(entry for entry in summary['items']
                    if entry['name'] == 'CrossEntropyModule.backward')
    assert backward['lost'] == 3 and sum(count for _, count in backward['mistakes']) == 3
    text = (out / 'class_summary.txt').read_text()
    assert 'CrossEntropyModule.backward: 3 of 5 lost points' in text
    assert 'Class summary: 5 submissions' in result.stdout


# -- zips -----------------------------------------------------------------------------------

def test_a_zip_is_extracted_and_its_folder_of_files_found(tmp_path):
    folder = our_submission(tmp_path / 'work')
    archive = zip_folder(folder, tmp_path / 'hand_in.zip', inside='deep/er')
    found = extract_zip(archive, tmp_path / 'out')
    assert found == tmp_path / 'out' / 'deep' / 'er'
    assert sorted(path.name for path in found.iterdir()) == sorted(STUDENT_FILES)


@pytest.mark.parametrize('member', ['../escape.py', '/etc/evil.py', 'a/../../evil.py',
                                    'C:/windows.py'])
def test_a_zip_member_outside_the_folder_is_refused(tmp_path, member):
    archive = tmp_path / 'evil.zip'
    with zipfile.ZipFile(archive, 'w') as bundle:
        bundle.writestr(member, 'x = 1\n')
    with pytest.raises(SubmissionError, match='outside the folder'):
        extract_zip(archive, tmp_path / 'out')
    assert not (tmp_path / 'escape.py').exists()


def test_a_zip_with_a_link_is_refused(tmp_path):
    archive = tmp_path / 'link.zip'
    link = zipfile.ZipInfo('modules.py')
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(archive, 'w') as bundle:
        bundle.writestr(link, '/etc/passwd')
    with pytest.raises(SubmissionError, match='link'):
        extract_zip(archive, tmp_path / 'out')


def test_a_zip_bomb_is_refused_without_unpacking_it(tmp_path):
    archive = tmp_path / 'bomb.zip'
    with zipfile.ZipFile(archive, 'w', compression=zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr('modules.py', b'#' * (64 * 2 ** 20))
    assert archive.stat().st_size < 2 ** 20
    with pytest.raises(SubmissionError, match='zip bomb'):
        extract_zip(archive, tmp_path / 'out')
    assert sum(path.stat().st_size for path in (tmp_path / 'out').rglob('*')
               if path.is_file()) <= 2 * 2 ** 20 + 65536


def test_a_folder_of_submissions_is_told_from_one_submission(tmp_path):
    assert not is_batch(our_submission(tmp_path / 'one'))
    (tmp_path / 'empty').mkdir()
    assert not is_batch(tmp_path / 'empty')
    (tmp_path / 'many' / 'alice').mkdir(parents=True)
    (tmp_path / 'many' / 'bob.zip').write_bytes(b'')
    assert is_batch(tmp_path / 'many')


# -- the template ---------------------------------------------------------------------------

def test_the_template_keeps_signatures_and_docstrings_and_drops_the_solution():
    for name, text in template_sources().items():
        ours, template = ast.parse((REPO / name).read_text()), ast.parse(text)
        functions = {(cls.name, node.name): node for cls in ours.body
                     if isinstance(cls, ast.ClassDef) for node in cls.body
                     if isinstance(node, ast.FunctionDef)}
        blanked = 0
        for cls in (node for node in template.body if isinstance(node, ast.ClassDef)):
            for node in (node for node in cls.body if isinstance(node, ast.FunctionDef)):
                original = functions[(cls.name, node.name)]
                assert ast.dump(node.args) == ast.dump(original.args)
                assert ast.get_docstring(node) == ast.get_docstring(original)
                last = node.body[-1]
                if isinstance(last, ast.Raise):
                    blanked += 1
                    assert 'not implemented yet' in ast.unparse(last)
                    assert len(node.body) <= 2  # the docstring and the raise, nothing else
        expected = sum(len(methods) for cls, methods in STUDENT_WORK[name].items()
                       if not cls.startswith('*'))
        assert blanked >= expected, (name, blanked)
    modules = template_sources()['modules.py']
    for solution_line in ("dout.T @ x", "exp / exp.sum(axis=1, keepdims=True)",
                          "-targets / (len(x)"):
        assert solution_line in (REPO / 'modules.py').read_text()
        assert solution_line not in modules


def test_the_template_never_overwrites_work(tmp_path):
    write_template(tmp_path / 'practice')
    (tmp_path / 'practice' / 'modules.py').write_text('# my work\n')
    with pytest.raises(FileExistsError, match='never overwrites'):
        write_template(tmp_path / 'practice')
    assert (tmp_path / 'practice' / 'modules.py').read_text() == '# my work\n'


# -- the outputs, from reports as the grader gives them -------------------------------------

def a_report(name, lost=(), mistake="returns the logits' gradient"):
    items = [{'name': item, 'points': 0 if item in lost else 2, 'max_points': 2,
              'passed': item not in lost, 'visibility': 'visible',
              'diagnosis': f'{item}: {mistake}; expected -1.5, got 0.25' if item in lost else '',
              'mistake': f'{item} {mistake}' if item in lost else ''}
             for item in ('LinearModule.forward', 'CrossEntropyModule.backward')]
    return {'submission': name, 'year': 2024, 'problems': [], 'elapsed_s': 1.0,
            'items': items, 'total': sum(item['points'] for item in items), 'max_total': 4}


def test_the_text_report_gives_each_lost_point_its_diagnosis():
    text = format_text(a_report('alice', lost=('CrossEntropyModule.backward',)))
    assert 'LOST CrossEntropyModule.backward' in text and 'expected -1.5, got 0.25' in text
    assert text.splitlines()[-1] == 'Total: 2 / 4'
    assert 'Total: 2 / 4' in text


def test_gradescope_results_follow_the_schema():
    results = gradescope_results(a_report('alice', lost=('LinearModule.forward',)))
    assert results['score'] == 2 and results['tests'][0]['score'] == 0
    assert results['tests'][0]['output'].startswith('LinearModule.forward:')
    assert results['tests'][1]['output'] == 'passed'
    json.dumps(results, allow_nan=False)


def test_grades_csv_and_the_class_summary_count_each_mistake(tmp_path):
    reports = [a_report(f'student{index}', lost=('CrossEntropyModule.backward',) * (index < 3))
               for index in range(5)]
    write_grades_csv(tmp_path / 'grades.csv', reports)
    with open(tmp_path / 'grades.csv', newline='') as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 5 and rows[0]['CrossEntropyModule.backward'] == '0'
    assert rows[4]['CrossEntropyModule.backward'] == '2' and rows[4]['total'] == '4'
    text = format_class_summary(class_summary(reports))
    assert 'CrossEntropyModule.backward: 3 of 5 lost points' in text
    assert "3 of 5: CrossEntropyModule.backward returns the logits' gradient" in text
    reports[0]['items'][1]['mistake'] = 'not implemented yet'
    text = format_class_summary(class_summary(reports))
    assert '1 of 5: CrossEntropyModule.backward: not implemented yet' in text


# -- usage errors ---------------------------------------------------------------------------

@pytest.mark.parametrize('arguments, message', [
    (['no/such/folder'], 'does not exist'),
    (['--template', 'x', 'somewhere'], 'give it no PATH'),
    ([], 'give a submission'),
    (['grade.py'], 'neither a folder nor a .zip'),
    (['.', '--jobs', '0'], 'must be at least 1'),
    (['.', '--rubric', 'pytest.ini'], 'not valid TOML'),
    (['.', '--timeout', '0'], 'more than 0 seconds'),
    (['.', '--sandbox', '--no_sandbox'], 'not allowed with argument'),
])
def test_usage_errors_are_one_line_and_exit_2(arguments, message):
    result = grade(*arguments, cwd=REPO, timeout=60)
    assert result.returncode == 2
    assert message in result.stderr and 'Traceback' not in result.stderr


def test_tmp_files_are_not_left_behind(tmp_path):
    """The template is written atomically: no temporary file stays beside it."""
    write_template(tmp_path / 'fresh')
    assert sorted(path.name for path in (tmp_path / 'fresh').iterdir()) == sorted(STUDENT_FILES)
    shutil.rmtree(tmp_path / 'fresh')


def test_the_documented_rubric_is_the_default_rubric():
    items = tomllib.loads((REPO / 'lab' / 'grading' / 'rubric.toml').read_text())['item']
    documented = (REPO / 'docs' / 'grading.md').read_text()
    for entry in items:
        row = f"| {entry['name']} | {entry['points']:g} | {entry['visibility']} | `{entry['id']}` |"
        assert row in documented, f"docs/grading.md lacks or misstates: {row}"
    assert f"| **total** | **{sum(entry['points'] for entry in items):g}** |" in documented


@pytest.mark.slow
def test_the_grading_benchmark_reports_seconds_per_submission(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / 'benchmark.py'), 'grading', '--repeats',
                             '1', '--batch', '2', '--jobs', '2', '--json', tmp_path / 'b.json'],
                            cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    results = json.loads((tmp_path / 'b.json').read_text())
    for total in results['one_submission_totals']:  # what is timed is a full grading
        points, maximum = total.split(' / ')
        assert points == maximum
    assert results['batch'] == 2 and results['jobs'] == 2
    assert results['batch_of_60_s'] == pytest.approx(30 * results['batch_s'])
    assert {'median', 'min', 'max', 'all'} <= set(results['one_submission_cpu_s'])
    assert 'one submission: median' in result.stdout and '(extrapolated)' in result.stdout


def processes_marked(prefix):
    """Pids of the processes whose environment holds a grading run's mark starting ``prefix``."""
    found = []
    for entry in os.scandir('/proc'):
        if entry.name.isdigit():
            try:
                with open(f'/proc/{entry.name}/environ', 'rb') as environ:
                    if f'GRADING_RUN={prefix}'.encode() in environ.read():
                        found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.mark.slow
@pytest.mark.parametrize('stop, code', [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_stopping_grade_py_stops_the_student_code_too(tmp_path, stop, code):
    folder = our_submission(tmp_path / 'stubborn', replace={'modules.py': (
        'import numpy as np\n', 'import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\n'
                                'while True:\n    pass\n')})
    grading = subprocess.Popen([sys.executable, str(REPO / 'grade.py'), str(folder)],
                               cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    deadline = time.monotonic() + 120
    while not processes_marked(f'{grading.pid}-') and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_marked(f'{grading.pid}-'), 'the student code never started'
    grading.send_signal(stop)
    _, stderr = grading.communicate(timeout=60)
    assert grading.returncode == code, stderr
    assert 'Traceback' not in stderr
    assert processes_marked(f'{grading.pid}-') == []


def children_of(pid):
    children = []
    for entry in os.scandir('/proc'):
        if entry.name.isdigit():
            try:
                with open(f'/proc/{entry.name}/stat', 'rb') as stat:
                    if int(stat.read().rsplit(b')', 1)[1].split()[1]) == pid:
                        children.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue
    return children


@pytest.mark.slow
def test_a_terminated_batch_writes_what_it_graded_and_leaves_no_student_code(tmp_path):
    batch = tmp_path / 'submissions'
    (batch / 'a_empty').mkdir(parents=True)
    our_submission(batch / 'b_stubborn', files=('modules.py',), replace={'modules.py': (
        'import numpy as np\n', 'import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\n'
                                'while True:\n    pass\n')})
    out = tmp_path / 'grades'
    grading = subprocess.Popen([sys.executable, str(REPO / 'grade.py'), str(batch), '--jobs', '2',
                                '--out', str(out), '--no_progress'], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    workers = []
    while time.monotonic() < deadline and not (
            (out / 'feedback' / 'a_empty.json').exists()
            and any(processes_marked(f'{worker}-') for worker in workers)):
        workers = children_of(grading.pid)
        time.sleep(0.2)
    assert (out / 'feedback' / 'a_empty.json').exists()
    grading.terminate()
    _, stderr = grading.communicate(timeout=60)
    assert grading.returncode == 143, stderr
    with open(out / 'grades.csv', newline='') as handle:
        assert [row['submission'] for row in csv.DictReader(handle)] == ['a_empty']
    time.sleep(0.5)
    assert not [pid for worker in workers for pid in processes_marked(f'{worker}-')]


@pytest.mark.slow
@pytest.mark.skipif(os.getuid() != 0, reason='the warning is for root')
def test_grading_without_the_sandbox_says_in_one_line_what_it_gives_up(tmp_path):
    (tmp_path / 'empty').mkdir()
    result = grade(tmp_path / 'empty', '--no_sandbox', '--format', 'json', cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert [line for line in result.stderr.splitlines() if line.strip()] == [
        line for line in result.stderr.splitlines() if line.startswith('--no_sandbox: ')]
    assert 'network' in result.stderr and 'user id of its own' in result.stderr
    # As root where bubblewrap cannot be found, one line says what is missing.
    missing = subprocess.run([sys.executable, str(REPO / 'grade.py'), str(tmp_path / 'empty'),
                              '--format', 'json'], cwd=tmp_path, capture_output=True, text=True,
                             timeout=600, env={**os.environ, 'PATH': '/nonexistent'})
    assert missing.returncode == 0, missing.stderr
    lines = [line for line in missing.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith('bubblewrap is missing'), lines
