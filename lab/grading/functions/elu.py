"""ELUModule: forward and backward, with the year's alpha (2023: ELUModule(), alpha 1)."""
import numpy as np

from lab.grading import spec
from lab.grading.judge import CallFailed, Item, Mistake, Questions, Verdict, attempt, \
    failure_verdict, judge_value

FILES = ('modules',)
DOC = 'elementwise-activations'


def inputs(year):
    rng = np.random.default_rng(23)
    return {'x': np.array([[-1.5, -0.4, 0.3, 1.2, -2.0], [0.7, -0.9, 2.1, -0.1, 0.4]]),
            'dout': rng.standard_normal((2, 5)), 'alpha': spec.ELU_ALPHA[year], 'year': year}


def make_elu(student, year, strict=False):
    """The student's ELUModule built as the year's tests build it; (handle, alpha).

    When that signature is refused (a 2023 ``ELUModule()`` graded as 2024, or the
    reverse) the other forms are tried, so the ELU items still grade the maths, and
    the mismatch becomes one problem line. ``strict`` (the official test) tries the
    year's form alone.
    """
    alpha = spec.ELU_ALPHA[year]
    attempts = [((), {}, 1.0)] if year == 2023 else [((), {'alpha': alpha}, alpha)]
    if not strict:
        attempts += [((), {'alpha': alpha}, alpha), ((alpha,), {}, alpha), ((), {}, 1.0)]
    first = None
    for args, kwargs, used in attempts:
        try:
            layer = student.new('modules', 'ELUModule', *args, **kwargs)
        except CallFailed as failed:
            if failed.failure.get('type') != 'TypeError':
                raise
            first = first or failed
            continue
        if first is not None:
            expected = 'ELUModule()' if year == 2023 else 'ELUModule(alpha)'
            student.notes.add(f'ELUModule: changed required signature: the {year} assignment '
                              f'builds {expected}, but this ELUModule.__init__ refuses it '
                              f'({first.failure.get("message")})')
        return layer, used
    raise first


def ask(student, q):
    layer, alpha = make_elu(student, q['year'])
    out, (x_after,) = student.call(layer, 'forward', q['x'], echo=True)
    return {'out': out, 'x_after': x_after, 'alpha': alpha,
            'dx': attempt(lambda: student.call(layer, 'backward', q['dout']))}


def elu(x, alpha):
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


def regions(q):
    return [('where x > 0', q['x'] > 0), ('where x <= 0 (the exponential branch)', q['x'] <= 0)]


def factors(q):
    return {} if q['alpha'] == 1 else {'alpha': q['alpha'], '1/alpha': 1 / q['alpha']}


def evidence(q):
    return f"with alpha = {q['alpha']:g}, for x = {q['x'].tolist()}"


def judged_with_alpha(key):
    """The check of ``key``: the reference with the alpha the layer was built with."""
    def check(student, q, item):
        try:
            answers = student.ask(item, q)
        except CallFailed as failed:
            return failure_verdict(item.function, failed.failure)
        q = {**q, 'alpha': answers['alpha']}
        if isinstance(answers[key], CallFailed):
            return failure_verdict(item.function, answers[key].failure, DOC)
        if key == 'out' and isinstance(answers['x_after'], np.ndarray) and not np.array_equal(
                answers['x_after'], q['x']):
            return Verdict(False, f"{item.function} changes its input x in place (the "
                                  f"caller's array is overwritten)", 'changes its input',
                           evidence(q), DOC)
        return judge_value(item, student, q, answers[key])
    return check


def positive(q):
    return q['x'] > 0


ITEMS = [
    Item(id='elu_forward', name='ELUModule.forward', points=2, function='ELUModule.forward',
         files=FILES, doc=DOC, inputs=inputs, ask=ask, answer='out',
         check=judged_with_alpha('out'), evidence=evidence,
         reference=lambda q: elu(q['x'], q['alpha']),
         mistakes=(
             Mistake('ReLU for ELU', 'computes a ReLU, max(0, x), instead of the ELU',
                     lambda q: np.maximum(q['x'], 0)),
             Mistake('branches swapped', 'puts the branches the wrong way round (x for x <= 0)',
                     lambda q: np.where(positive(q), q['alpha'] * np.expm1(q['x']), q['x'])),
             Mistake('alpha on the wrong branch', 'applies alpha to the wrong branch',
                     lambda q: np.where(positive(q), q['alpha'] * q['x'],
                                        np.expm1(q['x'])))),
         questions=Questions(regions=regions, factors=factors)),
    Item(id='elu_backward', name='ELUModule.backward', points=2, function='ELUModule.backward',
         files=FILES, doc=DOC, inputs=inputs, ask=ask, answer='dx',
         check=judged_with_alpha('dx'),
         evidence=lambda q: evidence(q) + f", dout = {q['dout'].round(4).tolist()}",
         reference=lambda q: q['dout'] * np.where(positive(q), 1, q['alpha'] * np.exp(q['x'])),
         mistakes=(
             Mistake('derivative on the wrong branch', 'puts the derivative on the wrong '
                     'branch: alpha e^x belongs to x <= 0 and 1 to x > 0',
                     lambda q: q['dout'] * np.where(positive(q), q['alpha'] * np.exp(q['x']),
                                                    1)),
             Mistake('dout forgotten', 'forgets to multiply by dout (returns the local '
                     'derivative only)',
                     lambda q: np.where(positive(q), 1, q['alpha'] * np.exp(q['x']))),
             Mistake('derivative at the output', 'computes the derivative from the output, '
                     'alpha e^out, instead of the input',
                     lambda q: q['dout'] * np.where(positive(q), 1, q['alpha'] * np.exp(
                         elu(q['x'], q['alpha'])))),
             Mistake('ReLU derivative', 'treats ELU as a ReLU in the backward pass (0 for '
                     'x <= 0)', lambda q: q['dout'] * positive(q))),
         questions=Questions(regions=regions, factors=factors)),
]
