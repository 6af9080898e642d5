"""Batch normalisation and dropout: the NumPy modules against PyTorch, in both MLPs.

``BatchNormModule`` must be ``torch.nn.BatchNorm1d`` (float64) in training and
evaluation mode, running statistics included; ``DropoutModule`` must be
inverted dropout. A NumPy MLP with batch norm, copied into the PyTorch MLP,
must give the same logits, loss and gradients, and its ``state_dict`` must
carry the running statistics.
"""
import io

import numpy as np
import pytest
import torch

import mlp_numpy
import mlp_pytorch
from conftest import assert_mirrors_agree, cross_entropy_losses, mirror_pair, rel_error
from lab.mirror import copy_numpy_to_torch, copy_torch_to_numpy
from lab.settings import ConfigurationError, run_settings
from modules import BatchNormModule, DropoutModule


# ---------------------------------------------------------------------------
# BatchNormModule
# ---------------------------------------------------------------------------

def test_batch_norm_starts_as_torch_does():
    layer = BatchNormModule(3)
    np.testing.assert_array_equal(layer.params['weight'], np.ones(3))
    np.testing.assert_array_equal(layer.params['bias'], np.zeros(3))
    np.testing.assert_array_equal(layer.running_mean, np.zeros(3))
    np.testing.assert_array_equal(layer.running_var, np.ones(3))
    assert layer.running_mean is layer.buffers['running_mean']
    assert layer.running_var is layer.buffers['running_var']
    assert set(layer.grads) == {'weight', 'bias'}
    assert (layer.eps, layer.momentum) == (torch.nn.BatchNorm1d(3).eps,
                                           torch.nn.BatchNorm1d(3).momentum)


def test_batch_norm_matches_torch_in_both_modes():
    rng = np.random.default_rng(0)
    n_features = 6
    layer = BatchNormModule(n_features)
    reference = torch.nn.BatchNorm1d(n_features).double()
    weight, bias = rng.standard_normal(n_features), rng.standard_normal(n_features)
    layer.params['weight'][:], layer.params['bias'][:] = weight, bias
    with torch.no_grad():
        reference.weight.copy_(torch.from_numpy(weight))
        reference.bias.copy_(torch.from_numpy(bias))

    # Four training steps with batches of other sizes, offsets and scales, then evaluation.
    for step, training in enumerate([True, True, True, True, False]):
        layer.train() if training else layer.eval()
        reference.train(training)
        n_samples = 5 + 3 * step
        x = (rng.uniform(0.5, 3.0, n_features) * rng.standard_normal((n_samples, n_features))
             + rng.standard_normal(n_features))
        dout = rng.standard_normal((n_samples, n_features))

        x_tensor = torch.tensor(x, requires_grad=True)
        reference.zero_grad()
        expected = reference(x_tensor)
        (expected * torch.from_numpy(dout)).sum().backward()

        out = layer.forward(x)
        dx = layer.backward(dout)
        mode = 'training' if training else 'evaluation'
        assert rel_error(out, expected.detach().numpy()) < 1e-8, mode
        assert rel_error(dx, x_tensor.grad.numpy()) < 1e-8, mode
        assert rel_error(layer.grads['weight'], reference.weight.grad.numpy()) < 1e-8, mode
        assert rel_error(layer.grads['bias'], reference.bias.grad.numpy()) < 1e-8, mode
        assert rel_error(layer.running_mean, reference.running_mean.numpy()) < 1e-8, mode
        assert rel_error(layer.running_var, reference.running_var.numpy()) < 1e-8, mode
    # The running statistics did move away from their initial values.
    assert np.all(np.abs(layer.running_mean) > 1e-3)
    assert np.all(np.abs(layer.running_var - 1) > 1e-3)


def test_batch_norm_evaluation_leaves_running_stats_alone():
    layer = BatchNormModule(4)
    layer.forward(np.random.default_rng(1).standard_normal((8, 4)) + 2)
    mean, var = layer.running_mean.copy(), layer.running_var.copy()
    layer.eval()
    layer.forward(np.random.default_rng(2).standard_normal((8, 4)) - 5)
    np.testing.assert_array_equal(layer.running_mean, mean)
    np.testing.assert_array_equal(layer.running_var, var)


