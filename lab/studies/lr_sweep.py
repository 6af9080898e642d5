"""How the learning rate decides between crawling, fitting and overshooting."""
import functools

import matplotlib.pyplot as plt
import numpy as np

from lab.plotting import save_figure
from lab.studies.harness import (LOSS_LABEL, last, load_subset, numpy_mlp, plot_curves,
                             plot_decision_boundary, predict_numpy, train_numpy)


def lr_sweep(out_dir, learning_rates=(0.2, 1.0, 5.0), epochs=1000, hidden=(100,),
             activation='relu', n_train=300, seed=0):
    """Full-batch gradient descent on the spiral at several learning rates.

    Every run starts from the same initial weights and trains on the same
    ``n_train`` points. A run whose loss stops being finite ends there and
    says so. Draws the loss and accuracy curves (``lr_sweep_curves.png``)
    and each run's decision boundary (``lr_sweep_boundaries.png``).
    """
    data = load_subset('spiral', n_train=n_train, seed=seed)
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
