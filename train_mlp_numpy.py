"""Train the NumPy MLP with hand-written backpropagation.

    python train_mlp_numpy.py                      # CIFAR-10, the assignment's defaults
    python train_mlp_numpy.py --dataset fashion_mnist --hidden_dims 256 128 --momentum 0.9
    python train_mlp_numpy.py --help

The model kept at the end is the one with the best validation accuracy; its
test accuracy is reported. Curves, a JSON summary, the best weights and a
checkpoint are written to a folder named after the configuration under
``--out_dir``. This script imports NumPy only, never PyTorch.
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from data_utils import get_dataloader
from mlp_numpy import MLP
from modules import SoftmaxCrossEntropyModule
from optimizers import make_optimizer, make_scheduler
from training_utils import (DivergenceError, TrainingRun,
                            add_common_arguments, atomic_write, check_finite_loss,
                            check_resumable, load_data, run_command_line)


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
    return float(np.mean(np.argmax(predictions, axis=1) == targets))


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
    n_correct, loss_sum, n_samples = 0, 0.0, 0
    for images, labels in data_loader:
        logits = model.forward(images)
        n_correct += int(np.sum(np.argmax(logits, axis=1) == labels))
        loss_sum += float(loss_module.forward(logits, labels)) * len(labels)
        n_samples += len(labels)
    model.clear_cache()
    loss_module.clear_cache()
    model_accuracy = n_correct / n_samples
    return (model_accuracy, loss_sum / n_samples) if return_loss else model_accuracy


def train_epoch(model, loader, loss_module, optimizer, run, epoch, progress=True):
    """One pass over the training set; returns the mean loss and accuracy.

    Stops early (returning what it has) when Ctrl-C asked the run to stop, and
    raises ``DivergenceError`` on a non-finite loss.
    """
    model.train()
    loss_sum, n_correct, n_samples = 0.0, 0, 0
    batches = tqdm(loader, desc=f"epoch {epoch}", leave=False, disable=not progress,
                   mininterval=0.5)
    for batch, (images, labels) in enumerate(batches, start=1):
        logits = model.forward(images)
        loss = float(loss_module.forward(logits, labels))
        check_finite_loss(loss, optimizer.lr, epoch, batch)
        model.backward(loss_module.backward())
        optimizer.step()

        loss_sum += loss * len(labels)
        n_correct += int(np.sum(np.argmax(logits, axis=1) == labels))
        n_samples += len(labels)
        if batch % 20 == 0:
            batches.set_postfix(loss=f"{loss_sum / n_samples:.4f}", refresh=False)
        if run.stop_requested:
            break
    return loss_sum / n_samples, n_correct / n_samples


# ---------------------------------------------------------------------------
# Checkpoints: everything needed to continue a run exactly, without pickle
# ---------------------------------------------------------------------------

def save_checkpoint(path, model, best_state, optimizer, scheduler, run, rngs):
    """Write model, best model, optimiser, schedule, random states and metrics to ``path``."""
    arrays = {f"model.{key}": value for key, value in model.state_dict().items()}
    arrays.update({f"best_model.{key}": value for key, value in best_state.items()})
    arrays.update({f"optimizer.{key}": value for key, value in optimizer.state_dict().items()})
    meta = {
        'config': run.config,
        'run': run.state_dict(),
        'scheduler': scheduler.state_dict() if scheduler else None,
        'rng_states': {name: rng.bit_generator.state for name, rng in rngs.items()},
    }
    arrays['meta'] = np.array(json.dumps(meta))

    def write(temporary):
        with open(temporary, 'wb') as file:
            np.savez(file, **arrays)
    atomic_write(path, write)


def load_checkpoint(path):
    """Read a checkpoint written by ``save_checkpoint``.

    Returns
    -------
    arrays : dict of str to dict
        ``'model'``, ``'best_model'`` and ``'optimizer'`` state dicts.
    meta : dict
        ``'config'``, ``'run'``, ``'scheduler'`` and ``'rng_states'``.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            contents = {key: data[key] for key in data.files}
        meta = json.loads(str(contents.pop('meta')))
    except (OSError, ValueError, KeyError) as error:
        raise ValueError(f"{path} is not a readable NumPy checkpoint ({error}); pass "
                         f"the checkpoint.npz of a run of train_mlp_numpy.py") from error
    arrays = {'model': {}, 'best_model': {}, 'optimizer': {}}
    for key, value in contents.items():
        part, name = key.split('.', 1)
        arrays[part][name] = value
    return arrays, meta


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
    config = json.loads((run_dir / 'summary.json').read_text())['config']
    try:
        with np.load(run_dir / 'model.npz', allow_pickle=False) as data:
            weights = {key: data[key] for key in data.files}
    except ValueError as error:
        raise ValueError(f"{run_dir / 'model.npz'} holds more than plain arrays ({error}); "
                         f"refusing to unpickle it") from error
    # The file keeps state_dict's forward order; the 2-D arrays are the linear weights.
    linear_weights = [value for value in weights.values() if value.ndim == 2]
    model = MLP(linear_weights[0].shape[1], config['hidden_dims'], linear_weights[-1].shape[0],
                activation=config['activation'], dtype=np.dtype(config['dtype']),
                use_batch_norm=config['use_batch_norm'], dropout=config['dropout'])
    model.load_state_dict(weights)
    return model.eval()


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------

