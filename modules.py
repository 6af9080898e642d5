"""NumPy layers with hand-written backward passes.

Every module follows one pattern (as in CS231n's layer code):

* ``forward(x)`` computes the output and caches what the backward pass needs;
* ``backward(dout)`` takes dL/d(output), consumes the cache, stores parameter
  gradients in ``grads`` and returns dL/d(input);
* ``clear_cache()`` drops the cached arrays.

Shapes: ``N`` is the batch size, ``D`` the number of input features, ``M`` the
number of output features and ``C`` the number of classes.

Every module keeps the floating dtype of its input: float64 in gives float64
out (the gradient checks need it), float32 in gives float32 out (training
speed). The derivation of each backward pass is written out in README.md.
"""
import numpy as np


def _check_floating(x, name):
    """Return ``x`` as an array, refusing integer or object data."""
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(
            f"{name} must be a floating-point array, got dtype {x.dtype}; "
            f"convert it with x.astype(np.float32) or np.float64 first")
    return x


def _check_batch(x, name, n_features=None):
    """Check that ``x`` is a floating (N, D) batch, with D == ``n_features`` if given."""
    x = _check_floating(x, name)
    if x.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D batch of shape (N, features), got shape "
            f"{x.shape}; flatten images with x.reshape(len(x), -1)")
    if n_features is not None and x.shape[1] != n_features:
        raise ValueError(
            f"{name} has {x.shape[1]} features per sample (shape {x.shape}) but "
            f"this layer expects {n_features}")
    return x


def _to_target_distribution(y, predictions):
    """Return integer labels ``(N,)`` or a target distribution ``(N, C)``.

    Integer labels are checked to lie in ``[0, C)``; a 2-D ``y`` (one-hot or
    soft targets) must have the shape of ``predictions`` and is converted to
    their dtype, so float32 predictions give a float32 loss whatever the
    targets' dtype (bool, int or float64).
    """
    n_samples, n_classes = predictions.shape
    y = np.asarray(y)
    if y.ndim == 2:
        if y.shape != (n_samples, n_classes):
            raise ValueError(
                f"one-hot targets must have shape (N, C) = ({n_samples}, "
                f"{n_classes}) like the predictions, got {y.shape}")
        return y.astype(predictions.dtype, copy=False)
    if y.ndim != 1:
        raise ValueError(
            f"labels must be integers of shape (N,) or one-hot of shape (N, C), "
            f"got shape {y.shape}")
    if len(y) != n_samples:
        raise ValueError(
            f"batch size mismatch: {n_samples} predictions but {len(y)} labels")
    if not np.issubdtype(y.dtype, np.integer):
        if not (np.issubdtype(y.dtype, np.floating) and np.all(y == np.round(y))):
            raise ValueError(
                f"labels must be integer class indices, got dtype {y.dtype}")
        y = y.astype(np.int64)
    if len(y) and (y.min() < 0 or y.max() >= n_classes):
        bad = y[(y < 0) | (y >= n_classes)][0]
        raise ValueError(
            f"label {bad} is out of range: labels must lie in [0, {n_classes}) "
            f"for {n_classes} classes")
    return y


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
        True for the first layer of a network. Its inputs are the raw data
        rather than activations, so its weights use Kaiming initialisation
        without the ReLU gain of 2: std = sqrt(1 / D) instead of sqrt(2 / D).
    dtype : numpy dtype
        Dtype of the parameters.
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
        if in_features < 1 or out_features < 1:
            raise ValueError(
                f"a linear layer needs at least one input and one output "
                f"feature, got in_features={in_features}, "
                f"out_features={out_features}")
        self.in_features = in_features
        self.out_features = out_features
        self.input_layer = input_layer
        rng = np.random if rng is None else rng
        gain = 1.0 if input_layer else 2.0
        std = np.sqrt(gain / in_features)
        weight = std * rng.standard_normal((out_features, in_features))
        # Stored column-major (order='F'): the weight is the transpose of a
        # row-major (in, out) array, so x W^T and x^T dout are plain row-major
        # products, which BLAS runs 10-25% faster for batch-sized matrices.
        # The shape is still (out_features, in_features).
        self.params = {
            'weight': np.asfortranarray(weight, dtype=dtype),
            'bias': np.zeros(out_features, dtype=dtype),
        }
        # zeros_like keeps the column-major layout of the weight.
        self.grads = {name: np.zeros_like(value) for name, value in self.params.items()}

    def forward(self, x):
        """Compute ``x W^T + b``.

        Parameters
        ----------
        x : ndarray of shape (N, D)

        Returns
        -------
        out : ndarray of shape (N, M), the dtype of ``x``
        """
        x = _check_batch(x, "input to LinearModule", self.in_features)
        weight = self.params['weight']
        out = x @ weight.T
        out += self.params['bias']
        self.cache = x
        return out.astype(x.dtype, copy=False)

    def backward(self, dout, compute_input_grad=True):
        """Gradients of ``out = x W^T + b``.

        dL/dW = dout^T x, dL/db = sum of dout over the batch, dL/dx = dout W.

        Parameters
        ----------
        dout : ndarray of shape (N, M)
            Upstream gradient dL/d(out).
        compute_input_grad : bool
            False skips dL/dx; a network passes False to its first layer, whose
            input is the data and needs no gradient (a third of that layer's
            backward work).

        Returns
        -------
        dx : ndarray of shape (N, D), or None when ``compute_input_grad`` is False
        """
        x = self._pop_cache()
        dout = _check_batch(dout, "gradient passed to LinearModule.backward",
                            self.out_features)
        if len(dout) != len(x):
            raise ValueError(
                f"batch size mismatch: forward saw {len(x)} samples, backward "
                f"got a gradient for {len(dout)}")
        # Written into the existing gradient arrays: no new allocation per step.
        # (dL/dW)^T = x^T dout fills the row-major transpose of the column-major
        # gradient array.
        np.matmul(x.T, dout, out=self.grads['weight'].T)
        np.sum(dout, axis=0, out=self.grads['bias'])
        if not compute_input_grad:
            return None
        return (dout @ self.params['weight']).astype(dout.dtype, copy=False)


