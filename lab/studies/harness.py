"""What the studies share: data subsets, instrumented training loops, plot helpers.

The loops train the NumPy and the PyTorch MLP with plain SGD and record, each
epoch, the losses and accuracies, every layer's weight-gradient norm and mean
absolute weight, and the fraction of dead or saturated hidden units; a run
whose loss stops being finite ends there instead of raising. Both loops draw
their mini-batches from the same ``batch_indices``, so two models started from
the same weights see the same batches in the same order.
"""
import functools
import math
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.colors import ListedColormap
from matplotlib.ticker import MaxNLocator

import mlp_numpy
import mlp_pytorch
from lab.datasets import get_dataset
from lab.loaders import ArrayDataset
from modules import ACTIVATIONS, LinearModule, SoftmaxCrossEntropyModule

LOSS_LABEL = 'loss (cross-entropy, nats)'
DATASET_TITLES = {'spiral': 'Spiral', 'fashion_mnist': 'Fashion-MNIST'}
RELU_FAMILY = ('relu', 'leaky_relu', 'elu')
SATURATED_SLOPE = 0.1
"""A sigmoid or tanh unit counts as saturated on a sample where its slope is
below this fraction of the activation's steepest slope (|x| > 3.64 for the
sigmoid, |x| > 1.82 for tanh)."""
PROBE_SIZE = 512
"""Training samples on which the dead or saturated hidden units are counted."""


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------

@functools.lru_cache(maxsize=2)
def full_dataset(dataset, data_dir, seed):
    """The whole training pool and the test split of a data set, read (or drawn) once per
    process. The pool is the validation split (one example, the fewest allowed) followed
    by the training split: the order in which ``lab.datasets`` draws the pool."""
    splits = get_dataset(dataset, data_dir=data_dir, validation_size=1,
                         **({'seed': seed} if dataset == 'spiral' else {}))
    validation, train = splits['validation'], splits['train']
    pool = ArrayDataset(np.concatenate([validation.images, train.images]),
                        np.concatenate([validation.labels, train.labels]), train.classes)
    return pool, splits['test']


def load_subset(dataset, n_train=None, n_test=None, data_dir='data/', seed=0):
    """Load a data set as flat float32 NumPy arrays, optionally a random subset of it.

    Parameters
    ----------
    dataset : str
        'spiral' (three interleaved arms in the plane, 1200 training and 300
        test points) or 'fashion_mnist' (60 000 and 10 000 images, standardised).
    n_train, n_test : int, optional
        Keep a random subset of this size of the training and the test split;
        None keeps the whole split.
    data_dir : str
        Folder searched for Fashion-MNIST before the system-wide copy.
    seed : int
        Seed of the spiral's noise and of the subsets.

    Returns
    -------
    data : dict
        ``'train'`` and ``'test'``: pairs ``(images (N, D) float32, labels (N,) int64)``;
        ``'n_classes'``: int.
    """
    train_split, test_split = full_dataset(dataset, data_dir, seed)
    rng = np.random.default_rng(seed)
    data = {'n_classes': len(train_split.classes)}
    for name, split, size in (('train', train_split, n_train), ('test', test_split, n_test)):
        keep = (np.arange(len(split)) if size is None or size >= len(split)
                else np.sort(rng.choice(len(split), size, replace=False)))
        data[name] = (split.images[keep].reshape(len(keep), -1), split.labels[keep])
    return data


def batch_indices(n_samples, batch_size, rng):
    """Yield the sample indices of each mini-batch of one epoch.

    ``batch_size`` None gives one batch of every sample (full-batch gradient
    descent). Otherwise the samples are shuffled and an incomplete last batch
    is dropped, so batch norm never sees a batch of one.
    """
    if batch_size is None or batch_size >= n_samples:
        yield np.arange(n_samples)
        return
    order = rng.permutation(n_samples)
    for start in range(0, n_samples - batch_size + 1, batch_size):
        yield order[start:start + batch_size]


