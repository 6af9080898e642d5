"""Feed fixed inputs to a student's modules and record what comes back.

This script runs inside the grading sandbox, in a process of its own, with no
import path to the repository's reference files: it imports only the standard
library, NumPy and (for the PyTorch items) torch. It imports the student's
``modules.py``, ``mlp_numpy.py`` and ``mlp_pytorch.py`` from ``--submission``,
calls them on small inputs made from fixed seeds, and writes every output, shape
and exception to ``--out`` (an ``.npz`` without pickles; the non-array parts as
JSON under the key ``__meta__``). It judges nothing: the grader compares the
outputs with the reference in its own process, so nothing the student's code
does can change a verdict.

Every probe runs under ``try`` with a time budget, so one failure costs only
the items that need it. The grader imports :func:`probe_inputs` to rebuild the
very inputs fed here, from the same seeds.

Usage::

    python probes.py --submission DIR --out OUT.npz --year 2024
"""
import argparse
import contextlib
import importlib.util
import io
import json
import os
import signal
import sys
import time

import numpy as np

STUDENT_FILES = ('modules', 'mlp_numpy', 'mlp_pytorch')
"""The assignment's files a submission holds, as module names."""

YEARS = (2023, 2024, 2025)

ELU_ALPHA = {2023: 1.0, 2024: 0.5, 2025: 0.5}
"""The alpha the ELU probes build with: 2023's ELUModule() has none (alpha 1)."""

PROBE_SECONDS = 4.0
"""Wall-clock budget of one probe; training probes get TRAINING_SECONDS."""

TRAINING_SECONDS = 8.0

IMPORT_SECONDS = 30.0
"""Budget of importing one file: torch alone takes several seconds on a busy machine."""

SPIRAL = {'n_classes': 3, 'n_per_class': 100, 'hidden': [32], 'epochs': 60,
          'batch_size': 30, 'lr': 0.2}
"""The training task: a three-arm spiral and the SGD run that learns it."""

MLP_SHAPE = {'n_inputs': 5, 'k': 4, 'n_classes': 3, 'n_samples': 3}
"""Sizes of the small networks the MLP probes build."""

_savez = np.savez
_asarray = np.asarray
_array = np.array


class ProbeTimeout(Exception):
    """Raised by the alarm when a probe runs past its time budget."""


def _rng(seed):
    return np.random.default_rng(seed)


