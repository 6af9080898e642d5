"""How much the weights of each layer grow while the network trains."""
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from lab.plotting import save_figure
from lab.studies.harness import DATASET_TITLES, last, load_subset, numpy_mlp, train_numpy


def weight_growth(out_dir, dataset='fashion_mnist', hidden=(256, 128, 64), activation='relu',
                  epochs=30, lr=0.1, batch_size=128, n_train=10000, n_test=2000,
                  data_dir='data/', seed=0):
    """How the weights of each linear layer grow during training (NumPy MLP).

    Draws the mean absolute weight of each linear layer divided by its
    initial value, and the norm of each layer's weight gradient, against the
    epoch (``weight_growth.png``).
    """
    data = load_subset(dataset, n_train, n_test, data_dir, seed)
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
