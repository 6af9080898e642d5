"""Optimisers and learning-rate schedules for the NumPy MLP.

Everything here mirrors its PyTorch counterpart exactly, so the NumPy and the
PyTorch training scripts can be compared run for run:

==========================  ==========================================
this module                 PyTorch
==========================  ==========================================
``SGD``                     ``torch.optim.SGD`` (dampening 0)
``Adam``                    ``torch.optim.Adam`` (L2 decay, not AdamW)
``StepLR``                  ``torch.optim.lr_scheduler.StepLR``
``CosineAnnealingLR``       ``torch.optim.lr_scheduler.CosineAnnealingLR``
==========================  ==========================================

An optimiser works on any model whose ``parameters()`` returns a list, always
in the same order, of ``(param, grad)`` pairs of NumPy arrays. ``param`` is
updated in place (``param -= ...``), so the layer holding it sees the new
values; ``grad`` is only read. The list is fetched afresh at every ``step()``
because a layer may rebind its gradient arrays in ``backward``.

All optimiser state lives in arrays of the parameter's own dtype, so float32
training stays float32. ``state_dict()`` returns only NumPy arrays and plain
numbers under flat string keys, so a checkpoint can be written with
``np.savez`` and read back with ``np.load`` without pickle.

Typical use::

    optimizer = make_optimizer('sgd', model, lr=0.1, momentum=0.9)
    scheduler = make_scheduler('cosine', optimizer, epochs)
    for epoch in range(epochs):
        for x, y in train_loader:
            ...                      # forward, loss, model.backward(dout)
            optimizer.step()
        if scheduler is not None:
            scheduler.step()
"""
import math

import numpy as np


# ---------------------------------------------------------------------------
# Optimisers
# ---------------------------------------------------------------------------

class Optimizer:
    """Common parts of the optimisers: parameter iteration, L2 weight decay,
    per-parameter state and its (de)serialisation.

    A subclass names its per-parameter state arrays in ``state_names`` and
    writes the update of one parameter in ``_update``.

    Parameters
    ----------
    model : object
        Has ``parameters()`` returning a list of ``(param, grad)`` arrays.
    lr : float
        Learning rate, > 0. Stored as the attribute ``lr``, which a scheduler
        may overwrite between steps.
    weight_decay : float
        L2 penalty coefficient ``lambda`` >= 0: the gradient used is
        ``g = grad + lambda * param``, as in ``torch.optim``.
    state_names : tuple of str
        Names of the per-parameter state arrays, e.g. ``('exp_avg',)``.
        Each starts as zeros of the parameter's shape and dtype.

    Attributes
    ----------
    lr : float
    weight_decay : float
    step_count : int
        Number of ``step()`` calls so far (``t`` in the update rules).
    state : list of dict
        ``state[i][name]`` is the state array ``name`` of parameter ``i``.
    """

    def __init__(self, model, lr, weight_decay, state_names):
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr!r}; "
                             "pass a positive learning rate such as 0.1 or 1e-3.")
        if not weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}; "
                             "use 0 for no decay.")
        self.model = model
        self.lr = lr
        self.weight_decay = weight_decay
        self.step_count = 0
        self.state = [{name: np.zeros_like(param) for name in state_names}
                      for param, _ in model.parameters()]

    def step(self):
        """Update every parameter of the model in place with its gradient."""
        self.step_count += 1
        for param, grad, state in self._parameters_with_state():
            if self.weight_decay != 0:
                # L2 penalty (lambda/2)||param||^2 folded into the gradient.
                # A new array: the model's own gradient is left untouched.
                grad = grad + self.weight_decay * param
            self._update(param, grad, state)

    def _update(self, param, grad, state):
        """Apply this optimiser's rule to one parameter, in place."""
        raise NotImplementedError

    def _parameters_with_state(self):
        """Yield ``(param, grad, state)`` for every parameter of the model,
        checking that the model still has the parameters it started with."""
        pairs = self.model.parameters()
        if len(pairs) != len(self.state):
            raise ValueError(
                f"the model now has {len(pairs)} parameters but had "
                f"{len(self.state)} when the optimiser was built; build a new "
                "optimiser after changing the model's layers.")
        for i, ((param, grad), state) in enumerate(zip(pairs, self.state)):
            if grad is None:
                raise ValueError(f"parameter {i} has no gradient; call "
                                 "model.backward(...) before optimizer.step().")
            if grad.shape != param.shape:
                raise ValueError(
                    f"parameter {i} has shape {param.shape} but its gradient "
                    f"has shape {grad.shape}; the layer's backward stored a "
                    "wrong gradient.")
            yield param, np.asarray(grad, dtype=param.dtype), state

    def state_dict(self):
        """Everything needed to resume: the learning rate, the step count and
        copies of the per-parameter state arrays.

        Returns
        -------
        dict
            ``{'lr': float, 'step': int, '<name>.<i>': ndarray, ...}`` where
            ``<i>`` is the parameter's position in ``model.parameters()``,
            e.g. ``'momentum_buffer.3'`` or ``'exp_avg.0'``. Only arrays and
            numbers, so ``np.savez(path, **optimizer.state_dict())`` needs no
            pickle. The other hyperparameters are not saved: pass the same
            constructor arguments when resuming.
        """
        state = {'lr': self.lr, 'step': self.step_count}
        for i, param_state in enumerate(self.state):
            for name, array in param_state.items():
                state[f'{name}.{i}'] = array.copy()
        return state

    def load_state_dict(self, state):
        """Restore what ``state_dict()`` returned (or ``np.load`` read back).

        The state arrays are copied into this optimiser's own arrays, so
        they keep the parameters' dtype.

        Raises
        ------
        ValueError
            If the keys are not exactly those this optimiser saves (the state
            came from another optimiser, or from one with or without
            momentum) or an array's shape does not match its parameter.
        """
        expected = set(self.state_dict())
        given = set(state.keys())
        if given != expected:
            raise ValueError(
                f"state does not fit this {type(self).__name__}: missing keys "
                f"{sorted(expected - given)}, unexpected keys "
                f"{sorted(given - expected)}; load a state saved by the same "
                "optimiser with the same settings on the same model.")
        for i, param_state in enumerate(self.state):
            for name, array in param_state.items():
                saved = np.asarray(state[f'{name}.{i}'])
                if saved.shape != array.shape:
                    raise ValueError(
                        f"'{name}.{i}' has shape {saved.shape} but parameter "
                        f"{i} has shape {array.shape}; the state was saved "
                        "for a model of another architecture.")
                array[...] = saved
        self.lr = float(state['lr'])
        self.step_count = int(state['step'])