def _softmax(z):
    shifted = np.exp(z - z.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def mlp_widths(n_hidden):
    """Widths of the probe MLP with hidden layers ``n_hidden``."""
    return [MLP_SHAPE['n_inputs'], *n_hidden, MLP_SHAPE['n_classes']]


MLP_CASES = {'none': [], 'one': [MLP_SHAPE['k']], 'two': [MLP_SHAPE['k'], MLP_SHAPE['k']]}
"""The hidden layers of the NumPy MLP probes: empty, one and two."""


def probe_inputs(year):
    """Return every input the probes feed, by name; the grader rebuilds them the same way.

    Parameters
    ----------
    year : int
        The assignment's year, which sets ELU's alpha.

    Returns
    -------
    dict of str to ndarray or float
    """
    rng = _rng(19)
    inputs = {
        'alpha': ELU_ALPHA[year],
        'linear_x': rng.standard_normal((5, 4)),
        'linear_x_earlier': rng.standard_normal((5, 4)),
        'linear_weight': rng.standard_normal((3, 4)),
        'linear_bias': rng.standard_normal(3),
        'linear_dout': rng.standard_normal((5, 3)),
        'elu_x': np.array([[-1.5, -0.4, 0.3, 1.2, -2.0], [0.7, -0.9, 2.1, -0.1, 0.4]]),
        'elu_dout': rng.standard_normal((2, 5)),
        'softmax_x': rng.standard_normal((2, 4)),
        'softmax_dout': rng.standard_normal((2, 4)),
        'softmax_large': np.array([[1000.0, 999.0, -1000.0, 0.0],
                                   [-1000.0, -999.0, -1001.0, -1000.0]]),
        'ce_labels': np.array([0, 3, 1]),
        'mlp_x': rng.standard_normal((MLP_SHAPE['n_samples'], MLP_SHAPE['n_inputs'])),
        'mlp_dout': rng.standard_normal((MLP_SHAPE['n_samples'], MLP_SHAPE['n_classes'])),
    }
    inputs['ce_x'] = _softmax(rng.standard_normal((3, 4)))
    for case, n_hidden in MLP_CASES.items():
        widths = mlp_widths(n_hidden)
        for index, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
            inputs[f'mlp_{case}_weight{index}'] = rng.standard_normal((fan_out, fan_in)) * 0.7
            inputs[f'mlp_{case}_bias{index}'] = rng.standard_normal(fan_out) * 0.3
    return inputs


def spiral(n_per_class, n_classes, seed):
    """A spiral of ``n_classes`` arms in the plane: points (N, 2) float32 and labels (N,)."""
    rng = _rng(seed)
    points, labels = [], []
    for label in range(n_classes):
        radius = np.linspace(0.05, 1.0, n_per_class)
        angle = (np.linspace(label * 4.0, (label + 1) * 4.0, n_per_class)
                 + 0.2 * rng.standard_normal(n_per_class))
        points.append(np.stack([radius * np.sin(angle), radius * np.cos(angle)], axis=1))
        labels.append(np.full(n_per_class, label))
    return np.concatenate(points).astype(np.float32) * 2, np.concatenate(labels)


# -- recording --------------------------------------------------------------------------------

class Recorder:
    """Collects each probe's values: arrays for the npz, everything else for the JSON."""

    def __init__(self, submission):
        self.submission = os.path.realpath(submission)
        self.arrays = {}
        self.meta = {'files': {}, 'probes': {}}
        self.current = None

    def put(self, key, value):
        """Record ``value`` under the current probe's ``key``, converted to plain data."""
        entry = self.meta['probes'][self.current]['values']
        if isinstance(value, float) and not np.isfinite(value):
            entry[key] = {'nonfinite': repr(value)}
            return
        if value is None or isinstance(value, (bool, int, float, str)):
            entry[key] = value
            return
        if isinstance(value, list) and all(isinstance(item, list) or isinstance(item, int)
                                           for item in value):
            entry[key] = {'list': json.loads(json.dumps(value, default=int))}
            return
        array = as_plain_array(value)
        if isinstance(array, str):
            entry[key] = {'unconvertible': array}
        else:
            self.arrays[f'{self.current}/{key}'] = array
            entry[key] = {'array': list(array.shape), 'dtype': str(array.dtype)}

    def error_record(self, exc):
        """Type, message and the student's file:line of an exception."""
        where = None
        tb = exc.__traceback__
        while tb is not None:
            code = tb.tb_frame.f_code
            filename = os.path.realpath(code.co_filename)
            if filename.startswith(self.submission + os.sep):
                name = getattr(code, 'co_qualname', code.co_name)
                where = f'{os.path.basename(filename)}:{tb.tb_lineno}'
                if name != '<module>':
                    where = f'{where} ({name})'
            tb = tb.tb_next
        if isinstance(exc, SyntaxError) and exc.filename:
            where = f'{os.path.basename(exc.filename)}:{exc.lineno}'
        message = str(exc)
        cause = exc.__cause__ or exc.__context__
        if cause is not None and not isinstance(exc, ProbeTimeout):
            message = f'{message} (from {type(cause).__name__}: {cause})'
        return {'type': type(exc).__name__, 'message': message[:500], 'where': where}

    def run(self, name, function, *args, seconds=PROBE_SECONDS):
        """Run one probe under a time budget; record its status, whatever happens."""
        self.current = name
        record = {'status': 'ok', 'values': {}, 'seconds': 0.0}
        self.meta['probes'][name] = record
        start = time.perf_counter()
        try:
            with time_budget(seconds), quiet_output():
                function(self, *args)
        except NotImplementedError as exc:
            record['status'] = 'not_implemented'
            record['error'] = self.error_record(exc)
        except ProbeTimeout as exc:
            record['status'] = 'timeout'
            record['error'] = self.error_record(exc)
        except BaseException as exc:  # student code may raise anything, even SystemExit
            if isinstance(exc, KeyboardInterrupt):
                raise
            record['status'] = 'error'
            record['error'] = self.error_record(exc)
        record['seconds'] = round(time.perf_counter() - start, 4)
        return record['status'] == 'ok'

    def write(self, path):
        """Write the arrays and the JSON to ``path`` via a temporary name."""
        temporary = f'{path}.tmp.npz'
        payload = dict(self.arrays)
        payload['__meta__'] = _array(json.dumps(self.meta))
        with open(temporary, 'wb') as stream:
            _savez(stream, **payload)
        os.replace(temporary, path)


def as_plain_array(value):
    """A NumPy array of ``value`` (tensors detached), or a string saying why not."""
    if hasattr(value, 'detach') and hasattr(value, 'cpu'):
        value = value.detach().cpu().numpy()
    try:
        array = _asarray(value)
    except Exception as exc:  # a ragged list or an odd object
        return f'{type(value).__name__} ({type(exc).__name__})'
    if array.dtype == object or array.dtype.kind not in 'biuf':
        return f'{type(value).__name__} of dtype {array.dtype}'
    return _array(array, copy=True)


@contextlib.contextmanager
def time_budget(seconds):
    """Raise ProbeTimeout in the main thread after ``seconds`` of wall-clock time."""
    def on_alarm(signum, frame):
        raise ProbeTimeout(f'ran past its time budget of {seconds:g} s')
    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class _BoundedSink(io.TextIOBase):
    """A stdout stand-in that keeps nothing: a student's prints cost no output."""

    def write(self, text):
        return len(text)


@contextlib.contextmanager
def quiet_output():
    """Swallow what the student's code prints to sys.stdout and sys.stderr."""
    saved = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = _BoundedSink()
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved


# -- loading the submission ----------------------------------------------------------------

def load_student_files(recorder, directory, only=STUDENT_FILES):
    """Import each of the student's files that exists; return the modules by name."""
    sys.path.insert(0, directory)
    if 'mlp_pytorch' in only:
        try:  # torch's own import takes seconds under load: not the student's budget
            import torch  # noqa: F401
        except Exception:  # the student's import will report it
            pass
    loaded = {}
    for name in only:
        path = os.path.join(directory, f'{name}.py')
        if not os.path.isfile(path):
            recorder.meta['files'][name] = {'status': 'missing'}
            continue
        recorder.current = f'import {name}'
        recorder.meta['probes'][recorder.current] = {'status': 'ok', 'values': {}}
        module = {}

        def do_import(_, name=name, path=path, module=module):
            spec = importlib.util.spec_from_file_location(name, path)
            loaded_module = importlib.util.module_from_spec(spec)
            sys.modules[name] = loaded_module
            try:
                spec.loader.exec_module(loaded_module)
            except BaseException:
                del sys.modules[name]
                raise
            module['value'] = loaded_module

        ok = recorder.run(f'import {name}', do_import, seconds=IMPORT_SECONDS)
        record = recorder.meta['probes'].pop(f'import {name}')
        if ok:
            loaded[name] = module['value']
            recorder.meta['files'][name] = {'status': 'ok'}
        else:
            recorder.meta['files'][name] = {'status': record['status'],
                                            'error': record.get('error')}
    return loaded


def student_class(modules, file, name):
    """The class ``name`` of the student's ``file``; raises a clear error when absent."""
    if file not in modules:
        raise LookupError(f'{file}.py could not be imported')
    found = getattr(modules[file], name, None)
    if found is None:
        raise LookupError(f'{file}.py defines no {name}')
    return found


def make_elu(rec, modules, year, alpha, strict=False):
    """Build the student's ELUModule the way the year's tests do.

    When that signature fails with a TypeError (a 2023 ``ELUModule()`` graded as 2024,
    or the reverse), the other year's form is tried, so the ELU items still grade the
    maths; the mismatch is noted once under ``signatures``. With ``strict`` (the
    official test) the year's form alone is used. Returns the layer and the alpha
    it computes with.
    """
    elu = student_class(modules, 'modules', 'ELUModule')
    attempts = [(lambda: elu(), 1.0)] if year == 2023 else [(lambda: elu(alpha=alpha), alpha)]
    if not strict:
        attempts += [(lambda: elu(alpha=alpha), alpha), (lambda: elu(alpha), alpha),
                     (lambda: elu(), 1.0)]
    first_error = None
    for build, used_alpha in attempts:
        try:
            layer = build()
        except TypeError as exc:
            first_error = first_error or exc
            continue
        if first_error is not None:
            expected = 'ELUModule()' if year == 2023 else 'ELUModule(alpha)'
            rec.meta.setdefault('signatures', {})['ELUModule'] = (
                f'the {year} assignment builds {expected}, but this ELUModule.__init__ '
                f'refuses it ({first_error})')
        return layer, float(getattr(layer, 'alpha', used_alpha))
    raise first_error


def set_array(container, key, value):
    """Write ``value`` into ``container[key]``: in place when the shapes allow, else replace.

    A weight stored transposed, (in, out), receives the transpose, so the layer still
    computes x W^T + b and its other results can be judged.
    """
    current = container.get(key) if isinstance(container, dict) else None
    if (isinstance(current, np.ndarray) and value.ndim == 2 and current.shape != value.shape
            and current.shape == value.T.shape):
        current[...] = value.T
    elif isinstance(current, np.ndarray) and current.size == value.size:
        current[...] = value.reshape(current.shape)
    else:
        container[key] = value.copy()


# -- probes of the layers ------------------------------------------------------------------

def probe_linear_init(rec, modules, year, inputs):
    """Shapes and the initial scale of LinearModule, with and without input_layer."""
    linear = student_class(modules, 'modules', 'LinearModule')
    np.random.seed(0)
    for tag, input_layer in (('hidden', False), ('input', True)):
        layer = linear(400, 100, input_layer=input_layer)
        weight, bias = layer.params['weight'], layer.params['bias']
        if weight is None or bias is None:
            raise NotImplementedError("params['weight'] or params['bias'] is still None "
                                      "after LinearModule.__init__")
        rec.put(f'{tag}_weight_shape', [int(size) for size in np.shape(weight)])
        rec.put(f'{tag}_bias_shape', [int(size) for size in np.shape(bias)])
        rec.put(f'{tag}_weight_std', float(np.std(weight)))
        rec.put(f'{tag}_weight_mean', float(np.mean(weight)))
        rec.put(f'{tag}_bias_absmax', float(np.max(np.abs(bias))))
        rec.put(f'{tag}_grad_shapes', [[int(size) for size in np.shape(layer.grads.get(key))]
                                       if layer.grads.get(key) is not None else []
                                       for key in ('weight', 'bias')])


def linear_with_known_params(modules, inputs):
    """A student's LinearModule(4, 3) holding the probe's weight and bias."""
    linear = student_class(modules, 'modules', 'LinearModule')
    np.random.seed(0)
    layer = linear(4, 3)
    set_array(layer.params, 'weight', inputs['linear_weight'])
    set_array(layer.params, 'bias', inputs['linear_bias'])
    return layer


def probe_linear(rec, modules, year, inputs):
    """LinearModule forward on x, then backward of dout: out, dx, dW, db."""
    layer = linear_with_known_params(modules, inputs)
    x = inputs['linear_x'].copy()
    rec.put('out', layer.forward(x))
    rec.put('x_after_forward', x)
    rec.put('dx', layer.backward(inputs['linear_dout'].copy()))
    rec.put('dweight', layer.grads['weight'])
    rec.put('dbias', layer.grads['bias'])


def probe_linear_latest(rec, modules, year, inputs):
    """Two forward passes, then one backward: the gradients must use the latest input."""
    layer = linear_with_known_params(modules, inputs)
    layer.forward(inputs['linear_x_earlier'].copy())
    layer.forward(inputs['linear_x'].copy())
    rec.put('dx', layer.backward(inputs['linear_dout'].copy()))
    rec.put('dweight', layer.grads['weight'])


def probe_elu(rec, modules, year, inputs):
    """ELUModule forward and backward with the year's alpha."""
    layer, alpha = make_elu(rec, modules, year, inputs['alpha'])
    rec.put('alpha', alpha)
    x = inputs['elu_x'].copy()
    rec.put('out', layer.forward(x))
    rec.put('x_after_forward', x)
    rec.put('dx', layer.backward(inputs['elu_dout'].copy()))


def probe_elu_latest(rec, modules, year, inputs):
    """ELU: forward on -x, forward on x, backward: must use the latest input."""
    layer, alpha = make_elu(rec, modules, year, inputs['alpha'])
    rec.put('alpha', alpha)
    layer.forward(-inputs['elu_x'])
    layer.forward(inputs['elu_x'].copy())
    rec.put('dx', layer.backward(inputs['elu_dout'].copy()))


def probe_softmax(rec, modules, year, inputs):
    """SoftMaxModule forward and backward on small logits."""
    layer = student_class(modules, 'modules', 'SoftMaxModule')()
    x = inputs['softmax_x'].copy()
    rec.put('out', layer.forward(x))
    rec.put('x_after_forward', x)
    rec.put('dx', layer.backward(inputs['softmax_dout'].copy()))


def probe_softmax_large(rec, modules, year, inputs):
    """SoftMaxModule forward at logits of +-1000."""
    layer = student_class(modules, 'modules', 'SoftMaxModule')()
    with np.errstate(all='ignore'):
        rec.put('out', layer.forward(inputs['softmax_large'].copy()))


def probe_softmax_latest(rec, modules, year, inputs):
    """SoftMax: two forward passes, then backward: must use the latest input."""
    layer = student_class(modules, 'modules', 'SoftMaxModule')()
    layer.forward(-2 * inputs['softmax_x'])
    layer.forward(inputs['softmax_x'].copy())
    rec.put('dx', layer.backward(inputs['softmax_dout'].copy()))


def probe_ce_forward(rec, modules, year, inputs):
    """CrossEntropyModule forward with integer labels, on a fresh instance."""
    loss = student_class(modules, 'modules', 'CrossEntropyModule')()
    x = inputs['ce_x'].copy()
    rec.put('loss', loss.forward(x, inputs['ce_labels'].copy()))
    rec.put('x_after_forward', x)


def probe_ce_backward(rec, modules, year, inputs):
    """CrossEntropyModule backward with integer labels, on a fresh instance (no forward)."""
    loss = student_class(modules, 'modules', 'CrossEntropyModule')()
    rec.put('dx', loss.backward(inputs['ce_x'].copy(), inputs['ce_labels'].copy()))


def probe_ce_one_hot(rec, modules, year, inputs):
    """CrossEntropyModule with one-hot targets (the labels' other form), for the diagnosis."""
    loss = student_class(modules, 'modules', 'CrossEntropyModule')()
    one_hot = np.eye(4)[inputs['ce_labels']]
    rec.put('loss', loss.forward(inputs['ce_x'].copy(), one_hot))
    rec.put('dx', loss.backward(inputs['ce_x'].copy(), one_hot))


def cached_arrays(module, exclude=('params', 'grads')):
    """Names of the array attributes a module still holds, besides its parameters."""
    held = []
    for name, value in vars(module).items():
        if name in exclude:
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        if isinstance(value, dict):
            values = list(value.values())
        if any(isinstance(item, np.ndarray) and item.size > 1 for item in values):
            held.append(name)
    return held


def probe_clear_cache(rec, modules, year, inputs):
    """After forward, then clear_cache: which array attributes each module still holds."""
    layers = {
        'LinearModule': linear_with_known_params(modules, inputs),
        'ELUModule': make_elu(rec, modules, year, inputs['alpha'])[0],
        'SoftMaxModule': student_class(modules, 'modules', 'SoftMaxModule')(),
    }
    held = {}
    for name, layer in layers.items():
        x = inputs['linear_x'] if name == 'LinearModule' else inputs['softmax_x']
        before = set(cached_arrays(layer))
        layer.forward(x.copy())
        layer.clear_cache()
        held[name] = sorted(set(cached_arrays(layer)) - before)
    rec.put('held', json.dumps(held))


# -- probes of the NumPy MLP ---------------------------------------------------------------

def held_layers(model):
    """Every object with a ``forward`` that the student's MLP holds, in attribute order.

    Students keep their layers in one list (``modules``, ``layers``, ...), in several
    (linear layers and activations apart), in a dict, or as plain attributes.
    """
    found = []
    for value in vars(model).values():
        items = list(value.values()) if isinstance(value, dict) else value
        items = items if isinstance(items, (list, tuple)) else [items]
        for item in items:
            if (hasattr(item, 'forward') and not isinstance(item, type)
                    and all(item is not other for other in found)):
                found.append(item)
    if not found:
        raise LookupError('found no layers (attributes holding objects with a forward method) '
                          'in the NumPy MLP')
    return found


def student_layers(model, x):
    """The student's layers in the order ``model.forward(x)`` calls them.

    Each held layer's ``forward`` is wrapped on the instance for one forward pass, so
    the order is the network's, whatever the attributes are called; layers the pass
    never calls are left out. Falls back to the attribute order when no call is seen.
    """
    layers, calls = held_layers(model), []
    for layer in layers:
        original = layer.forward

        def recording(*args, layer=layer, original=original, **kwargs):
            calls.append(layer)
            return original(*args, **kwargs)
        layer.forward = recording
    try:
        model.forward(x.copy())
    finally:
        for layer in layers:
            vars(layer).pop('forward', None)
    ordered = []
    for layer in calls:
        if all(layer is not other for other in ordered):
            ordered.append(layer)
    return ordered or layers


def layer_description(layer):
    """'Linear 4x5', 'ELU', 'SoftMax' or the class name: the architecture in words."""
    kind = type(layer).__name__
    params = getattr(layer, 'params', None)
    if isinstance(params, dict) and 'weight' in params and np.ndim(params['weight']) == 2:
        shape = np.shape(params['weight'])
        return f'{kind} {shape[0]}x{shape[1]}'
    return kind


def weighted(layers):
    """The layers that hold a 'weight' parameter (the linear ones), in the given order."""
    return [layer for layer in layers if isinstance(getattr(layer, 'params', None), dict)
            and 'weight' in layer.params]


def probe_mlp_numpy(rec, modules, year, inputs, case):
    """The NumPy MLP for one n_hidden: its layers, forward, and backward's gradients."""
    n_hidden = MLP_CASES[case]
    mlp = student_class(modules, 'mlp_numpy', 'MLP')
    np.random.seed(0)
    model = mlp(MLP_SHAPE['n_inputs'], list(n_hidden), MLP_SHAPE['n_classes'])
    x = inputs['mlp_x'].copy()
    layers = student_layers(model, x)
    rec.put('layers', json.dumps([layer_description(layer) for layer in layers]))
    linears = weighted(layers)
    if len(linears) != len(n_hidden) + 1:
        raise LookupError(f'the NumPy MLP with n_hidden={list(n_hidden)} calls '
                          f'{len(linears)} layers with weights, expected {len(n_hidden) + 1}')
    for index, layer in enumerate(linears):
        set_array(layer.params, 'weight', inputs[f'mlp_{case}_weight{index}'])
        set_array(layer.params, 'bias', inputs[f'mlp_{case}_bias{index}'])
    rec.put('out', model.forward(x))
    dout = inputs['mlp_dout'].copy()
    model.backward(dout)
    for index, layer in enumerate(linears):
        rec.put(f'dweight{index}', layer.grads['weight'])
        rec.put(f'dbias{index}', layer.grads['bias'])
    model.clear_cache()
    rec.put('held_after_clear', json.dumps(sorted({name for layer in layers
                                                    for name in cached_arrays(layer)})))
    rec.put('dweight0_numerical', numerical_weight_gradient(model, linears[0], x, dout))


def numerical_weight_gradient(model, layer, x, dout, h=1e-5):
    """Central differences of sum(model(x) * dout) with respect to ``layer``'s weight."""
    weight = layer.params['weight']
    gradient = np.zeros(np.shape(weight))
    for index in np.ndindex(*np.shape(weight)):
        original = weight[index]
        weight[index] = original + h
        plus = np.sum(_asarray(model.forward(x.copy())) * dout)
        weight[index] = original - h
        minus = np.sum(_asarray(model.forward(x.copy())) * dout)
        weight[index] = original
        gradient[index] = (plus - minus) / (2 * h)
    return gradient


# -- probes of the PyTorch MLP -------------------------------------------------------------

def torch_leaf_layers(model):
    """The PyTorch MLP's leaf layers in registration order, described in words."""
    described = []
    for module in model.modules():
        if list(module.children()) or type(module).__name__ in CONTAINERS:
            continue
        kind = type(module).__name__
        if kind == 'Linear':
            kind = f'Linear {module.out_features}x{module.in_features}'
        elif kind == 'BatchNorm1d':
            kind = f'BatchNorm1d {module.num_features}'
        described.append(kind)
    return described


CONTAINERS = ('Sequential', 'ModuleList', 'ModuleDict')


@contextlib.contextmanager
def calls_recorded(model):
    """Record (description, layer) of the leaf layers in the order a forward pass calls them."""
    calls, handles = [], []
    for module in model.modules():
        if list(module.children()) or type(module).__name__ in CONTAINERS:
            continue
        described = torch_leaf_layers(module)[0]
        handles.append(module.register_forward_hook(
            lambda *_, described=described, module=module: calls.append((described, module))))
    try:
        yield calls
    finally:
        for handle in handles:
            handle.remove()


def copy_probe_weights(linears, inputs):
    """Copy the probe's weights of the [k, k] network into the student's nn.Linear layers."""
    import torch
    if len(linears) != 3:
        raise LookupError(f'the PyTorch MLP with n_hidden=[4, 4] calls {len(linears)} '
                          f'nn.Linear layers, expected 3')
    with torch.no_grad():
        for index, layer in enumerate(linears):
            if layer.bias is None:
                raise LookupError(f'nn.Linear layer {index} of the PyTorch MLP has no bias '
                                  f'(bias=False); the assignment\'s linear layers have one')
            weight = torch.from_numpy(inputs[f'mlp_two_weight{index}'])
            if tuple(layer.weight.shape) != tuple(weight.shape):
                raise LookupError(f'nn.Linear layer {index} of the PyTorch MLP has weight '
                                  f'shape {tuple(layer.weight.shape)}, expected '
                                  f'{tuple(weight.shape)}')
            layer.weight.copy_(weight)
            layer.bias.copy_(torch.from_numpy(inputs[f'mlp_two_bias{index}']))


def probe_mlp_pytorch(rec, modules, year, inputs, use_batch_norm):
    """The PyTorch MLP, n_hidden [4, 4]: its layers, and its forward with the probe's weights.

    The layers are read in the order a forward pass calls them (forward hooks), then
    the probe's weights are copied in and the forward runs in float64.
    """
    import torch
    torch.set_num_threads(1)
    mlp = student_class(modules, 'mlp_pytorch', 'MLP')
    torch.manual_seed(0)
    model = mlp(MLP_SHAPE['n_inputs'], list(MLP_CASES['two']), MLP_SHAPE['n_classes'],
                use_batch_norm=use_batch_norm).double()
    rec.put('layers', json.dumps(torch_leaf_layers(model)))
    x = torch.from_numpy(inputs['mlp_x'].copy())
    model.train()
    with calls_recorded(model) as calls:
        model(x.clone())
    rec.put('calls', json.dumps([described for described, _ in calls]))
    called = [module for _, module in calls if isinstance(module, torch.nn.Linear)]
    registered = [module for module in model.modules() if isinstance(module, torch.nn.Linear)]
    copy_probe_weights(called or registered, inputs)
    rec.put('out_train', model(x.clone()))
    model.eval()
    rec.put('out_eval', model(x.clone()))


# -- training ------------------------------------------------------------------------------

def probe_train_numpy(rec, modules, year, inputs):
    """Train the student's NumPy MLP on the spiral with plain SGD; record the accuracy."""
    x_train, y_train = spiral(SPIRAL['n_per_class'], SPIRAL['n_classes'], seed=1)
    x_test, y_test = spiral(SPIRAL['n_per_class'], SPIRAL['n_classes'], seed=2)
    x_train, x_test = x_train.astype(np.float64), x_test.astype(np.float64)
    mlp = student_class(modules, 'mlp_numpy', 'MLP')
    np.random.seed(0)
    model = mlp(2, list(SPIRAL['hidden']), SPIRAL['n_classes'])
    layers = student_layers(model, x_train[:2])
    ends_in_softmax = 'softmax' in type(layers[-1]).__name__.lower()
    softmax = student_class(modules, 'modules', 'SoftMaxModule')()
    loss_module = student_class(modules, 'modules', 'CrossEntropyModule')()
    order = _rng(3)
    start = time.perf_counter()
    for _ in range(SPIRAL['epochs']):
        permutation = order.permutation(len(x_train))
        for begin in range(0, len(x_train), SPIRAL['batch_size']):
            batch = permutation[begin:begin + SPIRAL['batch_size']]
            out = model.forward(x_train[batch])
            probabilities = out if ends_in_softmax else softmax.forward(out)
            dprobabilities = loss_module.backward(probabilities, y_train[batch])
            model.backward(dprobabilities if ends_in_softmax
                           else softmax.backward(dprobabilities))
            for layer in layers:
                for name, value in getattr(layer, 'params', {}).items():
                    value -= SPIRAL['lr'] * _asarray(layer.grads[name]).reshape(value.shape)
    rec.put('seconds', time.perf_counter() - start)
    predictions = np.argmax(_asarray(model.forward(x_test)), axis=1)
    rec.put('accuracy', float(np.mean(predictions == y_test)))


def probe_train_pytorch(rec, modules, year, inputs):
    """Train the student's PyTorch MLP on the spiral with plain SGD.

    The update is written out: building ``torch.optim.SGD`` the first time imports
    torch's compiler stack, seconds of start-up that grading cannot afford.
    """
    import torch
    torch.set_num_threads(1)
    x_train, y_train = spiral(SPIRAL['n_per_class'], SPIRAL['n_classes'], seed=1)
    x_test, y_test = spiral(SPIRAL['n_per_class'], SPIRAL['n_classes'], seed=2)
    mlp = student_class(modules, 'mlp_pytorch', 'MLP')
    torch.manual_seed(0)
    model = mlp(2, list(SPIRAL['hidden']), SPIRAL['n_classes'])
    loss_function = torch.nn.CrossEntropyLoss()
    x_train, y_train = torch.from_numpy(x_train), torch.from_numpy(y_train)
    order = torch.Generator().manual_seed(3)
    start = time.perf_counter()
    model.train()
    for _ in range(SPIRAL['epochs']):
        permutation = torch.randperm(len(x_train), generator=order)
        for begin in range(0, len(x_train), SPIRAL['batch_size']):
            batch = permutation[begin:begin + SPIRAL['batch_size']]
            model.zero_grad(set_to_none=True)
            loss = loss_function(model(x_train[batch]), y_train[batch])
            loss.backward()
            with torch.no_grad():
                for parameter in model.parameters():
                    if parameter.grad is not None:
                        parameter -= SPIRAL['lr'] * parameter.grad
    rec.put('seconds', time.perf_counter() - start)
    model.eval()
    with torch.no_grad():
        predictions = model(torch.from_numpy(x_test)).argmax(dim=1).numpy()
    rec.put('accuracy', float(np.mean(predictions == y_test)))


# -- the official tests, as the course's unittests.py runs them ----------------------------

def _official_numerical_gradient(f, x, h=1e-5):
    grad = np.zeros_like(x)
    for index in np.ndindex(*x.shape):
        original = x[index]
        x[index] = original + h
        plus = f(x)
        x[index] = original - h
        minus = f(x)
        x[index] = original
        grad[index] = (plus - minus) / (2 * h)
    return grad


def _official_numerical_gradient_array(f, x, df, h=1e-5):
    grad = np.zeros_like(x)
    for index in np.ndindex(*x.shape):
        original = x[index]
        x[index] = original + h
        plus = _array(f(x), copy=True)
        x[index] = original - h
        minus = _array(f(x), copy=True)
        x[index] = original
        grad[index] = np.sum((plus - minus) * df) / (2 * h)
    return grad


def _rel_error(x, y):
    x, y = _asarray(x, dtype=float), _asarray(y, dtype=float)
    return float(np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y))))