class ReLUModule(Module):
    """Rectified linear unit ``max(0, x)``, elementwise."""

    def forward(self, x):
        """x: ndarray of any shape. Returns an array of the same shape and dtype."""
        x = _check_floating(x, "input to ReLUModule")
        self.cache = x > 0
        return np.maximum(x, 0)

    def backward(self, dout):
        """dL/dx = dout * 1[x > 0]."""
        positive = self._pop_cache()
        return dout * positive


class LeakyReLUModule(Module):
    """Leaky ReLU ``x`` for x > 0 and ``negative_slope * x`` otherwise."""

    def __init__(self, negative_slope=0.01):
        super().__init__()
        self.negative_slope = float(negative_slope)

    def forward(self, x):
        """x: ndarray of any shape. Returns an array of the same shape and dtype."""
        x = _check_floating(x, "input to LeakyReLUModule")
        positive = x > 0
        self.cache = positive
        return np.where(positive, x, self.negative_slope * x)

    def backward(self, dout):
        """dL/dx = dout * (1 if x > 0 else negative_slope)."""
        positive = self._pop_cache()
        return np.where(positive, dout, self.negative_slope * dout)


class ELUModule(Module):
    """Exponential linear unit ``x`` for x > 0 and ``alpha (e^x - 1)`` otherwise."""

    def __init__(self, alpha=1.0):
        super().__init__()
        self.alpha = float(alpha)

    def forward(self, x):
        """x: ndarray of any shape. Returns an array of the same shape and dtype."""
        x = _check_floating(x, "input to ELUModule")
        positive = x > 0
        # expm1 of min(x, 0): no overflow for large positive x, and accurate
        # for x near 0 where e^x - 1 would cancel.
        out = np.where(positive, x, self.alpha * np.expm1(np.minimum(x, 0)))
        self.cache = (positive, out)
        return out

    def backward(self, dout):
        """dL/dx = dout * (1 if x > 0 else alpha e^x).

        For x <= 0 the derivative alpha e^x equals out + alpha, so the cached
        output is reused instead of a second exponential.
        """
        positive, out = self._pop_cache()
        return dout * np.where(positive, 1, out + self.alpha)


