"""Experiments with the two MLPs: what the learning rate, the activation, batch
normalisation, depth and width do to training, and how NumPy and PyTorch compare.

Each study is a function that trains small models, draws its figures and
returns its numbers; ``run_study`` times it and writes the numbers, with the
settings used, to ``<study>.json`` beside the figures::

    python experiments.py all                  # every study, full budget
    python experiments.py all --quick          # every study, small budget
    python experiments.py lr_sweep --out_dir results/lr_sweep

The spiral is drawn afresh by ``data_utils``; Fashion-MNIST is read from disk
(Debian's ``dataset-fashion-mnist`` package, or ``--data_dir``), and the
studies that use it train on a random subset of it to stay within minutes.
"""
import argparse
import ast
import functools
import inspect
import io
import math
import time
import tokenize
from pathlib import Path

import matplotlib

matplotlib.use('Agg')  # draw to files; no display needed
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.colors import ListedColormap
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

import mlp_numpy
import mlp_pytorch
from data_utils import get_dataset
from modules import ACTIVATIONS, LinearModule, SoftmaxCrossEntropyModule
from plotting import save_figure
from training_utils import save_json

REPOSITORY = Path(__file__).resolve().parent

plt.rcParams.update({'axes.grid': True, 'grid.alpha': 0.3, 'legend.fontsize': 8,
                     'axes.titlesize': 10, 'axes.labelsize': 9})

LOSS_LABEL = 'loss (cross-entropy, nats)'
DATASET_TITLES = {'spiral': 'Spiral', 'fashion_mnist': 'Fashion-MNIST'}
ACTIVATION_NAMES = ('sigmoid', 'tanh', 'relu', 'leaky_relu', 'elu')
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
    """The training and test splits of a data set, read (or drawn) once per process."""
    splits = get_dataset(dataset, data_dir=data_dir, validation_size=0,
                         **({'seed': seed} if dataset == 'spiral' else {}))
    return splits['train'], splits['test']


def load_data(dataset, n_train=None, n_test=None, data_dir='data/', seed=0):
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
        ``'train'`` and ``'test'`` pairs ``(images, labels)``, as ``load_data`` returns.
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


def numpy_mlp(n_inputs, hidden, n_classes, activation, seed, use_batch_norm=False):
    """A float32 NumPy MLP whose initial weights depend only on ``seed``."""
    return mlp_numpy.MLP(n_inputs, list(hidden), n_classes, activation=activation,
                         dtype=np.float32, rng=np.random.default_rng(seed),
                         use_batch_norm=use_batch_norm)


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
# The studies
# ---------------------------------------------------------------------------

def lr_sweep(out_dir, learning_rates=(0.2, 1.0, 5.0), epochs=1000, hidden=(100,),
             activation='relu', n_train=300, seed=0):
    """Full-batch gradient descent on the spiral at several learning rates.

    Every run starts from the same initial weights and trains on the same
    ``n_train`` points. A run whose loss stops being finite ends there and
    says so. Draws the loss and accuracy curves (``lr_sweep_curves.png``)
    and each run's decision boundary (``lr_sweep_boundaries.png``).
    """
    data = load_data('spiral', n_train=n_train, seed=seed)
    images, labels = data['train']
    histories, models = {}, {}
    for lr in learning_rates:
        label = f'lr {lr:g}'
        models[label] = numpy_mlp(2, hidden, data['n_classes'], activation, seed)
        histories[label] = train_numpy(models[label], data, epochs, lr)

    figure, (loss_axes, accuracy_axes) = plt.subplots(1, 2, figsize=(8, 3.4))
    plot_curves(loss_axes, histories, 'train_loss', LOSS_LABEL, 'training loss')
    loss_axes.set_yscale('log')
    plot_curves(accuracy_axes, histories, 'train_accuracy', 'accuracy', 'training accuracy')
    figure.suptitle(f'Spiral, full-batch gradient descent, MLP 2-{"-".join(map(str, hidden))}-3 '
                    f'({activation})', fontsize=10)
    figure.tight_layout()
    save_figure(figure, out_dir / 'lr_sweep_curves.png')

    figure, all_axes = plt.subplots(1, len(learning_rates), figsize=(8, 3))
    for axes, (label, model) in zip(np.atleast_1d(all_axes), models.items()):
        history = histories[label]
        status = (f'diverged in epoch {history["diverged_at_epoch"]}'
                  if history['diverged_at_epoch'] else
                  f'accuracy {history["train_accuracy"][-1]:.2f}')
        plot_decision_boundary(axes, functools.partial(predict_numpy, model),
                               images, labels, data['n_classes'], f'{label}: {status}')
    figure.tight_layout()
    save_figure(figure, out_dir / 'lr_sweep_boundaries.png')

    return {label: {'final_train_loss': last(history['train_loss']),
                    'final_train_accuracy': last(history['train_accuracy']),
                    'best_train_accuracy': max(history['train_accuracy'], default=None),
                    'final_test_accuracy': last(history['test_accuracy']),
                    'diverged_at_epoch': history['diverged_at_epoch'],
                    'train_loss': history['train_loss'],
                    'train_accuracy': history['train_accuracy']}
            for label, history in histories.items()}


