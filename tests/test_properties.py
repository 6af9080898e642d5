"""Property-based tests (hypothesis) of the NumPy layers and of ``mlp_numpy.MLP``.

``unittests.py`` and ``test_modules.py`` check each module on a few fixed
shapes and seeds; here hypothesis draws the shapes (batch and width from 1
upward), the values and the hyperparameters, and shrinks any failure to a
small example. Three families of properties:

1. Gradients: every hand-written backward pass agrees with central
   differences in float64, for single layers, both losses and whole MLPs.
2. Extreme inputs (logits of +-1e4, ELU inputs of +-1e3, probabilities of
   exactly 0 and 1, ...) give finite results without any overflow, invalid or
   divide-by-zero floating-point warning (underflow to 0 is allowed).
3. Invariants: softmax rows are distributions, the fused loss equals softmax
   followed by cross-entropy, and every module keeps the input's dtype.

Run time is kept to about 15 s by small sizes (at most 6) and a modest
number of examples (25 per test); set ``PROPERTY_EXAMPLES`` to search harder, e.g.
``PROPERTY_EXAMPLES=1000 python -m pytest tests/test_properties.py``.
"""
import contextlib
import os
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import mlp_numpy
from conftest import numerical_gradient
from modules import (ACTIVATIONS, BatchNormModule, CrossEntropyModule, DropoutModule,
                     ELUModule, LeakyReLUModule, LinearModule, ReLUModule, SigmoidModule,
                     SoftmaxCrossEntropyModule, SoftMaxModule, TanhModule)

# One settings object applied to every test of this file, rather than a global
# profile, so the other test files keep their own hypothesis settings.
# derandomize: the same examples on every run, so CI is reproducible;
# database=None: no .hypothesis/ directory in the working tree.
PROPERTY_SETTINGS = settings(
    max_examples=int(os.environ.get('PROPERTY_EXAMPLES', 25)),
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
# Gradient checks: analytic and numerical gradients must agree to this
# relative error...
GRADIENT_RTOL = 1e-6
# ...except for gradients below GRADIENT_FLOOR * scale (scale ~ the magnitude of
# the checked scalar), where the rounding error of central differences,
# about 1e-16 * scale / h = 1e-11 * scale, dominates: those are compared with
# the absolute tolerance GRADIENT_RTOL * GRADIENT_FLOOR * scale = 1e-10 * scale.
# A wrong derivative is off by far more: a factor of (1 + 1e-5) already fails.
GRADIENT_FLOOR = 1e-4
STEP = 1e-5
# Inputs of the ReLU-like activations (and ELU, whose second derivative jumps
# at 0) are kept at least this far from the kink at 0, far beyond the reach
# 2 * STEP of the finite-difference stencil.
KINK_MARGIN = 1e-3


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------

def assert_gradient_matches(analytic, numerical, scale, name):
    """Relative error below GRADIENT_RTOL, with an absolute floor for tiny gradients."""
    assert analytic is not None, f"{name}: backward returned None"
    analytic = np.asarray(analytic)
    assert analytic.shape == numerical.shape, (
        f"{name}: gradient of shape {analytic.shape}, expected {numerical.shape}")
    assert np.all(np.isfinite(analytic)), f"{name}: non-finite gradient {analytic}"
    floor = GRADIENT_FLOOR * (1 + abs(float(scale)))
    error = np.abs(analytic - numerical) / np.maximum(floor, np.abs(analytic) + np.abs(numerical))
    if error.size and error.max() >= GRADIENT_RTOL:
        worst = np.unravel_index(np.argmax(error), error.shape)
        raise AssertionError(
            f"{name}: relative error {error.max():.3g} at index {worst}: analytic "
            f"{analytic[worst]!r}, numerical {numerical[worst]!r}\n"
            f"analytic:\n{analytic}\nnumerical:\n{numerical}")


def away_from_kink(x):
    """Move entries within KINK_MARGIN of 0 out to +-KINK_MARGIN (sign kept; 0 goes up)."""
    return np.where(np.abs(x) < KINK_MARGIN, np.copysign(KINK_MARGIN, x), x)


@contextlib.contextmanager
def no_float_warnings():
    """Turn overflow, invalid and divide-by-zero into errors; underflow stays silent."""
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        with np.errstate(over='raise', invalid='raise', divide='raise', under='ignore'):
            yield


def make_targets(labels, n_classes, kind, dtype=np.float64):
    """Integer labels (N,) as they are, or as one-hot rows (N, C) of ``dtype``."""
    labels = np.asarray(labels, dtype=np.int64)
    if kind == 'labels':
        return labels
    return np.eye(n_classes, dtype=dtype)[labels]


def fix_dropout_masks(model, seed):
    """Give every dropout module of ``model`` a fresh generator from ``seed``.

    Called before each forward pass, it makes every pass draw the same masks, so
    the network is a fixed function of its parameters that finite differences
    can check.
    """
    for module in model.modules:
        if isinstance(module, DropoutModule):
            module.rng = np.random.default_rng(seed)


# --------------------------------------------------------------------------
# Strategies
# --------------------------------------------------------------------------

def floats(low, high, width=64):
    """Finite floats in [low, high] of the given bit width (bounds rounded inwards to it)."""
    if width == 32:
        low, high = float(np.nextafter(np.float32(low), np.float32(high))), \
            float(np.nextafter(np.float32(high), np.float32(low)))
    return st.floats(low, high, allow_nan=False, allow_infinity=False,
                     allow_subnormal=False, width=width)


def arrays(shape, low, high, dtype=np.float64, elements=None):
    """Arrays of ``shape`` whose every entry is drawn on its own from [low, high]."""
    dtype = np.dtype(dtype)
    if elements is None:
        elements = floats(low, high, width=8 * dtype.itemsize)
    return hnp.arrays(dtype, shape, elements=elements, fill=st.nothing())


sides = st.integers(1, 6)
elementwise_shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=5)
alphas = st.one_of(st.sampled_from([0.1, 0.5, 1.0, 2.0]), floats(0.01, 3.0))
slopes = st.one_of(st.sampled_from([0.0, 0.01, 0.2, 0.5]), floats(0.0, 0.99))
target_kinds = pytest.mark.parametrize('kind', ['labels', 'one_hot'])


