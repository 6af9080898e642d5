"""The graded items: each compares the probes' outputs with the reference and names the mistake.

An item is a function ``check(results, reference) -> Verdict``. ``results`` holds what the
student's code returned in the sandbox (:class:`ProbeResults`); ``reference`` is computed
here, in the grader's process, from this repository's own ``modules.py`` on the very inputs
the probes fed (:func:`probes.probe_inputs`). When the two differ, the diagnosis tries the
known mistakes one by one (each a formula evaluated on the same inputs) and names the first
that reproduces the returned value; otherwise it states the difference. Every diagnosis
names the function, the mistake and the evidence: the input, the expected value and the
value returned.
"""
import re
from dataclasses import dataclass

import numpy as np

import modules as reference_modules
from lab.grading import probes

RTOL, ATOL = 1e-5, 1e-8
"""Agreement of a returned array with the reference (the official tests allow 1e-5)."""

TRAINING_ACCURACY = 0.75
"""Test accuracy on the spiral each MLP must reach (the reference reaches about 0.86)."""

OFFICIAL_TOLERANCE = {'official_crossentropy': 1e-5, 'official_linear': 1e-5,
                      'official_elu': 1e-6, 'official_softmax': 1e-5}
"""The official unittests.py's relative-error bounds, test by test."""

NUMPY2_SIGNS = (
    ('only 0-dimensional arrays can be converted', 'an array is assigned to a scalar slot '
     '(a[i] = array of one element), an error since NumPy 2: index or .item() it'),
    ('setting an array element with a sequence', 'an array is assigned to a scalar slot, an '
     'error since NumPy 2: index it or call .item()'),
    ("has no attribute 'float_'", 'np.float_ was removed in NumPy 2: use np.float64'),
    ("has no attribute 'NaN'", 'np.NaN was removed in NumPy 2: use np.nan'),
    ("has no attribute 'Inf'", 'np.Inf was removed in NumPy 2: use np.inf'),
    ("has no attribute 'float'", 'np.float was removed (NumPy 1.24): use float'),
    ("has no attribute 'int'", 'np.int was removed (NumPy 1.24): use int'),
    ("has no attribute 'product'", 'np.product was removed in NumPy 2: use np.prod'),
)


@dataclass
class Verdict:
    """The outcome of one item: passed or not, why not, and the mistake's short name."""
    passed: bool
    diagnosis: str = ''

    @property
    def mistake(self):
        return '' if self.passed else mistake_of(self.diagnosis)


PASS = Verdict(True)


def fail(diagnosis):
    return Verdict(False, diagnosis)


MISTAKE_PATTERNS = (
    (re.compile(r'not implemented yet'), 'not implemented yet'),
    (re.compile(r'(\w+\.py) is missing'), r'\1 is missing'),
    (re.compile(r'merge-conflict marker'), 'a merge-conflict marker'),
    (re.compile(r'(\w+\.py) line \d+: (SyntaxError|IndentationError|TabError)'),
     r'\1 has a \2'),
    (re.compile(r'(\w+\.py) could not be imported: (\w+)'), r'\1 cannot be imported: \2'),
    (re.compile(r'changed required signature'), 'changed required signature'),
    (re.compile(r'time budget'), 'ran past its time budget'),
    (re.compile(r'not graded: '), 'not graded: the probe run failed'),
    (re.compile(r'NumPy 2'), 'a NumPy 2 incompatibility'),
    (re.compile(r' raised (\w+)'), r'crashed: \1'),
)
"""Diagnoses that end in a crash or a missing part, and the short name of each."""


def mistake_of(diagnosis):
    """A short name of the mistake in ``diagnosis``, the same for every submission making it.

    The class summary counts these: the evidence (numbers, file lines) is dropped, and
    crashes are named by their exception type only.
    """
    text = diagnosis.split(' | the mistake: ')[-1].split(' | the likely cause: ')[-1]
    text = text.split(' | ')[0]
    for pattern, name in MISTAKE_PATTERNS:
        found = pattern.search(text)
        if found:
            return found.expand(name)
    if text.startswith('official ') or 'relative error' in text:
        return 'relative error above the official bound'
    first = text.split('; ')[0]
    if 'returns wrong values' in first:
        return 'wrong values (mistake not recognised)'
    return re.sub(r'\s+', ' ', first)[:160]


# -- reading the probes' results -----------------------------------------------------------

class ProbeResults:
    """What probes.py reported: arrays by 'probe/key' and the JSON meta, with helpers.

    Parameters
    ----------
    arrays : dict of str to ndarray
    meta : dict
    run_problem : str or None
        Why the probe process ended abnormally (from the sandbox), for every probe
        that left no record.
    """

    def __init__(self, arrays, meta, run_problem=None):
        self.arrays, self.meta, self.run_problem = arrays, meta, run_problem

    def record(self, probe):
        return self.meta.get('probes', {}).get(probe)

    def has(self, probe, key):
        record = self.record(probe)
        return record is not None and key in record.get('values', {})

    def value(self, probe, key):
        """The value the probe recorded under ``key``: an array, a number or a string."""
        stored = self.record(probe)['values'][key]
        if isinstance(stored, dict) and 'array' in stored:
            return self.arrays.get(f'{probe}/{key}')
        if isinstance(stored, dict) and 'list' in stored:
            return stored['list']
        if isinstance(stored, dict) and 'nonfinite' in stored:
            return float(stored['nonfinite'])
        return stored

    def failure(self, probe, function):
        """One line saying why ``probe`` left no value, naming ``function``."""
        record = self.record(probe)
        if record is None:
            reason = self.run_problem or 'the probe process stopped before this check'
            return f'{function}: not graded: {reason}'
        status = record.get('status')
        if status and status.startswith('file_'):
            return file_failure(self.meta, record.get('file'), function)
        error = record.get('error') or {}
        where = f" at {error['where']}" if error.get('where') else ''
        if status == 'not_implemented':
            return f'{function}: not implemented yet (NotImplementedError{where})'
        if status == 'timeout':
            return (f'{function}: {error.get("message", "ran too long")}{where}: '
                    f'an infinite loop, or a loop over every element?')
        message = error.get('message', '')
        if error.get('type') == 'NameError' and any(
                f"name '{name}' is not defined" in message for name in ('out', 'dx')):
            return (f'{function}: not implemented yet: the template\'s body is still empty '
                    f'({message}{where})')
        line = f'{function} raised {error.get("type")}: {message}{where}'
        if "has no attribute '_modules'" in message:
            line += ('; MLP.__init__ must call super().__init__() before it adds layers '
                     '(or is it still empty?)')
        hint = numpy2_hint(message)
        if hint:
            line += f'; {hint}'
        signature = signature_hint(error)
        if signature:
            line = f'{function}: {signature}{where}'
        return line

    def signature_notes(self):
        return self.meta.get('signatures', {})