class SigmoidModule(Module):
    """Logistic sigmoid ``1 / (1 + e^-x)``, elementwise."""

    def forward(self, x):
        """x: ndarray of any shape. Returns an array of the same shape and dtype."""
        x = _check_floating(x, "input to SigmoidModule")
        # sigma(x) = (1 + tanh(x / 2)) / 2: the same function, but tanh never
        # overflows, where e^-x does for x below about -709 (float64).
        out = 0.5 * (1 + np.tanh(0.5 * x))
        self.cache = out
        return out

    def backward(self, dout):
        """dL/dx = dout * sigma(x) (1 - sigma(x))."""
        out = self._pop_cache()
        return dout * out * (1 - out)


class TanhModule(Module):
    """Hyperbolic tangent, elementwise."""

    def forward(self, x):
        """x: ndarray of any shape. Returns an array of the same shape and dtype."""
        x = _check_floating(x, "input to TanhModule")
        out = np.tanh(x)
        self.cache = out
        return out

    def backward(self, dout):
        """dL/dx = dout * (1 - tanh(x)^2)."""
        out = self._pop_cache()
        return dout * (1 - out * out)


class BatchNormModule(Module):
    """Batch normalisation of each feature, ``weight * x_hat + bias``, as ``torch.nn.BatchNorm1d``.

    In training mode ``x_hat = (x - mean) / sqrt(var + eps)`` with the mean and
    the biased variance (divided by N) of the batch, and the running statistics
    are updated as ``running = (1 - momentum) * running + momentum * batch``,
    the variance in its unbiased form (divided by N - 1), as PyTorch does. In
    evaluation mode the running statistics take the place of the batch's, so
    the layer is a fixed affine map of each feature.

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
        if num_features < 1:
            raise ValueError(
                f"batch norm needs at least one feature, got "
                f"num_features={num_features}")
        self.num_features = num_features
        self.eps = float(eps)
        self.momentum = float(momentum)
        self.params = {
            'weight': np.ones(num_features, dtype=dtype),
            'bias': np.zeros(num_features, dtype=dtype),
        }
        self.grads = {name: np.zeros_like(value) for name, value in self.params.items()}
        self.buffers = {
            'running_mean': np.zeros(num_features, dtype=dtype),
            'running_var': np.ones(num_features, dtype=dtype),
        }

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
        out : ndarray of shape (N, D), the dtype of ``x``
        """
        x = _check_batch(x, "input to BatchNormModule", self.num_features)
        if self.training:
            if len(x) < 2:
                raise ValueError(
                    f"Expected more than 1 value per channel when training, got "
                    f"input of shape {x.shape}; batch norm needs at least 2 "
                    f"samples per batch in training mode (call eval() to "
                    f"predict single samples)")
            mean = x.mean(axis=0)
            centered = x - mean
            var = np.mean(centered * centered, axis=0)
            n_samples = len(x)
            # In place, so the arrays in ``buffers`` (and a state_dict of them) stay the same.
            running_mean, running_var = self.running_mean, self.running_var
            running_mean *= 1 - self.momentum
            running_mean += self.momentum * mean
            running_var *= 1 - self.momentum
            running_var += self.momentum * var * (n_samples / (n_samples - 1))
        else:
            centered = x - self.running_mean.astype(x.dtype, copy=False)
            var = self.running_var.astype(x.dtype, copy=False)
        inv_std = 1 / np.sqrt(var + self.eps)
        x_hat = centered * inv_std
        out = x_hat * self.params['weight'].astype(x.dtype, copy=False)
        out += self.params['bias'].astype(x.dtype, copy=False)
        self.cache = (x_hat, inv_std, self.training)
        return out

    def backward(self, dout):
        """Gradients of batch norm, in the mode the forward pass ran in.

        Per feature, with gamma = weight, beta = bias, s = 1 / sqrt(var + eps)
        and xhat_n = (x_n - mean) s, out_n = gamma xhat_n + beta, so

            dL/dbeta = sum_n dout_n,   dL/dgamma = sum_n dout_n xhat_n,
            dL/dxhat_n = gamma dout_n.

        Evaluation mode: mean and var are constants, so dL/dx_n = gamma s dout_n.

        Training mode: mean and var depend on every x_n of the batch. With
        dmean/dx_n = 1/N and dvar/dx_n = (2/N)(x_n - mean),
        ds/dx_n = -(s^3 / N)(x_n - mean), hence

            dxhat_m/dx_n = s (delta_mn - 1/N) - (x_m - mean)(s^3 / N)(x_n - mean)
                         = (s / N) (N delta_mn - 1 - xhat_m xhat_n),

            dL/dx_n = sum_m dL/dxhat_m dxhat_m/dx_n
                    = (s / N) (N dxhat_n - sum_m dxhat_m - xhat_n sum_m dxhat_m xhat_m).

        Since sum_m dxhat_m = gamma dL/dbeta and sum_m dxhat_m xhat_m =
        gamma dL/dgamma, this is (gamma s / N)(N dout_n - dL/dbeta - xhat_n dL/dgamma),
        which reuses the two sums already computed for the parameters.

        Parameters
        ----------
        dout : ndarray of shape (N, D)
            Upstream gradient dL/d(out).

        Returns
        -------
        dx : ndarray of shape (N, D), the dtype of ``dout``
        """
        x_hat, inv_std, training = self._pop_cache()
        dout = _check_floating(dout, "gradient passed to BatchNormModule.backward")
        if dout.shape != x_hat.shape:
            raise ValueError(
                f"BatchNormModule.backward expected a gradient of shape "
                f"{x_hat.shape}, like the output of its forward pass, got "
                f"{dout.shape}")
        dbias = dout.sum(axis=0)
        dweight = np.sum(dout * x_hat, axis=0)
        # Written into the existing gradient arrays: no new allocation per step.
        self.grads['bias'][...] = dbias
        self.grads['weight'][...] = dweight
        scale = self.params['weight'].astype(dout.dtype, copy=False) * inv_std
        if not training:
            dx = dout * scale
        else:
            n_samples = len(dout)
            dx = (scale / n_samples) * (n_samples * dout - dbias - x_hat * dweight)
        return dx.astype(dout.dtype, copy=False)


