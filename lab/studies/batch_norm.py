"""Batch normalisation in a deep MLP, in PyTorch and in NumPy from the same weights."""
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D

import mlp_pytorch
from lab.mirror import copy_numpy_to_torch
from lab.plotting import save_figure
from lab.studies.harness import (DATASET_TITLES, LOSS_LABEL, PROBE_SIZE, last, load_subset,
                             numpy_mlp, plot_curves, train_numpy, train_torch)


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
    data = load_subset(dataset, n_train, n_test, data_dir, seed)
    n_inputs = data['train'][0].shape[1]
    torch_histories, numpy_histories = {}, {}
    for activation in activation_names:
        for use_batch_norm in (False, True):
            label = f'{activation}{", batch norm" if use_batch_norm else ""}'
            numpy_model = numpy_mlp(n_inputs, hidden, data['n_classes'], activation, seed,
                                    use_batch_norm)
            torch_model = mlp_pytorch.MLP(n_inputs, list(hidden), data['n_classes'],
                                          use_batch_norm=use_batch_norm, activation=activation)
            copy_numpy_to_torch(numpy_model, torch_model)
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