@st.composite
def label_lists(draw, n_samples, n_classes):
    return draw(st.lists(st.integers(0, n_classes - 1),
                         min_size=n_samples, max_size=n_samples))


@st.composite
def activations(draw, name):
    """An activation module ``name`` of ACTIVATIONS, with a drawn hyperparameter."""
    if name == 'elu':
        return ELUModule(alpha=draw(alphas))
    if name == 'leaky_relu':
        return LeakyReLUModule(negative_slope=draw(slopes))
    return ACTIVATIONS[name]()


NON_SMOOTH = {'elu', 'relu', 'leaky_relu'}


def mixed(special, low, high, dtype):
    """Elements of ``dtype``: the ``special`` values mixed with anything in [low, high]."""
    width = 8 * np.dtype(dtype).itemsize
    return st.one_of(st.sampled_from(special), floats(low, high, width=width))


def huge_logits(dtype):
    """Logits of exactly +-1e4 mixed with anything in between."""
    return mixed([-1e4, 1e4, 0.0], -1e4, 1e4, dtype)


# --------------------------------------------------------------------------
# 1. Gradients against central differences (float64)
# --------------------------------------------------------------------------

@PROPERTY_SETTINGS
@given(data=st.data(), n_samples=sides, in_features=sides, out_features=sides,
       input_layer=st.booleans())
def test_linear_gradients(data, n_samples, in_features, out_features, input_layer):
    x = data.draw(arrays((n_samples, in_features), -3, 3), label='x')
    weight = data.draw(arrays((out_features, in_features), -2, 2), label='weight')
    bias = data.draw(arrays((out_features,), -2, 2), label='bias')
    dout = data.draw(arrays((n_samples, out_features), -1, 1), label='dout')
    layer = LinearModule(in_features, out_features, input_layer=input_layer)
    layer.params['weight'][...] = weight
    layer.params['bias'][...] = bias

    out = layer.forward(x)
    dx = layer.backward(dout)
    analytic = {name: grad.copy() for name, grad in layer.grads.items()}
    scale = np.sum(np.abs(out * dout))
    loss = lambda: np.sum(layer.forward(x) * dout)  # noqa: E731
    for name in ('weight', 'bias'):
        numerical = numerical_gradient(loss, layer.params[name])
        assert_gradient_matches(analytic[name], numerical, scale, f'dL/d{name}')
    # The first layer of a network computes no dL/dx: its input is the data.
    if input_layer:
        assert dx is None
    else:
        assert_gradient_matches(dx, numerical_gradient(loss, x), scale, 'dL/dx')