class SGD(Optimizer):
    r"""Stochastic gradient descent with optional (Nesterov) momentum,
    identical to ``torch.optim.SGD`` with ``dampening=0``.

    With ``g_t`` the gradient (plus ``weight_decay * param``), ``mu`` the
    momentum and ``eta`` the learning rate, one step is::

        b_t = mu * b_{t-1} + g_t            (b_0 = 0, so b_1 = g_1)
        d_t = g_t + mu * b_t                if nesterov
              b_t                           if momentum > 0
              g_t                           if momentum == 0
        param <- param - eta * d_t

    Starting the buffer at zero gives exactly torch's "buffer initialised to
    the first gradient", since ``mu * 0 + g_1 == g_1``.

    Parameters
    ----------
    model : object
        Has ``parameters()`` returning ``(param, grad)`` pairs.
    lr : float
        Learning rate ``eta`` > 0.
    momentum : float, optional
        ``mu`` in [0, 1). 0 (default) is plain SGD and keeps no state.
    nesterov : bool, optional
        Nesterov momentum; needs ``momentum > 0``.
    weight_decay : float, optional
        L2 penalty coefficient >= 0.
    """

    def __init__(self, model, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}; "
                             "0.9 is the usual choice, 0 turns momentum off.")
        if nesterov and momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0; "
                             "pass e.g. momentum=0.9 or nesterov=False.")
        super().__init__(model, lr, weight_decay,
                         state_names=('momentum_buffer',) if momentum else ())
        self.momentum = momentum
        self.nesterov = nesterov

    def _update(self, param, grad, state):
        if self.momentum:
            buf = state['momentum_buffer']
            buf *= self.momentum                       # b = mu * b + g
            buf += grad
            grad = grad + self.momentum * buf if self.nesterov else buf
        param -= self.lr * grad


