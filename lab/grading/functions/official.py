"""The four tests of the official unittests.py, with their seeds and bounds.

The random cases are drawn here, in the grader's process, in the order the official
tests draw them; the student's process is asked only for its functions' values: the
analytic gradient, and the forward values at inputs moved by ±h, from which the
numerical gradient is computed here. The student's LinearModule draws its weights from
its own np.random (seeded per case); the stream here then moves on as the template's
normal draw of the weights would move it, so the next cases match the official ones.
"""
import numpy as np

from lab.grading import spec
from lab.grading.functions import cross_entropy, elu, linear, softmax
from lab.grading.judge import CallFailed, Item, PASS, Verdict, array_answer, failure_verdict

H = 1e-5


def inputs(year):
    return {'year': year}


def rel_error(x, y):
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    return float(np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y))))


def numerical(values, shape, dout=None):
    """Central differences from the (size, 2, ...) values at +h and -h."""
    difference = values[:, 0] - values[:, 1]
    if dout is not None:
        difference = (difference * dout).reshape(len(values), -1).sum(axis=1)
    return (difference / (2 * H)).reshape(shape)


def same_shape(value, shape):
    array = array_answer(value)
    if array.shape != tuple(shape):
        raise CallFailed({'kind': 'type', 'message': f'returned shape {array.shape}, '
                                                     f'expected {tuple(shape)}'})
    return array


def crossentropy_errors(student, q):
    rs, errors = np.random.RandomState(42), []
    for _ in range(10):
        n = rs.choice(range(1, 100))
        c = rs.choice(range(1, 10))
        y = rs.randint(c, size=(n,))
        x = rs.uniform(low=1e-2, high=1.0, size=(n, c))
        x /= x.sum(axis=1, keepdims=True)
        student.call(student.new('modules', 'CrossEntropyModule'), 'forward', x, y)
        grads = same_shape(student.call(student.new('modules', 'CrossEntropyModule'),
                                        'backward', x, y), x.shape)
        values = student.perturbed('modules', 'forward', [x, y], ['arg', 0],
                                   fresh=['modules', 'CrossEntropyModule', []])
        errors.append(rel_error(numerical(values.reshape(len(values), 2), x.shape), grads))
    return errors


def linear_errors(student, q):
    rs, errors = np.random.RandomState(42), []
    for case in range(10):
        n = rs.choice(range(1, 20))
        d = rs.choice(range(1, 100))
        c = rs.choice(range(1, 10))
        x = rs.randn(n, d)
        dout = rs.randn(n, c)
        student.seed('modules', case)
        layer = student.new('modules', 'LinearModule', d, c)  # np.int64, as the official
        rs.standard_normal((c, d))
        student.call(layer, 'forward', x)
        dx = same_shape(student.call(layer, 'backward', dout), x.shape)
        dw = array_answer(student.get(layer, 'grads', 'weight'))
        dx_values = student.perturbed('modules', 'forward', [x], ['arg', 0], handle=layer)
        dw_values = student.perturbed('modules', 'forward', [x], ['attr', 'params', 'weight'],
                                      handle=layer)
        stored = array_answer(student.get(layer, 'params', 'weight')).shape
        if dw.shape != stored:  # as the official test: the gradient of the array as stored
            raise CallFailed({'kind': 'type', 'message': f"returns grads['weight'] of shape "
                                                         f"{dw.shape}, its weight is {stored}"})
        errors.append(max(rel_error(dx, numerical(dx_values, x.shape, dout)),
                          rel_error(dw, numerical(dw_values, stored, dout))))
    return errors


def elementwise_errors(make_layer):
    def errors_of(student, q):
        rs, errors = np.random.RandomState(42), []
        for _ in range(10):
            n = rs.choice(range(1, 20))
            d = rs.choice(range(1, 100))
            x = rs.randn(n, d)
            dout = rs.randn(*x.shape)
            layer = make_layer(student, q)
            student.call(layer, 'forward', x)
            dx = same_shape(student.call(layer, 'backward', dout), x.shape)
            values = student.perturbed('modules', 'forward', [x], ['arg', 0], handle=layer)
            errors.append(rel_error(dx, numerical(values, x.shape, dout)))
        return errors
    return errors_of


def official(test, bound, function, explained_by):
    """The item of the official test ``test``: its ten relative errors under ``bound``."""
    def check(student, q, item):
        try:
            errors = student.ask(item, q)
        except CallFailed as failed:
            verdict = failure_verdict(function, failed.failure)
        else:
            if len(errors) == 10 and max(errors) < bound:
                return PASS
            worst = int(np.argmax(errors))
            verdict = Verdict(False, f'{function}: relative error {errors[worst]:.3g} in case '
                                     f'{worst + 1} of 10, above {bound:g}',
                              'relative error above the official bound')
        cause = next((other for other in (judge_other(student, q, name)
                                          for name in explained_by) if not other.passed), None)
        words = f'official {test} fails: {verdict.words}'
        if cause is not None:
            return Verdict(False, f'{words} | the mistake: {cause.words}', cause.mistake,
                           cause.evidence, cause.doc)
        return Verdict(False, words, verdict.mistake, verdict.evidence, verdict.doc)
    return check


def judge_other(student, q, item):
    from lab.grading.judge import judge
    return judge(item, student, q['year'])


ITEMS = [
    Item(id='official_crossentropy', name='official test_crossentropy_loss', points=1,
         function='CrossEntropyModule', files=('modules',), doc='cross-entropy',
         inputs=inputs, ask=crossentropy_errors,
         check=official('test_crossentropy_loss', spec.OFFICIAL_TOLERANCE['crossentropy'],
                        'CrossEntropyModule', (cross_entropy.ITEMS[1], cross_entropy.ITEMS[0]))),
    Item(id='official_linear', name='official test_linear_backward', points=1,
         function='LinearModule', files=('modules',), doc='linear', inputs=inputs,
         ask=linear_errors,
         check=official('test_linear_backward', spec.OFFICIAL_TOLERANCE['linear'],
                        'LinearModule', (linear.ITEMS[3], linear.ITEMS[1], linear.ITEMS[0]))),
    Item(id='official_elu', name='official test_elu_backward', points=1, function='ELUModule',
         files=('modules',), doc='elementwise-activations', inputs=inputs,
         ask=elementwise_errors(lambda student, q: elu.make_elu(student, q['year'],
                                                                strict=True)[0]),
         check=official('test_elu_backward', spec.OFFICIAL_TOLERANCE['elu'], 'ELUModule',
                        (elu.ITEMS[1], elu.ITEMS[0]))),
    Item(id='official_softmax', name='official test_softmax_backward', points=1,
         function='SoftMaxModule', files=('modules',), doc='softmax', inputs=inputs,
         ask=elementwise_errors(lambda student, q: student.new('modules', 'SoftMaxModule')),
         check=official('test_softmax_backward', spec.OFFICIAL_TOLERANCE['softmax'],
                        'SoftMaxModule', (softmax.ITEMS[2], softmax.ITEMS[0]))),
]