@pytest.mark.parametrize('name', sorted(ACTIVATIONS))
@PROPERTY_SETTINGS
@given(data=st.data(), shape=elementwise_shapes)
def test_activation_gradients(name, data, shape):
    layer = data.draw(activations(name), label='layer')
    note(f"alpha={getattr(layer, 'alpha', None)} slope={getattr(layer, 'negative_slope', None)}")
    x = data.draw(arrays(shape, -4, 4), label='x')
    if name in NON_SMOOTH:
        x = away_from_kink(x)
    dout = data.draw(arrays(shape, -1, 1), label='dout')
    out = layer.forward(x)
    assert out.shape == x.shape
    analytic = layer.backward(dout)
    numerical = numerical_gradient(lambda: np.sum(layer.forward(x) * dout), x)
    assert_gradient_matches(analytic, numerical, np.sum(np.abs(out * dout)), f'{name} dL/dx')


@PROPERTY_SETTINGS
@given(data=st.data(), n_samples=sides, n_classes=sides)
def test_softmax_gradient(data, n_samples, n_classes):
    x = data.draw(arrays((n_samples, n_classes), -5, 5), label='logits')
    dout = data.draw(arrays((n_samples, n_classes), -1, 1), label='dout')
    layer = SoftMaxModule()
    out = layer.forward(x)
    analytic = layer.backward(dout)
    numerical = numerical_gradient(lambda: np.sum(layer.forward(x) * dout), x)
    assert_gradient_matches(analytic, numerical, np.sum(np.abs(out * dout)), 'softmax dL/dx')


@target_kinds
@PROPERTY_SETTINGS
@given(data=st.data(), n_samples=sides, n_classes=sides)
def test_cross_entropy_gradient(kind, data, n_samples, n_classes):
    # Probabilities at least 1e-3, far above the reach 2h of the stencil (-log p
    # curves on the scale of p). They need not sum to 1 for the gradient check.
    probabilities = data.draw(arrays((n_samples, n_classes), 1e-3, 1.0), label='probabilities')
    labels = data.draw(label_lists(n_samples, n_classes), label='labels')
    targets = make_targets(labels, n_classes, kind)
    loss_module = CrossEntropyModule()
    # The backward pass needs no forward pass before it.
    analytic = CrossEntropyModule().backward(probabilities, targets)
    loss = lambda: loss_module.forward(probabilities, targets)  # noqa: E731
    assert_gradient_matches(analytic, numerical_gradient(loss, probabilities), loss(),
                            f'cross-entropy ({kind}) dL/dx')


@target_kinds
@PROPERTY_SETTINGS
@given(data=st.data(), n_samples=sides, n_classes=sides)
def test_softmax_cross_entropy_gradient(kind, data, n_samples, n_classes):
    logits = data.draw(arrays((n_samples, n_classes), -5, 5), label='logits')
    labels = data.draw(label_lists(n_samples, n_classes), label='labels')
    targets = make_targets(labels, n_classes, kind)
    loss_module = SoftmaxCrossEntropyModule()
    value = loss_module.forward(logits, targets)
    analytic = loss_module.backward()
    numerical = numerical_gradient(lambda: loss_module.forward(logits, targets), logits)
    assert_gradient_matches(analytic, numerical, value, f'fused loss ({kind}) dL/dlogits')


MLP_VARIANTS = [('plain', False, 0.0), ('batch_norm', True, 0.0), ('dropout', False, 0.3)]


def _build_mlp(n_inputs, n_hidden, n_classes, activation, seed, use_batch_norm, dropout,
               dtype=np.float64):
    return mlp_numpy.MLP(n_inputs, n_hidden, n_classes, use_batch_norm=use_batch_norm,
                         activation=activation, dropout=dropout, dtype=dtype,
                         rng=np.random.default_rng(seed))


@pytest.mark.parametrize('variant, use_batch_norm, dropout', MLP_VARIANTS,
                         ids=[variant[0] for variant in MLP_VARIANTS])
@pytest.mark.parametrize('activation', sorted(ACTIVATIONS))
@PROPERTY_SETTINGS
@given(data=st.data(), n_inputs=st.integers(1, 5),
       n_hidden=st.lists(st.integers(1, 5), min_size=0, max_size=3),
       n_classes=st.integers(1, 5), n_samples=sides, seed=st.integers(0, 2**32 - 1))
