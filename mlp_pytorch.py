"""The multi-layer perceptron of ``mlp_numpy.py`` in PyTorch, trained with autograd."""
import math

from torch import nn

ACTIVATIONS = {
    'elu': nn.ELU,
    'relu': nn.ReLU,
    'leaky_relu': nn.LeakyReLU,
    'sigmoid': nn.Sigmoid,
    'tanh': nn.Tanh,
}
"""The activations of the PyTorch MLP: the names and defaults of ``modules.ACTIVATIONS``."""


class MLP(nn.Module):
    """Linear -> [BatchNorm1d] -> activation -> [Dropout] -> ... -> Linear, returning logits.

    The linear and batch-norm layers come in the same order and shapes as the
    NumPy MLP's ``LinearModule``s and ``BatchNormModule``s and are initialised
    the same way, so weights and running statistics copy across one to one
    (``lab.mirror.copy_numpy_to_torch``).

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
        follows each hidden activation when it is not 0.
    """

    def __init__(self, n_inputs, n_hidden, n_classes, use_batch_norm=False,
                 activation='elu', dropout=0.0):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose one of "
                             f"{sorted(ACTIVATIONS)}")
        widths = [n_inputs, *n_hidden, n_classes]
        if min(widths) < 1:
            raise ValueError(f"every layer needs at least one unit, got {widths}")
        self.n_inputs, self.n_hidden, self.n_classes = n_inputs, list(n_hidden), n_classes
        self.use_batch_norm, self.activation, self.dropout = use_batch_norm, activation, dropout
        layers = []
        for index, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
            linear = nn.Linear(fan_in, fan_out)
            # Kaiming initialisation as in modules.LinearModule: the first layer
            # sees raw data (gain 1), the others see activations (gain 2).
            gain = 1.0 if index == 0 else 2.0
            nn.init.normal_(linear.weight, mean=0.0, std=math.sqrt(gain / fan_in))
            nn.init.zeros_(linear.bias)
            layers.append(linear)
            if index == len(widths) - 2:
                break  # the output layer: logits, no activation
            if use_batch_norm:
                layers.append(nn.BatchNorm1d(fan_out))
            layers.append(ACTIVATIONS[activation]())
            if dropout:
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
            raise ValueError(f"the input has {x.shape[1]} features per sample but this MLP "
                             f"was built with n_inputs={self.n_inputs}")
        return self.layers(x)

    @property
    def device(self):
        """The device the parameters live on."""
        return next(self.parameters()).device

    def linear_layers(self):
        """The ``nn.Linear`` layers in forward order."""
        return [layer for layer in self.layers if isinstance(layer, nn.Linear)]