def probe_official_crossentropy(rec, modules, year, inputs):
    """The official test_crossentropy_loss: ten random cases, seed 42, tolerance 1e-5."""
    module = student_class(modules, 'modules', 'CrossEntropyModule')
    np.random.seed(42)
    errors = []
    for _ in range(10):
        n = np.random.choice(range(1, 100))
        c = np.random.choice(range(1, 10))
        y = np.random.randint(c, size=(n,))
        x = np.random.uniform(low=1e-2, high=1.0, size=(n, c))
        x /= x.sum(axis=1, keepdims=True)
        module().forward(x, y)
        grads = module().backward(x, y)
        numerical = _official_numerical_gradient(lambda _: module().forward(x, y), x)
        errors.append(_rel_error(numerical, grads))
        rec.put('errors', json.dumps(errors))


def probe_official_linear(rec, modules, year, inputs):
    """The official test_linear_backward: ten random cases, seed 42, tolerance 1e-5."""
    linear = student_class(modules, 'modules', 'LinearModule')
    np.random.seed(42)
    errors = []
    for _ in range(10):
        n = np.random.choice(range(1, 20))
        d = np.random.choice(range(1, 100))
        c = np.random.choice(range(1, 10))
        x = np.random.randn(n, d)
        dout = np.random.randn(n, c)
        layer = linear(d, c)
        layer.forward(x)
        dx = layer.backward(dout)
        dw = layer.grads['weight']
        dx_num = _official_numerical_gradient_array(lambda xx: layer.forward(xx), x, dout)
        dw_num = _official_numerical_gradient_array(lambda w: layer.forward(x),
                                                    layer.params['weight'], dout)
        errors.append(max(_rel_error(dx, dx_num), _rel_error(dw, dw_num)))
        rec.put('errors', json.dumps(errors))


