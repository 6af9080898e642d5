"""Train the NumPy MLP with hand-written backpropagation.

    python train_mlp_numpy.py                      # CIFAR-10, the assignment's defaults
    python train_mlp_numpy.py --dataset fashion_mnist --hidden_dims 256 128 --momentum 0.9
    python train_mlp_numpy.py --help

The model kept at the end is the one with the best validation accuracy; its
test accuracy is reported. Curves, a JSON summary, the best weights and a
checkpoint are written to a folder named after the settings under
``--out_dir``. This script imports NumPy only, never PyTorch.
"""
import json
from pathlib import Path

import numpy as np

from lab.checkpoints import NumpyFiles, RandomStates
from lab.cli import ArgumentParser, add_common_arguments, run_command_line
from lab.datasets import get_dataloader, get_dataset
from mlp_numpy import MLP
from modules import ACTIVATIONS, SoftmaxCrossEntropyModule
from lab.optimizers import make_optimizer, make_scheduler
from lab.runs import TrainingRun
from lab.settings import run_settings, settings_of


def accuracy(predictions, targets):
    """Fraction of samples whose highest-scoring class is the target.

    Parameters
    ----------
    predictions : ndarray of shape (N, C)
        Scores (logits or probabilities) for each class.
    targets : ndarray of shape (N,) with integer labels, or (N, C) one-hot

    Returns
    -------
    float in [0, 1]
    """
    targets = np.asarray(targets)
    if targets.ndim == 2:
        targets = targets.argmax(axis=1)
    if len(predictions) != len(targets):
        raise ValueError(f"batch size mismatch: {len(predictions)} predictions "
                         f"but {len(targets)} targets")
    return float(np.mean(predictions.argmax(axis=1) == targets))


def evaluate_model(model, data_loader, return_loss=False):
    """Accuracy (and mean loss) of ``model`` over the whole data set of ``data_loader``.

    Each batch counts by its size, so the result is the average over every
    sample even when the last batch is smaller.

    Returns
    -------
    accuracy : float
    loss : float, only when ``return_loss`` is True
    """
    model.eval()
    loss_module = SoftmaxCrossEntropyModule()
    accuracy_sum, loss_sum, n_samples = 0.0, 0.0, 0
    for images, labels in data_loader:
        logits = model.forward(images)
        accuracy_sum += accuracy(logits, labels) * len(labels)
        loss_sum += float(loss_module.forward(logits, labels)) * len(labels)
        n_samples += len(labels)
    model.clear_cache()
    loss_module.clear_cache()
    if return_loss:
        return accuracy_sum / n_samples, loss_sum / n_samples
    return accuracy_sum / n_samples


def train_epoch(model, loader, loss_module, optimizer, on_batch=None):
    """One pass over the training set; returns the mean loss and accuracy.

    Each step: forward, loss, backward, update. ``on_batch(loss, accuracy,
    n_samples)``, when given, sees each batch's loss before its update (the
    training script uses it to draw a progress bar and to stop on a NaN loss).
    """
    model.train()
    loss_sum, correct_sum, n_samples = 0.0, 0.0, 0
    for images, labels in loader:
        logits = model.forward(images)
        loss = loss_module.forward(logits, labels)
        batch_accuracy = accuracy(logits, labels)
        if on_batch is not None:
            on_batch(loss, batch_accuracy, len(labels))
        model.backward(loss_module.backward())
        optimizer.step()
        loss_sum += float(loss) * len(labels)
        correct_sum += batch_accuracy * len(labels)
        n_samples += len(labels)
    return loss_sum / n_samples, correct_sum / n_samples