def file_failure(meta, file, function):
    """Why ``file`` could not be used: missing, or its import failed, for ``function``."""
    state = meta.get('files', {}).get(file, {})
    status = state.get('status')
    if status == 'missing':
        return f'{function}: {file}.py is missing from the submission'
    error = state.get('error') or {}
    where = error.get('where') or f'{file}.py'
    if error.get('type') in ('SyntaxError', 'IndentationError', 'TabError'):
        filename, _, line = where.partition(':')
        text = f'{function}: {filename} line {line}: {error["type"]}: {error.get("message")}'
        if '<<<<<<<' in error.get('message', '') or 'conflict' in error.get('message', ''):
            text += ' (a merge-conflict marker)'
        return text
    if status == 'not_implemented':
        return f'{function}: not implemented yet ({file}.py raised NotImplementedError)'
    if status == 'timeout':
        return f'{function}: importing {file}.py ran past its time budget: an infinite loop?'
    message = error.get('message', '')
    text = (f'{function}: {file}.py could not be imported: {error.get("type")}: '
            f'{message} at {where}')
    hint = numpy2_hint(message)
    return f'{text}; {hint}' if hint else text


def numpy2_hint(message):
    """Words for an error that NumPy 2 raises where NumPy 1 did not, or None."""
    for sign, hint in NUMPY2_SIGNS:
        if sign in message:
            return hint
    return None


def signature_hint(error):
    """Words for a TypeError from a constructor call that does not fit, or None."""
    message = error.get('message', '')
    if error.get('type') == 'TypeError' and '__init__()' in message:
        return f'changed required signature: {message.split(" (from")[0]}'
    return None


# -- formatting evidence -------------------------------------------------------------------

def show(value):
    """A short, readable rendering of an array or number for a diagnosis."""
    if value is None:
        return 'None'
    if isinstance(value, str):
        return value
    array = np.asarray(value)
    if array.ndim == 0:
        return f'{float(array):.6g}'
    text = np.array2string(array, precision=4, suppress_small=True, separator=', ',
                           max_line_width=200, threshold=30)
    text = ' '.join(text.split())
    return text if len(text) <= 240 else text[:237] + '...'


def shape_of(value):
    return None if value is None else tuple(np.shape(value))


def close(returned, expected, rtol=RTOL, atol=ATOL):
    """True when ``returned`` has the shape of ``expected`` and the same values."""
    if returned is None or isinstance(returned, str):
        return False
    returned = np.asarray(returned, dtype=float)
    expected = np.asarray(expected, dtype=float)
    if returned.shape != expected.shape:
        return False
    return bool(np.allclose(returned, expected, rtol=rtol, atol=atol, equal_nan=False))


def same_values(returned, expected):
    """``close``, also when only a leading axis of length 1 differs, e.g. (1, M) for (M,)."""
    if returned is None or isinstance(returned, str):
        return False
    returned = np.asarray(returned, dtype=float)
    expected = np.asarray(expected, dtype=float)
    if returned.size != expected.size or returned.squeeze().shape != expected.squeeze().shape:
        return False
    return close(returned.reshape(expected.shape), expected)


def explain(function, returned, expected, candidates, evidence, batch_size=None):
    """The diagnosis of a wrong array: the first candidate mistake that reproduces it.

    Parameters
    ----------
    function : str
        The function's name, e.g. 'LinearModule.backward'.
    returned, expected : ndarray
    candidates : list of (str, ndarray or callable)
        Mistakes in words and the value each would return.
    evidence : str
        The input, in words ('for x = ..., dout = ...').
    batch_size : int, optional
        N, to name a scaling by 1/N or N.
    """
    tail = f'expected {show(expected)}, returned {show(returned)}; {evidence}'
    if returned is None:
        return f'{function} returns None; {tail}'
    if isinstance(returned, str):
        return f'{function} returns {returned}, not an array of numbers; {tail}'
    returned_array = np.asarray(returned, dtype=float)
    for words, value in candidates:
        try:
            value = value() if callable(value) else value
        except Exception:  # a candidate that cannot be formed for this input
            continue
        if value is not None and close(returned_array, value):
            return f'{function} {words}; {tail}'
    expected = np.asarray(expected, dtype=float)
    if returned_array.shape != expected.shape:
        if returned_array.shape == expected.T.shape and close(returned_array.T, expected):
            return f'{function} returns the transpose of the right result; {tail}'
        return (f'{function} returns shape {returned_array.shape}, expected '
                f'{expected.shape}; {tail}')
    if not np.all(np.isfinite(returned_array)):
        return f'{function} returns non-finite values (nan or inf); {tail}'
    factor = scale_factor(returned_array, expected)
    if factor is not None:
        return f'{function} {factor_words(factor, batch_size)}; {tail}'
    return f'{function} returns wrong values; {tail}'


def scale_factor(returned, expected):
    """The c with returned = c * expected, when one fits and is not 1; else None."""
    norm = float(np.sum(expected * expected))
    if norm == 0:
        return None
    factor = float(np.sum(returned * expected)) / norm
    if abs(factor - 1) < 1e-6 or not close(returned, factor * expected):
        return None
    return factor


def factor_words(factor, batch_size):
    """'divides by N = 3', 'is off by a factor of 2' and so on, for a scale ``factor``."""
    if batch_size:
        if np.isclose(factor, 1 / batch_size):
            return f'is off by a factor 1/N: divides by the batch size N = {batch_size} once more'
        if np.isclose(factor, batch_size):
            return (f'is off by a factor N = {batch_size}: misses the 1/N of the mean over '
                    f'the batch')
    if np.isclose(factor, -1):
        return 'has the wrong sign'
    if abs(factor) < 1e-9:
        return 'is all zeros: the gradient never reaches it'
    return f'is off by a factor of {factor:.4g}'


# -- the reference -------------------------------------------------------------------------