def test_mlp_parameter_gradients(variant, use_batch_norm, dropout, activation, data,
                                 n_inputs, n_hidden, n_classes, n_samples, seed):
    if use_batch_norm:
        n_samples = max(n_samples, 2)  # batch statistics need two samples
    x = data.draw(arrays((n_samples, n_inputs), -3, 3), label='x')
    labels = data.draw(label_lists(n_samples, n_classes), label='labels')
    model = _build_mlp(n_inputs, n_hidden, n_classes, activation, seed, use_batch_norm, dropout)
    rng = np.random.default_rng(seed + 1)
    for parameter, _ in model.parameters():
        # Off the initial values (zero biases, unit batch-norm scales).
        parameter += 0.1 * rng.standard_normal(parameter.shape)

    # Finite differences need every kink of the network clear of the step, and
    # batch norm a batch variance clear of 0 (else 1 / sqrt(var + eps) makes the
    # loss curve on the scale of the step): look at every module's input.
    fix_dropout_masks(model, seed)
    out = x
    for module in model.modules:
        if isinstance(module, tuple(ACTIVATIONS[a] for a in NON_SMOOTH)):
            assume(np.all(np.abs(out) > KINK_MARGIN))
        if isinstance(module, BatchNormModule):
            assume(np.all(out.var(axis=0) > 1e-2))
        out = module.forward(out)
    model.clear_cache()

    loss_module = SoftmaxCrossEntropyModule()

    def loss():
        fix_dropout_masks(model, seed)
        return loss_module.forward(model.forward(x), labels)

    value = loss()
    model.backward(loss_module.backward())
    analytic = [gradient.copy() for _, gradient in model.parameters()]
    for index, (parameter, _) in enumerate(model.parameters()):
        assert_gradient_matches(analytic[index], numerical_gradient(loss, parameter), value,
                                f"parameter {index} of MLP({n_inputs}, {n_hidden}, "
                                f"{n_classes}, {activation!r}, {variant})")


# Batch normalisation ---------------------------------------------------------

@pytest.mark.parametrize('training', [True, False], ids=['train', 'eval'])
@PROPERTY_SETTINGS
@given(data=st.data(), n_samples=st.integers(2, 6), n_features=sides,
       eps=st.sampled_from([1e-5, 1e-3, 0.1]))
def test_batch_norm_gradients(training, data, n_samples, n_features, eps):
    x = data.draw(arrays((n_samples, n_features), -3, 3), label='x')
    if training:
        # A batch variance near 0 makes x_hat = (x - mean) / sqrt(var + eps)
        # curve on the scale of sqrt(eps), too close to the finite-difference step.
        assume(np.all(x.var(axis=0) > 1e-2))
    weight = data.draw(arrays((n_features,), -2, 2), label='weight')
    bias = data.draw(arrays((n_features,), -2, 2), label='bias')
    dout = data.draw(arrays((n_samples, n_features), -1, 1), label='dout')
    layer = BatchNormModule(n_features, eps=eps)
    layer.params['weight'][...] = weight
    layer.params['bias'][...] = bias
    if not training:
        layer.buffers['running_mean'][...] = data.draw(arrays((n_features,), -2, 2))
        layer.buffers['running_var'][...] = data.draw(arrays((n_features,), 0.1, 4))
        layer.eval()

    out = layer.forward(x)
    dx = layer.backward(dout)
    analytic = {name: grad.copy() for name, grad in layer.grads.items()}
    scale = np.sum(np.abs(out * dout))
    loss = lambda: np.sum(layer.forward(x) * dout)  # noqa: E731
    assert_gradient_matches(dx, numerical_gradient(loss, x), scale, 'batch norm dL/dx')
    for name in ('weight', 'bias'):
        assert_gradient_matches(analytic[name], numerical_gradient(loss, layer.params[name]),
                                scale, f'batch norm dL/d{name}')


@PROPERTY_SETTINGS
@given(data=st.data(), n_samples=st.integers(2, 6), n_features=sides,
       momentum=floats(0.0, 1.0))
def test_batch_norm_training_statistics(data, n_samples, n_features, momentum):
    """Training output has the batch mean ``bias`` and the biased variance
    ``weight^2 var / (var + eps)``; running statistics move by ``momentum``,
    the variance in its unbiased form."""
    x = data.draw(arrays((n_samples, n_features), -3, 3), label='x')
    weight = data.draw(arrays((n_features,), -2, 2), label='weight')
    bias = data.draw(arrays((n_features,), -2, 2), label='bias')
    layer = BatchNormModule(n_features, momentum=momentum)
    layer.params['weight'][...] = weight
    layer.params['bias'][...] = bias
    out = layer.forward(x)
    var = x.var(axis=0)
    np.testing.assert_allclose(out.mean(axis=0), bias, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(out.var(axis=0), weight**2 * var / (var + layer.eps),
                               rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(layer.running_mean, momentum * x.mean(axis=0),
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.running_var,
                               (1 - momentum) + momentum * x.var(axis=0, ddof=1),
                               rtol=1e-12, atol=1e-12)


# Dropout -------------------------------------------------------------------

@PROPERTY_SETTINGS
@given(data=st.data(), shape=elementwise_shapes, p=floats(0.0, 0.95),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**32 - 1))
def test_dropout_eval_is_identity(data, shape, p, dtype, seed):
    x = data.draw(arrays(shape, -1e3, 1e3, dtype), label='x')
    dout = data.draw(arrays(shape, -1e3, 1e3, dtype), label='dout')
    layer = DropoutModule(p, rng=np.random.default_rng(seed)).eval()
    out = layer.forward(x)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, x)
    dx = layer.backward(dout)
    assert dx.dtype == dtype
    np.testing.assert_array_equal(dx, dout)


