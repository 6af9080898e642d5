"""Depth against width, on the spiral and on Fashion-MNIST."""
import functools
import time

import matplotlib.pyplot as plt

from lab.plotting import save_figure
from lab.studies.harness import (DATASET_TITLES, last, load_subset, numpy_mlp,
                             plot_decision_boundary, predict_numpy, train_numpy)


def architectures(out_dir, datasets=('spiral', 'fashion_mnist'), depths=(1, 2, 4),
                  widths=(4, 16, 64), activation='relu', spiral_epochs=1000,
                  spiral_lr=0.5, fashion_epochs=5, fashion_lr=0.1, batch_size=128,
                  n_train=10000, n_test=2000, data_dir='data/', seed=0):
    """Depth against width: every combination trained on each data set (NumPy MLP).

    The spiral is trained by full-batch gradient descent, Fashion-MNIST by
    mini-batch SGD, each on at most ``n_train`` training samples (the spiral
    has 1200) and tested on at most ``n_test`` (the spiral has 300). Draws
    train and test accuracy against the width, one line per depth
    (``architectures_accuracy.png``), and every decision boundary on the
    spiral (``architectures_spiral.png``).
    """
    training = {'spiral': {'epochs': spiral_epochs, 'lr': spiral_lr, 'batch_size': None},
                'fashion_mnist': {'epochs': fashion_epochs, 'lr': fashion_lr,
                                  'batch_size': batch_size}}
    results, spiral_models = {}, {}
    for dataset in datasets:
        data = load_subset(dataset, n_train, n_test, data_dir, seed)
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