def activations(out_dir, dataset='fashion_mnist', hidden=(64,) * 6, epochs=10, lr=0.05,
                batch_size=128, n_train=10000, n_test=2000, data_dir='data/', seed=0):
    """The activation functions, and a deep MLP trained with each.

    Draws each function and its derivative, both computed by the NumPy
    modules' own forward and backward (``activations_functions.png``); the
    training curves of the same deep MLP with each activation
    (``activations_training.png``); and the norm of each linear layer's weight
    gradient in the first and the last epoch (``activations_gradients.png``),
    where vanishing gradients show as norms falling towards the input.
    """
    figure, (function_axes, derivative_axes) = plt.subplots(1, 2, figsize=(8, 3.2))
    x = np.linspace(-5, 5, 401)
    for name in ACTIVATION_NAMES:
        module = ACTIVATIONS[name]()
        # Dashed and dotted lines keep ReLU visible where leaky ReLU and ELU cover it.
        style = {'leaky_relu': '--', 'elu': ':'}.get(name, '-')
        function_axes.plot(x, module.forward(x), linestyle=style, label=name)
        derivative_axes.plot(x, module.backward(np.ones_like(x)), linestyle=style, label=name)
    for axes, title in ((function_axes, 'activation $h(x)$'),
                        (derivative_axes, "derivative $h'(x)$, from backward()")):
        axes.set_xlabel('pre-activation $x$')
        axes.set_ylabel(title.split(',')[0])
        axes.set_title(title)
        axes.legend()
    figure.tight_layout()
    save_figure(figure, out_dir / 'activations_functions.png')

    data = load_data(dataset, n_train, n_test, data_dir, seed)
    n_inputs = data['train'][0].shape[1]
    histories = {name: train_numpy(numpy_mlp(n_inputs, hidden, data['n_classes'], name, seed),
                                   data, epochs, lr, batch_size, seed)
                 for name in ACTIVATION_NAMES}

    figure, (loss_axes, accuracy_axes) = plt.subplots(1, 2, figsize=(8, 3.4))
    plot_curves(loss_axes, histories, 'train_loss', LOSS_LABEL, 'training loss')
    plot_curves(accuracy_axes, histories, 'test_accuracy', 'accuracy', 'test accuracy')
    figure.suptitle(f'{DATASET_TITLES[dataset]}, MLP with {len(hidden)} hidden layers '
                    f'of {hidden[0]}, SGD lr {lr:g}', fontsize=10)
    figure.tight_layout()
    save_figure(figure, out_dir / 'activations_training.png')

    figure, axes = plt.subplots(figsize=(7, 3.8))
    layers = np.arange(1, len(hidden) + 2)
    for colour_index, (name, history) in enumerate(histories.items()):
        colour = f'C{colour_index}'
        axes.plot(layers, history['gradient_norm'][0], marker='o', color=colour, label=name)
        axes.plot(layers, history['gradient_norm'][-1], marker='x', linestyle='--',
                  color=colour)
    axes.plot([], [], marker='o', color='grey', label='epoch 1')
    axes.plot([], [], marker='x', linestyle='--', color='grey', label=f'epoch {epochs}')
    axes.set_yscale('log')
    axes.set_xticks(layers)
    axes.set_xlabel('linear layer (1 = input side)')
    axes.set_ylabel('weight-gradient norm (Frobenius)')
    axes.set_title(f'Gradient norm per layer, mean over an epoch\n'
                   f'({DATASET_TITLES[dataset]}, {len(hidden)} hidden layers)')
    axes.legend(loc='center left', bbox_to_anchor=(1.01, 0.5))
    figure.tight_layout()
    save_figure(figure, out_dir / 'activations_gradients.png')

    return {name: {'final_train_loss': last(history['train_loss']),
                   'final_test_accuracy': last(history['test_accuracy']),
                   'gradient_norm_first_epoch': history['gradient_norm'][0],
                   'gradient_norm_last_epoch': history['gradient_norm'][-1],
                   'first_to_last_layer_gradient_ratio':
                       history['gradient_norm'][0][0] / history['gradient_norm'][0][-1],
                   'train_loss': history['train_loss'],
                   'test_accuracy': history['test_accuracy']}
            for name, history in histories.items()}