def train(hidden_dims, lr, batch_size, epochs, seed, data_dir, dataset='cifar10',
          validation_size=None, activation='elu', optimizer='sgd', momentum=0.0,
          weight_decay=0.0, scheduler='none', patience=None, use_batch_norm=False,
          dropout=0.0, dtype='float32', out_dir='results/', resume=None, plot=True,
          progress=True):
    """Train the NumPy MLP and test the model that was best on validation.

    Parameters
    ----------
    hidden_dims : list of int
        Width of each hidden layer; empty for logistic regression.
    lr : float
        Learning rate.
    batch_size : int
        Mini-batch size.
    epochs : int
        Maximum number of epochs.
    seed : int
        Seed of the initial weights, the shuffling and dropout.
    data_dir : str
        Folder of the data sets.
    dataset : str
        A name that ``data_utils.get_dataset`` knows.
    validation_size : int, optional
        Held-out training samples; None for the data set's default.
    activation, optimizer, momentum, weight_decay, scheduler, patience,
    use_batch_norm, dropout :
        As the command-line flags of the same names; the defaults give the
        assignment's plain run (ELU, SGD without momentum, constant rate).
    dtype : {'float32', 'float64'}
        float32 trains fast; float64 is for checking against float64 results.
    out_dir : str
        Parent folder of the run folder.
    resume : str, optional
        Path of a ``checkpoint.npz`` to continue from.
    plot, progress : bool
        Draw the curves; show a progress bar.

    Returns
    -------
    model : MLP
        The model of the epoch with the best validation accuracy.
    val_accuracies : list of float
        Validation accuracy after each epoch.
    test_accuracy : float or None
        Test accuracy of ``model`` (None when Ctrl-C stopped the run).
    logging_dict : dict
        Per-epoch 'train_loss', 'train_accuracy', 'validation_loss',
        'validation_accuracy', 'learning_rate' and 'epoch_seconds'.
    """
    config = dict(hidden_dims=list(hidden_dims), lr=lr, batch_size=batch_size, epochs=epochs,
                  seed=seed, dataset=dataset, validation_size=validation_size,
                  activation=activation, optimizer=optimizer, momentum=momentum,
                  weight_decay=weight_decay, scheduler=scheduler, patience=patience,
                  use_batch_norm=use_batch_norm, dropout=dropout, dtype=dtype)
    checkpoint = load_checkpoint(resume) if resume else None
    if checkpoint:
        check_resumable(checkpoint[1]['config'], config, resume)

    data = load_data(dataset, data_dir, validation_size, batch_size)
    loaders = get_dataloader(data, batch_size, return_numpy=True, seed=seed)
    n_inputs = int(np.prod(data['train'].images.shape[1:]))
    model_rng = np.random.default_rng(seed)
    model = MLP(n_inputs, hidden_dims, len(data['train'].classes), activation=activation,
                dtype=np.dtype(dtype), use_batch_norm=use_batch_norm, dropout=dropout,
                rng=model_rng)
    sgd_or_adam = make_optimizer(optimizer, model, lr, momentum=momentum,
                                 weight_decay=weight_decay)
    lr_schedule = make_scheduler(scheduler, sgd_or_adam, epochs)
    rngs = {'model': model_rng, 'loader': loaders['train'].rng}

    run = TrainingRun('numpy', config, out_dir, patience,
                      run_dir=Path(resume).parent if resume else None)
    best_state = {key: value.copy() for key, value in model.state_dict().items()}
    if checkpoint:
        arrays, meta = checkpoint
        model.load_state_dict(arrays['model'])
        best_state = arrays['best_model']
        sgd_or_adam.load_state_dict(arrays['optimizer'])
        if lr_schedule:
            lr_schedule.load_state_dict(meta['scheduler'])
        for name, rng in rngs.items():
            rng.bit_generator.state = meta['rng_states'][name]
        run.load_state_dict(meta['run'])
        print(f"resuming {run.run_dir} after epoch {run.epochs_done}")

    loss_module = SoftmaxCrossEntropyModule()
    with run.stop_on_interrupt():
        for epoch in range(run.epochs_done + 1, epochs + 1):
            started = time.perf_counter()
            epoch_lr = sgd_or_adam.lr
            try:
                train_loss, train_accuracy = train_epoch(
                    model, loaders['train'], loss_module, sgd_or_adam, run, epoch, progress)
            except DivergenceError as error:
                run.diverged(error)
                break
            if run.stop_requested:
                break
            validation_accuracy, validation_loss = evaluate_model(
                model, loaders['validation'], return_loss=True)
            if lr_schedule:
                lr_schedule.step()
            improved = run.end_epoch(
                train_loss=train_loss, train_accuracy=train_accuracy,
                validation_loss=validation_loss, validation_accuracy=validation_accuracy,
                learning_rate=epoch_lr, epoch_seconds=time.perf_counter() - started)
            if improved:
                best_state = {key: value.copy() for key, value in model.state_dict().items()}
            save_checkpoint(run.run_dir / 'checkpoint.npz', model, best_state, sgd_or_adam,
                            lr_schedule, run, rngs)
            if run.should_stop():
                break

    model.clear_cache()
    model.load_state_dict(best_state)
    test_accuracy = None if run.stop_requested else evaluate_model(model, loaders['test'])

    def write_weights(temporary):
        with open(temporary, 'wb') as file:
            np.savez(file, **best_state)
    atomic_write(run.run_dir / 'model.npz', write_weights)
    run.finish(test_accuracy, plot=plot)
    if run.stop_requested:
        raise KeyboardInterrupt
    return model, run.logging_dict['validation_accuracy'], test_accuracy, run.logging_dict


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Train the NumPy MLP (hand-written backpropagation) and test the "
                    "model that is best on validation.")
    add_common_arguments(parser)
    parser.add_argument('--use_batch_norm', action='store_true',
                        help='batch normalisation between each hidden linear layer '
                             'and its activation')
    parser.add_argument('--dtype', default='float32', choices=['float32', 'float64'],
                        help='floating-point precision: float32 is fast, float64 '
                             'for checking (default: float32)')
    run_command_line(parser, argv, lambda path: load_checkpoint(path)[1]['config'],
                     lambda args: train(
                         args.hidden_dims, args.lr, args.batch_size, args.epochs, args.seed,
                         args.data_dir, dataset=args.dataset,
                         validation_size=args.validation_size, activation=args.activation,
                         optimizer=args.optimizer, momentum=args.momentum,
                         weight_decay=args.weight_decay, scheduler=args.scheduler,
                         patience=args.patience, use_batch_norm=args.use_batch_norm,
                         dropout=args.dropout, dtype=args.dtype, out_dir=args.out_dir,
                         resume=args.resume, plot=not args.no_plot,
                         progress=not args.no_progress))

if __name__ == '__main__':
    main()
