"""Each NumPy module against PyTorch autograd, its dtype behaviour and its error messages."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import mlp_numpy
from modules import (ACTIVATIONS, CrossEntropyModule, ELUModule, LeakyReLUModule,
                     LinearModule, SoftmaxCrossEntropyModule, SoftMaxModule)

TORCH_FUNCTIONS = {
    'elu': F.elu,
    'relu': F.relu,
    'leaky_relu': F.leaky_relu,
    'sigmoid': torch.sigmoid,
    'tanh': torch.tanh,
}


def torch_reference(function, *arrays):
    """Outputs and input gradients of ``sum(function(*arrays) * dout)`` by autograd."""
    tensors = [torch.tensor(array, requires_grad=True) for array in arrays]
    out = function(*tensors)
    dout = torch.from_numpy(np.random.default_rng(9).standard_normal(tuple(out.shape)))
    (out * dout).sum().backward()
    return out.detach().numpy(), dout.numpy(), [t.grad.numpy() for t in tensors]


@pytest.mark.parametrize('name', sorted(ACTIVATIONS))
def test_activation_matches_torch(name):
    x = np.random.default_rng(0).standard_normal((8, 11)) * 3
    expected_out, dout, (expected_dx,) = torch_reference(TORCH_FUNCTIONS[name], x)
    module = ACTIVATIONS[name]()
    np.testing.assert_allclose(module.forward(x), expected_out, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(module.backward(dout), expected_dx, rtol=1e-12, atol=1e-15)


def test_linear_matches_torch():
    rng = np.random.default_rng(1)
    layer = LinearModule(7, 4, rng=rng)
    layer.params['bias'][:] = rng.standard_normal(4)
    x = rng.standard_normal((5, 7))
    weight = torch.tensor(layer.params['weight'], requires_grad=True)
    bias = torch.tensor(layer.params['bias'], requires_grad=True)
    expected_out, dout, (expected_dx,) = torch_reference(
        lambda t: F.linear(t, weight, bias), x)
    np.testing.assert_allclose(layer.forward(x), expected_out, rtol=1e-12)
    np.testing.assert_allclose(layer.backward(dout), expected_dx, rtol=1e-12)
    np.testing.assert_allclose(layer.grads['weight'], weight.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(layer.grads['bias'], bias.grad.numpy(), rtol=1e-12)


def test_softmax_and_losses_match_torch():
    rng = np.random.default_rng(2)
    logits = rng.standard_normal((6, 4)) * 4
    labels = rng.integers(4, size=6)
    expected_out, dout, (expected_dx,) = torch_reference(lambda t: torch.softmax(t, 1), logits)
    softmax = SoftMaxModule()
    np.testing.assert_allclose(softmax.forward(logits), expected_out, rtol=1e-12)
    np.testing.assert_allclose(softmax.backward(dout), expected_dx, rtol=1e-10, atol=1e-15)

    logits_tensor = torch.tensor(logits, requires_grad=True)
    torch_loss = F.cross_entropy(logits_tensor, torch.from_numpy(labels))
    torch_loss.backward()
    fused = SoftmaxCrossEntropyModule()
    assert fused.forward(logits, labels) == pytest.approx(torch_loss.item(), rel=1e-12)
    np.testing.assert_allclose(fused.backward(), logits_tensor.grad.numpy(), rtol=1e-10, atol=1e-15)

    probabilities = expected_out
    probabilities_tensor = torch.tensor(probabilities, requires_grad=True)
    nll = F.nll_loss(torch.log(probabilities_tensor), torch.from_numpy(labels))
    nll.backward()
    loss = CrossEntropyModule().forward(probabilities, labels)
    assert loss == pytest.approx(nll.item(), rel=1e-12)
    np.testing.assert_allclose(CrossEntropyModule().backward(probabilities, labels),
                               probabilities_tensor.grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
def test_every_module_keeps_the_input_dtype(dtype):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 6)).astype(dtype)
    labels = rng.integers(6, size=4)
    layers = [LinearModule(6, 6, dtype=dtype), SoftMaxModule()]
    layers += [activation() for activation in ACTIVATIONS.values()]
    for layer in layers:
        out = layer.forward(x)
        assert out.dtype == dtype, type(layer).__name__
        assert layer.backward(np.ones_like(out)).dtype == dtype, type(layer).__name__
    assert CrossEntropyModule().forward(np.abs(x), labels).dtype == dtype
    assert CrossEntropyModule().backward(np.abs(x), labels).dtype == dtype
    fused = SoftmaxCrossEntropyModule()
    assert fused.forward(x, labels).dtype == dtype
    assert fused.backward().dtype == dtype


def test_float32_mlp_stays_float32():
    model = mlp_numpy.MLP(6, [5], 3, dtype=np.float32)
    x = np.random.default_rng(4).standard_normal((4, 6)).astype(np.float32)
    logits = model.forward(x)
    assert logits.dtype == np.float32
    model.backward(np.ones_like(logits))
    assert all(p.dtype == np.float32 and g.dtype == np.float32 for p, g in model.parameters())


def test_linear_reads_weight_at_call_time():
    layer = LinearModule(3, 2)
    x = np.ones((1, 3))
    before = layer.forward(x).copy()
    layer.params['weight'] += 1.0
    np.testing.assert_allclose(layer.forward(x), before + 3.0)


def test_extreme_inputs_stay_finite():
    with np.errstate(over='raise', divide='raise', invalid='raise'):
        assert np.all(ELUModule().forward(np.array([[-1e3, 1e3]])) == [[-1.0, 1e3]])
        probabilities = np.array([[0.0, 1.0], [1.0, 0.0]])
        loss = CrossEntropyModule().forward(probabilities, np.array([0, 0]))
        grad = CrossEntropyModule().backward(probabilities, np.array([0, 0]))
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
    assert LeakyReLUModule(0.1).forward(np.array([[-2.0]]))[0, 0] == pytest.approx(-0.2)


def test_wrong_width_names_both_numbers():
    with pytest.raises(ValueError, match=r"7 features per sample.*n_inputs=10"):
        mlp_numpy.MLP(10, [5], 3).forward(np.zeros((4, 7)))


def test_the_mlp_checks_its_input_once_at_entry():
    model = mlp_numpy.MLP(10, [5], 3, dtype=np.float32)
    with pytest.raises(ValueError, match=r"batch of shape \(N, 10\).*x\[np.newaxis\]"):
        model.forward(np.zeros(10))
    with pytest.raises(ValueError, match=r"must hold numbers"):
        model.forward(np.array([['a'] * 10]))
    # Integers and float64 are cast to the model's dtype at entry, once.
    assert model.forward(np.zeros((4, 10), dtype=np.int64)).dtype == np.float32
    assert model.forward(np.zeros((4, 10))).dtype == np.float32
    # Images are flattened.
    assert mlp_numpy.MLP(12, [5], 3).forward(np.zeros((2, 3, 2, 2))).shape == (2, 3)


def test_input_layer_returns_no_gradient_for_the_data():
    layer = LinearModule(4, 3, input_layer=True)
    layer.forward(np.ones((2, 4)))
    assert layer.backward(np.ones((2, 3))) is None
    assert layer.grads['weight'].shape == (3, 4)


@pytest.mark.parametrize('module', [CrossEntropyModule(), SoftmaxCrossEntropyModule()],
                         ids=['cross_entropy', 'fused'])
def test_labels_are_checked(module):
    x = np.full((3, 4), 0.25)
    with pytest.raises(ValueError, match=r"label 4 is out of range.*\[0, 4\)"):
        module.forward(x, np.array([0, 4, 1]))
    with pytest.raises(ValueError, match=r"label -1 is out of range"):
        module.forward(x, np.array([0, -1, 1]))
    with pytest.raises(ValueError, match=r"batch size mismatch: 3 predictions but 2 labels"):
        module.forward(x, np.array([0, 1]))
    with pytest.raises(ValueError, match=r"one-hot targets must have shape"):
        module.forward(x, np.eye(3))


def test_backward_without_forward_is_explained():
    with pytest.raises(RuntimeError, match="without a forward pass"):
        ELUModule().backward(np.ones((2, 2)))


def test_cross_entropy_backward_needs_no_forward():
    probabilities = np.array([[0.25, 0.75]])
    np.testing.assert_allclose(CrossEntropyModule().backward(probabilities, np.array([1])),
                               [[0.0, -1 / 0.75]])


def test_clear_cache_drops_everything():
    model = mlp_numpy.MLP(4, [3, 3], 2)
    model.forward(np.ones((2, 4)))
    assert any(module.cache is not None for module in model.modules)
    model.clear_cache()
    assert all(module.cache is None for module in model.modules)


def test_mlp_structure_and_state_dict():
    model = mlp_numpy.MLP(4, [3, 5], 2, activation='tanh')
    kinds = [type(module).__name__ for module in model.modules]
    assert kinds == ['LinearModule', 'TanhModule', 'LinearModule', 'TanhModule', 'LinearModule']
    assert model.modules[0].input_layer and not model.modules[2].input_layer
    assert len(mlp_numpy.MLP(4, [], 2).modules) == 1
    other = mlp_numpy.MLP(4, [3, 6], 2)
    with pytest.raises(ValueError, match=r"\(6, 3\).*\(5, 3\)"):
        model.load_state_dict(other.state_dict())
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        mlp_numpy.MLP(4, [3], 2, activation='swish')
    with pytest.raises(ValueError, match="at least one unit"):
        mlp_numpy.MLP(4, [0], 2)