@PROPERTY_SETTINGS
@given(data=st.data(), shape=elementwise_shapes,
       p=st.one_of(st.sampled_from([0.0, 0.5]), floats(0.0, 0.95)),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**32 - 1))
def test_dropout_training_zeroes_or_rescales(data, shape, p, dtype, seed):
    """Every training output is 0 or x / (1 - p), and backward uses the same mask."""
    x = data.draw(arrays(shape, -1e3, 1e3, dtype), label='x')
    x = np.where(x == 0, dtype(1), x)  # so a dropped entry is told from a kept 0
    dout = data.draw(arrays(shape, 0.5, 2, dtype), label='dout')
    layer = DropoutModule(p, rng=np.random.default_rng(seed)).train()
    out = layer.forward(x)
    assert out.dtype == dtype and out.shape == x.shape
    dropped = out == 0
    tolerance = 4 * np.finfo(dtype).eps
    np.testing.assert_allclose(out[~dropped], x[~dropped] / (1 - p), rtol=tolerance, atol=0)
    if p == 0:
        assert not dropped.any()
    dx = layer.backward(dout)
    assert dx.dtype == dtype
    assert np.all(dx[dropped] == 0)
    np.testing.assert_allclose(dx[~dropped], dout[~dropped] / (1 - p), rtol=tolerance, atol=0)


# --------------------------------------------------------------------------
# 2. Extreme inputs: finite results, no floating-point warnings
# --------------------------------------------------------------------------

float_types = st.sampled_from([np.float32, np.float64])


@PROPERTY_SETTINGS
@given(data=st.data(), n_samples=sides, n_classes=sides, dtype=float_types)
def test_softmax_huge_logits(data, n_samples, n_classes, dtype):
    logits = data.draw(arrays((n_samples, n_classes), 0, 0, dtype, elements=huge_logits(dtype)),
                       label='logits')
    dout = data.draw(arrays((n_samples, n_classes), -1, 1, dtype), label='dout')
    layer = SoftMaxModule()
    with no_float_warnings():
        out = layer.forward(logits)
        dx = layer.backward(dout)
    assert np.all(np.isfinite(out)) and np.all(out >= 0) and np.all(out <= 1)
    np.testing.assert_allclose(out.sum(axis=1), 1, rtol=0, atol=n_classes * np.finfo(dtype).eps)
    assert np.all(np.isfinite(dx))
    # The softmax Jacobian annihilates constant shifts: rows of dx sum to 0.
    np.testing.assert_allclose(dx.sum(axis=1), 0, atol=10 * n_classes * np.finfo(dtype).eps)


@target_kinds
@PROPERTY_SETTINGS
@given(data=st.data(), n_samples=sides, n_classes=sides, dtype=float_types)
def test_softmax_cross_entropy_huge_logits(kind, data, n_samples, n_classes, dtype):
    logits = data.draw(arrays((n_samples, n_classes), 0, 0, dtype, elements=huge_logits(dtype)),
                       label='logits')
    labels = np.array(data.draw(label_lists(n_samples, n_classes), label='labels'))
    targets = make_targets(labels, n_classes, kind, dtype)
    loss_module = SoftmaxCrossEntropyModule()
    with no_float_warnings():
        loss = loss_module.forward(logits, targets)
        dlogits = loss_module.backward()
    assert np.isfinite(loss) and loss >= 0
    # Per sample, 0 <= logsumexp(z) - z_y <= max(z) - z_y + log(C).
    gap = np.mean(logits.max(axis=1).astype(np.float64) - logits[np.arange(n_samples), labels])
    assert loss <= gap + np.log(n_classes) + 1e-6 * (1 + gap)
    assert np.all(np.isfinite(dlogits))
    bound = (1 + 4 * np.finfo(dtype).eps) / n_samples
    assert np.all(np.abs(dlogits) <= bound)
    # (softmax - onehot) / N: every row sums to 0.
    np.testing.assert_allclose(dlogits.sum(axis=1), 0,
                               atol=10 * n_classes * np.finfo(dtype).eps / n_samples)