class Reference:
    """The reference answers for one year's probe inputs, from this repository's modules."""

    def __init__(self, year):
        self.year = year
        self.inputs = probes.probe_inputs(year)

    def linear(self, x=None):
        """out, dx, dW, db of the probe's LinearModule on ``x`` (the probe's x by default)."""
        inputs = self.inputs
        x = inputs['linear_x'] if x is None else x
        layer = reference_modules.LinearModule(4, 3)
        layer.params['weight'][...] = inputs['linear_weight']
        layer.params['bias'][...] = inputs['linear_bias']
        out = layer.forward(x)
        dx = layer.backward(inputs['linear_dout'])
        return {'out': out, 'dx': dx, 'dweight': layer.grads['weight'],
                'dbias': layer.grads['bias']}

    def elu(self, alpha, x=None):
        x = self.inputs['elu_x'] if x is None else x
        layer = reference_modules.ELUModule(alpha)
        out = layer.forward(x)
        return {'out': out, 'dx': layer.backward(self.inputs['elu_dout'])}

    def softmax(self, x=None, dout=None):
        layer = reference_modules.SoftMaxModule()
        out = layer.forward(self.inputs['softmax_x'] if x is None else x)
        dout = self.inputs['softmax_dout'] if dout is None else dout
        return {'out': out, 'dx': layer.backward(dout)}

    def cross_entropy(self):
        x, labels = self.inputs['ce_x'], self.inputs['ce_labels']
        module = reference_modules.CrossEntropyModule()
        return {'loss': module.forward(x, labels), 'dx': module.backward(x, labels),
                'targets': np.eye(x.shape[1])[labels]}

    def mlp_modules(self, case, alpha=1.0, use_batch_norm=False):
        """The reference composition for a probe MLP, with the probe's weights."""
        inputs, widths = self.inputs, probes.mlp_widths(probes.MLP_CASES[case])
        layers = []
        for index, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
            linear = reference_modules.LinearModule(fan_in, fan_out)
            linear.params['weight'][...] = inputs[f'mlp_{case}_weight{index}']
            linear.params['bias'][...] = inputs[f'mlp_{case}_bias{index}']
            layers.append(linear)
            if index < len(widths) - 2:
                if use_batch_norm:
                    layers.append(reference_modules.BatchNormModule(fan_out))
                layers.append(reference_modules.ELUModule(alpha))
        return layers

    def mlp(self, case, alpha=1.0, with_softmax=False, use_batch_norm=False, training=True):
        """Logits (or probabilities) and every linear layer's gradients for the probe MLP."""
        layers = self.mlp_modules(case, alpha, use_batch_norm)
        if with_softmax:
            layers.append(reference_modules.SoftMaxModule())
        out = self.inputs['mlp_x']
        for layer in layers:
            layer.training = training
            out = layer.forward(out)
        dout = self.inputs['mlp_dout']
        for layer in reversed(layers):
            dout = layer.backward(dout)
        linears = [layer for layer in layers
                   if isinstance(layer, reference_modules.LinearModule)]
        return out, [(layer.grads['weight'], layer.grads['bias']) for layer in linears]


# -- the items -----------------------------------------------------------------------------

def required(results, probe, keys, function):
    """The probe's values for ``keys``, or a failing Verdict saying why they are missing."""
    if all(results.has(probe, key) for key in keys):
        return [results.value(probe, key) for key in keys], None
    return None, fail(results.failure(probe, function))


def input_changed(results, probe, original):
    """True when the probe saw its input array change during the forward pass."""
    if not results.has(probe, 'x_after_forward'):
        return False
    return not close(results.value(probe, 'x_after_forward'), original, rtol=0, atol=0)


def check_linear_shapes(results, reference):
    function = 'LinearModule.__init__'
    keys = ['hidden_weight_shape', 'hidden_bias_shape', 'hidden_grad_shapes']
    values, failed = required(results, 'linear_init', keys, function)
    if failed:
        return failed
    weight, bias, grads = values
    evidence = 'for LinearModule(400, 100)'
    if tuple(weight) != (100, 400):
        if tuple(weight) == (400, 100):
            return fail(f"{function} stores params['weight'] transposed, as (in_features, "
                        f"out_features); {evidence}: expected shape (100, 400) "
                        f"(out_features, in_features, as torch.nn.Linear), returned "
                        f"{tuple(weight)}")
        return fail(f"{function}: params['weight'] has the wrong shape; {evidence}: "
                    f"expected (100, 400), returned {tuple(weight)}")
    if tuple(bias) not in ((100,), (1, 100)):
        return fail(f"{function}: params['bias'] has the wrong shape; {evidence}: expected "
                    f"(100,), returned {tuple(bias)}")
    if [tuple(grads[0]), tuple(grads[1])] != [tuple(weight), tuple(bias)]:
        return fail(f"{function}: grads are not initialised with the shapes of the "
                    f"parameters (zeros); {evidence}: expected {tuple(weight)} and "
                    f"{tuple(bias)}, returned {tuple(grads[0]) or 'None'} and "
                    f"{tuple(grads[1]) or 'None'}")
    return PASS


def check_linear_init(results, reference):
    function = 'LinearModule.__init__'
    keys = ['hidden_weight_std', 'input_weight_std', 'hidden_bias_absmax',
            'input_bias_absmax', 'hidden_weight_mean']
    values, failed = required(results, 'linear_init', keys, function)
    if failed:
        return failed
    hidden, first, hidden_bias, first_bias, mean = values
    expected_hidden, expected_first = np.sqrt(2 / 400), np.sqrt(1 / 400)

    def near(value, target):
        return value is not None and abs(value - target) <= 0.1 * target

    evidence = (f'for LinearModule(400, 100): weight std {hidden:.4g} (expected '
                f'sqrt(2/400) = {expected_hidden:.4g}), with input_layer=True {first:.4g} '
                f'(expected sqrt(1/400) = {expected_first:.4g})')
    if near(hidden, expected_hidden) and near(first, expected_first):
        if max(hidden_bias, first_bias) != 0:
            return fail(f'{function} does not initialise the bias with zeros; largest |b| '
                        f'{max(hidden_bias, first_bias):.3g}')
        if abs(mean) > 0.01:
            return fail(f'{function}: the weights do not have mean 0 (mean {mean:.3g}): a '
                        f'uniform [0, 1) draw instead of a normal one?')
        return PASS
    if near(hidden, expected_hidden) and near(first, expected_hidden):
        words = ('Kaiming scale ignores input_layer: the input layer (no activation before '
                 'it) must use std sqrt(1/in_features), the others sqrt(2/in_features)')
    elif near(hidden, expected_first) and near(first, expected_first):
        words = ('Kaiming scale ignores input_layer: every layer gets std '
                 'sqrt(1/in_features); layers after an activation need sqrt(2/in_features)')
    elif near(hidden, expected_first) and near(first, expected_hidden):
        words = 'Kaiming scale swaps the two cases of input_layer'
    elif near(hidden, np.sqrt(2 / 100)) or near(hidden, np.sqrt(1 / 100)):
        words = 'Kaiming scale uses out_features as the fan-in; the fan-in is in_features'
    elif near(hidden, 1.0):
        words = 'draws standard normal weights without the Kaiming scale sqrt(2/in_features)'
    else:
        words = 'initialises the weights with the wrong scale (Kaiming: sqrt(2/in_features))'
    return fail(f'{function} {words}; {evidence}')