def batch_norm(out_dir, dataset='fashion_mnist', hidden=(128,) * 5,
               activation_names=('relu', 'sigmoid'), epochs=10, lr=0.2, batch_size=128,
               n_train=10000, n_test=2000, data_dir='data/', seed=0):
    """A deep MLP with and without batch normalisation, in PyTorch and in NumPy.

    For each activation, the four runs (with or without batch norm, PyTorch
    or NumPy) start from the same linear weights and see the same batches,
    so the NumPy curves retrace the PyTorch ones. Draws the training curves
    (``batch_norm_curves.png``) and the fraction of dead or saturated hidden
    units after each epoch (``batch_norm_units.png``, see ``inactive_fraction``).
    """
    data = load_data(dataset, n_train, n_test, data_dir, seed)
    n_inputs = data['train'][0].shape[1]
    torch_histories, numpy_histories = {}, {}
    for activation in activation_names:
        for use_batch_norm in (False, True):
            label = f'{activation}{", batch norm" if use_batch_norm else ""}'
            numpy_model = numpy_mlp(n_inputs, hidden, data['n_classes'], activation, seed,
                                    use_batch_norm)
            torch_model = mlp_pytorch.MLP(n_inputs, list(hidden), data['n_classes'],
                                          use_batch_norm=use_batch_norm, activation=activation)
            mlp_pytorch.copy_numpy_to_torch(numpy_model, torch_model)
            torch_histories[label] = train_torch(torch_model, data, epochs, lr, batch_size, seed)
            numpy_histories[label] = train_numpy(numpy_model, data, epochs, lr, batch_size, seed)
    colours = {label: f'C{index}' for index, label in enumerate(torch_histories)}
    title = (f'{DATASET_TITLES[dataset]}, {len(hidden)} hidden layers of {hidden[0]}, '
             f'SGD lr {lr:g}')

    figure, (loss_axes, accuracy_axes) = plt.subplots(1, 2, figsize=(8, 4))
    for histories, style in ((torch_histories, {}),
                             (numpy_histories, {'linestyle': '--', 'marker': 'x'})):
        line_styles = {label: {'color': colour, **style} for label, colour in colours.items()}
        plot_curves(loss_axes, histories, 'train_loss', LOSS_LABEL, 'training loss', line_styles)
        plot_curves(accuracy_axes, histories, 'test_accuracy', 'accuracy', 'test accuracy',
                    line_styles)
    for axes in (loss_axes, accuracy_axes):
        axes.get_legend().remove()
    handles = [Line2D([], [], color=colour, label=label) for label, colour in colours.items()]
    handles += [Line2D([], [], color='grey', label='PyTorch'),
                Line2D([], [], color='grey', linestyle='--', marker='x', label='NumPy')]
    figure.legend(handles=handles, loc='lower center', ncol=3)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout(rect=(0, 0.14, 1, 1))
    save_figure(figure, out_dir / 'batch_norm_curves.png')

    figure, axes = plt.subplots(figsize=(6, 3.8))
    mean_inactive = {}
    for label, history in torch_histories.items():
        fractions = [float(np.mean(layers)) for layers in history['inactive_fraction']]
        mean_inactive[label + (' (0 throughout)' if not any(fractions) else '')] = {
            'inactive': fractions, 'colour': colours[label]}
    plot_curves(axes, mean_inactive, 'inactive', 'fraction of hidden units',
                'Dead (ReLU family) or saturated (sigmoid, tanh) hidden units,\n'
                f'mean over layers, on {PROBE_SIZE} training samples (PyTorch)',
                {label: {'color': run['colour']} for label, run in mean_inactive.items()})
    axes.set_ylim(bottom=0)
    figure.tight_layout()
    save_figure(figure, out_dir / 'batch_norm_units.png')

    return {framework: {label: {'final_train_loss': last(history['train_loss']),
                                'final_test_accuracy': last(history['test_accuracy']),
                                'diverged_at_epoch': history['diverged_at_epoch'],
                                'inactive_fraction_per_layer': history['inactive_fraction'],
                                'train_loss': history['train_loss'],
                                'test_accuracy': history['test_accuracy']}
                        for label, history in histories.items()}
            for framework, histories in (('pytorch', torch_histories),
                                         ('numpy', numpy_histories))}


