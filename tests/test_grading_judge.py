"""The judge on hand-made answers: known mistakes, mistakes named by asking, failures, wire.

No student process here: a stand-in student answers with a formula, so each diagnosis
path is reached by an answer made for it. The whole grader on real files is in
test_grading_items.py, the forgeries in test_grading_forgery.py.
"""
import io
import json
import struct

import numpy as np
import pytest

from lab.grading import spec
from lab.grading.functions import all_items
from lab.grading.grader import ItemResult
from lab.grading.judge import PASS, CallFailed, Verdict, failure_verdict, judge
from lab.grading.rubric import RubricError, load_rubric

ITEMS = all_items()


class AnsweringStudent:
    """Answers every question with ``answers(item_id, q)``: the student's function
    written as a formula, asked as often as the judge likes."""

    def __init__(self, item, answers):
        self.item, self.formula, self.notes = item, answers, set()

    def ask(self, item, q):
        value = self.formula(q)
        if isinstance(value, Exception):
            raise value
        return {item.answer: value, 'x_after': q.get('x'), 'alpha': q.get('alpha')}


def verdict_for(item_id, formula, year=2024):
    item = ITEMS[item_id]
    if item.check is None:
        return judge(item, AnsweringStudent(item, formula), year)
    from lab.grading.judge import judge_value
    q = item.inputs(year)
    student = AnsweringStudent(item, formula)
    value = formula(q)
    return judge_value(item, student, q, value)


# -- the rubric comes from the graded functions ------------------------------------------------

def test_the_default_rubric_grades_every_declared_item_once():
    rubric = load_rubric()
    assert sorted(rubric.ids()) == sorted(ITEMS)
    assert all(item.graded is ITEMS[item.id] for item in rubric.items)


def test_a_rubric_entry_without_name_or_points_takes_the_modules(tmp_path):
    path = tmp_path / 'rubric.toml'
    path.write_text('[[item]]\nid = "ce_forward"\n[[item]]\nid = "linear_dx"\npoints = 5\n')
    rubric = load_rubric(path)
    assert [(item.name, item.points) for item in rubric.items] == [
        (ITEMS['ce_forward'].name, ITEMS['ce_forward'].points), (ITEMS['linear_dx'].name, 5.0)]
    assert rubric.max_total == ITEMS['ce_forward'].points + 5


def test_a_subset_keeps_the_rubrics_order_and_refuses_unknown_ids():
    rubric = load_rubric()
    assert rubric.subset({'ce_forward', 'linear_dx'}).ids() == ['linear_dx', 'ce_forward']
    with pytest.raises(RubricError, match='no_such'):
        rubric.subset({'no_such'})


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


# -- known mistakes, as data ---------------------------------------------------------------------

def test_a_known_mistake_is_named_with_its_name_evidence_and_derivation():
    verdict = verdict_for('ce_backward', lambda q: (q['x'] - np.eye(4)[q['y']]) / len(q['x']))
    assert not verdict.passed and verdict.mistake == 'dL/d(logits) for dL/dx'
    assert 'expected' in verdict.evidence and 'returned' in verdict.evidence
    assert verdict.diagnosis.endswith('(see docs/derivations.md#cross-entropy)')
    assert verdict.diagnosis.startswith(verdict.words)


def test_the_right_answer_passes_and_an_almost_right_one_does_not():
    right = ITEMS['linear_dx'].reference
    assert verdict_for('linear_dx', right) == PASS
    assert not verdict_for('linear_dx', lambda q: right(q) * (1 + 1e-3)).passed


# -- mistakes in no catalogue, named by asking ------------------------------------------------

def elu(x, alpha):
    return np.where(x > 0, x, alpha * np.expm1(x))


def test_an_error_on_one_branch_only_is_located():
    # right for x <= 0, but the positive branch squared: in no catalogue
    verdict = verdict_for('elu_forward', lambda q: np.where(q['x'] > 0, q['x'] ** 2,
                                                            elu(q['x'], q['alpha'])))
    assert 'wrong only where x > 0' in verdict.words and 'right where x <= 0' in verdict.words


def test_the_label_entries_are_told_apart_from_the_others():
    def backward(q):  # right at the labels, and -1/(N X) added elsewhere
        t = np.eye(4)[q['y']]
        return -t / (len(q['x']) * q['x']) - (1 - t) * 0.1 / q['x']
    verdict = verdict_for('ce_backward', backward)
    assert 'wrong only at the other entries (T = 0)' in verdict.words