def check_linear_forward(results, reference):
    function = 'LinearModule.forward'
    values, failed = required(results, 'linear', ['out'], function)
    if failed:
        return failed
    inputs, expected = reference.inputs, reference.linear()['out']
    x, weight, bias = inputs['linear_x'], inputs['linear_weight'], inputs['linear_bias']
    evidence = f'for x = {show(x)}, W = {show(weight)}, b = {show(bias)}'
    if input_changed(results, 'linear', x):
        return fail(f'{function} changes its input x in place; {evidence}')
    if close(values[0], expected):
        return PASS
    candidates = [('forgets the bias b', x @ weight.T),
                  ('subtracts the bias instead of adding it', x @ weight.T - bias)]
    return fail(explain(function, values[0], expected, candidates, evidence))


def linear_backward_candidates(reference, key):
    """The classic mistakes in LinearModule.backward's ``key``, as values."""
    inputs = reference.inputs
    x, weight, dout = inputs['linear_x'], inputs['linear_weight'], inputs['linear_dout']
    n = len(x)
    earlier = reference.linear(inputs['linear_x_earlier'])[key]
    if key == 'dweight':
        right = dout.T @ x
        return [('returns dW transposed, x^T dout, of shape (in_features, out_features); '
                 'dL/dW = dout^T x has the shape of W', x.T @ dout),
                ('adds a weight-decay term 0.01·W to the gradient of the loss', right + 0.01 * weight),
                ('returns dW transposed, of shape (in_features, out_features), and adds a '
                 'weight-decay term 0.01·W to the gradient of the loss',
                 (right + 0.01 * weight).T),
                ('adds a weight-decay term W to the gradient of the loss', right + weight),
                ('averages over the batch (divides by N): dL/dW = dout^T x, the loss already '
                 'holds the 1/N', right / n),
                ('uses a stale cache: the input of an earlier forward call', earlier)]
    if key == 'dbias':
        right = dout.sum(axis=0)
        return [('averages the bias gradient over the batch (divides by N); dL/db is the sum '
                 'of dout over the batch', right / n),
                ('returns dout itself instead of its sum over the batch', dout),
                ('sums over the wrong axis (the outputs instead of the batch)',
                 dout.sum(axis=1))]
    right = dout @ weight
    return [('multiplies by W^T instead of W: dL/dx = dout W', lambda: dout @ weight.T),
            ('divides by the batch size N', right / n),
            ('uses the input instead of the weights', lambda: dout @ x)]


def check_linear_gradient(key, function):
    def check(results, reference):
        values, failed = required(results, 'linear', [key], function)
        if failed:
            return failed
        expected = reference.linear()[key]
        if same_values(values[0], expected) if key == 'dbias' else close(values[0], expected):
            return PASS
        inputs = reference.inputs
        evidence = (f"for x = {show(inputs['linear_x'])}, W = {show(inputs['linear_weight'])}, "
                    f"dout = {show(inputs['linear_dout'])}")
        return fail(explain(function, values[0], expected,
                            linear_backward_candidates(reference, key), evidence,
                            batch_size=len(inputs['linear_x'])))
    check.__name__ = f'check_linear_{key}'
    return check


def check_latest_cache(results, reference):
    """Each layer's backward uses the input of the latest forward pass.

    After forward(x1), forward(x2), backward(dout) the gradient must be the one the
    same code gives after forward(x2) alone (judged against the student's own answer,
    so a mistake of another item is not counted twice); the reference's gradient for
    x1 names a stale cache.
    """
    inputs = reference.inputs
    alpha = results.value('elu_latest', 'alpha') if results.has('elu_latest', 'alpha') else 1.0
    checks = [('LinearModule.backward', 'linear_latest', 'linear', 'dweight',
               reference.linear()['dweight'],
               reference.linear(inputs['linear_x_earlier'])['dweight']),
              ('ELUModule.backward', 'elu_latest', 'elu', 'dx', reference.elu(alpha)['dx'],
               reference.elu(alpha, -inputs['elu_x'])['dx']),
              ('SoftMaxModule.backward', 'softmax_latest', 'softmax', 'dx',
               reference.softmax()['dx'], reference.softmax(-2 * inputs['softmax_x'])['dx'])]
    problems = []
    for function, probe, single_probe, key, expected, stale in checks:
        values, failed = required(results, probe, [key], function)
        if failed:
            problems.append(failed.diagnosis)
            continue
        own = (results.value(single_probe, key) if results.has(single_probe, key)
               else expected)
        if close(values[0], own):
            continue
        if close(values[0], stale):
            problems.append(f'{function} uses a stale cache: after forward(x1) then '
                            f'forward(x2), backward used x1; expected {show(expected)}, '
                            f'returned {show(values[0])}')
        else:
            problems.append(f'{function} returns another gradient after forward(x1), '
                            f'forward(x2) than after forward(x2) alone: a cache kept from an '
                            f'earlier call?; after forward(x2) alone {show(own)}, after both '
                            f'{show(values[0])}')
    return fail(' | '.join(problems)) if problems else PASS


def elu_candidates(reference, alpha, key):
    x, dout = reference.inputs['elu_x'], reference.inputs['elu_dout']
    positive = x > 0
    if key == 'out':
        return [(f'ignores alpha = {alpha:g}: computes e^x - 1 for x <= 0 instead of '
                 f'alpha (e^x - 1)', np.where(positive, x, np.expm1(x))),
                ('applies alpha to the wrong branch', np.where(positive, alpha * x, np.expm1(x))),
                ('computes a ReLU, max(0, x), instead of the ELU', np.maximum(x, 0)),
                ('puts the branches the wrong way round (x for x <= 0)',
                 np.where(positive, alpha * np.expm1(x), x))]
    return [('puts the derivative on the wrong branch: alpha e^x belongs to x <= 0 and 1 '
             'to x > 0', dout * np.where(positive, alpha * np.exp(x), 1)),
            (f'ignores alpha = {alpha:g} in the derivative: for x <= 0 it is alpha e^x',
             dout * np.where(positive, 1, np.exp(x))),
            ('forgets to multiply by dout (returns the local derivative only)',
             np.where(positive, 1, alpha * np.exp(x))),
            ('uses the derivative of alpha (e^x - 1) without the e^x (returns alpha for '
             'x <= 0)', dout * np.where(positive, 1, alpha)),
            ('computes the derivative from the output, alpha e^out, instead of the input',
             dout * np.where(positive, 1, alpha * np.exp(alpha * np.expm1(x)))),
            ('treats ELU as a ReLU in the backward pass (0 for x <= 0)',
             dout * positive)]


