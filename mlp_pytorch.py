"""The multi-layer perceptron of ``mlp_numpy.py`` in PyTorch, trained with autograd."""
import math

import torch
from torch import nn

from modules import LinearModule

ACTIVATIONS = {
    'elu': nn.ELU,
    'relu': nn.ReLU,
    'leaky_relu': nn.LeakyReLU,
    'sigmoid': nn.Sigmoid,
    'tanh': nn.Tanh,
}
"""The PyTorch counterparts of ``modules.ACTIVATIONS``, with the same defaults."""


class MLP(nn.Module):
    """Linear -> [BatchNorm1d] -> activation -> ... -> Linear, returning logits.

    The linear layers come in the same order and shapes as the NumPy MLP's
    ``LinearModule``s and are initialised the same way, so weights copy across
    one to one (see ``copy_numpy_to_torch``).

    Parameters
    ----------
    n_inputs : int
        Number of input features; image batches (N, C, H, W) are flattened.
    n_hidden : list of int
        Width of each hidden layer; empty gives multinomial logistic regression.
    n_classes : int
        Number of classes, the width of the output.
    use_batch_norm : bool
        Put a ``BatchNorm1d`` between each hidden linear layer and its activation.
    activation : str
        One of 'elu', 'relu', 'leaky_relu', 'sigmoid', 'tanh'.
    """

    def __init__(self, n_inputs, n_hidden, n_classes, use_batch_norm=False,
                 activation='elu'):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"unknown activation {activation!r}; choose one of "
                f"{sorted(ACTIVATIONS)}")
        widths = [n_inputs, *n_hidden, n_classes]
        if any(width < 1 for width in widths):
            raise ValueError(
                f"every layer needs at least one unit, got n_inputs={n_inputs}, "
                f"n_hidden={list(n_hidden)}, n_classes={n_classes}")
        self.n_inputs = n_inputs
        self.n_hidden = list(n_hidden)
        self.n_classes = n_classes
        self.use_batch_norm = use_batch_norm
        self.activation = activation
        layers = []
        for index, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
            linear = nn.Linear(fan_in, fan_out)
            # Kaiming initialisation as in modules.LinearModule: the first layer
            # sees raw data (gain 1), the others see activations (gain 2).
            gain = 1.0 if index == 0 else 2.0
            nn.init.normal_(linear.weight, mean=0.0, std=math.sqrt(gain / fan_in))
            nn.init.zeros_(linear.bias)
            layers.append(linear)
            if index < len(widths) - 2:
                if use_batch_norm:
                    layers.append(nn.BatchNorm1d(fan_out))
                layers.append(ACTIVATIONS[activation]())
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        """
        Parameters
        ----------
        x : Tensor of shape (N, n_inputs) or (N, C, H, W) with C*H*W == n_inputs

        Returns
        -------
        logits : Tensor of shape (N, n_classes)
        """
        x = x.flatten(start_dim=1)
        if x.shape[1] != self.n_inputs:
            raise ValueError(
                f"the input has {x.shape[1]} features per sample but this MLP "
                f"was built with n_inputs={self.n_inputs}")
        return self.layers(x)

    @property
    def device(self):
        """The device the parameters live on."""
        return next(self.parameters()).device

    def linear_layers(self):
        """The ``nn.Linear`` layers in forward order."""
        return [layer for layer in self.layers if isinstance(layer, nn.Linear)]


def _numpy_linear_modules(numpy_mlp):
    return [module for module in numpy_mlp.modules if isinstance(module, LinearModule)]


def _check_same_shapes(numpy_linears, torch_linears):
    numpy_shapes = [module.params['weight'].shape for module in numpy_linears]
    torch_shapes = [tuple(layer.weight.shape) for layer in torch_linears]
    if numpy_shapes != torch_shapes:
        raise ValueError(
            f"the two MLPs differ in architecture: NumPy weight shapes "
            f"{numpy_shapes}, PyTorch weight shapes {torch_shapes}")


def copy_numpy_to_torch(numpy_mlp, torch_mlp):
    """Copy the weights and biases of a NumPy MLP into a PyTorch MLP, in place."""
    numpy_linears = _numpy_linear_modules(numpy_mlp)
    torch_linears = torch_mlp.linear_layers()
    _check_same_shapes(numpy_linears, torch_linears)
    with torch.no_grad():
        for module, layer in zip(numpy_linears, torch_linears):
            layer.weight.copy_(torch.from_numpy(module.params['weight']))
            layer.bias.copy_(torch.from_numpy(module.params['bias']))


def copy_torch_to_numpy(torch_mlp, numpy_mlp):
    """Copy the weights and biases of a PyTorch MLP into a NumPy MLP, in place."""
    numpy_linears = _numpy_linear_modules(numpy_mlp)
    torch_linears = torch_mlp.linear_layers()
    _check_same_shapes(numpy_linears, torch_linears)
    for module, layer in zip(numpy_linears, torch_linears):
        module.params['weight'][...] = layer.weight.detach().cpu().numpy()
        module.params['bias'][...] = layer.bias.detach().cpu().numpy()