class DropoutModule(Module):
    """Inverted dropout: zero each unit with probability ``p`` in training mode.

    Kept units are scaled by 1 / (1 - p), so every unit's expected output
    equals its input and evaluation mode, the identity, needs no rescaling.

    Parameters
    ----------
    p : float
        Probability of dropping a unit, in [0, 1).
    rng : numpy.random.Generator, optional
        Source of the masks; the global ``np.random`` state when None, so
        ``np.random.seed`` makes the masks reproducible.
    """

    def __init__(self, p=0.5, rng=None):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(
                f"the dropout probability p must lie in [0, 1), got {p}")
        self.p = p
        self.rng = np.random if rng is None else rng

    def forward(self, x):
        """x: ndarray of any shape. Returns an array of the same shape and dtype.

        Training mode returns ``x * mask`` with mask entries 0 (probability p)
        or 1 / (1 - p); evaluation mode returns ``x`` itself.
        """
        x = _check_floating(x, "input to DropoutModule")
        if not self.training:
            # The identity: backward multiplies by this factor of one.
            self.cache = 1.0
            return x
        mask = (self.rng.random(x.shape) >= self.p).astype(x.dtype)
        mask *= 1 / (1 - self.p)
        self.cache = mask
        return x * mask

    def backward(self, dout):
        """dL/dx = dout * mask, with the mask of the forward pass (dout in evaluation mode)."""
        mask = self._pop_cache()
        return dout * mask


