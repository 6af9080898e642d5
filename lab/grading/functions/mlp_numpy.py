"""The NumPy MLP: its layers (and input_layer on the first), its forward pass, its gradients.

The networks are MLP(5, n_hidden, 3) for n_hidden [], [4] and [4, 4], with known weights
copied into the linear layers in the order forward calls them.
"""
import numpy as np

from lab.grading import spec
from lab.grading.functions import linear
from lab.grading.judge import CallFailed, Item, PASS, Verdict, close, failure_verdict, show

FILES = ('modules', 'mlp_numpy')
DOC = 'the-whole-network'
CASES = {'none': [], 'one': [spec.MLP_SHAPE['k']], 'two': [spec.MLP_SHAPE['k']] * 2}


def widths(n_hidden):
    return [spec.MLP_SHAPE['n_inputs'], *n_hidden, spec.MLP_SHAPE['n_classes']]


def inputs(year):
    rng = np.random.default_rng(43)
    shape = spec.MLP_SHAPE
    q = {'x': rng.standard_normal((shape['n_samples'], shape['n_inputs'])),
         'dout': rng.standard_normal((shape['n_samples'], shape['n_classes'])),
         'alphas': sorted({1.0, spec.ELU_ALPHA[year]}), 'year': year}
    for case, n_hidden in CASES.items():
        sizes = widths(n_hidden)
        q[case] = [(rng.standard_normal((fan_out, fan_in)) * 0.7,
                    rng.standard_normal(fan_out) * 0.3)
                   for fan_in, fan_out in zip(sizes[:-1], sizes[1:])]
    return q


def kind(layer):
    name = layer['kind'].lower()
    if layer['weight_shape'] is not None and len(layer['weight_shape']) == 2:
        return ('linear', tuple(layer['weight_shape']))
    for known in ('softmax', 'elu', 'batchnorm'):
        if known in name:
            return (known, None)
    return (name, None)


def expected_layers(n_hidden):
    sizes, layers = widths(n_hidden), []
    for index, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(('linear', (fan_out, fan_in)))
        if index < len(sizes) - 2:
            layers.append(('elu', None))
    return layers


def ask(student, q):
    """Per case: the layers in call order, forward(x), backward(dout), every gradient."""
    found = {}
    for case, n_hidden in CASES.items():
        try:
            student.seed('mlp_numpy', 0)
            model = student.new('mlp_numpy', 'MLP', spec.MLP_SHAPE['n_inputs'], list(n_hidden),
                                spec.MLP_SHAPE['n_classes'])
            layers = student.layers(model, q['x'])
        except CallFailed as failed:
            found[case] = {'failed': failed}
            continue
        entry = found[case] = {'layers': [kind(layer) for layer in layers],
                               'shared': any(layer['calls'] > 1 for layer in layers)}
        linears = [layer['handle'] for layer in layers if kind(layer)[0] == 'linear']
        shapes = [tuple(layer['weight_shape']) for layer in layers if kind(layer)[0] == 'linear']
        entry['transposed'] = len(shapes) == len(q[case]) and all(
            shape == weight.T.shape for shape, (weight, _) in zip(shapes, q[case])) and any(
            weight.shape != weight.T.shape for weight, _ in q[case])
        if len(linears) != len(q[case]):
            continue
        try:
            for handle, (weight, bias) in zip(linears, q[case]):
                student.set(handle, 'params', 'weight',
                            value=weight.T if entry['transposed'] else weight)
                student.set(handle, 'params', 'bias', value=bias)
            entry['out'] = student.call(model, 'forward', q['x'])
        except CallFailed as failed:
            entry['forward_failed'] = failed
            continue
        try:
            student.call(model, 'backward', q['dout'])
            entry['grads'] = [(student.get(handle, 'grads', 'weight'),
                               student.get(handle, 'grads', 'bias')) for handle in linears]
        except CallFailed as failed:
            entry['backward_failed'] = failed
        try:
            student.call(model, 'forward', q['x'])
            entry['backward_order'] = student.backward_order(
                model, [layer['handle'] for layer in layers], q['dout'])
        except CallFailed:
            pass
    return found


