"""The grader's items, its file checks, the year detection and the rubric.

The fast tests judge hand-made probe results and sources; the slow ones run the whole
grader (sandbox included) on our own files, the template, an empty folder, a 2023-style
submission and a few broken ones.
"""
import json
import textwrap

import numpy as np
import pytest

from grading_mutants import reference_sources, write_submission
from lab.grading import items, probes
from lab.grading.grader import detect_year, grade_submission, source_problems
from lab.grading.rubric import RubricError, load_rubric
from lab.grading.template import write_template

ELU_2024_INIT = '''    def __init__(self, alpha=1.0):
        super().__init__()
        # A Python float: a NumPy float64 scalar would promote float32 data.
        self.alpha = float(alpha)
'''
ELU_2023_INIT = '''    def __init__(self):
        super().__init__()
        self.alpha = 1.0
'''


# -- the rubric ------------------------------------------------------------------------------

def test_default_rubric_names_every_check_once_with_points():
    rubric = load_rubric()
    assert sorted(rubric.ids()) == sorted(items.ITEM_CHECKS)
    assert rubric.max_total == sum(item.points for item in rubric.items) > 0
    assert all(item.visibility == 'visible' for item in rubric.items)


@pytest.mark.parametrize('text, words', [
    ('[[item]]\nid = "no_such_check"\n', 'unknown id'),
    ('[[item]]\nid = "ce_forward"\n[[item]]\nid = "ce_forward"\n', 'appears twice'),
    ('[[item]]\nid = "ce_forward"\npoints = -1\n', 'points must be'),
    ('[[item]]\nid = "ce_forward"\nvisibility = "secret"\n', 'visibility must be'),
    ('[[item]]\nid = "ce_forward"\npoint = 2\n', 'unknown keys'),
    ('title = "no items"\n', 'no [[item]]'),
    ('[[item]\n', 'not valid TOML'),
])
def test_a_broken_rubric_is_refused_in_one_line(tmp_path, text, words):
    path = tmp_path / 'rubric.toml'
    path.write_text(text)
    with pytest.raises(RubricError, match=words.replace('[', r'\[').replace(']', r'\]')) as error:
        load_rubric(path)
    assert '\n' not in str(error.value)


def test_a_missing_rubric_file_is_named(tmp_path):
    with pytest.raises(RubricError, match='not found'):
        load_rubric(tmp_path / 'absent.toml')


# -- file-level problems and the year ----------------------------------------------------------

def test_merge_conflict_marker_is_named_with_its_line():
    problems = source_problems('modules.py', '<<<<<<< HEAD\nimport numpy as np\n=======\n')
    assert problems == [problems[0]]
    assert 'modules.py line 1' in problems[0] and 'merge-conflict marker' in problems[0]


def test_syntax_error_names_file_and_line():
    problems = source_problems('mlp_numpy.py', 'import numpy as np\n\ndef f(:\n    pass\n')
    assert problems and problems[0].startswith('mlp_numpy.py line 3: syntax error')


def test_stray_torch_import_in_modules_and_editor_auto_import_are_named():
    source = 'import numpy as np\nimport torch\nfrom filecmp import clear_cache\n'
    problems = source_problems('modules.py', source)
    assert any('line 2' in line and 'imports torch' in line for line in problems)
    assert any('line 3' in line and 'auto-import' in line for line in problems)
    assert source_problems('mlp_pytorch.py', 'import torch\nfrom torch import nn\n') == []


def test_names_removed_in_numpy_2_are_named():
    problems = source_problems('modules.py', 'import numpy as np\nx = np.float_(1) + np.NaN\n')
    assert any('np.float_' in line and 'NumPy 2' in line for line in problems)
    assert any('np.NaN' in line for line in problems)


@pytest.mark.parametrize('init, year', [
    ('    def __init__(self, alpha):\n        self.alpha = alpha\n', 2025),
    ('    def __init__(self, alpha=1.0, *, extra=None):\n        self.alpha = alpha\n', 2025),
    ('    def __init__(self):\n        self.alpha = 1.0\n', 2023),
    ('    pass\n', 2023),
])
def test_year_is_read_from_elu_module_signature(tmp_path, init, year):
    (tmp_path / 'modules.py').write_text(f'class ELUModule(object):\n{init}')
    assert detect_year(tmp_path)[0] == year