def weight_growth(out_dir, dataset='fashion_mnist', hidden=(256, 128, 64), activation='relu',
                  epochs=30, lr=0.1, batch_size=128, n_train=10000, n_test=2000,
                  data_dir='data/', seed=0):
    """How the weights of each linear layer grow during training (NumPy MLP).

    Draws the mean absolute weight of each linear layer divided by its
    initial value, and the norm of each layer's weight gradient, against the
    epoch (``weight_growth.png``).
    """
    data = load_data(dataset, n_train, n_test, data_dir, seed)
    n_inputs = data['train'][0].shape[1]
    model = numpy_mlp(n_inputs, hidden, data['n_classes'], activation, seed)
    history = train_numpy(model, data, epochs, lr, batch_size, seed)
    mean_abs_weight = np.array(history['mean_abs_weight'])
    growth = mean_abs_weight / mean_abs_weight[0]
    widths = [n_inputs, *hidden, data['n_classes']]
    layer_names = [f'linear {index + 1} ({fan_in}\u2192{fan_out})'
                   for index, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:]))]

    figure, (growth_axes, gradient_axes) = plt.subplots(1, 2, figsize=(8, 3.4))
    for index, name in enumerate(layer_names):
        growth_axes.plot(range(len(growth)), growth[:, index], label=name)
        gradient_axes.plot(range(1, len(growth)),
                           [norms[index] for norms in history['gradient_norm']], label=name)
    growth_axes.set_ylabel('mean |weight| / initial mean |weight|')
    growth_axes.set_title('weight growth per layer')
    gradient_axes.set_yscale('log')
    gradient_axes.set_ylabel('weight-gradient norm, epoch mean')
    gradient_axes.set_title('gradient norm per layer (colours as left)')
    growth_axes.legend()
    for axes in (growth_axes, gradient_axes):
        axes.set_xlabel('epoch')
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    figure.suptitle(f'{DATASET_TITLES[dataset]}, MLP {"-".join(map(str, widths))} '
                    f'({activation}), SGD lr {lr:g}, batch {batch_size}', fontsize=10)
    figure.tight_layout()
    save_figure(figure, out_dir / 'weight_growth.png')

    return {'layers': layer_names,
            'initial_mean_abs_weight': mean_abs_weight[0].tolist(),
            'final_growth': growth[-1].tolist(),
            'growth': growth.tolist(),
            'gradient_norm': history['gradient_norm'],
            'final_train_accuracy': last(history['train_accuracy']),
            'final_test_accuracy': last(history['test_accuracy'])}


def count_code_lines(path):
    """Lines of code in a Python file: not blank, not only a comment, not a docstring.

    A docstring is any statement that is a bare string literal (module, class,
    function and attribute docstrings alike).
    """
    source = Path(path).read_text()
    documentation = set()
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)):
            documentation.update(range(node.lineno, node.end_lineno + 1))
    not_code = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
                tokenize.DEDENT, tokenize.ENCODING, tokenize.ENDMARKER}
    code = set()
    for token in tokenize.tokenize(io.BytesIO(source.encode()).readline):
        if token.type not in not_code:
            code.update(range(token.start[0], token.end[0] + 1))
    return len(code - documentation)