@PROPERTY_SETTINGS
@given(data=st.data(), shape=elementwise_shapes, alpha=alphas, dtype=float_types)
def test_elu_extreme_inputs(data, shape, alpha, dtype):
    elements = mixed([-1e3, 1e3], -1e3, 1e3, dtype)
    x = data.draw(arrays(shape, 0, 0, dtype, elements=elements), label='x')
    dout = data.draw(arrays(shape, -1, 1, dtype), label='dout')
    layer = ELUModule(alpha=alpha)
    with no_float_warnings():
        out = layer.forward(x)
        dx = layer.backward(dout)
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(dx))
    assert np.all(out >= -alpha * (1 + 4 * np.finfo(dtype).eps))
    np.testing.assert_array_equal(out[x > 0], x[x > 0])
    # The derivative lies in [0, max(1, alpha)].
    derivative_bound = max(1.0, alpha) * (1 + 4 * np.finfo(dtype).eps)
    assert np.all(np.abs(dx) <= derivative_bound * np.abs(dout))


@pytest.mark.parametrize('name, low, high, max_derivative',
                         [('sigmoid', 0, 1, 0.25), ('tanh', -1, 1, 1)])
@PROPERTY_SETTINGS
@given(data=st.data(), shape=elementwise_shapes, dtype=float_types)
def test_sigmoid_and_tanh_extreme_inputs(name, low, high, max_derivative, data, shape, dtype):
    elements = mixed([-1e3, 1e3], -1e3, 1e3, dtype)
    x = data.draw(arrays(shape, 0, 0, dtype, elements=elements), label='x')
    dout = data.draw(arrays(shape, -1, 1, dtype), label='dout')
    layer = ACTIVATIONS[name]()
    with no_float_warnings():
        out = layer.forward(x)
        dx = layer.backward(dout)
    assert np.all(np.isfinite(out)) and np.all((low <= out) & (out <= high))
    assert np.all(np.diff(out.ravel()[np.argsort(x.ravel(), kind='stable')]) >= 0), 'not monotone'
    assert np.all(np.isfinite(dx))
    assert np.all(np.abs(dx) <= max_derivative * (1 + 4 * np.finfo(dtype).eps) * np.abs(dout))


@target_kinds
@PROPERTY_SETTINGS
@given(data=st.data(), n_samples=sides, n_classes=sides, dtype=float_types)
def test_cross_entropy_exact_zero_and_one(kind, data, n_samples, n_classes, dtype):
    elements = mixed([0.0, 1.0], 0.0, 1.0, dtype)
    probabilities = data.draw(arrays((n_samples, n_classes), 0, 0, dtype, elements=elements),
                              label='probabilities')
    labels = data.draw(label_lists(n_samples, n_classes), label='labels')
    targets = make_targets(labels, n_classes, kind, dtype)
    with no_float_warnings():
        loss = CrossEntropyModule().forward(probabilities, targets)
        dx = CrossEntropyModule().backward(probabilities, targets)
    assert np.isfinite(loss) and loss >= 0
    assert np.all(np.isfinite(dx)) and np.all(dx <= 0)
    # A certain correct prediction costs nothing; only the true classes get a gradient.
    rows = np.arange(n_samples)
    if np.all(probabilities[rows, labels] == 1):
        assert loss == 0
    off_target = np.ones_like(dx, dtype=bool)
    off_target[rows, labels] = False
    assert np.all(dx[off_target] == 0)


# --------------------------------------------------------------------------
# 3. Invariants: distributions, fused == separate, dtypes kept
# --------------------------------------------------------------------------

@PROPERTY_SETTINGS
@given(data=st.data(), n_samples=sides, n_classes=sides, dtype=float_types)
def test_softmax_rows_are_distributions(data, n_samples, n_classes, dtype):
    """Any logits up to half the largest float: no warning, rows sum to 1, entries >= 0."""
    limit = float(np.finfo(dtype).max) / 2  # so that x - max(x) cannot overflow
    logits = data.draw(arrays((n_samples, n_classes), -limit, limit, dtype), label='logits')
    with no_float_warnings():
        out = SoftMaxModule().forward(logits)
    assert out.dtype == dtype
    assert np.all(np.isfinite(out)) and np.all(out >= 0)
    np.testing.assert_allclose(out.sum(axis=1), 1, rtol=0, atol=n_classes * np.finfo(dtype).eps)
    # The largest logit of a row gets the largest probability.
    rows = np.arange(n_samples)
    assert np.all(out[rows, logits.argmax(axis=1)] == out.max(axis=1))


