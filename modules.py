"""NumPy layers with hand-written backward passes.

Every module follows one pattern (as in CS231n's layer code):

* ``forward(x)`` computes the output and caches what the backward pass needs;
* ``backward(dout)`` takes dL/d(output), consumes the cache, stores parameter
  gradients in ``grads`` and returns dL/d(input);
* ``clear_cache()`` drops the cached arrays.

Shapes: ``N`` is the batch size, ``D`` the number of input features, ``M`` the
number of output features and ``C`` the number of classes.

The bodies of ``forward`` and ``backward`` are the formulas derived in
docs/derivations.md and nothing else. Inputs are checked once, where they enter: the MLP
checks its input batch (``mlp_numpy.MLP.forward``) and the losses check their
labels or targets (``as_target_distribution``, ``as_regression_targets``). No
module casts: by NumPy's own rules a float32 input gives a float32 output, and
an MLP makes its parameters in the dtype it casts its input to, so a network
keeps one dtype throughout.
"""
import numpy as np


class Module:
    """Base class: no parameters, a cache, and a training/evaluation switch.

    Attributes
    ----------
    params : dict
        Learned arrays, updated by an optimiser.
    grads : dict
        Gradients of the loss with the same keys and shapes as ``params``.
    buffers : dict
        Arrays that are state but not learned by gradient descent (the running
        statistics of batch norm), saved with the parameters like PyTorch's
        buffers.
    training : bool
        True in training mode, False in evaluation mode.
    """

    def __init__(self):
        self.params = {}
        self.grads = {}
        self.buffers = {}
        self.training = True
        self.cache = None

    def clear_cache(self):
        """Drop every array cached by ``forward``."""
        self.cache = None

    def train(self):
        """Switch to training mode (matters for batch norm and dropout)."""
        self.training = True
        return self

    def eval(self):
        """Switch to evaluation mode (matters for batch norm and dropout)."""
        self.training = False
        return self

    def _pop_cache(self):
        """Hand the backward pass what ``forward`` cached, and forget it."""
        if self.cache is None:
            raise RuntimeError(
                f"{type(self).__name__}.backward was called without a forward "
                f"pass before it (or after clear_cache); call forward first")
        cache, self.cache = self.cache, None
        return cache


class LinearModule(Module):
    """Fully connected layer ``out = x W^T + b``.

    Parameters
    ----------
    in_features : int
        Size D of each input sample.
    out_features : int
        Size M of each output sample.
    input_layer : bool
        True for the first layer of a network, whose input is the data rather
        than the output of an activation. Two things follow. Its weights use
        Kaiming initialisation without the ReLU gain of 2 (std sqrt(1 / D)
        instead of sqrt(2 / D)). And nothing upstream needs dL/dx, so
        ``backward`` skips that product (a third of the layer's backward work)
        and returns None.
    dtype : numpy dtype
        Dtype of the parameters; float64 by default, as the gradient checks need.
    rng : numpy.random.Generator, optional
        Source of the initial weights; the global ``np.random`` state when None,
        so ``np.random.seed`` makes a model reproducible.

    Attributes
    ----------
    params : dict
        ``'weight'`` of shape (M, D), as ``torch.nn.Linear``, and ``'bias'`` (M,).
    grads : dict
        Gradients of the loss with the same keys and shapes.
    """

    def __init__(self, in_features, out_features, input_layer=False,
                 dtype=np.float64, rng=None):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.input_layer = input_layer
        rng = np.random if rng is None else rng
        gain = 1.0 if input_layer else 2.0
        weight = np.sqrt(gain / in_features) * rng.standard_normal((out_features, in_features))
        self.params = {'weight': weight.astype(dtype),
                       'bias': np.zeros(out_features, dtype=dtype)}
        self.grads = {name: np.zeros_like(value) for name, value in self.params.items()}

    def forward(self, x):
        """Compute ``x W^T + b``.

        Parameters
        ----------
        x : ndarray of shape (N, D)

        Returns
        -------
        out : ndarray of shape (N, M)
        """
        self.cache = x
        return x @ self.params['weight'].T + self.params['bias']

    def backward(self, dout):
        """Gradients of ``out = x W^T + b``.

        Parameters
        ----------
        dout : ndarray of shape (N, M)
            Upstream gradient dL/d(out).

        Returns
        -------
        dx : ndarray of shape (N, D), or None for an input layer

        Derivation: docs/derivations.md#linear
        """
        x = self._pop_cache()
        self.grads['weight'] = dout.T @ x        # dL/dW = dout^T x
        self.grads['bias'] = dout.sum(axis=0)    # dL/db = dout^T 1
        if self.input_layer:
            return None                          # the data needs no gradient
        return dout @ self.params['weight']      # dL/dx = dout W