def order_words(entry):
    """Words for a backward pass that visits the layers in the wrong order or skips some."""
    layers, order = entry.get('layers', []), entry.get('backward_order')
    if entry.get('shared'):
        return ('uses one layer object at two places in the network (shared): it keeps only '
                'its latest cache, so each place needs its own object', 'a shared layer')
    if order is None or not layers:
        return None
    expected = list(reversed(range(len(layers))))
    if order == expected:
        return None
    if len(order) > 1 and order == sorted(order):
        return ("calls the layers' backward in the forward order; backward goes through them "
                "in reverse, from the output", 'backward in forward order')
    skipped = [layers[index][0] for index in expected if index not in order]
    if skipped:
        return (f"never calls the backward of {', '.join(sorted(set(skipped)))} "
                f"({'the activation' if 'elu' in skipped else 'a layer'}): the gradient "
                f"skips it", 'a layer skipped in backward')
    return "calls the layers' backward in the wrong order", 'backward in the wrong order'


def reference(q, case, alpha=1.0, softmax=False, activation_last=False, activation=True,
              skip_last=False):
    """Logits (or probabilities) and each linear layer's (dW, db) of the reference network
    (``skip_last``: without the output layer, for a diagnosis)."""
    out, cache = q['x'], []
    params = q[case][:-1] if skip_last else q[case]
    for index, (weight, bias) in enumerate(params):
        cache.append(('linear', out, weight))
        out = out @ weight.T + bias
        if activation and (index < len(params) - 1 or activation_last or skip_last):
            cache.append(('elu', out, None))
            out = np.where(out > 0, out, alpha * np.expm1(np.minimum(out, 0)))
    if softmax:
        exp = np.exp(out - out.max(axis=1, keepdims=True))
        out = exp / exp.sum(axis=1, keepdims=True)
    dout, grads = q['dout'], []
    if skip_last:  # a forward only: no dout of its shape
        return out, None
    if softmax:
        dout = out * (dout - (dout * out).sum(axis=1, keepdims=True))
    for kind_of, x, weight in reversed(cache):
        if kind_of == 'elu':
            dout = dout * np.where(x > 0, 1, alpha * np.exp(x))
        else:
            grads.insert(0, (dout.T @ x, dout.sum(axis=0)))
            dout = dout @ weight
    return out, grads


def ends_in_softmax(entry):
    return bool(entry.get('layers')) and entry['layers'][-1][0] == 'softmax'


def words_of(layers):
    return ', '.join(name if shape is None else f'{name} {shape[0]}x{shape[1]}'
                     for name, shape in layers)


def check_layers(student, q, item):
    found = student.ask(item, q)
    for case, n_hidden in CASES.items():
        function = f'MLP.__init__ (mlp_numpy) with n_hidden={n_hidden}'
        entry = found[case]
        if 'failed' in entry:
            return failure_verdict(function, entry['failed'].failure)
        layers = [layer for layer in entry['layers'] if layer[0] not in ('dropout', 'identity')]
        if layers and layers[-1][0] == 'softmax':
            layers = layers[:-1]
        expected = expected_layers(n_hidden)
        if entry.get('transposed'):  # W kept as (in, out) throughout: the shapes item's
            layers = [(name, shape[::-1] if name == 'linear' else shape)
                      for name, shape in layers]
        if layers == expected:
            continue
        linears = [shape for name, shape in layers if name == 'linear']
        if len(linears) != len(n_hidden) + 1:
            words = f'builds {len(linears)} linear layers, expected {len(n_hidden) + 1}'
            mistake = 'wrong number of linear layers'
        elif layers and layers[-1][0] == 'elu':
            words = 'puts an activation after the output layer (the logits need none)'
            mistake = 'an activation after the output layer'
        elif not any(name == 'elu' for name, _ in layers) and n_hidden:
            words = 'applies no activation between the linear layers'
            mistake = 'no activation'
        elif linears != [shape for name, shape in expected if name == 'linear']:
            words = 'gives its linear layers the wrong shapes (weight shapes are (out, in))'
            mistake = 'wrong layer shapes'
        else:
            words, mistake = 'puts its layers in the wrong order', 'wrong layer order'
        return Verdict(False, f'{function} {words}', mistake,
                       f'calls [{words_of(layers)}], expected [{words_of(expected)}]', DOC)
    return check_input_layer(student, q, item)