def test_batch_norm_backward_follows_the_mode_of_its_forward():
    rng = np.random.default_rng(3)
    x, dout = rng.standard_normal((6, 4)), rng.standard_normal((6, 4))
    layer = BatchNormModule(4)
    layer.forward(x)
    expected = layer.backward(dout)
    layer.forward(x)
    layer.eval()
    np.testing.assert_array_equal(layer.backward(dout), expected)


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
@pytest.mark.parametrize('training', [True, False], ids=['training', 'evaluation'])
def test_batch_norm_keeps_its_dtype(dtype, training):
    rng = np.random.default_rng(4)
    layer = BatchNormModule(5, dtype=dtype)
    if not training:
        layer.eval()
    out = layer.forward(rng.standard_normal((4, 5)).astype(dtype))
    assert out.dtype == dtype
    assert layer.backward(np.ones_like(out)).dtype == dtype
    assert layer.running_mean.dtype == dtype
    assert layer.grads['weight'].dtype == dtype


def test_batch_norm_errors_are_caught_at_the_mlp_entry():
    model = mlp_numpy.MLP(4, [3], 2, use_batch_norm=True)
    with pytest.raises(ValueError, match=r"7 features per sample.*n_inputs=4"):
        model.forward(np.zeros((5, 7)))
    with pytest.raises(ValueError, match=r"at least 2 samples per batch in training mode"
                                         r".*\(1, 4\).*eval\(\)"):
        model.forward(np.zeros((1, 4)))
    # A single sample is fine in evaluation mode.
    assert model.eval().forward(np.ones((1, 4))).shape == (1, 2)
    with pytest.raises(RuntimeError, match="without a forward pass"):
        BatchNormModule(3).backward(np.zeros((4, 3)))


# ---------------------------------------------------------------------------
# DropoutModule
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('p', [0.2, 0.5, 0.8])
def test_dropout_preserves_the_expectation(p):
    layer = DropoutModule(p, rng=np.random.default_rng(6))
    x = np.full((1000, 100), 3.0)
    out = layer.forward(x)
    dropped = out == 0
    # 1e5 independent entries: the dropped fraction has standard deviation
    # sqrt(p (1 - p) / 1e5) < 0.0016, and the mean relative to 3 has standard
    # deviation sqrt(p / ((1 - p) 1e5)) < 0.007; the bounds are over 4 of them.
    assert abs(dropped.mean() - p) < 0.007
    assert abs(out.mean() / 3.0 - 1) < 0.03
    np.testing.assert_allclose(out[~dropped], 3.0 / (1 - p), rtol=1e-15)


def test_dropout_backward_uses_the_mask_of_the_forward():
    rng = np.random.default_rng(7)
    layer = DropoutModule(0.5, rng=rng)
    x = rng.uniform(1.0, 2.0, (50, 40))
    dout = rng.standard_normal((50, 40))
    first = layer.forward(x)
    second = layer.forward(x)
    # Every forward pass draws a new mask, and backward uses the latest one.
    assert np.any((first == 0) != (second == 0))
    dx = layer.backward(dout)
    np.testing.assert_array_equal(dx == 0, second == 0)
    np.testing.assert_allclose(dx, dout * second / x, rtol=1e-14)


def test_dropout_is_the_identity_in_evaluation_mode():
    layer = DropoutModule(0.5).eval()
    x = np.random.default_rng(8).standard_normal((6, 5))
    out = layer.forward(x)
    np.testing.assert_array_equal(out, x)
    dout = np.random.default_rng(9).standard_normal((6, 5))
    np.testing.assert_array_equal(layer.backward(dout), dout)


def test_dropout_draws_from_the_global_state_without_rng():
    x = np.ones((20, 10))
    np.random.seed(10)
    first = DropoutModule(0.5).forward(x)
    np.random.seed(10)
    np.testing.assert_array_equal(DropoutModule(0.5).forward(x), first)


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
def test_dropout_keeps_the_input_dtype(dtype):
    layer = DropoutModule(0.3, rng=np.random.default_rng(11))
    out = layer.forward(np.ones((4, 6), dtype=dtype))
    assert out.dtype == dtype
    assert layer.backward(np.ones_like(out)).dtype == dtype


@pytest.mark.parametrize('p', [-0.1, 1.0, 1.5, float('nan')])
def test_dropout_outside_0_1_is_refused_once_for_both_scripts(p):
    """The one check, in lab.settings, before any data is loaded."""
    settings = dict(hidden_dims=[3], lr=0.1, batch_size=8, epochs=1, seed=0, dataset='spiral',
                    validation_size=None, activation='elu', optimizer='sgd', momentum=0.0,
                    weight_decay=0.0, scheduler='none', patience=None, use_batch_norm=False,
                    dropout=p)
    with pytest.raises(ConfigurationError, match=r"--dropout must lie in \[0, 1\)"):
        run_settings(settings)


# ---------------------------------------------------------------------------
# The MLPs with batch norm and dropout
# ---------------------------------------------------------------------------

