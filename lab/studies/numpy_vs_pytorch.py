"""The NumPy and the PyTorch MLP side by side: accuracy, speed and lines of code."""
import ast
import io
import tokenize
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import mlp_pytorch
from lab.mirror import copy_numpy_to_torch
from lab.plotting import save_figure
from lab.studies.harness import (DATASET_TITLES, last, load_subset, numpy_mlp, plot_curves,
                             train_numpy, train_torch)

REPOSITORY = Path(__file__).resolve().parents[2]
"""The repository's root, which holds the model files whose lines are counted."""


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
    data = load_subset(dataset, n_train, n_test, data_dir, seed)
    n_inputs = data['train'][0].shape[1]
    numpy_model = numpy_mlp(n_inputs, hidden, data['n_classes'], activation, seed)
    torch_model = mlp_pytorch.MLP(n_inputs, list(hidden), data['n_classes'],
                                  activation=activation)
    copy_numpy_to_torch(numpy_model, torch_model)
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
