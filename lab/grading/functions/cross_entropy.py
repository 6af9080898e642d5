"""CrossEntropyModule: forward and backward (on a fresh instance, as the official test
calls it), with integer labels, and a batch whose highest class is absent.

Its input x is the softmax's output, so dL/dx = −T / (N X), not dL/d(logits).
"""
import numpy as np

from lab.grading.judge import PASS, CallFailed, Item, Mistake, Questions, Verdict, attempt, \
    failure_verdict, judge_value, show

FILES = ('modules',)
DOC = 'cross-entropy'


def softmax(z):
    exp = np.exp(z - z.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def inputs(year):
    rng = np.random.default_rng(31)
    return {'x': softmax(rng.standard_normal((3, 4))), 'y': np.array([0, 3, 1])}


def targets(q):
    return np.eye(q['x'].shape[1])[q['y']]




def ask(student, q):
    """forward and backward, each on a fresh instance, with integer and one-hot labels."""
    def fresh(method, y):
        return attempt(lambda: student.call(student.new('modules', 'CrossEntropyModule'),
                                            method, q['x'], y))
    return {'loss': fresh('forward', q['y']), 'dx': fresh('backward', q['y']),
            'loss_one_hot': fresh('forward', targets(q)),
            'dx_one_hot': fresh('backward', targets(q))}


def rows(q, index):
    return {'x': q['x'][index:index + 1], 'y': q['y'][index:index + 1]}


def factors(q):
    n, c = q['x'].shape
    return {'N': n, '1/N': 1 / n, '1/N²': 1 / n ** 2, 'C': c, '1/C': 1 / c,
            '1/(N·C)': 1 / (n * c), 'N/C': n / c}


def evidence(q):
    return f"for x = {show(q['x'])} (softmax outputs), y = {q['y'].tolist()}"


def loss_reference(q):
    return -np.log(q['x'][np.arange(len(q['x'])), q['y']]).mean()


def one_hot_only(item, answers, key):
    """Integer labels fail, one-hot targets work: the labels are assumed one-hot."""
    failed, other = answers[key], answers[f'{key}_one_hot']
    if (isinstance(failed, CallFailed) and not isinstance(other, CallFailed)
            and failed.failure.get('type') in ('ValueError', 'IndexError', 'TypeError')):
        where = f" at {failed.failure['where']}" if failed.failure.get('where') else ''
        return Verdict(False, f"{item.function} assumes one-hot labels: with integer labels "
                              f"y of shape (N,), as the assignment passes them, it raises "
                              f"{failed.failure.get('type')}: {failed.failure.get('message')}"
                              f"{where}", 'assumes one-hot labels', '', DOC)
    return None


def check(key):
    def judged(student, q, item):
        answers = student.ask(item, q)
        value = answers[key]
        if isinstance(value, CallFailed):
            named = one_hot_only(item, answers, key)
            if named:
                return named
            failure = value.failure
            if key == 'dx' and failure.get('type') in ('AttributeError', 'TypeError',
                                                       'KeyError') and (
                    'NoneType' in str(failure.get('message'))
                    or 'attribute' in str(failure.get('message'))):
                return Verdict(False, f"{item.function} needs a forward pass first: on a "
                                      f"fresh instance backward(x, y) raised "
                                      f"{failure.get('type')}: {failure.get('message')}; it "
                                      f"must compute from its arguments (the official test "
                                      f"calls it without forward)", 'needs a forward pass',
                               '', DOC)
            return failure_verdict(item.function, failure, DOC)
        if key == 'loss' and isinstance(value, np.ndarray) and value.size == 1:
            value = float(value.reshape(()))
        return judge_value(item, student, q, value)
    return judged


def label_regions(q):
    t = targets(q).astype(bool)
    return [('at the label entries (T = 1)', t), ('at the other entries (T = 0)', ~t)]


ITEMS = [
    Item(id='ce_forward', name='CrossEntropyModule.forward', points=2,
         function='CrossEntropyModule.forward', files=FILES, doc=DOC, inputs=inputs, ask=ask,
         answer='loss', check=check('loss'), reference=loss_reference, evidence=evidence,
         mistakes=(
             Mistake('softmax applied again', "applies a softmax to its input first: this "
                     "module's input is already the softmax output",
                     lambda q: loss_reference({**q, 'x': softmax(q['x'])})),
             Mistake('log of every entry', 'takes the log of every class, not only the true '
                     'class', lambda q: -np.log(q['x']).sum() / len(q['x'])),
             Mistake('every sample at every label', "takes log x[:, y], every sample at every "
                     "sample's label entries (an N×N block, as whole one-hot columns "
                     "T[:, y] = 1 would), instead of each sample's own label entry x[n, y_n]",
                     lambda q: -np.log(q['x'][:, q['y']]).sum() / len(q['x'])),
             Mistake('whole columns of one-hot targets', 'sets whole columns of the one-hot '
                     'targets (T[:, y] = 1) instead of one entry per row (T[n, y_n] = 1)',
                     lambda q: -np.log(q['x'][:, np.unique(q['y'])]).sum() / len(q['x']))),
         questions=Questions(rows=rows, factors=factors)),
    Item(id='ce_backward', name='CrossEntropyModule.backward', points=2,
         function='CrossEntropyModule.backward', files=FILES, doc=DOC, inputs=inputs, ask=ask,
         answer='dx', check=check('dx'), evidence=evidence,
         reference=lambda q: -targets(q) / (len(q['x']) * q['x']),
         mistakes=(
             Mistake('dL/d(logits) for dL/dx', "returns dL/d(logits) = (S − T)/N, but this "
                     "module's input is the softmax output: expected −T/(N·X)",
                     lambda q: (q['x'] - targets(q)) / len(q['x'])),
             Mistake('dL/d(logits) for dL/dx', "returns dL/d(logits) = S − T (and without "
                     "1/N), but this module's input is the softmax output: expected −T/(N·X)",
                     lambda q: q['x'] - targets(q)),
             Mistake('the loss for its gradient', "returns the loss's value, not its gradient",
                     lambda q: np.full_like(q['x'], loss_reference(q)))),
         questions=Questions(rows=rows, factors=factors, regions=label_regions)),
]


# -- a batch whose highest class is absent ------------------------------------------------

def absent_inputs(year):
    rng = np.random.default_rng(37)
    return {'x': softmax(rng.standard_normal((3, 4))), 'y': np.array([0, 2, 1])}


def ask_absent(student, q):
    def fresh(method):
        return attempt(lambda: student.call(student.new('modules', 'CrossEntropyModule'),
                                            method, q['x'], q['y']))
    return {'loss': fresh('forward'), 'dx': fresh('backward')}


def check_absent(student, q, item):
    answers = student.ask(item, q)
    expected = {'loss': loss_reference(q), 'dx': -targets(q) / (len(q['x']) * q['x'])}
    problems = []
    for key, function in (('loss', 'forward'), ('dx', 'backward')):
        value = answers[key]
        if isinstance(value, np.ndarray) and value.size == 1 and key == 'loss':
            value = value.reshape(())
        if not isinstance(value, CallFailed) and isinstance(value, (np.ndarray, float)) and \
                np.shape(value) == np.shape(expected[key]) and np.allclose(value,
                                                                           expected[key]):
            continue
        problems.append(function)
    if not problems:
        return PASS
    usual = student.ask(ITEMS[0], inputs(0))
    for function in problems:
        key = 'loss' if function == 'forward' else 'dx'
        if isinstance(usual[key], CallFailed):
            return failure_verdict(f'CrossEntropyModule.{function}', usual[key].failure, DOC)
        right = loss_reference(inputs(0)) if key == 'loss' else ITEMS[1].reference(inputs(0))
        value = usual[key]
        if not (isinstance(value, (np.ndarray, float)) and np.size(value) == np.size(right)
                and np.allclose(np.reshape(value, np.shape(right)), right)):
            return Verdict(False, f"CrossEntropyModule.{function} is wrong also when every "
                                  f"class is present: see its own item",
                           'wrong with every class present', evidence(q), DOC)
    return Verdict(False, f"CrossEntropyModule.{' and '.join(problems)} fails when the "
                          f"batch's highest class is absent: the number of classes must come "
                          f"from x's C = {q['x'].shape[1]} columns, not from the labels "
                          f"(y.max() + 1 = {q['y'].max() + 1})", 'one-hot width from y.max()',
                   evidence(q), DOC)


ITEMS.append(
    Item(id='ce_absent_class', name='CrossEntropyModule with the highest class absent',
         points=1, function='CrossEntropyModule', files=FILES, doc=DOC, inputs=absent_inputs,
         ask=ask_absent, check=check_absent))
