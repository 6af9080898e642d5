"""Regression: MLPs of several sizes fit a noisy sine, in NumPy and in PyTorch."""
import contextlib
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

import mlp_pytorch
from lab.mirror import copy_numpy_to_torch
from modules import MSEModule
from lab.optimizers import Adam, CosineAnnealingLR
from lab.plotting import save_figure
from lab.studies.harness import numpy_mlp

INTERVAL = (-3.0, 3.0)
"""The inputs x are drawn uniformly from this interval."""
RECORDED_POINTS = 100
"""The training and test MSE are recorded at this many evenly spaced epochs (and at 0)."""


def noisy_sine(n_samples, frequency, noise, rng):
    """``n_samples`` points y = sin(frequency x) + noise e, e ~ N(0, 1), x uniform on ``INTERVAL``.

    Returns
    -------
    x, y : ndarrays of shape (n_samples, 1), float64
    """
    x = rng.uniform(*INTERVAL, size=(n_samples, 1))
    return x, np.sin(frequency * x) + noise * rng.standard_normal((n_samples, 1))


def architecture_name(hidden):
    """'1-64-64-1' for the hidden widths (64, 64) of a network with one input and one output."""
    return '-'.join(map(str, [1, *hidden, 1]))


@contextlib.contextmanager
def one_torch_thread():
    """Run PyTorch on one intra-op thread inside the block, as many as before after it.

    The matrices here are at most 1000 by 64: a second thread only adds
    synchronisation, and when another process holds a core the two threads
    wait for each other (on our busy two-core machine this study took 61 s
    with PyTorch on two threads, 16 s with it on one).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def load_torch_optimizers():
    """Pay PyTorch's one-off cost of a first optimiser before anything is timed.

    Building the first ``torch.optim`` optimiser of a process imports
    PyTorch's compiler stack (about 800 modules, 2.5 s on our machine): that
    is start-up, not training, and would be charged to the first fit.
    """
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])


def new_record():
    """An empty record of a fit: the MSEs at the recorded epochs, and where it diverged."""
    return {'epoch': [], 'train_mse': [], 'test_mse': [], 'diverged_at_epoch': None}


def fit_numpy(model, data, epochs, lr, recorded_epochs):
    """Full-batch Adam on the MSE of a NumPy MLP, its rate annealed from ``lr`` to 0.

    ``optimizers.Adam`` and ``optimizers.CosineAnnealingLR``, stepped once per
    epoch. A run whose loss stops being finite ends there, recording the epoch.

    Returns
    -------
    record : dict
        ``'epoch'``, ``'train_mse'``, ``'test_mse'``: lists, one entry per
        recorded epoch (0 is before training); ``'diverged_at_epoch'``.
    """
    (x, y), (x_test, y_test) = data['train'], data['test']
    loss_module, optimizer, record = MSEModule(), Adam(model, lr=lr), new_record()
    scheduler = CosineAnnealingLR(optimizer, T_max=epochs)
    for epoch in range(epochs + 1):
        if epoch > 0:
            predictions = model.forward(x)
            loss = loss_module.forward(predictions, y)
            if not np.isfinite(loss):
                record['diverged_at_epoch'] = epoch
                break
            model.backward(loss_module.backward(predictions, y))
            optimizer.step()
            scheduler.step()
        if epoch in recorded_epochs:
            record['epoch'].append(epoch)
            record['train_mse'].append(loss_module.forward(model.forward(x), y))
            record['test_mse'].append(loss_module.forward(model.forward(x_test), y_test))
    model.clear_cache()
    return record


def fit_torch(model, data, epochs, lr, recorded_epochs):
    """Full-batch ``torch.optim.Adam`` with ``CosineAnnealingLR``; as ``fit_numpy``."""
    (x, y), (x_test, y_test) = (map(torch.from_numpy, pair)
                                for pair in (data['train'], data['test']))
    optimizer, record = torch.optim.Adam(model.parameters(), lr=lr), new_record()
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    for epoch in range(epochs + 1):
        if epoch > 0:
            loss = F.mse_loss(model(x), y)
            if not torch.isfinite(loss):
                record['diverged_at_epoch'] = epoch
                break
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
        if epoch in recorded_epochs:
            with torch.no_grad():
                record['epoch'].append(epoch)
                record['train_mse'].append(F.mse_loss(model(x), y).item())
                record['test_mse'].append(F.mse_loss(model(x_test), y_test).item())
    return record


def regression(out_dir, hidden_layers=((8,), (64,), (64, 64, 64)), activation='tanh',
               epochs=2000, lr=0.02, n_train=100, n_test=1000, frequency=3.0, noise=0.1,
               seed=0):
    """Noisy 1-D regression: MLPs of a few sizes fit y = sin(3x) + noise, in NumPy and PyTorch.

    For each architecture a float64 NumPy MLP and its PyTorch mirror start
    from the same weights (``copy_numpy_to_torch``) and are trained by
    full-batch Adam on the mean squared error, ``optimizers.Adam`` and
    ``torch.optim.Adam`` with the same settings. tanh units: the target is
    smooth, and a sum of a few tanh curves follows it where ELU or ReLU units
    give nearly piecewise-linear fits. float64: the two fits then agree to
    rounding, so any visible difference would be a bug. Draws the fitted
    curves over the data, one panel per architecture, the NumPy and PyTorch
    curves overlaid (``regression_fits.png``), and the training and test MSE
    against the epoch (``regression_curves.png``). The noise's variance is
    the test MSE of the true function: no fit can expect less.
    """
    rng = np.random.default_rng(seed)
    data = {'train': noisy_sine(n_train, frequency, noise, rng),
            'test': noisy_sine(n_test, frequency, noise, rng)}
    grid = np.linspace(*INTERVAL, 400)[:, np.newaxis]
    recorded_epochs = set(np.linspace(0, epochs, RECORDED_POINTS + 1).round().astype(int).tolist())
    fits, results = {}, {}
    load_torch_optimizers()
    for hidden in hidden_layers:
        name = architecture_name(hidden)
        numpy_model = numpy_mlp(1, hidden, 1, activation, seed, dtype=np.float64)
        torch_model = mlp_pytorch.MLP(1, list(hidden), 1, activation=activation).double()
        copy_numpy_to_torch(numpy_model, torch_model)
        records, seconds = {}, {}
        for implementation, fit, model in (('numpy', fit_numpy, numpy_model),
                                           ('pytorch', fit_torch, torch_model)):
            start = time.perf_counter()
            with one_torch_thread():
                records[implementation] = fit(model, data, epochs, lr, recorded_epochs)
            seconds[implementation] = time.perf_counter() - start
        with torch.no_grad():
            fits[name] = {'numpy': numpy_model.forward(grid)[:, 0],
                          'pytorch': torch_model(torch.from_numpy(grid)).numpy()[:, 0]}
        numpy_model.clear_cache()
        results[name] = {
            'hidden': list(hidden),
            'parameters': sum(parameter.size for parameter, _ in numpy_model.parameters()),
            **{f'final_{split}_mse': {implementation: record[f'{split}_mse'][-1]
                                      for implementation, record in records.items()}
               for split in ('train', 'test')},
            'max_prediction_difference': float(np.max(np.abs(fits[name]['numpy']
                                                              - fits[name]['pytorch']))),
            'seconds': seconds,
            'curves': records}

    draw_fits(out_dir, data, grid, fits, results, frequency, activation)
    draw_curves(out_dir, results, noise)
    return {'noise_variance': noise ** 2,
            'test_mse_of_the_true_function': float(np.mean(
                (np.sin(frequency * data['test'][0]) - data['test'][1]) ** 2)),
            'architectures': results}


def draw_fits(out_dir, data, grid, fits, results, frequency, activation):
    """One panel per architecture: the data, the true function, and both fits."""
    figure, all_axes = plt.subplots(1, len(fits), figsize=(3.2 * len(fits), 3.2),
                                    sharey=True, squeeze=False)
    x, y = data['train']
    for axes, (name, curves) in zip(all_axes[0], fits.items()):
        axes.scatter(x[:, 0], y[:, 0], s=8, color='0.6', label='training data')
        axes.plot(grid[:, 0], np.sin(frequency * grid[:, 0]), color='black', linewidth=0.8,
                  linestyle=':', label=f'sin({frequency:g}x)')
        axes.plot(grid[:, 0], curves['numpy'], color='C0', linewidth=2, label='NumPy fit')
        axes.plot(grid[:, 0], curves['pytorch'], color='C1', linewidth=1, linestyle='--',
                  label='PyTorch fit')
        mse = results[name]
        axes.set_title(f'{name}: train MSE {mse["final_train_mse"]["numpy"]:.4f}, '
                       f'test {mse["final_test_mse"]["numpy"]:.4f}', fontsize=9)
        axes.set_xlabel('x')
    all_axes[0, 0].set_ylabel('y')
    all_axes[0, 0].legend(loc='lower left')
    figure.suptitle(f'Noisy sine, {len(x)} training points: MLPs ({activation}) trained by '
                    f'full-batch Adam on the MSE', fontsize=10)
    figure.tight_layout()
    save_figure(figure, out_dir / 'regression_fits.png')


def draw_curves(out_dir, results, noise):
    """Training and test MSE against the epoch: NumPy solid, PyTorch dashed."""
    figure, all_axes = plt.subplots(1, 2, figsize=(8, 3.4), sharey=True)
    for axes, split in zip(all_axes, ('train', 'test')):
        for index, (name, result) in enumerate(results.items()):
            for implementation, style in (('numpy', '-'), ('pytorch', '--')):
                curve = result['curves'][implementation]
                axes.plot(curve['epoch'], curve[f'{split}_mse'], color=f'C{index}',
                          linestyle=style,
                          label=f'{name}, {"NumPy" if implementation == "numpy" else "PyTorch"}')
        axes.axhline(noise ** 2, color='black', linewidth=0.8, linestyle=':',
                     label='noise variance')
        axes.set_yscale('log')
        axes.set_xlabel('epoch (one full-batch step)')
        axes.set_title(f'{split} MSE')
    all_axes[0].set_ylabel('mean squared error')
    all_axes[1].legend(fontsize=7)
    figure.tight_layout()
    save_figure(figure, out_dir / 'regression_curves.png')