@PROPERTY_SETTINGS
@given(data=st.data(), n_samples=sides, n_classes=sides, dtype=float_types)
def test_softmax_full_float_range(data, n_samples, n_classes, dtype):
    """Over the whole finite range the rows are still distributions.

    Logits further apart than the largest float overflow in ``x - max(x)`` to
    -inf, whose exponential is exactly the right 0: a harmless overflow, so it
    is silenced here (the test above covers the range that raises none).
    """
    limit = float(np.finfo(dtype).max)
    logits = data.draw(arrays((n_samples, n_classes), -limit, limit, dtype), label='logits')
    with np.errstate(over='ignore'), warnings.catch_warnings():
        warnings.simplefilter('error')
        with np.errstate(invalid='raise', divide='raise'):
            out = SoftMaxModule().forward(logits)
    assert np.all(np.isfinite(out)) and np.all(out >= 0)
    np.testing.assert_allclose(out.sum(axis=1), 1, rtol=0, atol=n_classes * np.finfo(dtype).eps)


@target_kinds
@PROPERTY_SETTINGS
@given(data=st.data(), n_samples=sides, n_classes=sides)
def test_fused_loss_equals_softmax_then_cross_entropy(kind, data, n_samples, n_classes):
    # |logits| <= 30: every probability is above e^-60, far from the clipping
    # at the smallest normal float where the separate path stops being exact.
    logits = data.draw(arrays((n_samples, n_classes), -30, 30), label='logits')
    labels = data.draw(label_lists(n_samples, n_classes), label='labels')
    targets = make_targets(labels, n_classes, kind)
    softmax, cross_entropy, fused = (SoftMaxModule(), CrossEntropyModule(),
                                     SoftmaxCrossEntropyModule())
    probabilities = softmax.forward(logits)
    separate_loss = cross_entropy.forward(probabilities, targets)
    separate_grad = softmax.backward(cross_entropy.backward(probabilities, targets))
    fused_loss = fused.forward(logits, targets)
    fused_grad = fused.backward()
    assert np.isfinite(separate_loss) and np.isfinite(fused_loss)
    # Absolute slack: when p_y rounds to 1 the separate loss is 0 and the fused
    # one log(1 + tiny).
    assert fused_loss == pytest.approx(separate_loss, rel=1e-9, abs=1e-12)
    np.testing.assert_allclose(fused_grad, separate_grad, rtol=1e-8, atol=1e-13)


def _module_cases(dtype, n_samples, n_features, draw):
    """(name, module, input, upstream gradient) for every module of the elementwise/layer kind."""
    x = draw(arrays((n_samples, n_features), -3, 3, dtype), label='x')
    dout = draw(arrays((n_samples, n_features), -1, 1, dtype), label='dout')
    cases = [
        ('linear', LinearModule(n_features, n_features, dtype=dtype)),
        ('relu', ReLUModule()),
        ('leaky_relu', LeakyReLUModule(draw(slopes, label='slope'))),
        ('elu', ELUModule(draw(alphas, label='alpha'))),
        ('sigmoid', SigmoidModule()),
        ('tanh', TanhModule()),
        ('softmax', SoftMaxModule()),
    ]
    if n_samples >= 2:
        cases.append(('batch_norm_train', BatchNormModule(n_features, dtype=dtype)))
    cases.append(('batch_norm_eval', BatchNormModule(n_features, dtype=dtype).eval()))
    p = draw(floats(0.0, 0.9), label='p')
    cases.append(('dropout_train', DropoutModule(p, rng=np.random.default_rng(0))))
    cases.append(('dropout_eval', DropoutModule(p, rng=np.random.default_rng(0)).eval()))
    return x, dout, cases


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
@PROPERTY_SETTINGS
@given(data=st.data(), n_samples=sides, n_features=sides)
def test_every_layer_keeps_the_dtype(dtype, data, n_samples, n_features):
    x, dout, cases = _module_cases(dtype, n_samples, n_features, data.draw)
    for name, module in cases:
        out = module.forward(x)
        assert out.dtype == dtype, f"{name} forward: {out.dtype}"
        dx = module.backward(dout)
        assert dx.dtype == dtype, f"{name} backward: {dx.dtype}"
        for key, grad in module.grads.items():
            assert grad.dtype == module.params[key].dtype, f"{name} grads[{key!r}]"


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
@target_kinds
@PROPERTY_SETTINGS
@given(data=st.data(), n_samples=sides, n_classes=sides)
def test_losses_keep_the_dtype(dtype, kind, data, n_samples, n_classes):
    """Loss and gradients in the predictions' dtype (one-hot targets in that dtype too)."""
    logits = data.draw(arrays((n_samples, n_classes), -5, 5, dtype), label='logits')
    probabilities = data.draw(arrays((n_samples, n_classes), 0, 1, dtype), label='probabilities')
    labels = data.draw(label_lists(n_samples, n_classes), label='labels')
    targets = make_targets(labels, n_classes, kind, dtype)
    cross_entropy = CrossEntropyModule()
    assert cross_entropy.forward(probabilities, targets).dtype == dtype
    assert cross_entropy.backward(probabilities, targets).dtype == dtype
    fused = SoftmaxCrossEntropyModule()
    assert fused.forward(logits, targets).dtype == dtype
    assert fused.backward().dtype == dtype


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
@PROPERTY_SETTINGS
@given(n_inputs=st.integers(1, 5), n_hidden=st.lists(st.integers(1, 5), max_size=3),
       n_classes=st.integers(1, 5), n_samples=st.integers(2, 6),
       activation=st.sampled_from(sorted(ACTIVATIONS)),
       variant=st.sampled_from(MLP_VARIANTS), seed=st.integers(0, 2**32 - 1))