class Adam(Optimizer):
    r"""Adam, identical to ``torch.optim.Adam`` (``amsgrad=False``).

    With ``g_t`` the gradient (plus ``weight_decay * param``: L2 decay, as in
    torch's Adam, not AdamW's decoupled decay) and ``t`` the step count::

        m_t = beta1 * m_{t-1} + (1 - beta1) * g_t          (m_0 = 0)
        v_t = beta2 * v_{t-1} + (1 - beta2) * g_t**2       (v_0 = 0)
        param <- param - eta / (1 - beta1**t) * m_t
                         / (sqrt(v_t) / sqrt(1 - beta2**t) + eps)

    The bias corrections are applied to the step size and to ``sqrt(v_t)``,
    so ``eps`` is added after correcting, exactly where torch adds it.

    Parameters
    ----------
    model : object
        Has ``parameters()`` returning ``(param, grad)`` pairs.
    lr : float, optional
        Learning rate ``eta`` > 0, default 1e-3.
    betas : tuple of float, optional
        ``(beta1, beta2)``, each in [0, 1); default (0.9, 0.999).
    eps : float, optional
        Added to the denominator for numerical stability, >= 0.
    weight_decay : float, optional
        L2 penalty coefficient >= 0.
    """

    def __init__(self, model, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        if len(betas) != 2 or not all(0 <= beta < 1 for beta in betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {betas!r}; "
                             "the usual choice is (0.9, 0.999).")
        if not eps >= 0:
            raise ValueError(f"eps must be >= 0, got {eps!r}; the usual choice is 1e-8.")
        super().__init__(model, lr, weight_decay, state_names=('exp_avg', 'exp_avg_sq'))
        self.betas = tuple(betas)
        self.eps = eps

    def _update(self, param, grad, state):
        beta1, beta2 = self.betas
        t = self.step_count
        exp_avg, exp_avg_sq = state['exp_avg'], state['exp_avg_sq']
        exp_avg *= beta1                               # m = beta1 m + (1-beta1) g
        exp_avg += (1 - beta1) * grad
        exp_avg_sq *= beta2                            # v = beta2 v + (1-beta2) g^2
        exp_avg_sq += (1 - beta2) * grad * grad
        step_size = self.lr / (1 - beta1 ** t)
        denominator = np.sqrt(exp_avg_sq) / math.sqrt(1 - beta2 ** t) + self.eps
        param -= step_size * exp_avg / denominator


def check_sgd_only_options(name, momentum=0.0, nesterov=False):
    """Refuse momentum for any optimiser but SGD: the one home of this rule, which
    ``make_optimizer`` and both training scripts (through ``lab.settings``) apply.

    Raises
    ------
    ValueError
        For ``momentum`` or ``nesterov`` with Adam (rather than ignoring them).
    """
    if name.lower() == 'adam' and (momentum or nesterov):
        raise ValueError("momentum applies to SGD only (Adam keeps its own moving average "
                         "of the gradient, betas[0]); drop it or use the optimizer 'sgd'")


def make_optimizer(name, model, lr, momentum=0.0, weight_decay=0.0, nesterov=False):
    """Build an optimiser by name, as the training scripts' ``--optimizer``.

    Parameters
    ----------
    name : {'sgd', 'adam'}
        Case-insensitive.
    model : object
        Has ``parameters()`` returning ``(param, grad)`` pairs.
    lr, weight_decay : float
        Passed to the optimiser.
    momentum, nesterov : float, bool
        SGD only. Adam uses its default betas; asking it for momentum is an
        error rather than silently ignored.

    Returns
    -------
    SGD or Adam
    """
    key = name.lower()
    check_sgd_only_options(key, momentum, nesterov)
    if key == 'sgd':
        return SGD(model, lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
    if key == 'adam':
        return Adam(model, lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; choose 'sgd' or 'adam'.")


# ---------------------------------------------------------------------------
# Learning-rate schedules
# ---------------------------------------------------------------------------

class LRScheduler:
    """Sets ``optimizer.lr`` once per epoch from a closed-form schedule.

    A subclass writes ``lr_at(epoch)``. Construction records the optimiser's
    current ``lr`` as ``base_lr`` (epoch 0); each ``step()``, called at the
    end of an epoch, moves to the next epoch and sets its learning rate.

    Attributes
    ----------
    optimizer : Optimizer
    base_lr : float
    last_epoch : int
        Number of ``step()`` calls so far.
    """

    def __init__(self, optimizer):
        self.optimizer = optimizer
        self.base_lr = optimizer.lr
        self.last_epoch = 0

    def lr_at(self, epoch):
        """Learning rate for ``epoch`` (0 is the first)."""
        raise NotImplementedError

    def step(self):
        """Move to the next epoch and set the optimiser's learning rate."""
        self.last_epoch += 1
        self.optimizer.lr = self.lr_at(self.last_epoch)

    def get_last_lr(self):
        """The learning rate now in use, as a one-element list like torch's
        (one entry per parameter group; here there is one group)."""
        return [self.optimizer.lr]

    def state_dict(self):
        """``{'base_lr': float, 'last_epoch': int}``: plain numbers."""
        return {'base_lr': self.base_lr, 'last_epoch': self.last_epoch}

    def load_state_dict(self, state):
        """Restore ``state_dict()`` and set the optimiser's learning rate to
        the restored epoch's."""
        self.base_lr = float(state['base_lr'])
        self.last_epoch = int(state['last_epoch'])
        self.optimizer.lr = self.lr_at(self.last_epoch)


class StepLR(LRScheduler):
    """Multiply the learning rate by ``gamma`` every ``step_size`` epochs::

        lr(epoch) = base_lr * gamma ** (epoch // step_size)

    Parameters
    ----------
    optimizer : Optimizer
    step_size : int
        Period of the decay in epochs, >= 1.
    gamma : float, optional
        Decay factor > 0, default 0.1.
    """

    def __init__(self, optimizer, step_size, gamma=0.1):
        if not (isinstance(step_size, (int, np.integer)) and step_size >= 1):
            raise ValueError(f"step_size must be an integer >= 1, got {step_size!r}.")
        if not gamma > 0:
            raise ValueError(f"gamma must be > 0, got {gamma!r}; 0.1 divides the "
                             "learning rate by ten every step_size epochs.")
        super().__init__(optimizer)
        self.step_size = step_size
        self.gamma = gamma

    def lr_at(self, epoch):
        return self.base_lr * self.gamma ** (epoch // self.step_size)


class CosineAnnealingLR(LRScheduler):
    """Anneal the learning rate from ``base_lr`` to ``eta_min`` along half a
    cosine over ``T_max`` epochs (SGDR without restarts)::

        lr(epoch) = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2

    Past ``T_max`` the cosine carries on and the rate rises again, as in torch.

    Parameters
    ----------
    optimizer : Optimizer
    T_max : int
        Epochs from ``base_lr`` down to ``eta_min``, >= 1.
    eta_min : float, optional
        Smallest learning rate, >= 0, default 0.
    """

    def __init__(self, optimizer, T_max, eta_min=0.0):
        if not (isinstance(T_max, (int, np.integer)) and T_max >= 1):
            raise ValueError(f"T_max must be an integer >= 1, got {T_max!r}; "
                             "use the number of training epochs.")
        if not eta_min >= 0:
            raise ValueError(f"eta_min must be >= 0, got {eta_min!r}.")
        super().__init__(optimizer)
        self.T_max = T_max
        self.eta_min = eta_min

    def lr_at(self, epoch):
        cosine = (1 + math.cos(math.pi * epoch / self.T_max)) / 2
        return self.eta_min + (self.base_lr - self.eta_min) * cosine


def make_scheduler(name, optimizer, epochs):
    """Build a learning-rate schedule by name, as the training scripts' ``--scheduler``.

    Parameters
    ----------
    name : {'none', 'step', 'cosine'}
        Case-insensitive.

        - ``'none'``: returns ``None``; the learning rate stays constant
          (call ``scheduler.step()`` only ``if scheduler is not None``).
        - ``'step'``: ``StepLR(step_size=max(1, epochs // 3), gamma=0.1)``,
          three decays by ten over the run (e.g. epochs 3, 6, 9 of 10).
        - ``'cosine'``: ``CosineAnnealingLR(T_max=epochs, eta_min=0)``,
          reaching 0 after the last epoch.
    optimizer : Optimizer
    epochs : int
        Number of training epochs, >= 1.

    Returns
    -------
    StepLR, CosineAnnealingLR or None
    """
    if not epochs >= 1:
        raise ValueError(f"epochs must be >= 1, got {epochs!r}.")
    key = name.lower()
    if key == 'none':
        return None
    if key == 'step':
        return StepLR(optimizer, step_size=max(1, epochs // 3), gamma=0.1)
    if key == 'cosine':
        return CosineAnnealingLR(optimizer, T_max=epochs)
    raise ValueError(f"unknown lr scheduler {name!r}; choose 'none', 'step' or 'cosine'.")