def probe_batch(images):
    """A fixed spread of at most ``PROBE_SIZE`` training samples."""
    return images[::max(1, len(images) // PROBE_SIZE)][:PROBE_SIZE]


# ---------------------------------------------------------------------------
# Dead and saturated units
# ---------------------------------------------------------------------------

def inactive_fraction(preactivation, activation):
    """Fraction of a hidden layer's units that are dead or saturated on a batch.

    A ReLU, leaky ReLU or ELU unit is dead when its input is never positive
    over the batch. A sigmoid or tanh unit is saturated when its slope is
    below ``SATURATED_SLOPE`` of the steepest slope on every sample of the
    batch. A dead ReLU passes no gradient back and a saturated unit almost
    none; a "dead" leaky ReLU or ELU unit still passes a little.

    Parameters
    ----------
    preactivation : ndarray of shape (N, units)
        The input of the activation function.
    activation : str
    """
    if activation in RELU_FAMILY:
        inactive = np.all(preactivation <= 0, axis=0)
    else:
        module = ACTIVATIONS[activation]()
        module.forward(preactivation)
        slope = module.backward(np.ones_like(preactivation))
        steepest = 0.25 if activation == 'sigmoid' else 1.0
        inactive = np.all(slope < SATURATED_SLOPE * steepest, axis=0)
    return float(inactive.mean())


def hidden_preactivations_numpy(model, images):
    """Inputs of each activation module of a NumPy MLP, in evaluation mode."""
    activation_types = tuple(ACTIVATIONS.values())
    preactivations = []
    out = images
    for module in model.modules:
        if isinstance(module, activation_types):
            preactivations.append(out)
        out = module.forward(out)
    model.clear_cache()
    return preactivations


def hidden_preactivations_torch(model, images):
    """Inputs of each activation layer of a PyTorch MLP, in evaluation mode."""
    activation_types = tuple(mlp_pytorch.ACTIVATIONS.values())
    preactivations = []
    out = images
    with torch.no_grad():
        for layer in model.layers:
            if isinstance(layer, activation_types):
                preactivations.append(out.numpy())
            out = layer(out)
    return preactivations


# ---------------------------------------------------------------------------
# Training loops
# ---------------------------------------------------------------------------

def numpy_mlp(n_inputs, hidden, n_classes, activation, seed, use_batch_norm=False,
              dtype=np.float32):
    """A NumPy MLP, float32 unless ``dtype`` says otherwise, whose initial weights
    depend only on ``seed``."""
    return mlp_numpy.MLP(n_inputs, list(hidden), n_classes, use_batch_norm=use_batch_norm,
                         activation=activation, dtype=dtype,
                         rng=np.random.default_rng(seed))


def last(values):
    """The last element of a list, or None for an empty one (a run that diverged at once)."""
    return values[-1] if values else None


def new_history(weights):
    """An empty training record, holding the mean |weight| of each layer at initialisation."""
    return {'train_loss': [], 'train_accuracy': [], 'test_loss': [], 'test_accuracy': [],
            'gradient_norm': [], 'inactive_fraction': [], 'seconds_per_epoch': [],
            'mean_abs_weight': [[float(np.abs(weight).mean()) for weight in weights]],
            'diverged_at_epoch': None}


def record_epoch(history, batch_losses, batch_gradient_norms, seconds, train, test,
                 weights, inactive):
    """Append one epoch to ``history`` (see ``train_numpy`` for the keys).

    ``train`` and ``test`` are ``(loss, accuracy)`` pairs, ``weights`` the
    weight matrices of the linear layers, ``inactive`` the fraction of dead
    or saturated units of each hidden layer.
    """
    history['train_loss'].append(float(np.mean(batch_losses)))
    history['gradient_norm'].append(np.mean(batch_gradient_norms, axis=0).tolist())
    history['seconds_per_epoch'].append(seconds)
    history['train_accuracy'].append(train[1])
    history['test_loss'].append(test[0])
    history['test_accuracy'].append(test[1])
    history['mean_abs_weight'].append([float(np.abs(weight).mean()) for weight in weights])
    history['inactive_fraction'].append(inactive)


def evaluate_numpy(model, images, labels, chunk_size=10000):
    """Mean cross-entropy and accuracy of a NumPy MLP (in evaluation mode) over a whole set."""
    loss_module = SoftmaxCrossEntropyModule()
    total_loss, correct = 0.0, 0
    for start in range(0, len(labels), chunk_size):
        logits = model.forward(images[start:start + chunk_size])
        chunk_labels = labels[start:start + chunk_size]
        total_loss += loss_module.forward(logits, chunk_labels) * len(chunk_labels)
        correct += int((logits.argmax(axis=1) == chunk_labels).sum())
    model.clear_cache()
    return float(total_loss / len(labels)), correct / len(labels)


def predict_numpy(model, images):
    """Predicted class of each sample by a NumPy MLP in evaluation mode."""
    # The weights of a diverged run may overflow; its predictions are drawn anyway.
    with np.errstate(over='ignore', invalid='ignore'):
        predictions = model.eval().forward(images).argmax(axis=1)
    model.clear_cache()
    return predictions


def train_numpy(model, data, epochs, lr, batch_size=None, seed=0):
    """Train a NumPy MLP with plain gradient descent, ``param -= lr * grad``.

    A run whose loss stops being finite is ended there, not raised: the
    epoch is recorded in ``'diverged_at_epoch'`` and the curves stop before it.

    Parameters
    ----------
    model : mlp_numpy.MLP
    data : dict
        ``'train'`` and ``'test'`` pairs ``(images, labels)``, as ``load_subset`` returns.
    epochs : int
    lr : float
    batch_size : int, optional
        None gives full-batch gradient descent.
    seed : int
        Seed of the order of the mini-batches.

    Returns
    -------
    history : dict
        One entry per epoch in each list: ``'train_loss'`` (mean over the
        epoch's batches), ``'train_accuracy'``, ``'test_loss'`` and
        ``'test_accuracy'`` (after the epoch, in evaluation mode),
        ``'gradient_norm'`` (per linear layer, the norm of its weight gradient
        averaged over the epoch's batches), ``'inactive_fraction'`` (per
        hidden layer, see ``inactive_fraction``), ``'seconds_per_epoch'`` (the
        updates only); ``'mean_abs_weight'`` (per linear layer) has one more
        entry, the initial weights; ``'diverged_at_epoch'`` is None or an epoch.
    """
    loss_module = SoftmaxCrossEntropyModule()
    linears = [module for module in model.modules if isinstance(module, LinearModule)]
    train_images, train_labels = data['train']
    probe = probe_batch(train_images)
    rng = np.random.default_rng(seed)
    history = new_history([linear.params['weight'] for linear in linears])
    # A diverging run overflows before its loss turns non-finite; that is
    # caught below, so NumPy's overflow warnings would only be noise.
    with np.errstate(over='ignore', invalid='ignore'):
        for epoch in range(1, epochs + 1):
            model.train()
            batch_losses, batch_gradient_norms = [], []
            start = time.perf_counter()
            for batch in batch_indices(len(train_labels), batch_size, rng):
                loss = loss_module.forward(model.forward(train_images[batch]),
                                           train_labels[batch])
                if not np.isfinite(loss):
                    model.clear_cache()
                    history['diverged_at_epoch'] = epoch
                    return history
                model.backward(loss_module.backward())
                batch_gradient_norms.append(
                    [np.linalg.norm(linear.grads['weight']) for linear in linears])
                for parameter, gradient in model.parameters():
                    parameter -= lr * gradient
                batch_losses.append(loss)
            seconds = time.perf_counter() - start
            model.eval()
            record_epoch(
                history, batch_losses, batch_gradient_norms, seconds,
                train=evaluate_numpy(model, *data['train']),
                test=evaluate_numpy(model, *data['test']),
                weights=[linear.params['weight'] for linear in linears],
                inactive=[inactive_fraction(preactivation, model.activation)
                          for preactivation in hidden_preactivations_numpy(model, probe)])
    return history


def evaluate_torch(model, images, labels):
    """Mean cross-entropy and accuracy of a PyTorch MLP (in evaluation mode) over a whole set."""
    with torch.no_grad():
        logits = model(images)
        loss = F.cross_entropy(logits, labels).item()
        accuracy = (logits.argmax(dim=1) == labels).double().mean().item()
    return loss, accuracy


def train_torch(model, data, epochs, lr, batch_size, seed=0):
    """Train a PyTorch MLP with ``torch.optim.SGD``; the counterpart of ``train_numpy``.

    The mini-batches are drawn by the same ``batch_indices`` from the same
    seed as ``train_numpy``'s, so both loops see the same batches in the same
    order. Parameters and the returned history are as for ``train_numpy``.
    """
    train_images, train_labels = (torch.from_numpy(array) for array in data['train'])
    test_images, test_labels = (torch.from_numpy(array) for array in data['test'])
    probe = probe_batch(train_images)
    linears = model.linear_layers()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    history = new_history([linear.weight.detach().numpy() for linear in linears])
    for epoch in range(1, epochs + 1):
        model.train()
        batch_losses, batch_gradient_norms = [], []
        start = time.perf_counter()
        for batch in batch_indices(len(train_labels), batch_size, rng):
            batch = torch.from_numpy(batch)
            loss = F.cross_entropy(model(train_images[batch]), train_labels[batch])
            if not torch.isfinite(loss):
                history['diverged_at_epoch'] = epoch
                return history
            optimizer.zero_grad()
            loss.backward()
            batch_gradient_norms.append(
                torch.stack([linear.weight.grad.norm() for linear in linears]))
            optimizer.step()
            batch_losses.append(loss.detach())
        seconds = time.perf_counter() - start
        model.eval()
        record_epoch(
            history, torch.stack(batch_losses).numpy(),
            torch.stack(batch_gradient_norms).numpy(), seconds,
            train=evaluate_torch(model, train_images, train_labels),
            test=evaluate_torch(model, test_images, test_labels),
            weights=[linear.weight.detach().numpy() for linear in linears],
            inactive=[inactive_fraction(preactivation, model.activation)
                      for preactivation in hidden_preactivations_torch(model, probe)])
    return history


# ---------------------------------------------------------------------------
# Plotting
# ---------------------------------------------------------------------------

def class_colours(n_classes):
    """The first ``n_classes`` colours of matplotlib's qualitative palette."""
    return ListedColormap(plt.get_cmap('tab10').colors[:n_classes])


def plot_decision_boundary(axes, predict, images, labels, n_classes, title):
    """Colour the plane by the predicted class and scatter the labelled points over it.

    Parameters
    ----------
    axes : matplotlib Axes
    predict : callable
        Maps points (M, 2) float32 to predicted classes (M,).
    images : ndarray of shape (N, 2)
    labels : ndarray of shape (N,)
    n_classes : int
    title : str
    """
    low = images.min(axis=0) - 0.2
    high = images.max(axis=0) + 0.2
    grid_x, grid_y = np.meshgrid(np.linspace(low[0], high[0], 200),
                                 np.linspace(low[1], high[1], 200))
    grid = np.stack([grid_x.ravel(), grid_y.ravel()], axis=1).astype(np.float32)
    predicted = predict(grid).reshape(grid_x.shape)
    colours = class_colours(n_classes)
    axes.contourf(grid_x, grid_y, predicted, levels=np.arange(n_classes + 1) - 0.5,
                  cmap=colours, alpha=0.3)
    axes.scatter(images[:, 0], images[:, 1], c=labels, cmap=colours, vmin=-0.5,
                 vmax=n_classes - 0.5, s=8, edgecolors='black', linewidths=0.2)
    axes.set_title(title)
    axes.set_xlabel('$x_1$')
    axes.set_ylabel('$x_2$')
    axes.set_aspect('equal')
    axes.grid(False)


def plot_curves(axes, histories, key, y_label, title, styles=None):
    """One line per run of ``histories[label][key]`` against the epoch.

    ``styles`` maps a run's label to extra keyword arguments of ``axes.plot``.
    """
    for label, history in histories.items():
        values = history[key]
        axes.plot(range(1, len(values) + 1), values, label=label,
                  **(styles or {}).get(label, {}))
    axes.set_xlabel('epoch')
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel(y_label)
    axes.set_title(title)
    axes.legend()


# ---------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------

def json_ready(value):
    """``value`` with NumPy types, tuples and paths made JSON types, floats to 6 digits.

    A non-finite float becomes None, so the file stays valid JSON.
    """
    if isinstance(value, dict):
        return {str(key): json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [json_ready(item) for item in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(f'{value:.6g}') if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    return value
