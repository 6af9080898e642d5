"""SoftMaxModule: forward, forward at logits of ±1000, and backward."""
import numpy as np

from lab.grading.judge import CallFailed, Item, Mistake, Questions, Verdict, attempt, \
    failure_verdict, judge_value

FILES = ('modules',)
DOC = 'softmax'


def inputs(year):
    rng = np.random.default_rng(29)
    return {'x': rng.standard_normal((3, 4)), 'dout': rng.standard_normal((3, 4))}


def softmax(x):
    exp = np.exp(x - x.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def ask(student, q):
    layer = student.new('modules', 'SoftMaxModule')
    out, (x_after,) = student.call(layer, 'forward', q['x'], echo=True)
    return {'out': out, 'x_after': x_after,
            'dx': attempt(lambda: student.call(layer, 'backward', q['dout']))}


def rows(q, index):
    return {'x': q['x'][index:index + 1], 'dout': q['dout'][index:index + 1]}


def factors(q):
    n, c = q['x'].shape
    return {'N': n, '1/N': 1 / n, 'C': c, '1/C': 1 / c}


def check_forward(student, q, item):
    try:
        answers = student.ask(item, q)
    except CallFailed as failed:
        return failure_verdict(item.function, failed.failure)
    if isinstance(answers['x_after'], np.ndarray) and not np.array_equal(answers['x_after'],
                                                                         q['x']):
        return Verdict(False, f'{item.function} changes its input x in place',
                       'changes its input', f"for x = {q['x'].round(4).tolist()}", DOC)
    return judge_value(item, student, q, answers['out'])


def jacobian_product(q):
    s = softmax(q['x'])
    return s * (q['dout'] - (q['dout'] * s).sum(axis=1, keepdims=True))


def large_inputs(year):
    return {'x': np.array([[1000.0, 999.0, -1000.0, 0.0], [-1000.0, -999.0, -1001.0, -1000.0]])}


def ask_large(student, q):
    return {'out': student.call(student.new('modules', 'SoftMaxModule'), 'forward', q['x'])}


def check_stable(student, q, item):
    try:
        returned = student.ask(item, q)['out']
    except CallFailed as failed:
        return failure_verdict(item.function, failed.failure)
    expected = softmax(q['x'])
    if isinstance(returned, np.ndarray) and returned.shape == expected.shape and np.allclose(
            returned, expected, rtol=1e-5, atol=1e-8):
        from lab.grading.judge import PASS
        return PASS
    from lab.grading.judge import show
    evidence = f"for logits x = {q['x'].tolist()}: expected {show(expected)}, " \
               f"returned {show(returned)}"
    if (isinstance(returned, np.ndarray) and returned.shape == expected.shape
            and np.allclose(returned[0], expected[0]) and not np.all(np.isfinite(returned[1]))):
        return Verdict(False, f"{item.function} subtracts the maximum of the whole batch "
                              f"instead of each row's: a row far below it underflows to 0/0 "
                              f"(nan); shift each row by x.max(axis=1, keepdims=True)",
                       'the max over the batch', evidence, DOC)
    if isinstance(returned, np.ndarray) and not np.all(np.isfinite(returned)):
        return Verdict(False, f"{item.function} overflows at logits of ±1000 (nan or inf): "
                              f"subtract each row's maximum before exp (the max trick)",
                       'no max shift', evidence, DOC)
    return Verdict(False, f'{item.function} is wrong at logits of ±1000', 'wrong at ±1000',
                   evidence, DOC)


ITEMS = [
    Item(id='softmax_forward', name='SoftMaxModule.forward', points=2,
         function='SoftMaxModule.forward', files=FILES, doc=DOC, inputs=inputs, ask=ask,
         answer='out', check=check_forward, reference=lambda q: softmax(q['x']),
         evidence=lambda q: f"for x = {q['x'].round(4).tolist()}",
         mistakes=(
             Mistake('normalised over the batch', 'normalises over the batch (axis 0) '
                     'instead of over the classes (axis 1)',
                     lambda q: np.exp(q['x']) / np.exp(q['x']).sum(axis=0, keepdims=True)),
             Mistake('exp without the division', 'returns exp(x) without dividing by the sum '
                     'over the classes', lambda q: np.exp(q['x']))),
         questions=Questions(rows=rows, factors=factors, properties=(
             ('normalises over the batch (axis 0) instead of over the classes (axis 1): its '
              'columns sum to 1, not its rows', 'normalised over the batch',
              lambda returned, q: np.allclose(returned.sum(axis=0), 1)
              and not np.allclose(returned.sum(axis=1), 1)),
             ('does not normalise: its rows do not sum to 1', 'rows do not sum to 1',
              lambda returned, q: not np.allclose(returned.sum(axis=1), 1))))),
    Item(id='softmax_stable', name='SoftMaxModule.forward at logits of +-1000', points=1,
         function='SoftMaxModule.forward', files=FILES, doc=DOC, inputs=large_inputs,
         ask=ask_large, check=check_stable),
    Item(id='softmax_backward', name='SoftMaxModule.backward', points=2,
         function='SoftMaxModule.backward', files=FILES, doc=DOC, inputs=inputs, ask=ask,
         answer='dx', reference=jacobian_product,
         evidence=lambda q: f"for x = {q['x'].round(4).tolist()}, "
                            f"dout = {q['dout'].round(4).tolist()}",
         mistakes=(
             Mistake('the diagonal of the Jacobian only', 'keeps only the diagonal of the '
                     'Jacobian: dout · s (1 − s); the full product is s ⊙ (dout − Σ_j '
                     'dout_j s_j)', lambda q: q['dout'] * softmax(q['x']) * (1 - softmax(
                         q['x']))),
             Mistake('dout passed through', 'returns dout unchanged, as if the softmax and '
                     'the loss were fused', lambda q: q['dout']),
             Mistake('the input for the output', 'uses the input instead of the output (x where '
                     's belongs): s ⊙ (dout − Σ_j dout_j s_j) is in terms of the output',
                     lambda q: q['x'] * (q['dout'] - (q['dout'] * q['x']).sum(
                         axis=1, keepdims=True))),
             Mistake('inner product for outer', 'builds the Jacobian diag(s) − s sᵀ with the '
                     'inner product s·s (a number) where the outer product s sᵀ (a matrix) '
                     'belongs',
                     lambda q: q['dout'] * softmax(q['x']) - (softmax(q['x']) ** 2).sum(
                         axis=1, keepdims=True) * q['dout'].sum(axis=1, keepdims=True)),
             Mistake('the sum over the batch', 'sums dout·s over the batch (axis 0), mixing '
                     'the rows, instead of over the classes of each row',
                     lambda q: softmax(q['x']) * (q['dout'] - (q['dout'] * softmax(q['x'])).sum(
                         axis=0, keepdims=True))),
             Mistake('the factor s forgotten', 'forgets the factor s: returns dout − Σ_j '
                     'dout_j s_j', lambda q: q['dout'] - (q['dout'] * softmax(q['x'])).sum(
                         axis=1, keepdims=True))),
         questions=Questions(rows=rows, factors=factors)),
]
