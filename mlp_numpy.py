"""A multi-layer perceptron built from the NumPy modules in ``modules.py``."""
import numpy as np

from modules import ACTIVATIONS, BatchNormModule, DropoutModule, LinearModule


class MLP:
    """Linear -> [BatchNorm] -> activation -> [Dropout] -> ... -> Linear, returning logits.

    The softmax and the loss are not part of the network: training pairs the
    logits with ``modules.SoftmaxCrossEntropyModule``. The last layer is linear,
    so the same network serves regression, with ``n_classes`` outputs.

    Parameters
    ----------
    n_inputs : int
        Number of input features; image batches (N, C, H, W) are flattened.
    n_hidden : list of int
        Width of each hidden layer; an empty list gives multinomial logistic
        regression (a single linear layer).
    n_classes : int
        Number of classes, the width of the output.
    use_batch_norm : bool
        Put a ``BatchNormModule`` between each hidden linear layer and its
        activation, as the PyTorch MLP does.
    activation : str
        One of ``modules.ACTIVATIONS``: 'elu' (alpha 1, as ``torch.nn.ELU``),
        'relu', 'leaky_relu', 'sigmoid' or 'tanh'.
    dropout : float
        Probability in [0, 1) of dropping a hidden unit: a ``DropoutModule``
        follows each hidden activation when it is not 0.
    dtype : numpy dtype
        Dtype of the parameters, and of every array inside the network: the
        input is cast to it once, in ``forward``. float64 for gradient checks,
        float32 for fast training.
    rng : numpy.random.Generator, optional
        Source of the initial weights and of the dropout masks; the global
        ``np.random`` state when None.

    Attributes
    ----------
    modules : list
        The modules in the order the forward pass applies them.
    training : bool
        True after ``train()`` (the start), False after ``eval()``.
    """

    def __init__(self, n_inputs, n_hidden, n_classes, use_batch_norm=False,
                 activation='elu', dropout=0.0, dtype=np.float64, rng=None):
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose one of "
                             f"{sorted(ACTIVATIONS)}")
        widths = [n_inputs, *n_hidden, n_classes]
        if min(widths) < 1:
            raise ValueError(f"every layer needs at least one unit, got n_inputs={n_inputs}, "
                             f"n_hidden={list(n_hidden)}, n_classes={n_classes}")
        self.n_inputs, self.n_hidden, self.n_classes = n_inputs, list(n_hidden), n_classes
        self.use_batch_norm, self.activation, self.dropout = use_batch_norm, activation, dropout
        self.dtype = np.dtype(dtype)
        self.training = True
        self.modules = []
        for index, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
            self.modules.append(LinearModule(fan_in, fan_out, input_layer=(index == 0),
                                             dtype=dtype, rng=rng))
            if index == len(widths) - 2:
                break  # the output layer: logits, no activation
            if use_batch_norm:
                self.modules.append(BatchNormModule(fan_out, dtype=dtype))
            self.modules.append(ACTIVATIONS[activation]())
            if dropout:
                self.modules.append(DropoutModule(dropout, rng=rng))

    def forward(self, x):
        """
        Parameters
        ----------
        x : array_like of shape (N, n_inputs) or (N, C, H, W) with C*H*W == n_inputs

        Returns
        -------
        logits : ndarray of shape (N, n_classes), in the model's dtype
        """
        out = self._input_batch(x)
        for module in self.modules:
            out = module.forward(out)
        return out

    __call__ = forward

    def _input_batch(self, x):
        """The network's one gate: ``x`` flattened to (N, n_inputs) and cast to its dtype.

        Raises
        ------
        ValueError
            For non-numeric data, a wrong number of features per sample, or a
            batch of one sample for batch norm in training mode.
        """
        x = np.asarray(x)
        if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
            raise ValueError(f"the input must hold numbers, got dtype {x.dtype}")
        if x.ndim < 2:
            raise ValueError(f"the input must be a batch of shape (N, {self.n_inputs}) "
                             f"(or (N, C, H, W) images), got shape {x.shape}; wrap a single "
                             f"sample as x[np.newaxis]")
        x = x.reshape(len(x), -1)
        if x.shape[1] != self.n_inputs:
            raise ValueError(f"the input has {x.shape[1]} features per sample but this MLP "
                             f"was built with n_inputs={self.n_inputs}")
        if self.use_batch_norm and self.n_hidden and self.training and len(x) < 2:
            raise ValueError(f"batch norm needs at least 2 samples per batch in training "
                             f"mode, got input of shape {x.shape}; call eval() to predict "
                             f"single samples")
        return x.astype(self.dtype, copy=False)

    def backward(self, dout):
        """Backpropagate dL/dlogits through every module, storing parameter gradients.

        Parameters
        ----------
        dout : ndarray of shape (N, n_classes), the gradient of the loss
            with respect to the logits.
        """
        for module in reversed(self.modules):
            dout = module.backward(dout)

    def clear_cache(self):
        """Drop the arrays every module cached in the forward pass."""
        for module in self.modules:
            module.clear_cache()

    def train(self):
        """Put every module in training mode: batch statistics, random dropout masks."""
        self.training = True
        for module in self.modules:
            module.train()
        return self

    def eval(self):
        """Put every module in evaluation mode: running statistics, no dropout."""
        self.training = False
        for module in self.modules:
            module.eval()
        return self

    def parameters(self):
        """Return every ``(parameter, gradient)`` pair, in forward order.

        The parameters are the modules' own arrays, so an optimiser updates
        them in place with ``parameter -= lr * gradient``. A backward pass
        stores new gradient arrays, so fetch the pairs afresh after it.
        """
        return [(module.params[name], module.grads[name])
                for module in self.modules for name in module.params]

    def state_dict(self):
        """Return the parameters and buffers as a flat dict, ``'<module index>.<name>'`` -> array.

        Besides each module's ``params`` ('0.weight', '0.bias', ...) it holds
        each module's ``buffers``: a batch norm at index 1 adds '1.running_mean'
        and '1.running_var', so a loaded model evaluates exactly as the saved
        one. The values are the modules' own arrays, not copies. The keys are
        plain strings and the values plain arrays, so the dict saves with
        ``np.savez`` and loads without pickle.
        """
        return {f"{index}.{name}": value
                for index, module in enumerate(self.modules)
                for name, value in {**module.params, **module.buffers}.items()}

    def load_state_dict(self, state):
        """Copy parameters and buffers from a dict made by ``state_dict`` into this model.

        Raises
        ------
        ValueError
            If an entry is missing, unexpected, or of another shape, naming
            the saved shape and this model's.
        """
        own = self.state_dict()
        missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
        if missing or unexpected:
            raise ValueError(
                f"the saved state does not fit this architecture: missing {missing}, "
                f"unexpected {unexpected}; build the model with the hidden sizes and "
                f"use_batch_norm the file was saved with")
        for key, value in own.items():
            if np.shape(state[key]) != value.shape:
                raise ValueError(
                    f"{key} was saved with shape {np.shape(state[key])} but this model has "
                    f"shape {value.shape}; build the model with the hidden sizes the file "
                    f"was saved with")
        for key, value in own.items():
            value[...] = state[key]