def numpy_vs_pytorch(out_dir, dataset='fashion_mnist', hidden=(128,), activation='elu',
                     epochs=5, lr=0.1, batch_size=128, n_train=None, n_test=None,
                     data_dir='data/', seed=0):
    """The NumPy and the PyTorch MLP trained side by side from the same weights.

    Both see the same batches in the same order, so their curves should
    coincide up to float32 rounding. Draws test accuracy per epoch, seconds
    per epoch and lines of code of each implementation (``numpy_vs_pytorch.png``).
    """
    data = load_data(dataset, n_train, n_test, data_dir, seed)
    n_inputs = data['train'][0].shape[1]
    numpy_model = numpy_mlp(n_inputs, hidden, data['n_classes'], activation, seed)
    torch_model = mlp_pytorch.MLP(n_inputs, list(hidden), data['n_classes'],
                                  activation=activation)
    mlp_pytorch.copy_numpy_to_torch(numpy_model, torch_model)
    histories = {'NumPy': train_numpy(numpy_model, data, epochs, lr, batch_size, seed),
                 'PyTorch': train_torch(torch_model, data, epochs, lr, batch_size, seed)}
    lines_of_code = {'NumPy': sum(count_code_lines(REPOSITORY / name)
                                  for name in ('mlp_numpy.py', 'modules.py')),
                     'PyTorch': count_code_lines(REPOSITORY / 'mlp_pytorch.py')}
    seconds_per_epoch = {name: float(np.median(history['seconds_per_epoch']))
                         for name, history in histories.items()}

    figure, (accuracy_axes, time_axes, code_axes) = plt.subplots(
        1, 3, figsize=(8, 3.2), gridspec_kw={'width_ratios': [2, 1, 1]})
    plot_curves(accuracy_axes, histories, 'test_accuracy', 'accuracy', 'test accuracy',
                {'NumPy': {'marker': 'o'}, 'PyTorch': {'marker': 'x', 'linestyle': '--'}})
    for axes, values, y_label, title in (
            (time_axes, seconds_per_epoch, 'seconds per epoch (median)', 'training time'),
            (code_axes, lines_of_code, 'lines of code', 'model code')):
        bars = axes.bar(list(values), list(values.values()), color=['C0', 'C1'])
        axes.bar_label(bars, fmt='%.3g', fontsize=8)
        axes.margins(y=0.15)
        axes.set_ylabel(y_label)
        axes.set_title(title)
        axes.grid(False)
    n_samples = len(data['train'][1])
    figure.suptitle(f'{DATASET_TITLES[dataset]} ({n_samples} training images), MLP '
                    f'{"-".join(map(str, [n_inputs, *hidden, data["n_classes"]]))} '
                    f'({activation}), SGD lr {lr:g}, batch {batch_size}', fontsize=10)
    figure.tight_layout()
    save_figure(figure, out_dir / 'numpy_vs_pytorch.png')

    return {'lines_of_code': lines_of_code,
            'seconds_per_epoch': seconds_per_epoch,
            'final_test_accuracy': {name: last(history['test_accuracy'])
                                    for name, history in histories.items()},
            'test_accuracy': {name: history['test_accuracy']
                              for name, history in histories.items()},
            'max_test_accuracy_difference': float(np.max(np.abs(
                np.subtract(histories['NumPy']['test_accuracy'],
                            histories['PyTorch']['test_accuracy'])))),
            'n_train': n_samples}


def saddle_surface(points):
    """f(x, y) = x^2 - y^2 at points (..., 2): a saddle at the origin."""
    return points[..., 0] ** 2 - points[..., 1] ** 2


def saddle_surface_gradient(point):
    """Gradient (2x, -2y) of ``saddle_surface``."""
    return np.array([2 * point[0], -2 * point[1]])


def two_weight_loss(weights):
    """Loss of the 1-1-1 linear network ``y = w2 (w1 x)`` on the sample x = 1, target 1.

    L(w1, w2) = (1 - w1 w2)^2, at weights (..., 2). Every point of the
    hyperbola w1 w2 = 1 is a global minimum; the origin is a saddle point.
    """
    return (1 - weights[..., 0] * weights[..., 1]) ** 2


def two_weight_gradient(weights):
    """Hand-written gradient of ``two_weight_loss``, by the chain rule.

    With the residual r = 1 - w1 w2: dL/dw1 = -2 r w2 and dL/dw2 = -2 r w1.
    """
    w1, w2 = weights
    residual = 1 - w1 * w2
    return np.array([-2 * residual * w2, -2 * residual * w1])


def finite_difference_hessian(gradient, point, step=1e-5):
    """Hessian at ``point`` by central differences of ``gradient``, symmetrised.

    Column j is (grad(p + h e_j) - grad(p - h e_j)) / 2h.
    """
    point = np.asarray(point, dtype=np.float64)
    columns = [(gradient(point + step * unit) - gradient(point - step * unit)) / (2 * step)
               for unit in np.eye(len(point))]
    hessian = np.stack(columns, axis=1)
    return (hessian + hessian.T) / 2


def gradient_descent(gradient, start, lr, steps, noise_std=0.0, rng=None):
    """Iterates of w <- w - lr (gradient(w) + noise), noise ~ N(0, noise_std^2 I).

    Returns
    -------
    path : ndarray of shape (steps + 1, len(start)), the start included
    """
    path = [np.asarray(start, dtype=np.float64)]
    for _ in range(steps):
        noise = noise_std * rng.standard_normal(len(path[-1])) if noise_std else 0.0
        path.append(path[-1] - lr * (gradient(path[-1]) + noise))
    return np.array(path)


def first_step_below(losses, threshold):
    """The first step at which ``losses`` drops below ``threshold``, or None."""
    below = np.flatnonzero(np.asarray(losses) < threshold)
    return int(below[0]) if len(below) else None