def check_elu(key, function):
    def check(results, reference):
        values, failed = required(results, 'elu', [key, 'alpha'], function)
        if failed:
            return failed
        returned, alpha = values
        x = reference.inputs['elu_x']
        evidence = f'with alpha = {alpha:g}, for x = {show(x)}'
        if key == 'dx':
            evidence += f", dout = {show(reference.inputs['elu_dout'])}"
        if key == 'out' and input_changed(results, 'elu', x):
            return fail(f'{function} changes its input x in place (the caller\'s array is '
                        f'overwritten); {evidence}')
        expected = reference.elu(alpha)[key]
        if close(returned, expected):
            return PASS
        return fail(explain(function, returned, expected,
                            elu_candidates(reference, alpha, key), evidence))
    check.__name__ = f'check_elu_{key}'
    return check


def check_softmax_forward(results, reference):
    function = 'SoftMaxModule.forward'
    values, failed = required(results, 'softmax', ['out'], function)
    if failed:
        return failed
    x = reference.inputs['softmax_x']
    evidence = f'for x = {show(x)}'
    if input_changed(results, 'softmax', x):
        return fail(f'{function} changes its input x in place; {evidence}')
    expected = reference.softmax()['out']
    if close(values[0], expected):
        return PASS
    row_shifted = np.exp(x - x.max(axis=1, keepdims=True))
    batch_words = 'normalises over the batch (axis 0) instead of over the classes (axis 1)'
    candidates = [(batch_words, np.exp(x) / np.exp(x).sum(axis=0, keepdims=True)),
                  (batch_words, row_shifted / row_shifted.sum(axis=0, keepdims=True)),
                  ('returns exp(x) without dividing by the sum over the classes', np.exp(x)),
                  ('divides by the sum of the whole batch instead of each row',
                   np.exp(x) / np.exp(x).sum())]
    return fail(explain(function, values[0], expected, candidates, evidence))


def check_softmax_stable(results, reference):
    function = 'SoftMaxModule.forward'
    values, failed = required(results, 'softmax_large', ['out'], function)
    if failed:
        return failed
    x = reference.inputs['softmax_large']
    expected = reference.softmax(x, np.zeros_like(x))['out']
    if close(values[0], expected):
        return PASS
    returned = values[0]
    evidence = f'for logits x = {show(x)}: expected {show(expected)}, returned {show(returned)}'
    if (isinstance(returned, np.ndarray) and returned.shape == expected.shape
            and close(returned[0], expected[0]) and not np.all(np.isfinite(returned[1]))):
        return fail(f'{function} subtracts the maximum of the whole batch instead of each '
                    f'row\'s maximum: a row far below it underflows to 0/0 (nan); shift '
                    f'each row by its own max, x.max(axis=1, keepdims=True); {evidence}')
    if isinstance(returned, np.ndarray) and not np.all(np.isfinite(returned)):
        return fail(f'{function} overflows at logits of ±1000 (nan or inf): softmax without '
                    f'the max shift; subtract each row\'s maximum before exp (the max trick); '
                    f'{evidence}')
    return fail(f'{function} is wrong at logits of ±1000; {evidence}')


def check_softmax_backward(results, reference):
    function = 'SoftMaxModule.backward'
    values, failed = required(results, 'softmax', ['dx'], function)
    if failed:
        return failed
    inputs = reference.inputs
    x, dout = inputs['softmax_x'], inputs['softmax_dout']
    s = reference.softmax()['out']
    expected = reference.softmax()['dx']
    if close(values[0], expected):
        return PASS
    evidence = f'for x = {show(x)}, dout = {show(dout)}'
    candidates = [('keeps only the diagonal of the Jacobian: dout · s (1 − s); the full '
                   'product is s ⊙ (dout − Σ_j dout_j s_j)', dout * s * (1 - s)),
                  ('returns dout unchanged, as if the softmax and the loss were fused',
                   dout),
                  ('sums over the batch (axis 0) instead of the classes in '
                   's ⊙ (dout − Σ_j dout_j s_j)',
                   s * (dout - (dout * s).sum(axis=0, keepdims=True))),
                  ('forgets the factor s: returns dout − Σ_j dout_j s_j',
                   dout - (dout * s).sum(axis=1, keepdims=True)),
                  ('has the sign of the Jacobian flipped', -expected)]
    return fail(explain(function, values[0], expected, candidates, evidence))


def one_hot_hint(results, probe, key):
    """A diagnosis when integer labels fail but one-hot targets work, else None."""
    record = results.record(probe) or {}
    if record.get('status') != 'error' or not results.has('ce_one_hot', key):
        return None
    error = record.get('error') or {}
    if error.get('type') not in ('ValueError', 'IndexError', 'TypeError'):
        return None
    where = f" at {error['where']}" if error.get('where') else ''
    return (f'assumes one-hot labels: with integer labels y of shape (N,), as the assignment '
            f'passes them, it raises {error.get("type")}: {error.get("message")}{where}')


def check_ce_forward(results, reference):
    function = 'CrossEntropyModule.forward'
    if not results.has('ce_forward', 'loss'):
        hint = one_hot_hint(results, 'ce_forward', 'loss')
        return fail(f'{function} {hint}' if hint else results.failure('ce_forward', function))
    returned = results.value('ce_forward', 'loss')
    inputs = reference.inputs
    x, labels = inputs['ce_x'], inputs['ce_labels']
    ref = reference.cross_entropy()
    evidence = f'for x = {show(x)} (softmax outputs), y = {show(labels)}'
    if input_changed(results, 'ce_forward', x):
        return fail(f'{function} changes its input x in place; {evidence}')
    if returned is not None and np.size(returned) != 1:
        return fail(f'{function} returns an array of shape {shape_of(returned)}, not the '
                    f'scalar mean over the batch; {evidence}: expected {ref["loss"]:.6g}')
    returned = None if returned is None else float(np.asarray(returned).reshape(()))
    if returned is not None and np.isclose(returned, ref['loss'], rtol=RTOL, atol=ATOL):
        return PASS
    n, c = x.shape
    per_sample = -np.log(x[np.arange(n), labels])
    logits_loss = -np.log(np.asarray(probes._softmax(x))[np.arange(n), labels])
    candidates = [(f'sums the loss over the batch instead of averaging (the mean over the '
                   f'N = {n} samples is the loss)', per_sample.sum()),
                  (f'averages over every entry (divides by N·C = {n * c}) instead of over '
                   f'the N samples', per_sample.sum() / (n * c)),
                  ('applies a softmax to its input first: this module\'s input is already '
                   'the softmax output', logits_loss.mean()),
                  ('has the wrong sign (misses the minus of -log)', -per_sample.mean()),
                  ('uses log of the wrong entries (all classes, not the true class)',
                   -np.log(x).sum() / n)]
    return fail(explain(function, returned, ref['loss'], candidates, evidence, batch_size=n))