def _official_elementwise(rec, make_layer):
    np.random.seed(42)
    errors = []
    for _ in range(10):
        n = np.random.choice(range(1, 20))
        d = np.random.choice(range(1, 100))
        x = np.random.randn(n, d)
        dout = np.random.randn(*x.shape)
        layer = make_layer()
        layer.forward(x)
        dx = layer.backward(dout)
        dx_num = _official_numerical_gradient_array(lambda xx: layer.forward(xx), x, dout)
        errors.append(_rel_error(dx, dx_num))
        rec.put('errors', json.dumps(errors))


def probe_official_elu(rec, modules, year, inputs):
    """The official test_elu_backward: seed 42, tolerance 1e-6, the year's constructor."""
    _official_elementwise(rec, lambda: make_elu(rec, modules, year, 0.5, strict=True)[0])


def probe_official_softmax(rec, modules, year, inputs):
    """The official test_softmax_backward: seed 42, tolerance 1e-5."""
    softmax = student_class(modules, 'modules', 'SoftMaxModule')
    _official_elementwise(rec, softmax)


# -- the list of probes --------------------------------------------------------------------

def probe_plan():
    """Every probe: (name, function, extra arguments, needed files, seconds)."""
    plan = [
        ('linear_init', probe_linear_init, (), ('modules',), PROBE_SECONDS),
        ('linear', probe_linear, (), ('modules',), PROBE_SECONDS),
        ('linear_latest', probe_linear_latest, (), ('modules',), PROBE_SECONDS),
        ('elu', probe_elu, (), ('modules',), PROBE_SECONDS),
        ('elu_latest', probe_elu_latest, (), ('modules',), PROBE_SECONDS),
        ('softmax', probe_softmax, (), ('modules',), PROBE_SECONDS),
        ('softmax_large', probe_softmax_large, (), ('modules',), PROBE_SECONDS),
        ('softmax_latest', probe_softmax_latest, (), ('modules',), PROBE_SECONDS),
        ('ce_forward', probe_ce_forward, (), ('modules',), PROBE_SECONDS),
        ('ce_backward', probe_ce_backward, (), ('modules',), PROBE_SECONDS),
        ('ce_one_hot', probe_ce_one_hot, (), ('modules',), PROBE_SECONDS),
        ('clear_cache', probe_clear_cache, (), ('modules',), PROBE_SECONDS),
        ('official_crossentropy', probe_official_crossentropy, (), ('modules',), 10.0),
        ('official_linear', probe_official_linear, (), ('modules',), 10.0),
        ('official_elu', probe_official_elu, (), ('modules',), 10.0),
        ('official_softmax', probe_official_softmax, (), ('modules',), 10.0),
    ]
    for case in MLP_CASES:
        plan.append((f'mlp_numpy_{case}', probe_mlp_numpy, (case,),
                     ('modules', 'mlp_numpy'), PROBE_SECONDS))
    for use_batch_norm in (False, True):
        plan.append((f'mlp_pytorch_{"bn" if use_batch_norm else "plain"}',
                     probe_mlp_pytorch, (use_batch_norm,), ('mlp_pytorch',), PROBE_SECONDS))
    plan.append(('train_numpy', probe_train_numpy, (), ('modules', 'mlp_numpy'),
                 TRAINING_SECONDS))
    plan.append(('train_pytorch', probe_train_pytorch, (), ('mlp_pytorch',), TRAINING_SECONDS))
    return plan