def softmax(x):
    """Row-wise softmax of logits ``x`` (N, C), stable for any finite input.

    Subtracting the row maximum leaves the result unchanged (softmax is
    invariant to adding a constant to every logit) and makes every exponent
    at most 0, so e^x cannot overflow.
    """
    shifted = x - x.max(axis=1, keepdims=True)
    np.exp(shifted, out=shifted)
    shifted /= shifted.sum(axis=1, keepdims=True)
    return shifted


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
        x = _check_batch(x, "input to SoftMaxModule")
        out = softmax(x)
        self.cache = out
        return out

    def backward(self, dout):
        """Vector-Jacobian product of the softmax.

        With s = softmax(x), ds_i/dx_j = s_i (delta_ij - s_j), so
        dL/dx_j = sum_i dout_i s_i (delta_ij - s_j) = s_j (dout_j - sum_i dout_i s_i).
        """
        out = self._pop_cache()
        return out * (dout - np.sum(dout * out, axis=1, keepdims=True))


class CrossEntropyModule(Module):
    """Mean cross-entropy of predicted class probabilities against targets.

    L = -(1/N) sum_n sum_c T_nc log(X_nc), with T one-hot (or soft) targets.
    Probabilities are clipped at the dtype's smallest positive normal number so
    a predicted 0 gives a large finite loss rather than infinity.
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
        x = _check_batch(x, "predicted probabilities")
        targets = _to_target_distribution(y, x)
        log_x = np.log(np.maximum(x, np.finfo(x.dtype).tiny))
        if targets.ndim == 1:
            return -np.mean(log_x[np.arange(len(x)), targets])
        return -np.sum(targets * log_x) / len(x)

    def backward(self, x, y):
        """dL/dX_nc = -T_nc / (N X_nc). Needs no forward pass before it.

        Returns
        -------
        dx : ndarray of shape (N, C)
        """
        x = _check_batch(x, "predicted probabilities")
        targets = _to_target_distribution(y, x)
        safe_x = np.maximum(x, np.finfo(x.dtype).tiny)
        if targets.ndim == 1:
            dx = np.zeros_like(x)
            rows = np.arange(len(x))
            dx[rows, targets] = -1 / (len(x) * safe_x[rows, targets])
            return dx
        return (-targets / (len(x) * safe_x)).astype(x.dtype, copy=False)


class SoftmaxCrossEntropyModule(Module):
    """Softmax followed by the mean cross-entropy, fused, on logits.

    L = -(1/N) sum_n log softmax(z_n)[y_n]. The fused backward is simply
    dL/dz = (softmax(z) - onehot(y)) / N: no division by a probability, so it is
    finite and exact for any finite logits (even +-1e4), and cheaper than the
    two separate backward passes.
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
        logits = _check_batch(logits, "logits")
        targets = _to_target_distribution(y, logits)
        # log softmax(z) = (z - max z) - log sum exp(z - max z)
        shifted = logits - logits.max(axis=1, keepdims=True)
        exp_shifted = np.exp(shifted)
        sum_exp = exp_shifted.sum(axis=1, keepdims=True)
        if targets.ndim == 1:
            true_class_logit = shifted[np.arange(len(logits)), targets]
            loss = np.mean(np.log(sum_exp[:, 0]) - true_class_logit)
        else:
            loss = -np.sum(targets * (shifted - np.log(sum_exp))) / len(logits)
        exp_shifted /= sum_exp
        self.cache = (exp_shifted, targets)
        return loss

    def backward(self):
        """dL/dz = (softmax(z) - onehot(y)) / N, from the cached forward pass.

        Returns
        -------
        dlogits : ndarray of shape (N, C)
        """
        probabilities, targets = self._pop_cache()
        # The cached probabilities are not needed again: update them in place.
        dlogits = probabilities
        if targets.ndim == 1:
            dlogits[np.arange(len(dlogits)), targets] -= 1
        else:
            dlogits -= targets
        dlogits /= len(dlogits)
        return dlogits


ACTIVATIONS = {
    'elu': ELUModule,
    'relu': ReLUModule,
    'leaky_relu': LeakyReLUModule,
    'sigmoid': SigmoidModule,
    'tanh': TanhModule,
}
"""Activation names accepted by both MLPs, mapped to the NumPy module classes."""
