"""Student code is untrusted: each hostile submission ends as a one-line verdict on its items.

The hostile code sits at the top of an otherwise correct ``modules.py`` (our
own), so the items it affects are exactly the ones that need ``modules.py``.
Each case is graded end to end with ``grade_submission`` (the probes run in
the sandbox, the verdicts are computed here); the mechanism tests beside them
run a small script of their own through ``run_isolated``, which is quick.
"""
import ast
import os
import shutil
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO
from lab.grading.grader import grade_submission
from lab.grading.sandbox import (Limits, ResultsError, bubblewrap, descendants, load_results,
                                 run_isolated)

MODULES_ITEMS = ('LinearModule.forward', 'ELUModule.backward', 'CrossEntropyModule.backward')
NEEDS_BWRAP = pytest.mark.skipif(bubblewrap() is None, reason='bubblewrap (bwrap) not installed')


def make_submission(folder, prefix='', modules=None, files=('modules.py', 'mlp_numpy.py')):
    """A submission of our own ``files``, with ``prefix`` at the top of modules.py."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in files:
        shutil.copyfile(REPO / name, folder / name)
    if 'modules.py' in files:
        source = (REPO / 'modules.py').read_text() if modules is None else modules
        (folder / 'modules.py').write_text(textwrap.dedent(prefix) + source)
    return folder


def item(report, name):
    return next(entry for entry in report.items if entry.name == name)


def assert_lost_with(report, words):
    """Every item that needs modules.py lost its points, each saying ``words`` in one line."""
    for name in MODULES_ITEMS:
        entry = item(report, name)
        assert not entry.passed and entry.points == 0, (name, entry)
        text = ' '.join([entry.diagnosis, *report.problems])
        assert any(word in text for word in words), (name, entry.diagnosis, report.problems)
        assert '\n' not in entry.diagnosis.strip(), entry.diagnosis


def assert_modules_items_pass(report):
    for name in MODULES_ITEMS:
        assert item(report, name).passed, item(report, name)


# -- hostile submissions, graded end to end -------------------------------------------------

@pytest.mark.slow
def test_an_endless_loop_at_import_is_stopped_and_named(tmp_path):
    folder = make_submission(tmp_path / 'loop', 'while True:\n    pass\n')
    report = grade_submission(folder, year=2024, limits=Limits(wall_s=60))
    assert_lost_with(report, ('time budget', 'wall-clock', 'endless loop', 'infinite loop'))


@pytest.mark.slow
def test_a_loop_that_ignores_the_alarm_meets_the_wall_clock_limit(tmp_path):
    folder = make_submission(tmp_path / 'stubborn', """\
        import signal
        signal.signal(signal.SIGALRM, signal.SIG_IGN)
        while True:
            pass
        """)
    report = grade_submission(folder, year=2024, limits=Limits(wall_s=6))
    assert_lost_with(report, ('wall-clock',))


@pytest.mark.slow
def test_a_fork_bomb_is_stopped_and_leaves_no_process(tmp_path):
    # Bounded by construction (2**7 processes) so that a broken sandbox cannot take the
    # machine down with it; the limit of 32 processes stops it long before.
    folder = make_submission(tmp_path / 'bomb', """\
        import os, time
        for _ in range(7):
            os.fork()
        with open(os.path.join(os.environ['TMPDIR'], f'{os.getpid()}.pid'), 'w'):
            pass
        time.sleep(120)
        """)
    earlier = set(descendants(os.getpid()))
    report = grade_submission(folder, year=2024, limits=Limits(wall_s=60))
    # Stopped by the grader's count, or (as root, first) refused by the kernel's count for
    # the run's user id: a fork fails with "Resource temporarily unavailable".
    assert_lost_with(report, ('fork bomb', 'Resource temporarily unavailable'))
    assert set(descendants(os.getpid())) <= earlier, "the bomb left processes behind"


@pytest.mark.slow
def test_a_10_gb_allocation_fails_inside_the_memory_limit(tmp_path):
    folder = make_submission(tmp_path / 'hoard', """\
        import numpy as np
        hoard = np.ones(10 * 2 ** 30, dtype=np.uint8)
        """)
    report = grade_submission(folder, year=2024, limits=Limits(wall_s=60))
    assert_lost_with(report, ('MemoryError', 'memory'))


@pytest.mark.slow
def test_printing_a_gigabyte_through_print_costs_the_grade_nothing(tmp_path):
    folder = make_submission(tmp_path / 'chatty', """\
        import sys
        for _ in range(1024):
            sys.stdout.write('x' * 2 ** 20)
        """)
    report = grade_submission(folder, year=2024, limits=Limits(wall_s=60))
    assert_modules_items_pass(report)


@pytest.mark.slow
def test_printing_a_gigabyte_to_the_file_descriptor_is_stopped_at_the_output_cap(tmp_path):
    folder = make_submission(tmp_path / 'flood', """\
        import os
        for _ in range(1024):
            os.write(1, b'x' * 2 ** 20)
        """)
    started = time.monotonic()
    report = grade_submission(folder, year=2024, limits=Limits(wall_s=60))
    assert time.monotonic() - started < 60
    assert_lost_with(report, ('printed more than',))


@pytest.mark.slow
@pytest.mark.parametrize('exit_call', ['import sys; sys.exit(0)', 'import os; os._exit(0)'])
def test_exiting_at_import_ends_as_a_verdict(tmp_path, exit_call):
    folder = make_submission(tmp_path / 'quitter', exit_call + '\n')
    report = grade_submission(folder, year=2024, limits=Limits(wall_s=60))
    assert_lost_with(report, ('SystemExit', 'os._exit', 'sys.exit'))


@pytest.mark.slow
def test_a_syntax_error_names_the_file_and_line(tmp_path):
    folder = make_submission(tmp_path / 'typo', 'import numpy as np\n\ndef broken(:\n    pass\n')
    report = grade_submission(folder, year=2024, limits=Limits(wall_s=60))
    assert_lost_with(report, ('modules.py line 3', 'modules.py:3'))


@pytest.mark.slow
def test_a_merge_conflict_marker_is_named_as_such(tmp_path):
    folder = make_submission(tmp_path / 'conflict', '<<<<<<< HEAD\n')
    report = grade_submission(folder, year=2024, limits=Limits(wall_s=60))
    assert_lost_with(report, ('merge-conflict marker',))
    assert any('line 1' in text or ':1' in text
               for text in [*report.problems, item(report, 'LinearModule.forward').diagnosis])


@pytest.mark.slow
def test_a_missing_file_is_named_on_each_item_that_needs_it(tmp_path):
    folder = make_submission(tmp_path / 'partial', files=('mlp_numpy.py',))
    report = grade_submission(folder, year=2024, limits=Limits(wall_s=60))
    assert_lost_with(report, ('modules.py is missing',))


@pytest.mark.slow
def test_monkeypatching_numpy_cannot_change_a_verdict(tmp_path):
    # A wrong bias gradient (the mean, not the sum) behind a NumPy whose checks always pass:
    # the comparison happens in the grader's process, with its own NumPy.
    wrong = (REPO / 'modules.py').read_text().replace(
        "self.grads['bias'] = dout.sum(axis=0)", "self.grads['bias'] = dout.mean(axis=0)")
    assert wrong != (REPO / 'modules.py').read_text()
    folder = make_submission(tmp_path / 'patcher', """\
        import numpy as np
        np.allclose = lambda *args, **kwargs: True
        np.testing.assert_allclose = lambda *args, **kwargs: None
        np.savez = np.savez_compressed = lambda *args, **kwargs: None
        np.isclose = lambda a, b, *args, **kwargs: np.ones(np.shape(a), dtype=bool)
        """, modules=wrong)
    report = grade_submission(folder, year=2024, limits=Limits(wall_s=60))
    assert not item(report, 'LinearModule.backward: db').passed
    assert item(report, 'LinearModule.backward: dW').passed


@pytest.mark.slow
def test_writing_into_its_folder_changes_only_the_copy(tmp_path):
    folder = make_submission(tmp_path / 'scribbler', """\
        import os
        with open('graffiti.txt', 'w') as handle:
            handle.write('was here')
        with open('mlp_numpy.py', 'w') as handle:
            handle.write('raise SystemExit')
        """)
    before = {path.name: path.read_bytes() for path in folder.iterdir()}
    report = grade_submission(folder, year=2024, limits=Limits(wall_s=60))
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == before
    assert_modules_items_pass(report)


COPIER = """\
import os
for path in {paths!r}:
    if os.path.exists(path):
        exec(open(path).read())
        break