def check_ce_backward(results, reference):
    function = 'CrossEntropyModule.backward'
    if not results.has('ce_backward', 'dx'):
        record = results.record('ce_backward') or {}
        error = record.get('error') or {}
        message = error.get('message', '')
        if error.get('type') in ('AttributeError', 'TypeError', 'RuntimeError') and (
                'NoneType' in message or 'attribute' in message or 'forward' in message):
            return fail(f'{function} needs a forward pass first: on a fresh instance '
                        f'backward(x, y) raised {error.get("type")}: {message}'
                        f' at {error.get("where")}; it must compute from its arguments (the '
                        f'official test calls it without forward)')
        hint = one_hot_hint(results, 'ce_backward', 'dx')
        if hint:
            return fail(f'{function} {hint}')
        return fail(results.failure('ce_backward', function))
    returned = results.value('ce_backward', 'dx')
    inputs = reference.inputs
    x, labels = inputs['ce_x'], inputs['ce_labels']
    ref = reference.cross_entropy()
    if close(returned, ref['dx']):
        return PASS
    n = len(x)
    targets = ref['targets']
    evidence = f'for x = {show(x)} (softmax outputs), y = {show(labels)}'
    candidates = [('returns dL/d(logits) = (S − T)/N, but this module\'s input is the softmax '
                   'output: expected −T/(N·X)', (x - targets) / n),
                  ('returns dL/d(logits) = S − T (and without 1/N), but this module\'s input '
                   'is the softmax output: expected −T/(N·X)', x - targets),
                  (f'misses the 1/N of the mean: returns −T/X; expected −T/(N·X) with '
                   f'N = {n}', -targets / x),
                  ('has the wrong sign: returns T/(N·X); expected −T/(N·X)', targets / (n * x)),
                  ('divides by N twice: returns −T/(N²·X)', -targets / (n * n * x)),
                  ('returns −1/(N·X) for every class; only the true class (T = 1) has a '
                   'gradient', -1 / (n * x)),
                  ('returns the loss\'s forward value, not its gradient',
                   np.full_like(x, ref['loss']))]
    return fail(explain(function, returned, ref['dx'], candidates, evidence, batch_size=n))


def check_clear_cache(results, reference):
    problems = []
    values, failed = required(results, 'clear_cache', ['held'], 'clear_cache')
    if failed:
        problems.append(failed.diagnosis)
    else:
        import json
        for module, held in json.loads(values[0]).items():
            if held:
                problems.append(f'{module}.clear_cache leaves arrays cached in '
                                f'{", ".join("self." + name for name in held)} after '
                                f'forward; set them to None')
    if results.has('mlp_numpy_two', 'held_after_clear'):
        import json
        held = json.loads(results.value('mlp_numpy_two', 'held_after_clear'))
        if held:
            problems.append(f'MLP.clear_cache (mlp_numpy) leaves its modules holding '
                            f'{", ".join(held)}: call every module\'s clear_cache')
    elif results.record('mlp_numpy_two') is not None:
        problems.append(results.failure('mlp_numpy_two', 'MLP.clear_cache (mlp_numpy)'))
    return fail(' | '.join(problems)) if problems else PASS


def official_item(probe, test, function):
    """The official unittests.py test ``test``, as it runs: its seeds and its bound."""
    def check(results, reference, verdicts=None):
        bound = OFFICIAL_TOLERANCE[probe]
        if results.has(probe, 'errors'):
            import json
            errors = json.loads(results.value(probe, 'errors'))
        else:
            errors = []
        record = results.record(probe) or {}
        if record.get('status') == 'ok' and len(errors) == 10 and max(errors) < bound:
            return PASS
        related = [verdict.diagnosis for verdict in (verdicts or []) if not verdict.passed]
        if record.get('status') != 'ok':
            words = results.failure(probe, function)
        else:
            worst = int(np.argmax(errors))
            words = (f'{function}: relative error {errors[worst]:.3g} in case {worst + 1} of '
                     f'10, above {bound:g}')
        if related:
            words += ' | the mistake: ' + related[0]
        return fail(f'official {test} fails: {words}')
    check.__name__ = f'check_{probe}'
    return check


# -- the NumPy MLP -------------------------------------------------------------------------

def parse_layers(described):
    """Split 'LinearModule 4x5' descriptions into ('linear', (4, 5)) and ('elu', None)."""
    layers = []
    for text in described:
        kind, _, shape = text.partition(' ')
        lower = kind.lower()
        if shape and 'x' in shape:
            rows, _, columns = shape.partition('x')
            layers.append(('linear', (int(rows), int(columns))))
        elif 'elu' in lower:
            layers.append(('elu', None))
        elif 'softmax' in lower:
            layers.append(('softmax', None))
        elif 'batchnorm' in lower:
            layers.append(('batchnorm', shape))
        elif lower in ('flatten', 'identity', 'dropout'):
            continue
        else:
            layers.append((lower, None))
    return layers


def expected_layers(case, use_batch_norm=False):
    widths = probes.mlp_widths(probes.MLP_CASES[case])
    layers = []
    for index, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(('linear', (fan_out, fan_in)))
        if index < len(widths) - 2:
            if use_batch_norm:
                layers.append(('batchnorm', str(fan_out)))
            layers.append(('elu', None))
    return layers


def words_of(layers):
    return ', '.join(kind if shape is None else f'{kind} {shape}' for kind, shape in layers)


def check_mlp_numpy_layers(results, reference):
    import json
    for case, n_hidden in probes.MLP_CASES.items():
        function = f'MLP.__init__ (mlp_numpy) with n_hidden={n_hidden}'
        values, failed = required(results, f'mlp_numpy_{case}', ['layers'], function)
        if failed:
            return failed
        layers = parse_layers(json.loads(values[0]))
        if layers and layers[-1][0] == 'softmax':
            layers = layers[:-1]
        expected = expected_layers(case)
        if layers != expected:
            words = 'builds the wrong layers'
            linears = [shape for kind, shape in layers if kind == 'linear']
            if len(linears) != len(n_hidden) + 1:
                words = (f'builds {len(linears)} linear layers, expected {len(n_hidden) + 1}')
            elif layers and layers[-1][0] == 'elu':
                words = 'puts an activation after the output layer (the logits need none)'
            return fail(f'{function} {words}: [{words_of(layers)}], expected '
                        f'[{words_of(expected)}] (weight shapes are (out, in))')
    return PASS