def saddle(out_dir, lr=0.1, steps=150, noise_std=0.01, n_noisy_runs=8, start=(0.5, -0.5),
           seed=0):
    """Saddle points: x^2 - y^2, and a tiny network whose loss has one at the origin.

    The Hessians at the saddles come from central differences of the
    hand-written gradients. Gradient descent is started on the saddle's
    stable line w1 = -w2, where plain descent walks straight into the saddle
    and stays; a little gradient noise pushes it off. Draws the two surfaces
    (``saddle_surface.png``) and the trajectories and losses
    (``saddle_escape.png``).
    """
    origin = np.zeros(2)
    surface_eigenvalues = np.linalg.eigvalsh(
        finite_difference_hessian(saddle_surface_gradient, origin))
    network_eigenvalues, network_eigenvectors = np.linalg.eigh(
        finite_difference_hessian(two_weight_gradient, origin))
    plain_path = gradient_descent(two_weight_gradient, start, lr, steps)
    rng = np.random.default_rng(seed)
    noisy_paths = [gradient_descent(two_weight_gradient, start, lr, steps, noise_std, rng)
                   for _ in range(n_noisy_runs)]
    saddle_loss = float(two_weight_loss(origin))
    escape_steps = [first_step_below(two_weight_loss(path), saddle_loss / 2)
                    for path in noisy_paths]

    figure = plt.figure(figsize=(8, 3.6))
    surface_axes = figure.add_subplot(1, 2, 1, projection='3d')
    grid = np.stack(np.meshgrid(np.linspace(-1, 1, 41), np.linspace(-1, 1, 41)), axis=-1)
    surface_axes.plot_surface(grid[..., 0], grid[..., 1], saddle_surface(grid),
                              cmap='coolwarm', alpha=0.8, linewidth=0)
    surface_axes.scatter([0], [0], [0], color='black', s=20)
    surface_axes.set_xlabel('$x$')
    surface_axes.set_ylabel('$y$')
    surface_axes.set_zlabel('$f(x, y)$')
    surface_axes.set_title('$f = x^2 - y^2$; Hessian eigenvalues at 0:\n'
                           + ', '.join(f'{value:+.2f}' for value in surface_eigenvalues))
    contour_axes = figure.add_subplot(1, 2, 2)
    draw_two_weight_landscape(contour_axes)
    for value, vector in zip(network_eigenvalues, network_eigenvectors.T):
        contour_axes.annotate('', xy=0.8 * vector, xytext=(0, 0),
                              arrowprops={'arrowstyle': '->', 'color': 'black'})
        contour_axes.text(*(0.95 * vector), f'{value:+.2f}', ha='center', va='center')
    contour_axes.set_title('$L = (1 - w_1 w_2)^2$: Hessian eigenvectors at 0,\n'
                           'labelled with their eigenvalues')
    contour_axes.legend(loc='upper left')
    figure.tight_layout()
    save_figure(figure, out_dir / 'saddle_surface.png')

    figure, (path_axes, loss_axes) = plt.subplots(1, 2, figsize=(8, 3.6))
    draw_two_weight_landscape(path_axes)
    path_axes.plot(*plain_path.T, color='black', marker='.', markersize=3,
                   label='gradient descent')
    loss_axes.plot(two_weight_loss(plain_path), color='black', label='gradient descent')
    for index, path in enumerate(noisy_paths):
        label = f'with noise, std {noise_std:g}' if index == 0 else None
        path_axes.plot(*path.T, color='C3', alpha=0.6, linewidth=1, label=label)
        loss_axes.plot(two_weight_loss(path), color='C3', alpha=0.6, linewidth=1, label=label)
    path_axes.set_title(f'{steps} steps of lr {lr:g} from {tuple(start)}')
    path_axes.legend(loc='upper left')
    loss_axes.axhline(saddle_loss, color='grey', linestyle=':', label='loss at the saddle')
    loss_axes.set_xlabel('step')
    loss_axes.set_ylabel('loss (squared error)')
    loss_axes.set_title('loss along the trajectories')
    loss_axes.legend()
    figure.tight_layout()
    save_figure(figure, out_dir / 'saddle_escape.png')

    return {'surface_hessian_eigenvalues': surface_eigenvalues.tolist(),
            'network_hessian_eigenvalues': network_eigenvalues.tolist(),
            'network_hessian_eigenvectors': network_eigenvectors.T.tolist(),
            'plain_final_loss': float(two_weight_loss(plain_path[-1])),
            'plain_final_distance_to_saddle': float(np.linalg.norm(plain_path[-1])),
            'noisy_escape_steps': escape_steps,
            'noisy_final_weights': [path[-1].tolist() for path in noisy_paths],
            'noisy_final_losses': [float(two_weight_loss(path[-1])) for path in noisy_paths]}