def test_a_batch_of_one_right_and_a_batch_wrong_means_mixed_rows():
    def softmax_backward(q):  # the sum over every entry, axis=1 forgotten
        s = np.exp(q['x']) / np.exp(q['x']).sum(axis=1, keepdims=True)
        return s * (q['dout'] - (q['dout'] * s).sum())
    verdict = verdict_for('softmax_backward', softmax_backward)
    assert 'right for a batch of one sample' in verdict.words and 'axis 0' in verdict.words


def test_a_bias_never_added_shows_at_x_zero():
    verdict = verdict_for('linear_forward', lambda q: 1.5 * q['x'] @ q['W'].T)
    assert 'never adds the bias' in verdict.words


def test_a_scalar_off_by_a_meaningless_factor_is_not_called_a_factor():
    # a loss computed wrongly: any scalar is some multiple of the right one
    verdict = verdict_for('ce_forward', lambda q: float(-np.log(q['x']).mean() + 0.3))
    assert 'factor of' not in verdict.words and 'times the right value' not in verdict.words


def test_a_factor_equal_to_a_quantity_is_named_by_it():
    verdict = verdict_for('ce_forward', lambda q: float(-np.log(
        q['x'][np.arange(3), q['y']]).sum()))
    assert 'is N = 3 times' in verdict.words and verdict.mistake == 'scaled by N'


def test_a_transpose_and_a_missing_sum_are_named_by_shape():
    transposed = verdict_for('linear_dx', lambda q: (q['dout'] @ q['W']).T)
    assert 'transpose' in transposed.words
    per_sample = verdict_for('linear_dbias', lambda q: q['dout'] * 1.0)
    assert 'one row per sample' in per_sample.words and 'axis 0' in per_sample.words


# -- calls that give no value ---------------------------------------------------------------------

@pytest.mark.parametrize('failure, words', [
    ({'kind': 'not_implemented', 'where': 'modules.py:9'}, 'not implemented yet'),
    ({'kind': 'timeout', 'message': 'ran past its time budget of 4 s'}, 'infinite loop'),
    ({'kind': 'raised', 'type': 'TypeError',
      'message': "ELUModule.__init__() got an unexpected keyword argument 'alpha'"},
     'changed required signature'),
    ({'kind': 'raised', 'type': 'RecursionError', 'message': 'maximum recursion depth'},
     'recurses without end'),
    ({'kind': 'raised', 'type': 'ModuleNotFoundError',
      'message': 'the NumPy part must not use PyTorch, as the assignment says: ...'},
     'must not use PyTorch'),
    ({'kind': 'file', 'file': 'modules', 'status': 'missing'}, 'modules.py is missing'),
    ({'kind': 'file', 'file': 'modules', 'status': 'error', 'error': {
        'type': 'SyntaxError', 'message': "invalid syntax ('<<<<<<< HEAD')",
        'where': 'modules.py:1'}}, 'modules.py line 1: SyntaxError'),
])
def test_a_failed_call_is_one_line_with_its_words(failure, words):
    verdict = failure_verdict('ELUModule.forward', failure)
    assert not verdict.passed and words in verdict.words and '\n' not in verdict.words


def test_the_function_that_raised_is_named_not_its_caller():
    verdict = failure_verdict('MLP.backward (mlp_numpy)', {
        'kind': 'raised', 'type': 'ValueError', 'message': 'shapes (3,4) and (3,4)',
        'where': 'modules.py:81', 'raised_in': 'LinearModule.backward'})
    assert 'raised ValueError in LinearModule.backward' in verdict.words
    assert verdict.mistake == 'crashed: ValueError in LinearModule.backward'


def test_every_item_fails_rather_than_crashes_when_nothing_answers():
    class Gone:
        notes = set()

        def __getattr__(self, name):
            def refuse(*args, **kwargs):
                raise CallFailed({'kind': 'process', 'message': 'was stopped'})
            return refuse
    verdicts = {item_id: judge(item, Gone(), 2024) for item_id, item in ITEMS.items()}
    assert all(not verdict.passed and 'was stopped' in verdict.diagnosis
               for verdict in verdicts.values()), verdicts


# -- the wire ----------------------------------------------------------------------------------

def frame(header, blobs=b''):
    data = json.dumps(header).encode() if not isinstance(header, bytes) else header
    return io.BytesIO(struct.pack('>I', len(data)) + data + blobs).read


def test_a_frame_round_trips_arrays_numbers_and_text():
    value = {'a': np.arange(6.0).reshape(2, 3), 'n': [1, 2.5, None, 'x'], 'f': float('nan')}
    header, blobs = spec.pack(value)
    back = spec.unpack(io.BytesIO(header + b''.join(blobs)).read)
    assert np.array_equal(back['a'], value['a']) and back['n'] == value['n']
    assert np.isnan(back['f'])


