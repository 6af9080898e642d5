"""LinearModule: parameter shapes and initialisation, forward, and the three gradients.

The layer is LinearModule(4, 2) holding known weights, asked on N = 3 samples: N, D and
M all differ and none is 1, so a transpose has another shape and a factor N is told
apart from a factor 2.
"""
import numpy as np

from lab.grading.judge import CallFailed, Item, Mistake, PASS, Questions, Verdict, \
    answer_of, attempt, failure_verdict, judge_value

FILES = ('modules',)
DOC = 'linear'


def inputs(year):
    rng = np.random.default_rng(19)
    return {'x': rng.standard_normal((3, 4)), 'x_earlier': rng.standard_normal((3, 4)),
            'W': rng.standard_normal((2, 4)), 'b': rng.standard_normal(2),
            'dout': rng.standard_normal((3, 2))}


def layer_with(student, q):
    """The student's LinearModule(4, 2) holding the weights ``q['W']`` and bias ``q['b']``."""
    student.seed('modules', 0)
    layer = student.new('modules', 'LinearModule', q['W'].shape[1], q['W'].shape[0])
    student.set(layer, 'params', 'weight', value=q['W'])
    student.set(layer, 'params', 'bias', value=q['b'])
    return layer


def ask(student, q):
    """forward(x), then backward(dout): out, dx, dW, db, and x after the forward pass."""
    layer = layer_with(student, q)
    out, (x_after,) = student.call(layer, 'forward', q['x'], echo=True)
    dx = attempt(lambda: student.call(layer, 'backward', q['dout']))
    failed = dx if isinstance(dx, CallFailed) else None
    stored = attempt(lambda: student.get(layer, 'params', 'weight'))
    return {'out': out, 'x_after': x_after, 'dx': dx,
            'stored_transposed': isinstance(stored, np.ndarray)
            and stored.shape == q['W'].T.shape != q['W'].shape,
            'dweight': failed or attempt(lambda: student.get(layer, 'grads', 'weight')),
            'dbias': failed or attempt(lambda: student.get(layer, 'grads', 'bias'))}


def rows(q, index):
    return {**q, 'x': q['x'][index:index + 1], 'dout': q['dout'][index:index + 1]}


def factors(q):
    n = len(q['x'])
    return {'N': n, '1/N': 1 / n, 'N²': n * n, '1/N²': 1 / n ** 2}


def evidence(q):
    return f"for x = {q['x'].round(4).tolist()}, W = {q['W'].round(4).tolist()}, " \
           f"b = {q['b'].round(4).tolist()}" + (
               f", dout = {q['dout'].round(4).tolist()}" if 'dout' in q else '')


def check_dweight(student, q, item):
    """dW in the shape W is stored in: a layer that keeps W as (in, out) throughout (the
    official test accepts it; the shapes item does not) returns dW as (in, out) too."""
    answers = student.ask(item, q)
    returned = answer_of(answers, 'dweight')
    if answers['stored_transposed'] and isinstance(returned, np.ndarray) and \
            returned.shape == q['W'].T.shape:
        returned = returned.T
    return judge_value(item, student, q, returned)


def forward_reference(q):
    return q['x'] @ q['W'].T + q['b']


def check_forward(student, q, item):
    try:
        answers = student.ask(item, q)
    except CallFailed as failed:
        return failure_verdict(item.function, failed.failure)
    if isinstance(answers['x_after'], np.ndarray) and not np.array_equal(answers['x_after'],
                                                                         q['x']):
        return Verdict(False, f'{item.function} changes its input x in place',
                       'changes its input in place', evidence(q), DOC)
    return judge_value(item, student, q, answers['out'])