def test_mlp_keeps_the_dtype(dtype, n_inputs, n_hidden, n_classes, n_samples, activation,
                             variant, seed):
    _, use_batch_norm, dropout = variant
    model = _build_mlp(n_inputs, n_hidden, n_classes, activation, seed, use_batch_norm,
                       dropout, dtype=dtype)
    x = np.random.default_rng(seed).standard_normal((n_samples, n_inputs)).astype(dtype)
    logits = model.forward(x)
    assert logits.dtype == dtype
    model.backward(np.ones_like(logits))
    assert all(p.dtype == dtype and g.dtype == dtype for p, g in model.parameters())


# --------------------------------------------------------------------------
# Targets and hyperparameters of another dtype keep the input's dtype
# --------------------------------------------------------------------------

@pytest.mark.parametrize('module', ['cross_entropy', 'fused'])
@PROPERTY_SETTINGS
@given(data=st.data(), n_samples=sides, n_classes=sides,
       one_hot_dtype=st.sampled_from([np.float64, np.int64]))
def test_float32_loss_with_one_hot_of_another_dtype(module, data, n_samples, n_classes,
                                                    one_hot_dtype):
    x = data.draw(arrays((n_samples, n_classes), 0.05, 1, np.float32), label='x')
    labels = data.draw(label_lists(n_samples, n_classes), label='labels')
    targets = make_targets(labels, n_classes, 'one_hot', one_hot_dtype)
    if module == 'cross_entropy':
        assert CrossEntropyModule().forward(x, targets).dtype == np.float32
    else:
        assert SoftmaxCrossEntropyModule().forward(x, targets).dtype == np.float32


@PROPERTY_SETTINGS
@given(data=st.data(), n_samples=sides, n_classes=sides)
def test_cross_entropy_boolean_one_hot(data, n_samples, n_classes):
    probabilities = data.draw(arrays((n_samples, n_classes), 0.05, 1), label='probabilities')
    labels = np.array(data.draw(label_lists(n_samples, n_classes), label='labels'))
    one_hot = make_targets(labels, n_classes, 'one_hot', bool)
    module = CrossEntropyModule()
    assert module.forward(probabilities, one_hot) == pytest.approx(
        module.forward(probabilities, labels), rel=1e-12)
    np.testing.assert_allclose(module.backward(probabilities, one_hot),
                               module.backward(probabilities, labels), rtol=1e-12)


def _numpy_scalar_modules(value):
    return [('elu', ELUModule(alpha=np.float64(value))),
            ('leaky_relu', LeakyReLUModule(negative_slope=np.float64(value))),
            ('batch_norm', BatchNormModule(3, eps=np.float64(value), dtype=np.float32))]


@pytest.mark.parametrize('name', ['elu', 'leaky_relu', 'batch_norm'])
@PROPERTY_SETTINGS
@given(data=st.data(), n_samples=st.integers(2, 6), value=floats(0.01, 0.5))
def test_numpy_scalar_hyperparameters_keep_float32(name, data, n_samples, value):
    cases = dict(_numpy_scalar_modules(value))
    # Negative entries: the ELU and leaky-ReLU branches that use the hyperparameter.
    x = data.draw(arrays((n_samples, 3), -3, -0.1, np.float32), label='x')
    assert cases[name].forward(x).dtype == np.float32