@pytest.mark.parametrize('data, words', [
    (b'[' * 100000 + b']' * 100000, 'nested deeper'),
    ({'value': [[[[[[[[[[1]]]]]]]]]], 'arrays': []}, 'nested deeper than 8'),
    ({'value': {'$array': 0}, 'arrays': [['|O', [2]]]}, 'not a number dtype'),
    ({'value': {'$array': 0}, 'arrays': [['<f8', [2 ** 30, 2 ** 30]]]}, 'MiB'),
    ({'value': 1}, 'exactly the keys'),
    (b'{not json', 'not JSON'),
    ({'value': 'x' * (spec.MAX_TEXT + 1), 'arrays': []}, 'a text of more than'),
])
def test_a_malformed_answer_is_one_wire_error(data, words):
    if isinstance(data, bytes) and data.startswith(b'['):
        data = json.dumps({'value': None, 'arrays': []}).encode()[:-1] + b', "x": ' + data + b'}'
    with pytest.raises(spec.WireError, match=words) as error:
        spec.unpack(frame(data))
    assert '\n' not in str(error.value)


def test_a_header_larger_than_the_limit_is_refused_before_it_is_read():
    read = io.BytesIO(struct.pack('>I', spec.MAX_HEADER_BYTES + 1)).read
    with pytest.raises(spec.WireError, match='header'):
        spec.unpack(read)


# -- verdicts carry their fields ---------------------------------------------------------------

def test_an_items_json_has_the_fields_the_class_report_reads():
    verdict = Verdict(False, 'LinearModule.forward forgets the bias b', 'the bias forgotten',
                      'for x = [1]: expected 2, returned 1', 'linear')
    from dataclasses import asdict
    fields = asdict(ItemResult('linear_forward', 'LinearModule.forward', 0.0, 2.0, False,
                               verdict.diagnosis, 'visible', verdict.mistake, verdict.evidence,
                               verdict.doc))
    assert set(fields) >= {'id', 'name', 'points', 'max_points', 'passed', 'diagnosis',
                           'visibility', 'mistake'}
    assert fields['mistake'] == 'the bias forgotten' and fields['doc'] == 'linear'


# -- a new graded function: one module and one rubric entry ------------------------------------

TOY_MODULE = '''
import numpy as np

from lab.grading.judge import Item, Mistake, Questions


def inputs(year):
    return {'x': np.array([[1.0, -2.0, 3.0], [0.5, 0.0, -1.5]])}


def ask(student, q):
    return {'out': student.call(student.new('modules', 'Doubler'), 'forward', q['x'])}


ITEMS = [Item(id='doubler_forward', name='Doubler.forward', points=3,
              function='Doubler.forward', files=('modules',), doc='linear', inputs=inputs,
              ask=ask, answer='out', reference=lambda q: 2 * q['x'],
              mistakes=(Mistake('returns x', 'returns x unchanged', lambda q: q['x']),),
              questions=Questions(regions=lambda q: [('where x > 0', q['x'] > 0),
                                                     ('where x <= 0', q['x'] <= 0)]))]
'''

DOUBLERS = {
    'right': 'return 2 * x',
    'unchanged': 'return x * 1.0',
    'negative branch halved': 'return np.where(x > 0, 2 * x, x)',
}


@pytest.mark.parametrize('body', DOUBLERS)
def test_a_toy_graded_function_is_graded_end_to_end_from_one_module_and_one_entry(
        tmp_path, monkeypatch, body):
    from lab.grading.grader import grade_submission
    package = tmp_path / 'toy_functions'
    package.mkdir()
    (package / '__init__.py').write_text('')
    (package / 'doubler.py').write_text(TOY_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / 'rubric.toml').write_text('[[item]]\nid = "doubler_forward"\n')
    rubric = load_rubric(tmp_path / 'rubric.toml', functions='toy_functions')
    submission = tmp_path / 'student'
    submission.mkdir()
    (submission / 'modules.py').write_text(
        'import numpy as np\n\n\nclass Doubler:\n    def forward(self, x):\n'
        f'        {DOUBLERS[body]}\n')
    item = grade_submission(submission, rubric=rubric).items[0]
    assert (item.id, item.max_points) == ('doubler_forward', 3)
    if body == 'right':
        assert item.passed and item.points == 3
    elif body == 'unchanged':
        assert item.mistake == 'returns x' and 'returns x unchanged' in item.diagnosis
    else:
        assert 'wrong only where x <= 0' in item.diagnosis and item.points == 0