def run_probes(submission, year, out, only=None, skip_training=False):
    """Import the submission, run every probe, and write the results to ``out``."""
    recorder = Recorder(submission)
    recorder.meta['year'] = year
    recorder.meta['numpy'] = np.__version__
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    plan = [entry for entry in probe_plan()
            if (not only or entry[0] in only)
            and not (skip_training and entry[0].startswith('train_'))]
    needed = [file for file in STUDENT_FILES if any(file in entry[3] for entry in plan)]
    if 'mlp_numpy' in needed and 'modules' not in needed:
        needed.insert(0, 'modules')
    modules = load_student_files(recorder, os.path.realpath(submission), needed)
    recorder.write(out)
    inputs = probe_inputs(year)
    for name, function, extra, needs, seconds in plan:
        missing = [file for file in needs if file not in modules]
        if missing:
            status = recorder.meta['files'][missing[0]]['status']
            recorder.meta['probes'][name] = {'status': 'file_' + status, 'values': {},
                                             'file': missing[0]}
            continue
        recorder.run(name, function, modules, year, inputs, *extra, seconds=seconds)
        recorder.write(out)
    recorder.write(out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--submission', required=True, help='folder of the student files')
    parser.add_argument('--out', required=True, help='the .npz file to write')
    parser.add_argument('--year', type=int, choices=YEARS, default=2025,
                        help="the assignment's year (sets ELUModule's signature)")
    parser.add_argument('--only', nargs='*', default=None, help='run only these probes')
    parser.add_argument('--skip-training', action='store_true', help='skip the training probes')
    args = parser.parse_args(argv)
    run_probes(args.submission, args.year, args.out, only=args.only,
               skip_training=args.skip_training)
    return 0


if __name__ == '__main__':
    sys.exit(main())
