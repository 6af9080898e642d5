"""The multi-layer perceptron of ``mlp_numpy.py`` in PyTorch, trained with autograd."""
import math

import torch
from torch import nn

from mlp_numpy import check_architecture
from modules import BatchNormModule, LinearModule

ACTIVATIONS = {
    'elu': nn.ELU,
    'relu': nn.ReLU,
    'leaky_relu': nn.LeakyReLU,
    'sigmoid': nn.Sigmoid,
    'tanh': nn.Tanh,
}
"""The PyTorch counterparts of ``modules.ACTIVATIONS``, with the same defaults."""


class MLP(nn.Module):
    """Linear -> [BatchNorm1d] -> activation -> [Dropout] -> ... -> Linear, returning logits.

    The linear and batch-norm layers come in the same order and shapes as the
    NumPy MLP's ``LinearModule``s and ``BatchNormModule``s and are initialised
    the same way, so weights and running statistics copy across one to one
    (see ``copy_numpy_to_torch``).

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
    dropout : float
        Probability in [0, 1) of dropping a hidden unit: an ``nn.Dropout``
        follows each hidden activation when it is above 0.
    """

    def __init__(self, n_inputs, n_hidden, n_classes, use_batch_norm=False,
                 activation='elu', dropout=0.0):
        super().__init__()
        widths = check_architecture(n_inputs, n_hidden, n_classes, activation, dropout)
        self.n_inputs = n_inputs
        self.n_hidden = list(n_hidden)
        self.n_classes = n_classes
        self.use_batch_norm = use_batch_norm
        self.activation = activation
        self.dropout = dropout
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
                if dropout > 0:
                    layers.append(nn.Dropout(dropout))
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


_COUNTERPARTS = {LinearModule: nn.Linear, BatchNormModule: nn.BatchNorm1d}
"""The NumPy modules with parameters and the PyTorch layers that mirror them."""


def _paired_layers(numpy_mlp, torch_mlp):
    """Pair each NumPy module that has parameters with its PyTorch layer, in forward order.

    Raises
    ------
    ValueError
        If the two MLPs differ in their sequence of linear and batch-norm
        layers or in any weight shape, naming both sequences.
    """
    numpy_modules = [module for module in numpy_mlp.modules
                     if type(module) in _COUNTERPARTS]
    torch_layers = [layer for layer in torch_mlp.layers
                    if type(layer) in _COUNTERPARTS.values()]
    numpy_layout = [f"{_COUNTERPARTS[type(module)].__name__} {module.params['weight'].shape}"
                    for module in numpy_modules]
    torch_layout = [f"{type(layer).__name__} {tuple(layer.weight.shape)}"
                    for layer in torch_layers]
    if numpy_layout != torch_layout:
        raise ValueError(
            f"the two MLPs differ in architecture: NumPy layers (weight shapes) "
            f"{numpy_layout}, PyTorch layers {torch_layout}")
    return list(zip(numpy_modules, torch_layers))


def copy_numpy_to_torch(numpy_mlp, torch_mlp):
    """Copy a NumPy MLP's parameters and running statistics into a PyTorch MLP, in place.

    Linear weights and biases, and batch-norm weights, biases, running means
    and running variances: the NumPy names are PyTorch's attribute names.
    """
    with torch.no_grad():
        for module, layer in _paired_layers(numpy_mlp, torch_mlp):
            for name, value in {**module.params, **module.buffers}.items():
                getattr(layer, name).copy_(torch.from_numpy(value))


def copy_torch_to_numpy(torch_mlp, numpy_mlp):
    """Copy a PyTorch MLP's parameters and running statistics into a NumPy MLP, in place."""
    for module, layer in _paired_layers(numpy_mlp, torch_mlp):
        for name, value in {**module.params, **module.buffers}.items():
            value[...] = getattr(layer, name).detach().cpu().numpy()