def test_year_is_assumed_when_modules_is_unreadable(tmp_path):
    (tmp_path / 'modules.py').write_text('<<<<<<< HEAD\n')
    year, how = detect_year(tmp_path)
    assert year == 2025 and how.startswith('assumed')


# -- diagnoses on hand-made results --------------------------------------------------------

def results_with(probe, values, status='ok', error=None):
    """ProbeResults holding one probe's values (arrays stored as the probes store them)."""
    arrays, stored = {}, {}
    for key, value in values.items():
        if isinstance(value, np.ndarray):
            arrays[f'{probe}/{key}'] = value
            stored[key] = {'array': list(value.shape), 'dtype': str(value.dtype)}
        else:
            stored[key] = value
    record = {'status': status, 'values': stored}
    if error:
        record['error'] = error
    return items.ProbeResults(arrays, {'probes': {probe: record}, 'files': {}})


@pytest.fixture(scope='module')
def reference():
    return items.Reference(2024)


def test_ce_backward_fused_gradient_is_named_with_evidence(reference):
    x, labels = reference.inputs['ce_x'], reference.inputs['ce_labels']
    fused = (x - np.eye(4)[labels]) / len(x)
    verdict = items.check_ce_backward(results_with('ce_backward', {'dx': fused}), reference)
    assert not verdict.passed
    assert 'dL/d(logits) = (S − T)/N' in verdict.diagnosis
    assert 'expected' in verdict.diagnosis and 'returned' in verdict.diagnosis


def test_ce_backward_right_answer_passes(reference):
    right = reference.cross_entropy()['dx']
    assert items.check_ce_backward(results_with('ce_backward', {'dx': right}), reference).passed


def test_unknown_mistake_still_gets_expected_and_returned(reference):
    wrong = reference.cross_entropy()['dx'] + 0.123
    verdict = items.check_ce_backward(results_with('ce_backward', {'dx': wrong}), reference)
    assert 'returns wrong values' in verdict.diagnosis


def test_a_scaling_off_by_n_is_named():
    expected = np.arange(1.0, 7.0).reshape(2, 3)
    text = items.explain('f', expected / 2, expected, [], 'for x', batch_size=2)
    assert 'factor 1/N' in text and 'N = 2' in text
    assert 'factor of 3' in items.explain('f', 3 * expected, expected, [], 'for x')


def test_not_implemented_timeout_and_signature_have_their_words(reference):
    error = {'type': 'NotImplementedError', 'message': '', 'where': 'modules.py:9'}
    results = results_with('softmax', {}, 'not_implemented', error)
    assert 'not implemented yet' in items.check_softmax_forward(results, reference).diagnosis
    error = {'type': 'ProbeTimeout', 'message': 'ran past its time budget of 4 s', 'where': None}
    results = results_with('softmax', {}, 'timeout', error)
    assert 'infinite loop' in items.check_softmax_forward(results, reference).diagnosis
    error = {'type': 'TypeError', 'where': None,
             'message': "ELUModule.__init__() got an unexpected keyword argument 'alpha'"}
    results = results_with('elu', {}, 'error', error)
    assert 'changed required signature' in items.check_elu('out', 'ELUModule.forward')(
        results, reference).diagnosis


def test_missing_file_and_syntax_error_are_named_on_the_item(reference):
    meta = {'files': {'modules': {'status': 'error', 'error': {
        'type': 'SyntaxError', 'message': "invalid syntax ('<<<<<<< HEAD')",
        'where': 'modules.py:1'}}}, 'probes': {'linear': {'status': 'file_error',
                                                          'file': 'modules', 'values': {}}}}
    diagnosis = items.check_linear_forward(items.ProbeResults({}, meta), reference).diagnosis
    assert 'modules.py line 1' in diagnosis and 'merge-conflict marker' in diagnosis
    meta = {'files': {'modules': {'status': 'missing'}},
            'probes': {'linear': {'status': 'file_missing', 'file': 'modules', 'values': {}}}}
    diagnosis = items.check_linear_forward(items.ProbeResults({}, meta), reference).diagnosis
    assert 'modules.py is missing' in diagnosis