class ReLUModule(Module):
    """Rectified linear unit ``max(0, x)``, elementwise."""

    def forward(self, x):
        """x: ndarray of any shape. Returns an array of the same shape."""
        self.cache = x > 0
        return np.maximum(x, 0)

    def backward(self, dout):
        """dL/dx = dout * 1[x > 0].

        Derivation: docs/derivations.md#elementwise-activations
        """
        positive = self._pop_cache()
        return dout * positive


class LeakyReLUModule(Module):
    """Leaky ReLU ``x`` for x > 0 and ``negative_slope * x`` otherwise."""

    def __init__(self, negative_slope=0.01):
        super().__init__()
        # A Python float: a NumPy float64 scalar would promote float32 data.
        self.negative_slope = float(negative_slope)

    def forward(self, x):
        """x: ndarray of any shape. Returns an array of the same shape."""
        positive = x > 0
        self.cache = positive
        return np.where(positive, x, self.negative_slope * x)

    def backward(self, dout):
        """dL/dx = dout * (1 if x > 0 else negative_slope).

        Derivation: docs/derivations.md#elementwise-activations
        """
        positive = self._pop_cache()
        return np.where(positive, dout, self.negative_slope * dout)


class ELUModule(Module):
    """Exponential linear unit ``x`` for x > 0 and ``alpha (e^x - 1)`` otherwise."""

    def __init__(self, alpha=1.0):
        super().__init__()
        # A Python float: a NumPy float64 scalar would promote float32 data.
        self.alpha = float(alpha)

    def forward(self, x):
        """x: ndarray of any shape. Returns an array of the same shape."""
        positive = x > 0
        # expm1 of min(x, 0): e^x - 1 without overflow for large positive x
        # (np.where evaluates both branches) and without cancellation near 0.
        out = np.where(positive, x, self.alpha * np.expm1(np.minimum(x, 0)))
        self.cache = (positive, out)
        return out

    def backward(self, dout):
        """dL/dx = dout * (1 if x > 0 else alpha e^x).

        For x <= 0 the derivative alpha e^x equals out + alpha, so the cached
        output is reused instead of a second exponential.

        Derivation: docs/derivations.md#elementwise-activations
        """
        positive, out = self._pop_cache()
        return dout * np.where(positive, 1, out + self.alpha)


class SigmoidModule(Module):
    """Logistic sigmoid ``1 / (1 + e^-x)``, elementwise."""

    def forward(self, x):
        """x: ndarray of any shape. Returns an array of the same shape."""
        # sigma(x) = (1 + tanh(x / 2)) / 2: the same function, but tanh never
        # overflows, where e^-x does for x below about -709 (float64).
        out = 0.5 * (1 + np.tanh(0.5 * x))
        self.cache = out
        return out

    def backward(self, dout):
        """dL/dx = dout * sigma(x) (1 - sigma(x)).

        Derivation: docs/derivations.md#elementwise-activations
        """
        out = self._pop_cache()
        return dout * out * (1 - out)


class TanhModule(Module):
    """Hyperbolic tangent, elementwise."""

    def forward(self, x):
        """x: ndarray of any shape. Returns an array of the same shape."""
        out = np.tanh(x)
        self.cache = out
        return out

    def backward(self, dout):
        """dL/dx = dout * (1 - tanh(x)^2).

        Derivation: docs/derivations.md#elementwise-activations
        """
        out = self._pop_cache()
        return dout * (1 - out * out)