def ask_input_layer(student, q):
    """MLP(400, [100], 10): the standard deviation of each linear layer's weights."""
    student.seed('mlp_numpy', 0)
    model = student.new('mlp_numpy', 'MLP', 400, [100], 10)
    layers = student.layers(model, np.zeros((2, 400)))
    return [np.std(student.get(layer['handle'], 'params', 'weight')) for layer in layers
            if kind(layer)[0] == 'linear']


def check_input_layer(student, q, item):
    """The first layer gets input_layer=True (std sqrt(1/400)), the next does not (sqrt(2/100))
    — judged only when the student's LinearModule itself initialises right."""
    if not linear.check_init(student, {}, linear.ITEMS[-1]).passed:
        return PASS
    try:
        stds = student.ask(INPUT_LAYER, q)
    except CallFailed as failed:
        return failure_verdict('MLP.__init__ (mlp_numpy)', failed.failure)
    if len(stds) != 2:
        return PASS
    first_right = abs(stds[0] - np.sqrt(1 / 400)) < 0.1 * np.sqrt(1 / 400)
    second_right = abs(stds[1] - np.sqrt(2 / 100)) < 0.1 * np.sqrt(2 / 100)
    evidence = (f'for MLP(400, [100], 10): weight std {stds[0]:.4g} and {stds[1]:.4g}, '
                f'expected sqrt(1/400) = {np.sqrt(1 / 400):.4g} and sqrt(2/100) = '
                f'{np.sqrt(2 / 100):.4g}')
    if first_right and second_right:
        return PASS
    if not first_right and second_right:
        return Verdict(False, 'MLP.__init__ (mlp_numpy) does not pass input_layer=True to its '
                              'first LinearModule', 'input_layer not passed', evidence, 'linear')
    if first_right and not second_right:
        return Verdict(False, 'MLP.__init__ (mlp_numpy) passes input_layer=True to a hidden '
                              'LinearModule too; only the first layer sees raw data',
                       'input_layer on every layer', evidence, 'linear')
    return Verdict(False, 'MLP.__init__ (mlp_numpy) initialises its linear layers with the '
                          'wrong scale', 'wrong scale', evidence, 'linear')


def options(q, case, entry):
    softmax = ends_in_softmax(entry)
    return [reference(q, case, alpha, softmax) for alpha in q['alphas']]


def check_forward(student, q, item):
    found = student.ask(item, q)
    for case, n_hidden in CASES.items():
        function = f'MLP.forward (mlp_numpy) with n_hidden={n_hidden}'
        entry = found[case]
        if 'failed' in entry:
            return failure_verdict(function, entry['failed'].failure)
        if 'forward_failed' in entry:
            verdict = failure_verdict(function, entry['forward_failed'].failure)
            if entry.get('shared'):
                return Verdict(False, f'{function} {order_words(entry)[0]}; {verdict.words}',
                               'a shared layer', '', DOC)
            return verdict
        if 'out' not in entry:
            return Verdict(False, f'{function}: not graded: its layers are wrong (see the '
                                  f'layers item)', 'wrong layers', '', DOC)
        returned = entry['out']
        right = options(q, case, entry)
        if any(close(returned, out) for out, _ in right):
            continue
        softmax = ends_in_softmax(entry)
        evidence = f"for x = {show(q['x'])} and known weights: expected {show(right[0][0])}, " \
                   f"returned {show(returned)}"
        mistakes = [('applies no activation between the linear layers', 'no activation',
                     dict(activation=False)),
                    ('puts an activation after the output layer (the logits need none)',
                     'an activation after the output layer', dict(activation_last=True)),
                    ('ends in a softmax: the network returns logits',
                     'a softmax at the end', dict(softmax=not softmax)),
                    ('never applies its output layer (the last linear layer)',
                     'the output layer skipped', dict(skip_last=True))]
        for words, mistake, change in mistakes:
            for alpha in q['alphas']:
                settings = {'alpha': alpha, 'softmax': softmax, **change}
                if close(returned, reference(q, case, **settings)[0]):
                    return Verdict(False, f'{function} {words}', mistake, evidence, DOC)
        return Verdict(False, f'{function} returns other values than Linear, ELU, ..., Linear '
                              f'composed in order', 'wrong values', evidence, DOC)
    return PASS