else:
    raise ImportError('nothing to copy from')
"""


@pytest.mark.slow
@NEEDS_BWRAP
def test_under_the_sandbox_other_folders_and_the_reference_cannot_be_read(tmp_path):
    # The cheat: load the reference solution, or a classmate's, from a path on this machine.
    classmate = make_submission(tmp_path / 'classmate')
    folder = make_submission(tmp_path / 'copier', modules=COPIER.format(
        paths=(str(classmate / 'modules.py'), str(REPO / 'modules.py'))))
    report = grade_submission(folder, year=2024, limits=Limits(wall_s=60))  # the default
    assert_lost_with(report, ('ImportError', 'nothing to copy from'))


@pytest.mark.slow
@pytest.mark.skipif(os.getuid() != 0, reason='a user id of its own needs root')
def test_without_the_sandbox_a_private_folder_still_cannot_be_read(tmp_path):
    # Under its own user id the student reads what everyone may read, and no more: a
    # classmate's folder inside a private one (pytest's, mode 700) stays out of reach.
    classmate = make_submission(tmp_path / 'classmate')
    folder = make_submission(tmp_path / 'copier', modules=COPIER.format(
        paths=(str(classmate / 'modules.py'),)))
    report = grade_submission(folder, year=2024, limits=Limits(wall_s=60, sandbox=False))
    assert_lost_with(report, ('ImportError', 'nothing to copy from'))


# -- the mechanism, with a small script of our own ------------------------------------------

IMPORTER = textwrap.dedent("""\
    import importlib.util, os, sys
    sys.path.insert(0, os.getcwd())
    print('sys.path', sys.path)
    print('environment', sorted(os.environ))
    print('repository modules:', [name for name in ('lab', 'conftest', 'mlp_numpy')
                                  if importlib.util.find_spec(name) is not None])
    import modules
    print('imported', modules.__file__)
    """)


def run_importer(tmp_path, modules_source, **limits):
    sources = tmp_path / 'sources'
    sources.mkdir()
    (sources / 'modules.py').write_text(textwrap.dedent(modules_source))
    script = tmp_path / 'importer.py'
    script.write_text(IMPORTER)
    work = tmp_path / 'work'
    work.mkdir()
    return run_isolated(script, [], sources, Limits(**limits), work)


def test_the_student_process_sees_no_repository_and_a_scrubbed_environment(tmp_path,
                                                                            monkeypatch):
    monkeypatch.setenv('PYTHONPATH', str(REPO))
    monkeypatch.setenv('SECRET_TOKEN', 'do not pass on')
    outcome = run_importer(tmp_path, 'import sys\nprint(sys.stdin.read() == "")\n')
    assert outcome['problem'] is None and outcome['returncode'] == 0, outcome
    out = outcome['stdout_tail']
    assert 'True' in out
    assert f"imported {tmp_path / 'work' / 'submission' / 'modules.py'}" in out
    assert 'repository modules: []' in out
    # No folder of the repository on the path; a virtual environment inside the clone
    # (its site-packages) is the runtime, not the repository.
    path_line = next(line for line in out.splitlines() if line.startswith('sys.path'))
    runtime = Path(sys.prefix).resolve()
    for entry in ast.literal_eval(path_line.removeprefix('sys.path ')):
        entry = Path(entry).resolve()
        assert not (entry == REPO or REPO in entry.parents) or runtime in [entry, *entry.parents]
    assert 'SECRET_TOKEN' not in out and 'PYTHONPATH' not in out


def test_a_wall_clock_timeout_kills_the_whole_process_group(tmp_path):
    earlier = set(descendants(os.getpid()))
    outcome = run_importer(tmp_path, """\
        import os, time
        if os.fork() == 0:
            os.setsid()          # a child that leaves the group is still found
        time.sleep(60)
        """, wall_s=1.5)
    assert outcome['timed_out'] and 'wall-clock' in outcome['problem']
    assert outcome['elapsed_s'] < 10
    assert set(descendants(os.getpid())) <= earlier


def test_a_fork_bomb_is_stopped_at_the_process_cap_and_nothing_else_is_killed(tmp_path):
    earlier = set(descendants(os.getpid()))
    bystander = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])
    try:
        outcome = run_importer(tmp_path, """\
            import os, time
            for _ in range(7):
                os.fork()
            time.sleep(60)
            """, wall_s=30, max_processes=16)
        assert 'fork bomb' in outcome['problem'], outcome
        assert outcome['elapsed_s'] < 20
        assert set(descendants(os.getpid())) - earlier == {bystander.pid}
        assert bystander.poll() is None, "a process of the grader's own was killed"
    finally:
        bystander.kill()
        bystander.wait()


def test_output_beyond_the_cap_stops_the_run_and_keeps_a_tail(tmp_path):
    outcome = run_importer(tmp_path, """\
        import os
        while True:
            os.write(1, b'spam ' * 20000)
        """, output_bytes=2 ** 20)
    assert 'printed more than 1 MiB' in outcome['problem']
    assert 'spam spam' in outcome['stdout_tail'] and len(outcome['stdout_tail']) <= 8000


def test_memory_and_file_size_limits_hold(tmp_path):
    outcome = run_importer(tmp_path, """\
        try:
            hoard = bytearray(3 * 2 ** 30)
        except MemoryError:
            print('no memory')
        with open('big.bin', 'wb') as handle:
            handle.write(b'0' * (2 * 2 ** 20))
        """, memory_bytes=2 * 2 ** 30, file_bytes=2 ** 20)
    assert 'no memory' in outcome['stdout_tail']
    # Python ignores SIGXFSZ, so the write fails with EFBIG instead of killing the process.
    assert outcome['returncode'] == 1 and 'File too large' in outcome['stderr_tail']


def test_the_original_folder_is_never_written(tmp_path):
    source = ("open('modules.py', 'w').write('overwritten')\nopen('new.txt', 'w').write('new')\n"
              "print('copy reads', open('modules.py').read())\n")
    outcome = run_importer(tmp_path, source)
    assert outcome['problem'] is None
    assert 'copy reads overwritten' in outcome['stdout_tail']
    assert sorted(path.name for path in (tmp_path / 'sources').iterdir()) == ['modules.py']
    assert (tmp_path / 'sources' / 'modules.py').read_text() == source


def test_symbolic_links_in_a_submission_are_not_followed(tmp_path):
    sources = tmp_path / 'sources'
    sources.mkdir()
    secret = tmp_path / 'secret.py'
    secret.write_text('TOKEN = 1\n')
    (sources / 'modules.py').symlink_to(secret)
    script = tmp_path / 'lister.py'
    script.write_text("import os\nprint(sorted(os.listdir('.')))\n")
    (tmp_path / 'work').mkdir()
    outcome = run_isolated(script, [], sources, Limits(), tmp_path / 'work')
    assert '[]' in outcome['stdout_tail']


@NEEDS_BWRAP
def test_the_bubblewrap_sandbox_has_no_network_and_no_other_files(tmp_path):
    # Processes of earlier tests, orphaned to this (subreaper) process, are not this run's.
    earlier = set(descendants(os.getpid()))
    outcome = run_importer(tmp_path, f"""\
        import os, socket
        try:
            socket.create_connection(('192.0.2.1', 80), timeout=1)
            print('network: yes')
        except OSError:
            print('network: no')
        print('repository:', os.path.exists({str(REPO / 'modules.py')!r}))
        print('original:', os.path.exists({str(tmp_path / 'sources')!r}))
        """, sandbox=True)
    assert outcome['problem'] is None, outcome
    out = outcome['stdout_tail']
    assert 'network: no' in out and 'repository: False' in out and 'original: False' in out
    assert set(descendants(os.getpid())) <= earlier, (
        'bubblewrap left a process (or a zombie) behind')


# -- reading the results back ---------------------------------------------------------------

def test_results_with_pickles_or_odd_contents_are_refused(tmp_path):
    pickled = tmp_path / 'pickled.npz'
    np.savez(pickled, bad=np.array([{'a': 1}], dtype=object))
    with pytest.raises(ResultsError, match='pickles'):
        load_results(pickled)
    not_json = tmp_path / 'meta.npz'
    np.savez(not_json, __meta__=np.array('{not json'))
    with pytest.raises(ResultsError, match='JSON'):
        load_results(not_json)
    text = tmp_path / 'text.npz'
    text.write_text('hello')
    with pytest.raises(ResultsError):
        load_results(text)
    strings = tmp_path / 'strings.npz'
    np.savez(strings, words=np.array(['a', 'b']))
    with pytest.raises(ResultsError, match='not numbers'):
        load_results(strings)


def test_good_results_come_back_as_arrays_and_a_dict(tmp_path):
    path = tmp_path / 'good.npz'
    np.savez(path, x=np.arange(3.0), __meta__=np.array('{"year": 2024}'))
    arrays, meta = load_results(path)
    assert meta == {'year': 2024} and list(arrays) == ['x']
    np.testing.assert_array_equal(arrays['x'], [0.0, 1.0, 2.0])


def test_python_runs_isolated(tmp_path):
    """Guard: the interpreter used for students is this one, with -I."""
    outcome = run_importer(tmp_path, 'import sys\nprint("flags", sys.flags.isolated)\n')
    assert 'flags 1' in outcome['stdout_tail'], (sys.executable, outcome)


def test_results_that_claim_a_huge_array_are_refused_before_it_is_made(tmp_path):
    # A forged .npy header inside the archive: 10**12 float64 values in a file of a few bytes.
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000000,), }"
    header += ' ' * (117 - len(header)) + '\n'
    forged = tmp_path / 'forged.npz'
    with zipfile.ZipFile(forged, 'w') as archive:
        archive.writestr('huge.npy', b'\x93NUMPY\x01\x00' + len(header).to_bytes(2, 'little')
                         + header.encode('latin1') + b'\0' * 64)
    with pytest.raises(ResultsError, match='unpacks to more than'):
        load_results(forged)