def test_layer_order_is_the_same_in_both_mlps():
    numpy_model = mlp_numpy.MLP(6, [5, 4], 3, use_batch_norm=True, dropout=0.5)
    torch_model = mlp_pytorch.MLP(6, [5, 4], 3, use_batch_norm=True, dropout=0.5)
    numpy_kinds = [type(module).__name__ for module in numpy_model.modules]
    torch_kinds = [type(layer).__name__ for layer in torch_model.layers]
    assert numpy_kinds == ['LinearModule', 'BatchNormModule', 'ELUModule', 'DropoutModule',
                           'LinearModule', 'BatchNormModule', 'ELUModule', 'DropoutModule',
                           'LinearModule']
    assert torch_kinds == ['Linear', 'BatchNorm1d', 'ELU', 'Dropout',
                           'Linear', 'BatchNorm1d', 'ELU', 'Dropout', 'Linear']
    assert [module.p for module in numpy_model.modules[3::4]] == [0.5, 0.5]
    assert [layer.p for layer in torch_model.layers[3::4]] == [0.5, 0.5]
    # The defaults add neither.
    assert len(mlp_numpy.MLP(6, [5, 4], 3).modules) == 5
    assert len(mlp_pytorch.MLP(6, [5, 4], 3).layers) == 5


def make_batch_norm_pair(n_hidden, seed=0, n_inputs=12, n_classes=5):
    """A NumPy MLP with batch norm, perturbed random parameters, and its PyTorch copy (float64)."""
    return mirror_pair(n_inputs, n_hidden, n_classes, seed, use_batch_norm=True)


@pytest.mark.parametrize('n_hidden', [[], [16], [16, 8, 16]], ids=['depth0', 'depth1', 'depth3'])
def test_mirror_with_batch_norm_in_training_mode(n_hidden):
    numpy_model, torch_model = make_batch_norm_pair(n_hidden)
    rng = np.random.default_rng(1)
    x = 2 * rng.standard_normal((10, 12)) + 1
    labels = rng.integers(5, size=10)
    assert len(numpy_model.parameters()) == 2 + 4 * len(n_hidden)
    # The bias of a linear layer before batch norm has gradient 0 in exact
    # arithmetic, so both sides are rounding noise around it.
    assert_mirrors_agree(numpy_model, torch_model, x, *cross_entropy_losses(labels),
                         zero_floor=1e-12)


@pytest.mark.parametrize('n_hidden', [[], [16], [16, 8, 16]], ids=['depth0', 'depth1', 'depth3'])
def test_mirror_with_batch_norm_in_evaluation_mode(n_hidden):
    numpy_model, torch_model = make_batch_norm_pair(n_hidden, seed=2)
    rng = np.random.default_rng(3)
    for _ in range(3):
        x = 3 * rng.standard_normal((16, 12)) - 1
        numpy_model.forward(x)
        torch_model(torch.from_numpy(x))
    numpy_model.eval()
    torch_model.eval()
    x = rng.standard_normal((7, 12))
    numpy_logits = numpy_model.forward(x)
    assert rel_error(numpy_logits, torch_model(torch.from_numpy(x)).detach().numpy()) < 1e-8
    # The running statistics moved, so evaluation differs from training mode.
    assert rel_error(numpy_logits, numpy_model.train().forward(x)) > 1e-3 or not n_hidden


def test_mirror_with_dropout_in_evaluation_mode():
    rng = np.random.default_rng(4)
    numpy_model = mlp_numpy.MLP(12, [16, 8], 5, rng=rng, use_batch_norm=True, dropout=0.5)
    torch_model = mlp_pytorch.MLP(12, [16, 8], 5, use_batch_norm=True, dropout=0.5).double()
    copy_numpy_to_torch(numpy_model, torch_model)
    numpy_model.eval()
    torch_model.eval()
    x = rng.standard_normal((9, 12))
    assert rel_error(numpy_model.forward(x),
                     torch_model(torch.from_numpy(x)).detach().numpy()) < 1e-8


def test_copy_to_torch_carries_running_stats():
    numpy_model, _ = make_batch_norm_pair([8, 4], seed=7)
    rng = np.random.default_rng(8)
    for _ in range(3):
        numpy_model.forward(3 * rng.standard_normal((16, 12)) + 2)
    torch_model = mlp_pytorch.MLP(12, [8, 4], 5, use_batch_norm=True).double()
    copy_numpy_to_torch(numpy_model, torch_model)
    for layer, module in ((torch_model.layers[1], numpy_model.modules[1]),
                          (torch_model.layers[4], numpy_model.modules[4])):
        np.testing.assert_array_equal(layer.running_mean.numpy(), module.running_mean)
        np.testing.assert_array_equal(layer.running_var.numpy(), module.running_var)
    x = rng.standard_normal((5, 12))
    assert rel_error(numpy_model.eval().forward(x),
                     torch_model.eval()(torch.from_numpy(x)).detach().numpy()) < 1e-8