def draw_two_weight_landscape(axes, limit=1.6):
    """Contours of ``two_weight_loss`` with its minima (w1 w2 = 1) and its saddle."""
    grid = np.stack(np.meshgrid(np.linspace(-limit, limit, 161),
                                np.linspace(-limit, limit, 161)), axis=-1)
    contours = axes.contourf(grid[..., 0], grid[..., 1], two_weight_loss(grid),
                             levels=np.linspace(0, 4, 17), cmap='viridis', extend='max')
    plt.colorbar(contours, ax=axes, label='loss')
    w1 = np.linspace(1 / limit, limit, 100)
    for sign, label in ((1, 'minima, $w_1 w_2 = 1$'), (-1, None)):
        axes.plot(sign * w1, sign / w1, color='C1', linestyle='--', linewidth=1.5,
                  label=label)
    axes.plot(0, 0, marker='x', color='red', markersize=8, linestyle='none', label='saddle')
    axes.set_xlabel('$w_1$')
    axes.set_ylabel('$w_2$')
    axes.set_aspect('equal')
    axes.grid(False)


def architectures(out_dir, datasets=('spiral', 'fashion_mnist'), depths=(1, 2, 4),
                  widths=(4, 16, 64), activation='relu', spiral_epochs=1000,
                  spiral_lr=0.5, fashion_epochs=5, fashion_lr=0.1, batch_size=128,
                  n_train=10000, n_test=2000, data_dir='data/', seed=0):
    """Depth against width: every combination trained on each data set (NumPy MLP).

    The spiral is trained by full-batch gradient descent, Fashion-MNIST by
    mini-batch SGD, each on at most ``n_train`` training samples (the spiral
    has 1200) and tested on at most ``n_test`` (the spiral has 300). Draws train and test accuracy against the width, one
    line per depth (``architectures_accuracy.png``), and every decision
    boundary on the spiral (``architectures_spiral.png``).
    """
    training = {'spiral': {'epochs': spiral_epochs, 'lr': spiral_lr, 'batch_size': None},
                'fashion_mnist': {'epochs': fashion_epochs, 'lr': fashion_lr,
                                  'batch_size': batch_size}}
    results, spiral_models = {}, {}
    for dataset in datasets:
        data = load_data(dataset, n_train, n_test, data_dir, seed)
        n_inputs = data['train'][0].shape[1]
        results[dataset] = {}
        for depth in depths:
            for width in widths:
                model = numpy_mlp(n_inputs, [width] * depth, data['n_classes'], activation, seed)
                start = time.perf_counter()
                history = train_numpy(model, data, seed=seed, **training[dataset])
                results[dataset][f'depth {depth}, width {width}'] = {
                    'depth': depth, 'width': width,
                    'parameters': sum(parameter.size for parameter, _ in model.parameters()),
                    'final_train_accuracy': last(history['train_accuracy']),
                    'final_test_accuracy': last(history['test_accuracy']),
                    'diverged_at_epoch': history['diverged_at_epoch'],
                    'seconds': time.perf_counter() - start}
                if dataset == 'spiral':
                    spiral_models[depth, width] = model
                    spiral_data = data

    figure, all_axes = plt.subplots(1, len(datasets), figsize=(4 * len(datasets), 3.6),
                                    squeeze=False)
    for axes, (dataset, runs) in zip(all_axes[0], results.items()):
        for index, depth in enumerate(depths):
            rows = [run for run in runs.values() if run['depth'] == depth]
            axes.plot(widths, [run['final_test_accuracy'] for run in rows], marker='o',
                      color=f'C{index}', label=f'{depth} hidden, test')
            axes.plot(widths, [run['final_train_accuracy'] for run in rows], marker='.',
                      linestyle=':', color=f'C{index}', label=f'{depth} hidden, train')
        axes.set_xscale('log', base=2)
        axes.set_xticks(widths, [str(width) for width in widths])
        axes.set_xlabel('width (units per hidden layer)')
        axes.set_ylabel('accuracy after training')
        settings = training[dataset]
        batches = ('full batch' if settings['batch_size'] is None
                   else f'batch {settings["batch_size"]}')
        axes.set_title(f'{DATASET_TITLES[dataset]}: {settings["epochs"]} epochs,\n'
                       f'lr {settings["lr"]:g}, {batches}')
        axes.legend(fontsize=7)
    figure.tight_layout()
    save_figure(figure, out_dir / 'architectures_accuracy.png')

    if spiral_models:
        figure, all_axes = plt.subplots(len(depths), len(widths),
                                        figsize=(2.4 * len(widths), 2.4 * len(depths)),
                                        squeeze=False)
        for ((depth, width), model), axes in zip(spiral_models.items(), all_axes.ravel()):
            run = results['spiral'][f'depth {depth}, width {width}']
            plot_decision_boundary(axes, functools.partial(predict_numpy, model),
                                   *spiral_data['train'], spiral_data['n_classes'],
                                   f'{depth}\u00d7{width}: test {run["final_test_accuracy"]:.2f}')
            axes.set_xlabel('')
            axes.set_ylabel('')
            axes.set_xticks([])
            axes.set_yticks([])
        figure.suptitle('Spiral decision boundaries, depth \u00d7 width', fontsize=10)
        figure.tight_layout()
        save_figure(figure, out_dir / 'architectures_spiral.png')
    return results