def test_a_probe_that_never_ran_carries_the_run_problem(reference):
    results = items.ProbeResults({}, {}, run_problem='stopped after 60 s of wall-clock time')
    verdict = items.check_softmax_backward(results, reference)
    assert not verdict.passed and 'stopped after 60 s' in verdict.diagnosis


def test_every_check_fails_rather_than_crashes_on_empty_results(reference):
    verdicts = items.grade_items(list(items.ITEM_CHECKS), items.ProbeResults({}, {}), reference)
    assert all(not verdict.passed and verdict.diagnosis for verdict in verdicts.values())
    assert not any('grader could not judge' in verdict.diagnosis for verdict in verdicts.values())


def test_probe_inputs_are_the_same_on_every_call():
    first, second = probes.probe_inputs(2024), probes.probe_inputs(2024)
    assert first.keys() == second.keys()
    assert all(np.array_equal(first[key], second[key]) for key in first)
    assert probes.probe_inputs(2023)['alpha'] == 1.0 and first['alpha'] == 0.5


# -- the whole grader, sandbox included --------------------------------------------------------

@pytest.mark.slow
def test_our_own_files_get_full_marks(tmp_path):
    report = grade_submission(write_submission(tmp_path / 'ours', reference_sources()))
    assert [item.name for item in report.items if not item.passed] == []
    assert report.total == report.max_total and report.problems == []
    assert json.loads(json.dumps(report.to_json()))['total'] == report.max_total


@pytest.mark.slow
def test_the_template_gets_zero_with_not_implemented_on_every_item(tmp_path):
    write_template(tmp_path / 'template')
    report = grade_submission(tmp_path / 'template')
    assert report.total == 0
    assert all('not implemented yet' in item.diagnosis for item in report.items), [
        item.diagnosis for item in report.items if 'not implemented yet' not in item.diagnosis]


@pytest.mark.slow
def test_an_empty_folder_gets_zero_and_each_item_names_its_missing_file(tmp_path):
    (tmp_path / 'empty').mkdir()
    report = grade_submission(tmp_path / 'empty')
    assert report.total == 0
    assert all('.py is missing' in item.diagnosis for item in report.items)
    assert sum('is missing' in problem for problem in report.problems) == 3


@pytest.mark.slow
def test_a_2023_submission_is_detected_and_a_forced_2024_costs_only_the_elu_test(tmp_path):
    sources = reference_sources()
    assert ELU_2024_INIT in sources['modules.py']
    sources['modules.py'] = sources['modules.py'].replace(ELU_2024_INIT, ELU_2023_INIT)
    folder = write_submission(tmp_path / 'y2023', sources)
    rubric_ids = {'elu_forward', 'elu_backward', 'official_elu', 'linear_dx'}
    rubric = load_rubric()
    rubric = type(rubric)(tuple(item for item in rubric.items if item.id in rubric_ids))
    detected = grade_submission(folder, rubric=rubric)
    assert detected.year == 2023 and detected.total == detected.max_total
    forced = grade_submission(folder, year=2024, rubric=rubric)
    assert [item.id for item in forced.items if not item.passed] == ['official_elu']
    signature_lines = [line for line in forced.problems if 'changed required signature' in line]
    assert len(signature_lines) == 1 and 'ELUModule' in signature_lines[0]