def test_copy_back_round_trips_running_stats():
    _, torch_model = make_batch_norm_pair([8, 4])
    generator = torch.Generator().manual_seed(5)
    torch_model(torch.randn(20, 12, dtype=torch.float64, generator=generator))
    fresh = mlp_numpy.MLP(12, [8, 4], 5, use_batch_norm=True)
    copy_torch_to_numpy(torch_model, fresh)
    state = fresh.state_dict()
    for key, value in torch_model.layers.state_dict().items():
        if key.endswith('num_batches_tracked'):
            continue
        np.testing.assert_array_equal(state[key], value.numpy(), err_msg=key)
    assert not np.all(state['1.running_mean'] == 0)


def test_copy_refuses_batch_norm_mismatch():
    numpy_model, _ = make_batch_norm_pair([8])
    plain = mlp_pytorch.MLP(12, [8], 5).double()
    with pytest.raises(ValueError, match=r"NumPy layers.*BatchNorm1d \(8,\).*PyTorch layers "
                                         r"\['Linear \(8, 12\)', 'Linear \(5, 8\)'\]"):
        copy_numpy_to_torch(numpy_model, plain)
    with pytest.raises(ValueError, match=r"BatchNorm1d \(8,\)"):
        copy_torch_to_numpy(plain, numpy_model)
    # As many layers with parameters, but a linear layer where batch norm is.
    deeper = mlp_pytorch.MLP(12, [8, 8], 5).double()
    with pytest.raises(ValueError, match=r"BatchNorm1d \(8,\).*Linear \(8, 8\)"):
        copy_numpy_to_torch(numpy_model, deeper)


def test_state_dict_round_trip_keeps_running_stats():
    rng = np.random.default_rng(6)
    model = mlp_numpy.MLP(12, [8, 6], 5, rng=rng, use_batch_norm=True)
    for _ in range(3):
        model.forward(2 * rng.standard_normal((16, 12)) + 1)
    state = model.state_dict()
    assert [key for key in state if 'running' in key] == [
        '1.running_mean', '1.running_var', '4.running_mean', '4.running_var']
    assert state['1.running_mean'] is model.modules[1].running_mean

    buffer = io.BytesIO()
    np.savez(buffer, **state)
    buffer.seek(0)
    loaded = mlp_numpy.MLP(12, [8, 6], 5, use_batch_norm=True)
    with np.load(buffer, allow_pickle=False) as saved:
        loaded.load_state_dict(dict(saved))
    x = rng.standard_normal((7, 12))
    np.testing.assert_array_equal(loaded.eval().forward(x), model.eval().forward(x))


def test_state_dict_refuses_batch_norm_mismatch():
    with_batch_norm = mlp_numpy.MLP(4, [3], 2, use_batch_norm=True)
    plain = mlp_numpy.MLP(4, [3], 2)
    # Batch norm shifts the indices of the modules after it: 2 becomes 3.
    with pytest.raises(ValueError, match=r"missing \['1.bias', '1.running_mean', "
                                         r"'1.running_var', '1.weight', '3.bias', '3.weight'\], "
                                         r"unexpected \['2.bias', '2.weight'\].*use_batch_norm"):
        with_batch_norm.load_state_dict(plain.state_dict())
    with pytest.raises(ValueError, match=r"unexpected \['1.bias', '1.running_mean'"):
        plain.load_state_dict(with_batch_norm.state_dict())


def test_float32_mlp_with_batch_norm_and_dropout_stays_float32():
    model = mlp_numpy.MLP(6, [5, 4], 3, dtype=np.float32, use_batch_norm=True, dropout=0.3,
                          rng=np.random.default_rng(7))
    x = np.random.default_rng(8).standard_normal((4, 6)).astype(np.float32)
    for mode in (model.train, model.eval):
        mode()
        logits = model.forward(x)
        assert logits.dtype == np.float32
        model.backward(np.ones_like(logits))
    assert all(p.dtype == np.float32 and g.dtype == np.float32 for p, g in model.parameters())
    assert all(value.dtype == np.float32 for value in model.state_dict().values())


def test_dropout_in_evaluation_mode_hands_back_its_input_untouched():
    layer = DropoutModule(0.5).eval()
    x = np.random.default_rng(12).standard_normal((3, 4)).astype(np.float32)
    assert layer.forward(x) is x
    dout = np.ones_like(x)
    assert layer.backward(dout) is dout
