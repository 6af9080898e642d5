"""Mean squared error, and regression with the two MLPs.

``MSEModule`` is checked against central differences (hypothesis draws the
shapes and values, float64) and against ``torch.nn.MSELoss`` (values and
gradients, float32 and float64); it keeps its input's dtype and refuses
targets of another shape. Then the NumPy MLP, its linear outputs fitted by
MSE, is compared with its PyTorch mirror from the same weights.
"""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from conftest import assert_mirrors_agree, mirror_pair, numerical_gradient
from modules import ACTIVATIONS, MSEModule

SHAPES = [(7,), (5, 1), (4, 3), (2, 3, 4)]

# The same examples on every run (derandomize) and no .hypothesis/ folder in
# the working tree (database=None), as in test_properties.py.
PROPERTY_SETTINGS = settings(max_examples=50, deadline=None, derandomize=True, database=None)


def torch_mse(x, y):
    """Loss and dL/dx of ``torch.nn.MSELoss()`` by autograd, as NumPy arrays."""
    x_tensor = torch.tensor(x, requires_grad=True)
    loss = torch.nn.MSELoss()(x_tensor, torch.tensor(y))
    loss.backward()
    return loss.detach().numpy(), x_tensor.grad.numpy()


@pytest.mark.parametrize('dtype, rtol', [(np.float64, 1e-12), (np.float32, 1e-6)],
                         ids=['float64', 'float32'])
@pytest.mark.parametrize('shape', SHAPES, ids=str)
def test_mse_matches_torch(shape, dtype, rtol):
    rng = np.random.default_rng(0)
    x = (3 * rng.standard_normal(shape)).astype(dtype)
    y = rng.standard_normal(shape).astype(dtype)
    expected_loss, expected_dx = torch_mse(x, y)
    loss, dx = MSEModule().forward(x, y), MSEModule().backward(x, y)
    assert loss.dtype == dx.dtype == dtype
    np.testing.assert_allclose(loss, expected_loss, rtol=rtol)
    np.testing.assert_allclose(dx, expected_dx, rtol=rtol)


def test_mse_keeps_the_predictions_dtype_whatever_the_targets():
    predictions = np.array([[0.5, -1.0], [2.0, 0.0]], dtype=np.float32)
    for targets in (np.zeros((2, 2)), np.zeros((2, 2), dtype=np.int64),
                    np.zeros((2, 2), dtype=np.float32)):
        assert MSEModule().forward(predictions, targets).dtype == np.float32
        assert MSEModule().backward(predictions, targets).dtype == np.float32
    assert MSEModule().forward(predictions.astype(np.float64), np.zeros((2, 2),
                               dtype=np.float32)).dtype == np.float64


def test_mse_by_hand_and_backward_needs_no_forward():
    predictions = np.array([[1.0, 2.0], [3.0, 4.0]])
    targets = np.array([[1.0, 0.0], [0.0, 4.0]])
    # (0 + 4 + 9 + 0) / 4 elements; dL/dX = 2 (X - Y) / 4.
    assert MSEModule().forward(predictions, targets) == 13 / 4
    np.testing.assert_array_equal(MSEModule().backward(predictions, targets),
                                  [[0.0, 1.0], [1.5, 0.0]])


def test_mse_refuses_targets_of_another_shape():
    loss = MSEModule()
    # Broadcasting (4,) against (4, 1) would compare every prediction with
    # every target: a (4, 4) matrix and a wrong loss, with no error.
    with pytest.raises(ValueError, match=r"targets of shape \(4,\) do not match predictions "
                                         r"of shape \(4, 1\).*reshape the targets to \(4, 1\)"):
        loss.forward(np.zeros((4, 1)), np.zeros(4))
    with pytest.raises(ValueError, match=r"\(2, 3\) do not match predictions of shape \(3, 2\)"):
        loss.backward(np.zeros((3, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="empty batch"):
        loss.forward(np.zeros((0, 2)), np.zeros((0, 2)))
    with pytest.raises(ValueError, match="targets must be numbers"):
        loss.forward(np.zeros((1, 2)), np.array([['a', 'b']]))


values = st.floats(-10, 10, allow_nan=False, allow_infinity=False, allow_subnormal=False)


@PROPERTY_SETTINGS
@given(data=st.data(),
       shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=5))
def test_mse_gradient_is_central_differences(data, shape):
    x = data.draw(hnp.arrays(np.float64, shape, elements=values), label='predictions')
    y = data.draw(hnp.arrays(np.float64, shape, elements=values), label='targets')
    loss_module = MSEModule()
    loss = loss_module.forward(x, y)
    assert loss >= 0 and loss == loss_module.forward(y, x)
    numerical = numerical_gradient(lambda: loss_module.forward(x, y), x)
    # The rounding error of the central difference is about 1e-16 * loss / h.
    np.testing.assert_allclose(loss_module.backward(x, y), numerical,
                               rtol=1e-6, atol=1e-9 * (1 + loss))


@pytest.mark.parametrize('activation', sorted(ACTIVATIONS))
@pytest.mark.parametrize('n_hidden', [[], [16], [16, 8, 16]], ids=['depth0', 'depth1', 'depth3'])
@pytest.mark.parametrize('n_outputs', [1, 3], ids=['1_output', '3_outputs'])
def test_regression_mlp_matches_its_pytorch_mirror(n_outputs, n_hidden, activation):
    numpy_model, torch_model = mirror_pair(4, n_hidden, n_outputs, activation=activation)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((10, 4))
    targets = rng.standard_normal((10, n_outputs))
    loss_module = MSEModule()

    def numpy_loss(predictions):
        return (loss_module.forward(predictions, targets),
                loss_module.backward(predictions, targets))

    def torch_loss(predictions):
        return torch.nn.MSELoss()(predictions, torch.from_numpy(targets))
    assert len(numpy_model.parameters()) == 2 * (len(n_hidden) + 1)
    assert_mirrors_agree(numpy_model, torch_model, x, numpy_loss, torch_loss)
