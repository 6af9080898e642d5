"""A multi-layer perceptron built from the NumPy modules in ``modules.py``."""
import numpy as np

from modules import ACTIVATIONS, BatchNormModule, DropoutModule, LinearModule


def check_architecture(n_inputs, n_hidden, n_classes, activation, dropout):
    """Check the constructor arguments shared by both MLPs; return the layer widths.

    Returns
    -------
    widths : list of int
        ``[n_inputs, *n_hidden, n_classes]``.

    Raises
    ------
    ValueError
        For an unknown activation, a layer without units, or a dropout
        probability outside [0, 1).
    """
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)}")
    widths = [n_inputs, *n_hidden, n_classes]
    if any(width < 1 for width in widths):
        raise ValueError(
            f"every layer needs at least one unit, got n_inputs={n_inputs}, "
            f"n_hidden={list(n_hidden)}, n_classes={n_classes}")
    if not 0 <= dropout < 1:
        raise ValueError(f"the dropout probability must lie in [0, 1), got {dropout}")
    return widths


class MLP:
    """Linear -> [BatchNorm] -> activation -> [Dropout] -> ... -> Linear, returning logits.

    The softmax and the loss are not part of the network: training pairs the
    logits with ``modules.SoftmaxCrossEntropyModule``.

    Parameters
    ----------
    n_inputs : int
        Number of input features; image batches (N, C, H, W) are flattened.
    n_hidden : list of int
        Width of each hidden layer; an empty list gives multinomial logistic
        regression (a single linear layer).
    n_classes : int
        Number of classes, the width of the output.
    activation : str
        One of ``modules.ACTIVATIONS``: 'elu' (alpha 1, as ``torch.nn.ELU``),
        'relu', 'leaky_relu', 'sigmoid' or 'tanh'.
    dtype : numpy dtype
        Dtype of the parameters: float64 for gradient checks, float32 for fast
        training.
    rng : numpy.random.Generator, optional
        Source of the initial weights and of the dropout masks; the global
        ``np.random`` state when None.
    use_batch_norm : bool
        Put a ``BatchNormModule`` between each hidden linear layer and its
        activation, as the PyTorch MLP does.
    dropout : float
        Probability in [0, 1) of dropping a hidden unit: a ``DropoutModule``
        follows each hidden activation when it is above 0.

    Attributes
    ----------
    modules : list
        The modules in the order the forward pass applies them.
    """

    def __init__(self, n_inputs, n_hidden, n_classes, activation='elu',
                 dtype=np.float64, rng=None, use_batch_norm=False, dropout=0.0):
        widths = check_architecture(n_inputs, n_hidden, n_classes, activation, dropout)
        self.n_inputs = n_inputs
        self.n_hidden = list(n_hidden)
        self.n_classes = n_classes
        self.activation = activation
        self.dtype = np.dtype(dtype)
        self.use_batch_norm = use_batch_norm
        self.dropout = dropout
        self.modules = []
        for index, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
            self.modules.append(LinearModule(
                fan_in, fan_out, input_layer=(index == 0), dtype=dtype, rng=rng))
            if index < len(widths) - 2:
                if use_batch_norm:
                    self.modules.append(BatchNormModule(fan_out, dtype=dtype))
                self.modules.append(ACTIVATIONS[activation]())
                if dropout > 0:
                    self.modules.append(DropoutModule(dropout, rng=rng))

    def forward(self, x):
        """
        Parameters
        ----------
        x : ndarray of shape (N, n_inputs) or (N, C, H, W) with C*H*W == n_inputs

        Returns
        -------
        logits : ndarray of shape (N, n_classes)
        """
        out = np.asarray(x).reshape(len(x), -1)
        for module in self.modules:
            out = module.forward(out)
        return out

    __call__ = forward

    def backward(self, dout):
        """Backpropagate dL/dlogits through every module, storing parameter gradients.

        Parameters
        ----------
        dout : ndarray of shape (N, n_classes), the gradient of the loss
            with respect to the logits.
        """
        for module in reversed(self.modules[1:]):
            dout = module.backward(dout)
        # The first layer's input is the data: its gradient is never needed.
        self.modules[0].backward(dout, compute_input_grad=False)

    def clear_cache(self):
        """Drop the arrays every module cached in the forward pass."""
        for module in self.modules:
            module.clear_cache()

    def train(self):
        """Put every module in training mode: batch statistics, random dropout masks."""
        for module in self.modules:
            module.train()
        return self

    def eval(self):
        """Put every module in evaluation mode: running statistics, no dropout."""
        for module in self.modules:
            module.eval()
        return self

    def parameters(self):
        """Return every ``(parameter, gradient)`` pair, in forward order.

        The arrays are the modules' own, so an optimiser updates a parameter
        in place with ``parameter -= lr * gradient``.
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
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        if missing or unexpected:
            raise ValueError(
                f"the saved state does not fit this architecture: missing "
                f"{missing}, unexpected {unexpected}; build the model with the "
                f"hidden sizes and use_batch_norm the file was saved with")
        for key, value in own.items():
            if state[key].shape != value.shape:
                raise ValueError(
                    f"{key} was saved with shape {state[key].shape} but this "
                    f"model has shape {value.shape}; build the model with the "
                    f"hidden sizes the file was saved with")
        for key, value in own.items():
            value[...] = state[key]