# ---------------------------------------------------------------------------
# Running studies
# ---------------------------------------------------------------------------

STUDIES = {
    'lr_sweep': lr_sweep,
    'activations': activations,
    'batch_norm': batch_norm,
    'weight_growth': weight_growth,
    'numpy_vs_pytorch': numpy_vs_pytorch,
    'saddle': saddle,
    'architectures': architectures,
}

QUICK_BUDGETS = {
    'lr_sweep': {'epochs': 500},
    'activations': {'epochs': 2, 'n_train': 2000, 'n_test': 1000},
    'batch_norm': {'epochs': 2, 'n_train': 2000, 'n_test': 1000},
    'weight_growth': {'epochs': 5, 'n_train': 2000, 'n_test': 1000},
    'numpy_vs_pytorch': {'epochs': 2, 'n_train': 10000, 'n_test': 2000},
    'saddle': {},
    'architectures': {'spiral_epochs': 200, 'fashion_epochs': 2, 'n_train': 2000,
                      'n_test': 1000},
}
"""The settings ``--quick`` overrides in each study: a small budget for a smoke run."""

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


def run_study(name, out_dir, **settings):
    """Run one study, time it, and write ``<out_dir>/<name>.json``.

    Parameters
    ----------
    name : str
        A key of ``STUDIES``.
    out_dir : str or Path
        Created if missing; receives the study's PNGs and its JSON.
    **settings
        Keyword arguments of the study function overriding its defaults.

    Returns
    -------
    record : dict
        What the JSON holds: ``'study'``, ``'seconds'``, ``'settings'`` (every
        argument of the study, defaults included) and ``'results'``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    study = STUDIES[name]
    arguments = inspect.signature(study).bind(out_dir, **settings)
    arguments.apply_defaults()
    start = time.perf_counter()
    results = study(*arguments.args, **arguments.kwargs)
    seconds = time.perf_counter() - start
    record = json_ready({'study': name, 'seconds': seconds,
                         'settings': {key: value for key, value in arguments.arguments.items()
                                      if key != 'out_dir'},
                         'results': results})
    save_json(out_dir / f'{name}.json', record)
    return record


def build_parser():
    """The command line: one sub-command per study, and ``all``."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument('--out_dir', default='results/experiments/', type=Path,
                        help='folder for the figures and the JSON files '
                             '(default: results/experiments/)')
    common.add_argument('--quick', action='store_true',
                        help='a small budget (fewer epochs, smaller subsets): '
                             'every study together in under two minutes on two cores')
    common.add_argument('--seed', default=0, type=int,
                        help='seed of the data, the initial weights and the batch order '
                             '(default: 0)')
    common.add_argument('--data_dir', default='data/',
                        help='folder searched for Fashion-MNIST before '
                             '/usr/share/datasets/fashion-mnist (default: data/)')
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    subparsers = parser.add_subparsers(dest='study', required=True, metavar='STUDY',
                                       help=f'one of {", ".join(STUDIES)}, or all')
    for name, study in STUDIES.items():
        subparsers.add_parser(name, parents=[common], help=inspect.getdoc(study).split('\n')[0],
                              description=inspect.getdoc(study),
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    subparsers.add_parser('all', parents=[common], help='every study, one after the other')
    return parser


def main(argv=None):
    """Run the studies named on the command line; print where their files went."""
    args = build_parser().parse_args(argv)
    names = list(STUDIES) if args.study == 'all' else [args.study]
    total_start = time.perf_counter()
    for name in names:
        parameters = inspect.signature(STUDIES[name]).parameters
        settings = {key: value for key, value in (('seed', args.seed), ('data_dir', args.data_dir))
                    if key in parameters}
        if args.quick:
            settings.update(QUICK_BUDGETS[name])
        record = run_study(name, args.out_dir, **settings)
        print(f'{name}: {record["seconds"]:.1f} s -> {args.out_dir / name}.json and its PNGs')
    if len(names) > 1:
        print(f'all studies: {time.perf_counter() - total_start:.1f} s')


if __name__ == '__main__':
    main()