def train(hidden_dims, lr, batch_size, epochs, seed, data_dir, dataset='cifar10',
          validation_size=None, activation='elu', optimizer='sgd', momentum=0.0,
          weight_decay=0.0, scheduler='none', patience=None, use_batch_norm=False,
          dropout=0.0, dtype='float32', out_dir=None, resume=None, plot=True,
          progress=True):
    """Train the NumPy MLP and test the model that was best on validation.

    Parameters
    ----------
    hidden_dims : list of int
        Width of each hidden layer; empty for logistic regression.
    lr, batch_size, epochs : float, int, int
        Learning rate, mini-batch size, maximum number of epochs.
    seed : int
        Seed of the initial weights, the shuffling and dropout.
    data_dir : str
        Folder of the data sets.
    dataset, validation_size, ..., progress :
        The command-line flags of the same names (``python train_mlp_numpy.py
        --help``); each default gives the assignment's plain run. ``dtype`` is
        'float32' (fast) or 'float64' (for checking against float64 results);
        ``resume`` a ``checkpoint.npz`` to continue, in its own folder.

    Returns
    -------
    model : MLP
        The model of the epoch with the best validation accuracy.
    val_accuracies : list of float
        Validation accuracy after each epoch.
    test_accuracy : float or None
        Test accuracy of ``model`` (None when no epoch finished or Ctrl-C
        stopped the run).
    logging_dict : dict
        Per-epoch 'train_loss', 'train_accuracy', 'validation_loss',
        'validation_accuracy', 'learning_rate' and 'epoch_seconds'.
    """
    settings = run_settings(settings_of(train, locals()))  # every parameter but paths and display
    data = get_dataset(dataset, data_dir, validation_size)
    loaders = get_dataloader(data, batch_size, return_numpy=True, seed=seed)
    rng = np.random.default_rng(seed)
    model = MLP(data['train'].n_features, hidden_dims, len(data['train'].classes),
                use_batch_norm, activation, dropout, dtype=dtype, rng=rng)
    sgd_or_adam = make_optimizer(optimizer, model, lr, momentum, weight_decay)
    lr_schedule = make_scheduler(scheduler, sgd_or_adam, epochs)
    loss_module = SoftmaxCrossEntropyModule()

    parts = {'model': model, 'optimizer': sgd_or_adam, 'scheduler': lr_schedule,
             'random': RandomStates(model=rng, loader=loaders['train'].rng)}
    run = TrainingRun(framework='numpy', settings=settings, parts=parts, files=NumpyFiles,
                      out_dir=out_dir, resume=resume, plot=plot, show_progress=progress)
    with run:
        for epoch in run.epochs():
            batches = run.progress(loaders['train'])
            train_loss, train_accuracy = train_epoch(model, batches, loss_module, sgd_or_adam,
                                                     on_batch=batches.record)
            validation_accuracy, validation_loss = evaluate_model(
                model, loaders['validation'], return_loss=True)
            run.end_epoch(train_loss, train_accuracy, validation_loss, validation_accuracy,
                          learning_rate=sgd_or_adam.lr)
            if lr_schedule:
                lr_schedule.step()

    model.load_state_dict(run.best_state)
    test_accuracy = evaluate_model(model, loaders['test']) if run.should_test else None
    run.finish(test_accuracy)
    return model, run.validation_accuracies, test_accuracy, run.logging_dict


def load_model(run_dir):
    """The best model a run saved, rebuilt from its ``summary.json`` and ``model.npz``.

    The weights are read with ``allow_pickle=False``: loading never runs code
    from the file.

    Raises
    ------
    ValueError
        If the file holds pickled objects, or weights of another architecture
        (naming the saved shape and the expected one).
    """
    run_dir = Path(run_dir)
    settings = json.loads((run_dir / 'summary.json').read_text())['config']
    weights = NumpyFiles.read_weights(run_dir / 'model.npz')
    # The file keeps state_dict's forward order; the 2-D arrays are the linear weights.
    linear_weights = [value for value in weights.values() if value.ndim == 2]
    model = MLP(linear_weights[0].shape[1], settings['hidden_dims'],
                linear_weights[-1].shape[0], settings['use_batch_norm'],
                settings['activation'], settings['dropout'], dtype=settings['dtype'])
    model.load_state_dict(weights)
    return model.eval()


def main(argv=None):
    parser = ArgumentParser(
        description="Train the NumPy MLP (hand-written backpropagation) and test the "
                    "model that is best on validation.")
    add_common_arguments(parser, activations=ACTIVATIONS)
    parser.add_argument('--dtype', default='float32', choices=['float32', 'float64'],
                        help='floating-point precision: float32 is fast, float64 '
                             'for checking (default: float32)')
    run_command_line(parser, train, NumpyFiles, argv)


if __name__ == '__main__':
    main()