def mlp_numpy_ends_in_softmax(results, case):
    import json
    if not results.has(f'mlp_numpy_{case}', 'layers'):
        return False
    layers = parse_layers(json.loads(results.value(f'mlp_numpy_{case}', 'layers')))
    return bool(layers) and layers[-1][0] == 'softmax'


def check_mlp_numpy_forward(results, reference):
    for case, n_hidden in probes.MLP_CASES.items():
        function = f'MLP.forward (mlp_numpy) with n_hidden={n_hidden}'
        values, failed = required(results, f'mlp_numpy_{case}', ['out'], function)
        if failed:
            return failed
        softmax = mlp_numpy_ends_in_softmax(results, case)
        options = [reference.mlp(case, alpha, softmax)[0]
                   for alpha in {1.0, reference.inputs['alpha']}]
        if any(close(values[0], option) for option in options):
            continue
        evidence = (f"for x = {show(reference.inputs['mlp_x'])} and the weights copied into "
                    f"its linear layers")
        candidates = [('does not apply the ELU between the layers',
                       lambda: no_activation_forward(reference, case, softmax))]
        return fail(explain(function, values[0], options[0], candidates, evidence)
                    + ' (the reference composes Linear, ELU, ..., Linear'
                    + (', SoftMax)' if softmax else ')'))
    return PASS


def no_activation_forward(reference, case, softmax):
    out = reference.inputs['mlp_x']
    for layer in reference.mlp_modules(case):
        if isinstance(layer, reference_modules.LinearModule):
            out = layer.forward(out)
    return probes._softmax(out) if softmax else out


def check_mlp_numpy_backward(results, reference):
    for case, n_hidden in probes.MLP_CASES.items():
        function = f'MLP.backward (mlp_numpy) with n_hidden={n_hidden}'
        n_layers = len(n_hidden) + 1
        keys = [f'{kind}{index}' for index in range(n_layers) for kind in ('dweight', 'dbias')]
        values, failed = required(results, f'mlp_numpy_{case}', keys, function)
        if failed:
            return failed
        softmax = mlp_numpy_ends_in_softmax(results, case)
        alphas = sorted({1.0, reference.inputs['alpha']})
        problems = None
        for alpha in alphas:
            _, gradients = reference.mlp(case, alpha, softmax)
            problems = mlp_gradient_problems(values, gradients)
            if not problems:
                break
        if not problems:
            continue
        index, kind, returned, expected = problems[0]
        numerical = (results.value(f'mlp_numpy_{case}', 'dweight0_numerical')
                     if results.has(f'mlp_numpy_{case}', 'dweight0_numerical') else None)
        own = ''
        if index == 0 and kind == 'dweight' and numerical is not None:
            if close(returned, numerical, rtol=1e-4, atol=1e-6):
                own = ('; it agrees with the numerical gradient of this MLP\'s own forward, '
                       'so the forward pass differs from the reference')
        evidence = (f"for L = sum(MLP(x) * dout), x = {show(reference.inputs['mlp_x'])}, "
                    f"dout = {show(reference.inputs['mlp_dout'])}")
        text = explain(f"{function}: grads['{kind[1:]}'] of linear layer {index}",
                       returned, expected, [], evidence)
        return fail(text + own)
    return PASS


def mlp_gradient_problems(values, gradients):
    problems = []
    for index, (weight, bias) in enumerate(gradients):
        returned_weight, returned_bias = values[2 * index], values[2 * index + 1]
        if not close(returned_weight, weight):
            problems.append((index, 'dweight', returned_weight, weight))
        if not same_values(returned_bias, bias):
            problems.append((index, 'dbias', returned_bias, bias))
    return problems


# -- the PyTorch MLP -----------------------------------------------------------------------

def check_mlp_pytorch_architecture(results, reference):
    import json
    for probe, use_batch_norm in (('mlp_pytorch_plain', False), ('mlp_pytorch_bn', True)):
        function = f'MLP.__init__ (mlp_pytorch) with use_batch_norm={use_batch_norm}'
        values, failed = required(results, probe, ['layers'], function)
        if failed:
            return failed
        layers = parse_layers(json.loads(values[0]))
        if results.has(probe, 'calls'):
            called = parse_layers(json.loads(results.value(probe, 'calls')))
            # a forward that calls layer.forward() directly skips the hooks: keep the
            # order of registration then
            if any(kind == 'linear' for kind, _ in called):
                layers = called
        expected = expected_layers('two', use_batch_norm)
        if not any(kind not in ('linear', 'batchnorm') for kind, _ in layers):
            # activations applied as functions (F.elu) leave no layer to see; the
            # forward item checks them
            expected = [layer for layer in expected if layer[0] != 'elu']
        if layers != expected:
            words = 'builds the wrong layers'
            if use_batch_norm and not any(kind == 'batchnorm' for kind, _ in layers):
                words = 'adds no BatchNorm1d layers'
            elif not use_batch_norm and any(kind == 'batchnorm' for kind, _ in layers):
                words = 'adds BatchNorm1d layers although use_batch_norm is False'
            elif layers[:-1] == expected and layers[-1][0] == 'batchnorm':
                words = 'adds a BatchNorm1d after the output layer (the logits need none)'
            elif len([1 for kind, _ in layers if kind == 'linear']) != 3:
                words = (f'builds {len([1 for kind, _ in layers if kind == "linear"])} '
                         f'nn.Linear layers, expected 3 (the output layer too)')
            elif layers and layers[-1][0] == 'elu':
                words = 'puts an activation after the output layer (the logits need none)'
            elif layers and layers[-1][0] == 'softmax':
                words = ('ends in a softmax: the network returns logits, which '
                         'nn.CrossEntropyLoss expects')
            elif sorted(layers) == sorted(expected):
                words = ('puts its layers in the wrong order (BatchNorm1d goes between each '
                         'hidden Linear and its ELU)')
            return fail(f'{function} with n_hidden=[4, 4] {words}: [{words_of(layers)}], '
                        f'expected [{words_of(expected)}]')
    return PASS


def check_mlp_pytorch_forward(results, reference):
    cases = (('mlp_pytorch_plain', False, 'out_eval', False),
             ('mlp_pytorch_plain', False, 'out_train', True),
             ('mlp_pytorch_bn', True, 'out_train', True))
    for probe, use_batch_norm, key, training in cases:
        function = (f'MLP.forward (mlp_pytorch) with use_batch_norm={use_batch_norm} '
                    f'in {"training" if training else "evaluation"} mode')
        values, failed = required(results, probe, [key], function)
        if failed:
            return failed
        expected, _ = reference.mlp('two', 1.0, False, use_batch_norm, training)
        if close(values[0], expected, rtol=1e-4, atol=1e-6):
            continue
        evidence = (f"for x = {show(reference.inputs['mlp_x'])} with the NumPy reference's "
                    f"weights copied into its nn.Linear layers")
        candidates = [('returns probabilities (a softmax at the end); it must return logits',
                       probes._softmax(expected))]
        return fail(explain(function, values[0], expected, candidates, evidence))
    return PASS