def check_backward(student, q, item):
    found = student.ask(item, q)
    for case, n_hidden in CASES.items():
        function = f'MLP.backward (mlp_numpy) with n_hidden={n_hidden}'
        entry = found[case]
        for key in ('failed', 'forward_failed', 'backward_failed'):
            if key in entry:
                verdict = failure_verdict(function, entry[key].failure)
                named = order_words(entry) if key == 'backward_failed' else None
                if named:
                    return Verdict(False, f'{function} {named[0]}; {verdict.words}', named[1],
                                   '', DOC)
                return verdict
        if 'grads' not in entry:
            return Verdict(False, f'{function}: not graded: its layers are wrong (see the '
                                  f'layers item)', 'wrong layers', '', DOC)
        best = None
        for alpha in q['alphas']:
            _, grads = reference(q, case, alpha, ends_in_softmax(entry))
            returned = [(dw.T if entry.get('transposed') and isinstance(dw, np.ndarray)
                         else dw, db) for dw, db in entry['grads']]
            wrong = [index for index, ((dw, db), (right_dw, right_db)) in
                     enumerate(zip(returned, grads))
                     if not (close(dw, right_dw) and isinstance(db, np.ndarray)
                             and db.size == right_db.size
                             and close(db.reshape(right_db.shape), right_db))]
            if not wrong:
                best = None
                break
            if best is None or len(wrong) < len(best[0]):
                best = (wrong, grads)
        if best is None:
            continue
        wrong, grads = best
        last = len(grads) - 1
        first_wrong = max(wrong)
        key = 0 if not close(entry['grads'][first_wrong][0], grads[first_wrong][0]) else 1
        evidence = (f"for L = sum(MLP(x) * dout), x = {show(q['x'])}: layer {first_wrong}'s "
                    f"{('dW', 'db')[key]} expected {show(grads[first_wrong][key])}, returned "
                    f"{show(entry['grads'][first_wrong][key])}")
        cause = layer_cause(student, q['year'])
        if cause is not None:
            return Verdict(False, f'{function} gives wrong gradients from linear layer '
                                  f'{first_wrong}: {cause.words.split(";")[0]} (see that '
                                  f'item)', cause.mistake, evidence, cause.doc)
        if first_wrong == last:
            words = (f"gives a wrong gradient already at the output layer (linear layer "
                     f"{last}): dout does not reach it unchanged, or that layer's backward is "
                     f"wrong")
            mistake = 'wrong at the output layer'
        else:
            words = (f"gives right gradients from the output down to linear layer "
                     f"{first_wrong + 1}, and linear layer {first_wrong} is the first to "
                     f"differ: the error enters between them (the ELU's backward, or the dx "
                     f"passed down by linear layer {first_wrong + 1})")
            mistake = 'wrong below the output layer'
        named = order_words(entry)
        if named:
            words, mistake = f'{words}; it {named[0]}', named[1]
        if not forward_right(entry, q, case):
            words += '; its forward pass differs too (see the forward item)'
        return Verdict(False, f'{function} {words}', mistake, evidence, DOC)
    return PASS


def layer_cause(student, year):
    """The first failed verdict of the layers' own backward items, or None."""
    from lab.grading.functions import all_items
    from lab.grading.judge import judge
    items = all_items()
    for item_id in ('linear_dweight', 'linear_dbias', 'linear_dx', 'elu_backward'):
        verdict = judge(items[item_id], student, year)
        if not verdict.passed:
            return verdict
    return None


def forward_right(entry, q, case):
    return 'out' in entry and any(close(entry['out'], out) for out, _ in options(q, case, entry))


INPUT_LAYER = Item(id='mlp_numpy_input_layer', name='', points=0, function='MLP.__init__',
                   files=FILES, doc='linear', inputs=lambda year: {}, ask=ask_input_layer)

ITEMS = [
    Item(id='mlp_numpy_layers', name='MLP (NumPy): layers for n_hidden [], [k], [k, k], '
                                     'input_layer on the first', points=2,
         function='MLP.__init__ (mlp_numpy)', files=FILES, doc=DOC, inputs=inputs, ask=ask,
         check=check_layers),
    Item(id='mlp_numpy_forward', name='MLP (NumPy): forward', points=2,
         function='MLP.forward (mlp_numpy)', files=FILES, doc=DOC, inputs=inputs, ask=ask,
         check=check_forward),
    Item(id='mlp_numpy_backward', name='MLP (NumPy): gradients', points=3,
         function='MLP.backward (mlp_numpy)', files=FILES, doc=DOC, inputs=inputs, ask=ask,
         check=check_backward),
]
