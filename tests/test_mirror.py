"""The NumPy MLP and the PyTorch MLP are the same function with the same gradients.

Random weights are copied from a NumPy MLP into a PyTorch MLP (float64); both
must then give the same logits, the same loss and the same gradient for every
parameter, with PyTorch's autograd as the oracle for the hand-written backward.
"""
import numpy as np
import pytest
import torch

import mlp_numpy
import mlp_pytorch
from conftest import assert_mirrors_agree, cross_entropy_losses, mirror_pair
from lab.mirror import copy_numpy_to_torch, copy_torch_to_numpy
from modules import ACTIVATIONS


def make_pair(n_hidden, activation, seed=0, n_inputs=12, n_classes=5):
    """A NumPy MLP with perturbed random parameters and its PyTorch copy (float64)."""
    return mirror_pair(n_inputs, n_hidden, n_classes, seed, activation=activation)


@pytest.mark.parametrize('activation', sorted(ACTIVATIONS))
@pytest.mark.parametrize('n_hidden', [[], [16], [16, 8, 16]], ids=['depth0', 'depth1', 'depth3'])
def test_logits_loss_and_gradients_match(n_hidden, activation):
    numpy_model, torch_model = make_pair(n_hidden, activation)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((10, 12))
    labels = rng.integers(5, size=10)
    assert_mirrors_agree(numpy_model, torch_model, x, *cross_entropy_losses(labels))


def test_image_batches_are_flattened_alike():
    numpy_model, torch_model = make_pair([8], 'elu', n_inputs=3 * 4 * 4)
    images = np.random.default_rng(2).standard_normal((6, 3, 4, 4))
    np.testing.assert_allclose(numpy_model.forward(images),
                               torch_model(torch.from_numpy(images)).detach().numpy(),
                               rtol=1e-10)


def test_copy_back_round_trips():
    numpy_model, torch_model = make_pair([8, 4], 'relu')
    fresh = mlp_numpy.MLP(12, [8, 4], 5, activation='relu')
    copy_torch_to_numpy(torch_model, fresh)
    for key, value in numpy_model.state_dict().items():
        np.testing.assert_array_equal(fresh.state_dict()[key], value)


def test_copy_refuses_other_architecture():
    numpy_model, _ = make_pair([8], 'elu')
    other = mlp_pytorch.MLP(12, [9], 5).double()
    with pytest.raises(ValueError, match=r"\(8, 12\).*\(9, 12\)"):
        copy_numpy_to_torch(numpy_model, other)


def test_same_initialisation_statistics():
    """Both MLPs draw weights with Kaiming std sqrt(1/D) (first layer) and sqrt(2/D)."""
    torch.manual_seed(0)
    numpy_model = mlp_numpy.MLP(400, [300], 10, rng=np.random.default_rng(0))
    torch_model = mlp_pytorch.MLP(400, [300], 10)
    expected_std = [np.sqrt(1 / 400), np.sqrt(2 / 300)]
    numpy_weights = [module.params['weight'] for module in numpy_model.modules[::2]]
    torch_weights = [layer.weight.detach().numpy() for layer in torch_model.linear_layers()]
    for std, numpy_weight, torch_weight in zip(expected_std, numpy_weights, torch_weights):
        assert numpy_weight.std() == pytest.approx(std, rel=0.05)
        assert torch_weight.std() == pytest.approx(std, rel=0.05)
    for module, layer in zip(numpy_model.modules[::2], torch_model.linear_layers()):
        assert not module.params['bias'].any()
        assert not layer.bias.detach().any()


def test_batch_norm_sits_between_linear_and_activation():
    model = mlp_pytorch.MLP(6, [5, 4], 3, use_batch_norm=True)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ['Linear', 'BatchNorm1d', 'ELU', 'Linear', 'BatchNorm1d', 'ELU', 'Linear']
    assert model.device == torch.device('cpu')