# -- training ------------------------------------------------------------------------------

def check_training(probe, function):
    def check(results, reference, verdicts=None):
        values, failed = required(results, probe, ['accuracy', 'seconds'], function)
        if failed:
            return failed
        accuracy, seconds = values
        if accuracy >= TRAINING_ACCURACY:
            return PASS
        text = (f'{function} reaches a test accuracy of {accuracy:.3f} on the spiral '
                f'({probes.SPIRAL["epochs"]} epochs of SGD, lr {probes.SPIRAL["lr"]}, '
                f'hidden {probes.SPIRAL["hidden"]}, {seconds:.1f} s), expected at least '
                f'{TRAINING_ACCURACY}')
        related = [verdict.diagnosis for verdict in (verdicts or []) if not verdict.passed]
        if related:
            text += ' | the likely cause: ' + related[0]
        return fail(text)
    check.__name__ = f'check_{probe}'
    return check


ITEM_CHECKS = {
    'linear_shapes': (check_linear_shapes, ('linear_init',), ()),
    'linear_init': (check_linear_init, ('linear_init',), ()),
    'linear_forward': (check_linear_forward, ('linear',), ()),
    'linear_dweight': (check_linear_gradient('dweight', 'LinearModule.backward (dW)'),
                       ('linear',), ()),
    'linear_dbias': (check_linear_gradient('dbias', 'LinearModule.backward (db)'),
                     ('linear',), ()),
    'linear_dx': (check_linear_gradient('dx', 'LinearModule.backward (dx)'), ('linear',), ()),
    'latest_cache': (check_latest_cache, ('linear_latest', 'elu_latest', 'softmax_latest'), ()),
    'elu_forward': (check_elu('out', 'ELUModule.forward'), ('elu',), ()),
    'elu_backward': (check_elu('dx', 'ELUModule.backward'), ('elu',), ()),
    'softmax_forward': (check_softmax_forward, ('softmax',), ()),
    'softmax_stable': (check_softmax_stable, ('softmax_large',), ()),
    'softmax_backward': (check_softmax_backward, ('softmax',), ()),
    'ce_forward': (check_ce_forward, ('ce_forward', 'ce_one_hot'), ()),
    'ce_backward': (check_ce_backward, ('ce_backward', 'ce_one_hot'), ()),
    'clear_cache': (check_clear_cache, ('clear_cache', 'mlp_numpy_two'), ()),
    'official_crossentropy': (
        official_item('official_crossentropy', 'test_crossentropy_loss',
                      'CrossEntropyModule'),
        ('official_crossentropy', 'ce_forward', 'ce_backward', 'ce_one_hot'),
        ('ce_backward', 'ce_forward')),
    'official_linear': (
        official_item('official_linear', 'test_linear_backward', 'LinearModule'),
        ('official_linear', 'linear', 'linear_latest'),
        ('linear_dx', 'linear_dweight', 'linear_forward', 'latest_cache')),
    'official_elu': (
        official_item('official_elu', 'test_elu_backward', 'ELUModule'),
        ('official_elu', 'elu'), ('elu_backward', 'elu_forward')),
    'official_softmax': (
        official_item('official_softmax', 'test_softmax_backward', 'SoftMaxModule'),
        ('official_softmax', 'softmax', 'softmax_large'),
        ('softmax_backward', 'softmax_forward')),
    'mlp_numpy_layers': (check_mlp_numpy_layers, tuple(f'mlp_numpy_{case}'
                                                       for case in probes.MLP_CASES), ()),
    'mlp_numpy_forward': (check_mlp_numpy_forward, tuple(f'mlp_numpy_{case}'
                                                         for case in probes.MLP_CASES), ()),
    'mlp_numpy_backward': (check_mlp_numpy_backward, tuple(f'mlp_numpy_{case}'
                                                           for case in probes.MLP_CASES), ()),
    'mlp_pytorch_architecture': (check_mlp_pytorch_architecture,
                                 ('mlp_pytorch_plain', 'mlp_pytorch_bn'), ()),
    'mlp_pytorch_forward': (check_mlp_pytorch_forward, ('mlp_pytorch_plain', 'mlp_pytorch_bn'),
                            ()),
    'training_numpy': (check_training('train_numpy', 'training the NumPy MLP'),
                       ('train_numpy', 'mlp_numpy_one', 'ce_backward', 'ce_one_hot',
                        'softmax', 'elu', 'linear'),
                       ('mlp_numpy_backward', 'mlp_numpy_forward', 'mlp_numpy_layers',
                        'ce_backward', 'softmax_backward', 'elu_backward', 'linear_dweight',
                        'linear_dbias', 'linear_dx', 'linear_init')),
    'training_pytorch': (check_training('train_pytorch', 'training the PyTorch MLP'),
                         ('train_pytorch', 'mlp_pytorch_plain', 'mlp_pytorch_bn'),
                         ('mlp_pytorch_forward', 'mlp_pytorch_architecture')),
}
"""Item id -> (check, the probes it reads, the items whose diagnoses explain its failure)."""


def grade_items(item_ids, results, reference):
    """Run the checks of ``item_ids``; return {id: Verdict}, a crash in a check a failure."""
    verdicts = {}
    for item_id in item_ids:
        check, _, explained_by = ITEM_CHECKS[item_id]
        try:
            if explained_by:
                related = [verdicts.get(other) or run_check(other, results, reference)
                           for other in explained_by]
                verdicts[item_id] = check(results, reference, related)
            else:
                verdicts[item_id] = check(results, reference)
        except Exception as exc:  # the grader's own bug must not pass an item
            verdicts[item_id] = fail(f'{item_id}: the grader could not judge the returned '
                                     f'values ({type(exc).__name__}: {exc})')
    return verdicts


def run_check(item_id, results, reference):
    check, _, explained_by = ITEM_CHECKS[item_id]
    try:
        if explained_by:
            return check(results, reference, [])
        return check(results, reference)
    except Exception as exc:
        return fail(f'{item_id}: ({type(exc).__name__}: {exc})')


def probes_for(item_ids):
    """The probes the items ``item_ids`` read."""
    return sorted({probe for item_id in item_ids for probe in ITEM_CHECKS[item_id][1]})