ITEMS = [
    Item(id='linear_forward', name='LinearModule.forward', points=2,
         function='LinearModule.forward', files=FILES, doc=DOC, inputs=inputs, ask=ask,
         answer='out', reference=forward_reference, check=check_forward, evidence=evidence,
         mistakes=(
             Mistake('the bias forgotten', 'forgets the bias b: returns x Wᵀ',
                     lambda q: q['x'] @ q['W'].T),
             Mistake('the bias subtracted', 'subtracts the bias: returns x Wᵀ − b',
                     lambda q: q['x'] @ q['W'].T - q['b'])),
         questions=Questions(rows=rows, factors=factors,
                             at_zero=lambda q: {**q, 'x': np.zeros_like(q['x'])})),
    Item(id='linear_dweight', name='LinearModule.backward: dW', points=2,
         function="LinearModule.backward (grads['weight'])", files=FILES, doc=DOC,
         inputs=inputs, ask=ask, answer='dweight', evidence=evidence, check=check_dweight,
         reference=lambda q: q['dout'].T @ q['x'],
         mistakes=(
             Mistake('dW transposed', 'returns dW transposed, xᵀ dout, of shape '
                     '(in_features, out_features); dL/dW = doutᵀ x has the shape of W',
                     lambda q: q['x'].T @ q['dout']),
             Mistake('weight decay added', 'adds a weight-decay term 0.01·W to the gradient '
                     'of the loss', lambda q: q['dout'].T @ q['x'] + 0.01 * q['W']),
             Mistake('stale cache', 'uses the input of an earlier forward call',
                     lambda q: q['dout'].T @ q['x_earlier']),
             Mistake('the output cached for the input', 'uses the output instead of the input: '
                     'the forward pass cached its output, and dL/dW = doutᵀ x needs the input',
                     lambda q: q['dout'].T @ forward_reference(q))),
         questions=Questions(rows=rows, factors=factors)),
    Item(id='linear_dbias', name='LinearModule.backward: db', points=1,
         function="LinearModule.backward (grads['bias'])", files=FILES, doc=DOC,
         inputs=inputs, ask=ask, answer='dbias', evidence=evidence, bias_like=True,
         reference=lambda q: q['dout'].sum(axis=0),
         mistakes=(
             Mistake('the sum over the wrong axis', 'sums over the outputs (axis 1) instead '
                     'of the batch (axis 0)', lambda q: q['dout'].sum(axis=1)),),
         questions=Questions(rows=rows, factors=factors)),
    Item(id='linear_dx', name='LinearModule.backward: dx', points=2,
         function='LinearModule.backward (dx)', files=FILES, doc=DOC, inputs=inputs,
         ask=ask, answer='dx', evidence=evidence, reference=lambda q: q['dout'] @ q['W'],
         mistakes=(
             Mistake('the input for the weights', 'uses the input instead of the weights: '
                     'dL/dx = dout W', lambda q: q['dout'] @ q['x']),),
         questions=Questions(rows=rows, factors=factors)),
]


# -- parameter shapes and Kaiming initialisation -------------------------------------------

def no_inputs(year):
    return {}


def ask_init(student, q):
    """LinearModule(400, 100) without and with input_layer: its parameters and grads."""
    student.seed('modules', 0)
    found = {}
    for tag, input_layer in (('hidden', False), ('input', True)):
        layer = student.new('modules', 'LinearModule', 400, 100, input_layer=input_layer)
        for key in ('weight', 'bias'):
            found[f'{tag}_{key}'] = student.get(layer, 'params', key)
            found[f'{tag}_d{key}'] = student.get(layer, 'grads', key)
    return found


def shape(value):
    return tuple(np.shape(value)) if isinstance(value, np.ndarray) else None


def check_shapes(student, q, item):
    try:
        found = student.ask(item, q)
    except CallFailed as failed:
        return failure_verdict(item.function, failed.failure)
    weight, bias = shape(found['hidden_weight']), shape(found['hidden_bias'])
    evidence = f'for LinearModule(400, 100): weight {weight}, bias {bias}'

    def fail(words, mistake):
        return Verdict(False, f'{item.function} {words}', mistake, evidence, DOC)
    if weight == (400, 100):
        return fail("stores params['weight'] transposed, as (in_features, out_features); "
                    "expected (out_features, in_features) = (100, 400), as torch.nn.Linear",
                    'weight transposed')
    if weight != (100, 400):
        return fail("gives params['weight'] the wrong shape; expected (100, 400)",
                    'wrong weight shape')
    if bias not in ((100,), (1, 100)):
        return fail("gives params['bias'] the wrong shape; expected (100,)", 'wrong bias shape')
    grads = (shape(found['hidden_dweight']), shape(found['hidden_dbias']))
    if grads != (weight, bias):
        return fail(f'does not initialise grads with the shapes of the parameters (zeros): '
                    f'grads have shapes {grads}', 'grads not initialised')
    return PASS