@pytest.mark.slow
def test_an_infinite_loop_in_one_method_costs_only_its_items(tmp_path):
    sources = reference_sources()
    old = "        exp = np.exp(x - x.max(axis=1, keepdims=True))"
    sources['modules.py'] = sources['modules.py'].replace(
        old, "        while True:\n            pass\n" + old)
    rubric = load_rubric()
    wanted = {'softmax_forward', 'linear_forward', 'ce_backward'}
    rubric = type(rubric)(tuple(item for item in rubric.items if item.id in wanted))
    report = grade_submission(write_submission(tmp_path / 'loop', sources), rubric=rubric)
    verdicts = {item.id: item for item in report.items}
    assert verdicts['linear_forward'].passed and verdicts['ce_backward'].passed
    assert 'time budget' in verdicts['softmax_forward'].diagnosis


@pytest.mark.slow
def test_a_stray_torch_import_and_an_auto_import_are_reported_and_cost_nothing(tmp_path):
    sources = reference_sources()
    sources['modules.py'] = textwrap.dedent('''\
        import torch
        from filecmp import clear_cache
        ''') + sources['modules.py']
    rubric = load_rubric()
    rubric = type(rubric)(tuple(item for item in rubric.items if item.id == 'ce_forward'))
    report = grade_submission(write_submission(tmp_path / 'imports', sources), rubric=rubric)
    assert any('imports torch' in line for line in report.problems)
    assert any('auto-import' in line for line in report.problems)
    assert report.items[0].passed


@pytest.mark.parametrize('diagnosis, mistake', [
    ('CrossEntropyModule.backward misses the 1/N of the mean: returns −T/X; expected [[1]]',
     'CrossEntropyModule.backward misses the 1/N of the mean: returns −T/X'),
    ("LinearModule.forward raised ValueError: shapes (2,4) at modules.py:81 (forward)",
     'crashed: ValueError'),
    ('ELUModule.forward: not implemented yet (NotImplementedError at modules.py:9)',
     'not implemented yet'),
    ('MLP.forward (mlp_numpy) with n_hidden=[]: mlp_numpy.py is missing from the submission',
     'mlp_numpy.py is missing'),
    ('official test_softmax_backward fails: SoftMaxModule: relative error 0.5 in case 1 of 10, '
     'above 1e-05 | the mistake: SoftMaxModule.backward keeps only the diagonal of the '
     'Jacobian: dout · s (1 − s); the full product', 'SoftMaxModule.backward keeps only the '
     'diagonal of the Jacobian: dout · s (1 − s)'),
])
def test_the_mistake_name_keeps_the_words_and_drops_the_evidence(diagnosis, mistake):
    assert items.mistake_of(diagnosis) == mistake
    assert items.fail(diagnosis).mistake == mistake and items.PASS.mistake == ''


SPLIT_LISTS_MLP = '''
from modules import ELUModule, LinearModule


class MLP(object):
    def __init__(self, n_inputs, n_hidden, n_classes):
        widths = [n_inputs] + list(n_hidden) + [n_classes]
        self.activations = [ELUModule(1.0) for _ in n_hidden]
        self.linears = [LinearModule(fan_in, fan_out, input_layer=(index == 0))
                        for index, (fan_in, fan_out) in enumerate(zip(widths, widths[1:]))]

    def forward(self, x):
        for linear, activation in zip(self.linears, self.activations):
            x = activation.forward(linear.forward(x))
        return self.linears[-1].forward(x)

    def backward(self, dout):
        dout = self.linears[-1].backward(dout)
        for linear, activation in reversed(list(zip(self.linears, self.activations))):
            dout = linear.backward(activation.backward(dout))

    def clear_cache(self):
        for layer in self.linears + self.activations:
            layer.clear_cache()
'''


@pytest.mark.slow
def test_an_mlp_keeping_its_layers_in_two_lists_is_read_in_call_order(tmp_path):
    sources = reference_sources()
    sources['mlp_numpy.py'] = SPLIT_LISTS_MLP
    wanted = {'mlp_numpy_layers', 'mlp_numpy_forward', 'mlp_numpy_backward', 'training_numpy',
              'clear_cache'}
    rubric = load_rubric()
    rubric = type(rubric)(tuple(item for item in rubric.items if item.id in wanted))
    report = grade_submission(write_submission(tmp_path / 'split', sources), rubric=rubric)
    assert [item.diagnosis for item in report.items if not item.passed] == []