class BatchNormModule(Module):
    """Batch normalisation of each feature, ``weight * x_hat + bias``, as ``torch.nn.BatchNorm1d``.

    In training mode ``x_hat = (x - mean) / sqrt(var + eps)`` with the mean and
    the biased variance (divided by N) of the batch, which needs N > 1, and the
    running statistics are updated as ``running = (1 - momentum) * running +
    momentum * batch``, the variance in its unbiased form (divided by N - 1), as
    PyTorch does. In evaluation mode the running statistics take the place of
    the batch's, so the layer is a fixed affine map of each feature.

    Parameters
    ----------
    num_features : int
        Number D of features of each input sample.
    eps : float
        Added to the variance before the square root.
    momentum : float
        Weight of the current batch in the running statistics.
    dtype : numpy dtype
        Dtype of the parameters and the running statistics.

    Attributes
    ----------
    params : dict
        ``'weight'`` (D,), initially ones, and ``'bias'`` (D,), initially zeros.
    grads : dict
        Gradients of the loss with the same keys and shapes.
    buffers : dict
        ``'running_mean'`` (D,), initially zeros, and ``'running_var'`` (D,),
        initially ones; also reachable as the attributes ``running_mean`` and
        ``running_var``.
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1, dtype=np.float64):
        super().__init__()
        self.num_features = num_features
        self.eps = float(eps)
        self.momentum = float(momentum)
        self.params = {'weight': np.ones(num_features, dtype=dtype),
                       'bias': np.zeros(num_features, dtype=dtype)}
        self.grads = {name: np.zeros_like(value) for name, value in self.params.items()}
        self.buffers = {'running_mean': np.zeros(num_features, dtype=dtype),
                        'running_var': np.ones(num_features, dtype=dtype)}

    @property
    def running_mean(self):
        """ndarray of shape (D,): the running mean, ``buffers['running_mean']``."""
        return self.buffers['running_mean']

    @property
    def running_var(self):
        """ndarray of shape (D,): the running unbiased variance, ``buffers['running_var']``."""
        return self.buffers['running_var']

    def forward(self, x):
        """Normalise each feature, then scale by ``weight`` and shift by ``bias``.

        Parameters
        ----------
        x : ndarray of shape (N, D), with N > 1 in training mode

        Returns
        -------
        out : ndarray of shape (N, D)
        """
        if self.training:
            mean = x.mean(axis=0)
            var = x.var(axis=0)
            self._update_running_statistics(mean, var, len(x))
        else:
            mean, var = self.running_mean, self.running_var
        inv_std = 1 / np.sqrt(var + self.eps)
        x_hat = (x - mean) * inv_std
        self.cache = (x_hat, inv_std, self.training)
        return self.params['weight'] * x_hat + self.params['bias']

    def _update_running_statistics(self, mean, var, n_samples):
        """running = (1 - momentum) running + momentum batch, with the unbiased variance.

        In place, so the arrays in ``buffers`` (and a state_dict of them) stay the same.
        """
        self.running_mean[...] = (1 - self.momentum) * self.running_mean + self.momentum * mean
        unbiased_var = var * (n_samples / (n_samples - 1))
        self.running_var[...] = ((1 - self.momentum) * self.running_var
                                 + self.momentum * unbiased_var)

    def backward(self, dout):
        """Gradients of batch norm, in the mode the forward pass ran in.

        Per feature, with gamma = weight, beta = bias, s = 1 / sqrt(var + eps)
        and xhat_n = (x_n - mean) s, out_n = gamma xhat_n + beta, so

            dL/dbeta = sum_n dout_n,   dL/dgamma = sum_n dout_n xhat_n.

        Evaluation mode: mean and var are constants, so dL/dx_n = gamma s dout_n.
        Training mode: mean and var depend on every x_n of the batch, and (see
        docs/derivations.md for the derivation)

            dL/dx_n = (gamma s / N) (N dout_n - dL/dbeta - xhat_n dL/dgamma).

        Parameters
        ----------
        dout : ndarray of shape (N, D)
            Upstream gradient dL/d(out).

        Returns
        -------
        dx : ndarray of shape (N, D)

        Derivation: docs/derivations.md#batch-normalisation
        """
        x_hat, inv_std, training = self._pop_cache()
        self.grads['bias'] = dout.sum(axis=0)
        self.grads['weight'] = (dout * x_hat).sum(axis=0)
        scale = self.params['weight'] * inv_std
        if not training:
            return dout * scale
        n_samples = len(dout)
        return (scale / n_samples) * (n_samples * dout - self.grads['bias']
                                      - x_hat * self.grads['weight'])


EVALUATION_MODE = 'evaluation mode'
"""What ``DropoutModule`` caches for a forward pass in evaluation mode: no mask."""


class DropoutModule(Module):
    """Inverted dropout: zero each unit with probability ``p`` in training mode.

    Kept units are scaled by 1 / (1 - p), so every unit's expected output
    equals its input and evaluation mode, the identity, needs no rescaling.

    Parameters
    ----------
    p : float
        Probability of dropping a unit, in [0, 1) (the training scripts check
        it, in ``lab.settings``).
    rng : numpy.random.Generator, optional
        Source of the masks; the global ``np.random`` state when None, so
        ``np.random.seed`` makes the masks reproducible.
    """

    def __init__(self, p=0.5, rng=None):
        super().__init__()
        self.p = float(p)
        self.rng = np.random if rng is None else rng

    def forward(self, x):
        """x: ndarray of any shape. Returns an array of the same shape.

        Training mode returns ``x * keep / (1 - p)`` with a fresh mask ``keep``
        of ones (probability 1 - p) and zeros; evaluation mode returns ``x`` itself.
        """
        if not self.training:
            self.cache = EVALUATION_MODE
            return x
        keep = self.rng.random(x.shape) >= self.p
        self.cache = keep
        return x * keep / (1 - self.p)

    def backward(self, dout):
        """dL/dx = dout * keep / (1 - p), with the mask of the forward pass; in evaluation
        mode, dout itself.

        Derivation: docs/derivations.md#dropout
        """
        keep = self._pop_cache()
        if keep is EVALUATION_MODE:
            return dout
        return dout * keep / (1 - self.p)


class SoftMaxModule(Module):
    """Softmax over the classes of each sample: ``exp(x_i) / sum_j exp(x_j)``."""

    def forward(self, x):
        """
        Parameters
        ----------
        x : ndarray of shape (N, C), logits

        Returns
        -------
        out : ndarray of shape (N, C), rows summing to 1
        """
        # Subtracting each row's maximum leaves the softmax unchanged and keeps
        # every exponent at most 0, so e^x cannot overflow.
        exp = np.exp(x - x.max(axis=1, keepdims=True))
        out = exp / exp.sum(axis=1, keepdims=True)
        self.cache = out
        return out

    def backward(self, dout):
        """Vector-Jacobian product of the softmax.

        With s = softmax(x), ds_i/dx_j = s_i (delta_ij - s_j), so
        dL/dx_j = sum_i dout_i s_i (delta_ij - s_j) = s_j (dout_j - sum_i dout_i s_i).

        Derivation: docs/derivations.md#softmax
        """
        out = self._pop_cache()
        return out * (dout - (dout * out).sum(axis=1, keepdims=True))


def as_target_distribution(y, predictions):
    """Check labels against ``predictions`` (N, C) and return them as targets T (N, C).

    This is where a loss's inputs are validated, once. Integer labels (N,) in
    [0, C) become one-hot rows; a 2-D ``y`` (one-hot or soft targets) must have
    the shape of ``predictions``. T takes the predictions' dtype, so float32
    predictions give a float32 loss whatever the targets' dtype.

    Raises
    ------
    ValueError
        For a shape that fits neither form, labels that are not whole numbers,
        or a label outside [0, C), naming the offending value.
    """
    predictions = np.asarray(predictions)
    if predictions.ndim != 2:
        raise ValueError(f"predictions must have shape (N, C), got {predictions.shape}")
    n_samples, n_classes = predictions.shape
    y = np.asarray(y)
    if y.ndim == 2:
        if y.shape != predictions.shape:
            raise ValueError(f"one-hot targets must have shape (N, C) = ({n_samples}, "
                             f"{n_classes}) like the predictions, got {y.shape}")
        return y.astype(predictions.dtype)
    if y.ndim != 1:
        raise ValueError(f"labels must be integers of shape (N,) or one-hot of shape "
                         f"(N, C), got shape {y.shape}")
    if len(y) != n_samples:
        raise ValueError(f"batch size mismatch: {n_samples} predictions but {len(y)} labels")
    if not np.issubdtype(y.dtype, np.integer) and not np.all(y == np.round(y)):
        raise ValueError(f"labels must be integer class indices, got dtype {y.dtype}")
    out_of_range = (y < 0) | (y >= n_classes)
    if out_of_range.any():
        raise ValueError(f"label {y[out_of_range][0]} is out of range: labels must "
                         f"lie in [0, {n_classes}) for {n_classes} classes")
    targets = np.zeros(predictions.shape, dtype=predictions.dtype)
    targets[np.arange(n_samples), y.astype(np.intp)] = 1
    return targets


class CrossEntropyModule(Module):
    """Mean cross-entropy of predicted class probabilities against targets.

    L = -(1/N) sum_n sum_c T_nc log(X_nc), with T one-hot (or soft) targets.
    Probabilities are clipped at the dtype's smallest positive normal number,
    so a predicted 0 gives a large finite loss rather than infinity.
    """

    def forward(self, x, y):
        """
        Parameters
        ----------
        x : ndarray of shape (N, C), class probabilities
        y : ndarray of shape (N,) with integer labels in [0, C), or (N, C) one-hot

        Returns
        -------
        loss : float, the mean over the batch
        """
        targets = as_target_distribution(y, x)
        return -np.sum(targets * np.log(np.maximum(x, np.finfo(x.dtype).tiny))) / len(x)

    def backward(self, x, y):
        """dL/dX_nc = -T_nc / (N X_nc). Needs no forward pass before it.

        Returns
        -------
        dx : ndarray of shape (N, C)

        Derivation: docs/derivations.md#cross-entropy
        """
        targets = as_target_distribution(y, x)
        return -targets / (len(x) * np.maximum(x, np.finfo(x.dtype).tiny))


class SoftmaxCrossEntropyModule(Module):
    """Softmax followed by the mean cross-entropy, fused, on logits.

    L = -(1/N) sum_n sum_c T_nc log softmax(z_n)_c. The fused backward is
    simply dL/dz = (softmax(z) - T) / N: no division by a probability, so it
    is finite and exact for any finite logits (even +-1e4), and cheaper than
    the two separate backward passes.
    """

    def forward(self, logits, y):
        """
        Parameters
        ----------
        logits : ndarray of shape (N, C)
        y : ndarray of shape (N,) with integer labels, or (N, C) one-hot

        Returns
        -------
        loss : float, the mean over the batch
        """
        targets = as_target_distribution(y, logits)
        # log softmax(z) = (z - max z) - log sum exp(z - max z)
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_probabilities = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        self.cache = (np.exp(log_probabilities), targets)
        return -np.sum(targets * log_probabilities) / len(logits)

    def backward(self):
        """dL/dz = (softmax(z) - T) / N, from the cached forward pass.

        Returns
        -------
        dlogits : ndarray of shape (N, C)

        Derivation: docs/derivations.md#softmax-and-cross-entropy-fused
        """
        probabilities, targets = self._pop_cache()
        return (probabilities - targets) / len(probabilities)


def as_regression_targets(y, predictions):
    """Check regression targets against ``predictions`` and return them in its dtype.

    This is where the mean squared error's inputs are validated, once. The
    targets must have exactly the predictions' shape: broadcasting targets of
    shape (N,) against predictions of shape (N, 1) would silently compare
    every prediction with every target. They take the predictions' dtype, so
    float32 predictions give a float32 loss whatever the targets' dtype.

    Raises
    ------
    ValueError
        For an empty batch, targets that are not numbers, or targets of
        another shape, naming both shapes.
    """
    predictions, y = np.asarray(predictions), np.asarray(y)
    if predictions.size == 0:
        raise ValueError(f"the mean squared error of an empty batch is undefined, got "
                         f"predictions of shape {predictions.shape}")
    if not (np.issubdtype(y.dtype, np.floating) or np.issubdtype(y.dtype, np.integer)):
        raise ValueError(f"regression targets must be numbers, got dtype {y.dtype}")
    if y.shape != predictions.shape:
        raise ValueError(f"targets of shape {y.shape} do not match predictions of shape "
                         f"{predictions.shape}: the mean squared error compares them element "
                         f"by element; reshape the targets to {predictions.shape}")
    return y.astype(predictions.dtype, copy=False)


class MSEModule(Module):
    """Mean squared error between predictions and targets of the same shape.

    L = (1/S) sum_i (X_i - Y_i)^2 over every element i, with S = X.size the
    number of elements (N D for predictions of shape (N, D)), as
    ``torch.nn.MSELoss()`` computes it. Paired with an MLP, whose last layer is
    linear, it makes the network a regression model with ``n_classes`` outputs.
    """

    def forward(self, x, y):
        """
        Parameters
        ----------
        x : ndarray of any shape, predictions
        y : ndarray of the shape of ``x``, targets

        Returns
        -------
        loss : float, the mean over every element
        """
        targets = as_regression_targets(y, x)
        return np.mean((x - targets) ** 2)

    def backward(self, x, y):
        """dL/dX_i = 2 (X_i - Y_i) / S. Needs no forward pass before it.

        Returns
        -------
        dx : ndarray of the shape of ``x``

        Derivation: docs/derivations.md#mean-squared-error
        """
        targets = as_regression_targets(y, x)
        return 2 * (x - targets) / x.size


ACTIVATIONS = {
    'elu': ELUModule,
    'relu': ReLUModule,
    'leaky_relu': LeakyReLUModule,
    'sigmoid': SigmoidModule,
    'tanh': TanhModule,
}
"""Activation names accepted by the NumPy MLP, mapped to their module classes."""