def kaiming_words(hidden, first, fan_in=400, fan_out=100):
    """Words for the weight scales of a hidden and an input layer that are not Kaiming's;
    None when both are right (within 10%)."""
    right_hidden, right_first = np.sqrt(2 / fan_in), np.sqrt(1 / fan_in)

    def near(value, target):
        return abs(value - target) <= 0.1 * target
    if near(hidden, right_hidden) and near(first, right_first):
        return None
    if near(hidden, right_hidden) and near(first, right_hidden):
        return ('ignores input_layer: the input layer (no activation before it) must use std '
                'sqrt(1/in_features), the others sqrt(2/in_features)', 'input_layer ignored')
    if near(hidden, right_first) and near(first, right_first):
        return ('gives every layer std sqrt(1/in_features); layers after an activation need '
                'sqrt(2/in_features)', 'the gain 2 missing')
    if near(hidden, right_first) and near(first, right_hidden):
        return 'swaps the two cases of input_layer', 'input_layer swapped'
    if near(hidden, np.sqrt(2 / fan_out)) or near(hidden, np.sqrt(1 / fan_out)):
        return 'uses out_features as the fan-in; the fan-in is in_features', 'fan-out for fan-in'
    if near(hidden, 1.0):
        return ('draws standard normal weights without the Kaiming scale sqrt(2/in_features)',
                'no Kaiming scale')
    if near(hidden, right_hidden ** 2) or near(first, right_first ** 2):
        return ('uses the variance 2/in_features as the standard deviation: the std is its '
                'square root', 'variance for std')
    return 'initialises the weights with the wrong scale (Kaiming: sqrt(2/in_features))', \
        'wrong scale'


def check_init(student, q, item):
    try:
        found = student.ask(item, q)
    except CallFailed as failed:
        return failure_verdict(item.function, failed.failure)
    hidden, first = found['hidden_weight'], found['input_weight']
    if not (isinstance(hidden, np.ndarray) and isinstance(first, np.ndarray)
            and hidden.size > 1 and first.size > 1):
        return Verdict(False, f'{item.function}: params[\'weight\'] is not an array',
                       'no weight array', doc=DOC)
    evidence = (f'for LinearModule(400, 100): weight std {hidden.std():.4g} (expected '
                f'sqrt(2/400) = {np.sqrt(2 / 400):.4g}), with input_layer=True '
                f'{first.std():.4g} (expected sqrt(1/400) = {np.sqrt(1 / 400):.4g})')
    named = kaiming_words(hidden.std(), first.std())
    if named:
        return Verdict(False, f'{item.function} {named[0]}', named[1], evidence, DOC)
    biases = [found['hidden_bias'], found['input_bias']]
    if not all(isinstance(bias, np.ndarray) and not bias.any() for bias in biases):
        return Verdict(False, f'{item.function} does not initialise the bias with zeros',
                       'bias not zero', evidence, DOC)
    if abs(hidden.mean()) > 0.01:
        return Verdict(False, f'{item.function}: the weights do not have mean 0 (mean '
                              f'{hidden.mean():.3g}): a uniform [0, 1) draw instead of a '
                              f'normal one?', 'mean not zero', evidence, DOC)
    return PASS


ITEMS += [
    Item(id='linear_shapes', name='LinearModule: parameter shapes', points=1,
         function='LinearModule.__init__', files=FILES, doc=DOC,
         inputs=no_inputs, ask=ask_init, check=check_shapes),
    Item(id='linear_init', name='LinearModule: Kaiming initialisation (with and without '
                                 'input_layer)', points=2,
         function='LinearModule.__init__', files=FILES, doc=DOC,
         inputs=no_inputs, ask=ask_init, check=check_init),
]
