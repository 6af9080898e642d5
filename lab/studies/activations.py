"""The activation functions, and how their derivatives make gradients vanish or not."""
import matplotlib.pyplot as plt
import numpy as np

from modules import ACTIVATIONS
from lab.plotting import save_figure
from lab.studies.harness import (DATASET_TITLES, LOSS_LABEL, last, load_subset, numpy_mlp,
                             plot_curves, train_numpy)

ACTIVATION_NAMES = ('sigmoid', 'tanh', 'relu', 'leaky_relu', 'elu')
"""The activations compared, in the order of the figures' legends."""


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

    data = load_subset(dataset, n_train, n_test, data_dir, seed)
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
