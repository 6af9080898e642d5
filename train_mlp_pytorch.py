"""Train the PyTorch MLP with autograd, on the CPU or a GPU.

    python train_mlp_pytorch.py                    # CIFAR-10, the assignment's defaults
    python train_mlp_pytorch.py --use_batch_norm --device cuda
    python train_mlp_pytorch.py --help

Same outputs as ``train_mlp_numpy.py``: the model best on validation is kept
and tested; curves, a JSON summary, the best ``state_dict`` and a checkpoint go
to a folder named after the configuration under ``--out_dir``.
"""
import argparse
import json
import pickle
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from data_utils import get_dataloader
from mlp_pytorch import MLP
from training_utils import (ConfigurationError, DivergenceError, TrainingRun,
                            add_common_arguments, atomic_write, check_finite_loss,
                            check_resumable, load_data, run_command_line)


def select_device(name='auto'):
    """The torch device for ``--device``: 'auto' takes CUDA, then MPS, then the CPU."""
    if name == 'auto':
        if torch.cuda.is_available():
            return torch.device('cuda')
        if torch.backends.mps.is_available():
            return torch.device('mps')
        return torch.device('cpu')
    if name == 'cuda' and not torch.cuda.is_available():
        raise ConfigurationError("--device cuda: no CUDA GPU is available here; "
                                 "use --device cpu or auto")
    if name == 'mps' and not torch.backends.mps.is_available():
        raise ConfigurationError("--device mps: Apple's MPS is not available here; "
                                 "use --device cpu or auto")
    return torch.device(name)


def accuracy(predictions, targets):
    """Fraction of samples whose highest-scoring class is the target.

    Parameters
    ----------
    predictions : Tensor of shape (N, C)
    targets : Tensor of shape (N,) with integer labels, or (N, C) one-hot

    Returns
    -------
    float in [0, 1]
    """
    if targets.dim() == 2:
        targets = targets.argmax(dim=1)
    if len(predictions) != len(targets):
        raise ValueError(f"batch size mismatch: {len(predictions)} predictions "
                         f"but {len(targets)} targets")
    return (predictions.argmax(dim=1) == targets).float().mean().item()


@torch.no_grad()
def evaluate_model(model, data_loader, return_loss=False):
    """Accuracy (and mean loss) of ``model`` over the whole data set of ``data_loader``.

    Sums are kept on the device and read once at the end, and each batch counts
    by its size, so the result is the average over every sample.

    Returns
    -------
    accuracy : float
    loss : float, only when ``return_loss`` is True
    """
    model.eval()
    n_correct = torch.zeros((), device=model.device)
    loss_sum = torch.zeros((), device=model.device, dtype=torch.float64)
    n_samples = 0
    for images, labels in data_loader:
        logits = model(images)
        n_correct += (logits.argmax(dim=1) == labels).sum()
        loss_sum += F.cross_entropy(logits, labels, reduction='sum')
        n_samples += len(labels)
    model_accuracy = n_correct.item() / n_samples
    return (model_accuracy, loss_sum.item() / n_samples) if return_loss else model_accuracy


def train_epoch(model, loader, optimizer, run, epoch, progress=True):
    """One pass over the training set; returns the mean loss and accuracy.

    Stops early (returning what it has) when Ctrl-C asked the run to stop, and
    raises ``DivergenceError`` on a non-finite loss.
    """
    model.train()
    loss_sum, n_correct, n_samples = 0.0, 0, 0
    batches = tqdm(loader, desc=f"epoch {epoch}", leave=False, disable=not progress,
                   mininterval=0.5)
    for batch, (images, labels) in enumerate(batches, start=1):
        logits = model(images)
        loss = F.cross_entropy(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        # Reading the loss waits for the device, but a non-finite loss must stop
        # training before the step that would spread it into the weights.
        batch_loss = loss.item()
        check_finite_loss(batch_loss, optimizer.param_groups[0]['lr'], epoch, batch)
        optimizer.step()

        loss_sum += batch_loss * len(labels)
        n_correct += (logits.argmax(dim=1) == labels).sum().item()
        n_samples += len(labels)
        if batch % 20 == 0:
            batches.set_postfix(loss=f"{loss_sum / n_samples:.4f}", refresh=False)
        if run.stop_requested:
            break
    return loss_sum / n_samples, n_correct / n_samples


def make_optimizer(name, model, lr, momentum, weight_decay):
    """``torch.optim.SGD`` or ``Adam``, as ``optimizers.make_optimizer`` for NumPy."""
    if name == 'adam':
        if momentum:
            raise ValueError("momentum applies to SGD only; Adam keeps its own moving averages")
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum,
                           weight_decay=weight_decay)


def make_scheduler(name, optimizer, epochs):
    """The schedules of ``optimizers.make_scheduler``, from ``torch.optim.lr_scheduler``."""
    if name == 'step':
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, epochs // 3),
                                               gamma=0.1)
    if name == 'cosine':
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    return None


# ---------------------------------------------------------------------------
# Checkpoints: loaded with weights_only=True, so loading runs no pickled code
# ---------------------------------------------------------------------------

def save_checkpoint(path, model, best_state, optimizer, scheduler, run, loader_rng):
    """Write model, best model, optimiser, schedule, random states and metrics to ``path``."""
    checkpoint = {
        'model': model.state_dict(),
        'best_model': best_state,
        'optimizer': optimizer.state_dict(),
        'scheduler': scheduler.state_dict() if scheduler else None,
        'torch_rng': torch.get_rng_state(),
        'meta': json.dumps({'config': run.config, 'run': run.state_dict(),
                            'loader_rng': loader_rng.bit_generator.state}),
    }
    atomic_write(path, lambda temporary: torch.save(checkpoint, temporary))


def load_checkpoint(path):
    """Read a checkpoint written by ``save_checkpoint``; returns it with 'meta' decoded."""
    try:
        checkpoint = torch.load(path, map_location='cpu', weights_only=True)
        checkpoint['meta'] = json.loads(checkpoint['meta'])
    except (OSError, RuntimeError, KeyError, ValueError) as error:
        raise ValueError(f"{path} is not a readable PyTorch checkpoint ({error}); pass "
                         f"the checkpoint.pt of a run of train_mlp_pytorch.py") from error
    return checkpoint


def load_model(run_dir, device='cpu'):
    """The best model a run saved, rebuilt from its ``summary.json`` and ``model.pt``.

    The weights are read with ``weights_only=True``: loading never runs code
    from the file.

    Raises
    ------
    ValueError
        If the file holds anything but tensors and plain containers.
    RuntimeError
        From ``load_state_dict``, if the weights are of another architecture
        (naming the saved shape and the expected one).
    """
    run_dir = Path(run_dir)
    config = json.loads((run_dir / 'summary.json').read_text())['config']
    try:
        weights = torch.load(run_dir / 'model.pt', map_location=device, weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError(f"{run_dir / 'model.pt'} holds more than tensors; refusing to "
                         f"unpickle it ({error})") from error
    linear_weights = [value for value in weights.values() if value.dim() == 2]
    model = MLP(linear_weights[0].shape[1], config['hidden_dims'], linear_weights[-1].shape[0],
                use_batch_norm=config['use_batch_norm'], activation=config['activation'],
                dropout=config['dropout'])
    model.load_state_dict(weights)
    return model.to(device).eval()


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------

def train(hidden_dims, lr, use_batch_norm, batch_size, epochs, seed, data_dir,
          dataset='cifar10', validation_size=None, activation='elu', optimizer='sgd',
          momentum=0.0, weight_decay=0.0, scheduler='none', patience=None, dropout=0.0,
          device='auto', out_dir='results/', resume=None, plot=True, progress=True):
    """Train the PyTorch MLP and test the model that was best on validation.

    Parameters are those of ``train_mlp_numpy.train`` plus:

    use_batch_norm : bool
        Batch normalisation between each hidden linear layer and its activation.
    device : str
        'auto', 'cpu', 'cuda' or 'mps'. The data are moved to it once.

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
                  use_batch_norm=use_batch_norm, dropout=dropout)
    checkpoint = load_checkpoint(resume) if resume else None
    if checkpoint:
        check_resumable(checkpoint['meta']['config'], config, resume)
    device = select_device(device)

    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False

    data = load_data(dataset, data_dir, validation_size, batch_size)
    loaders = get_dataloader(data, batch_size, seed=seed, device=device)
    n_inputs = int(np.prod(data['train'].images.shape[1:]))
    model = MLP(n_inputs, hidden_dims, len(data['train'].classes),
                use_batch_norm=use_batch_norm, activation=activation,
                dropout=dropout).to(device)
    sgd_or_adam = make_optimizer(optimizer, model, lr, momentum, weight_decay)
    lr_schedule = make_scheduler(scheduler, sgd_or_adam, epochs)

    run = TrainingRun('pytorch', config, out_dir, patience,
                      run_dir=Path(resume).parent if resume else None)
    best_state = {key: value.clone() for key, value in model.state_dict().items()}
    if checkpoint:
        model.load_state_dict(checkpoint['model'])
        best_state = checkpoint['best_model']
        sgd_or_adam.load_state_dict(checkpoint['optimizer'])
        if lr_schedule:
            lr_schedule.load_state_dict(checkpoint['scheduler'])
        torch.set_rng_state(checkpoint['torch_rng'])
        loaders['train'].rng.bit_generator.state = checkpoint['meta']['loader_rng']
        run.load_state_dict(checkpoint['meta']['run'])
        print(f"resuming {run.run_dir} after epoch {run.epochs_done}")

    print(f"training on {device}")
    with run.stop_on_interrupt():
        for epoch in range(run.epochs_done + 1, epochs + 1):
            started = time.perf_counter()
            epoch_lr = sgd_or_adam.param_groups[0]['lr']
            try:
                train_loss, train_accuracy = train_epoch(
                    model, loaders['train'], sgd_or_adam, run, epoch, progress)
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
                best_state = {key: value.clone() for key, value in model.state_dict().items()}
            save_checkpoint(run.run_dir / 'checkpoint.pt', model, best_state, sgd_or_adam,
                            lr_schedule, run, loaders['train'].rng)
            if run.should_stop():
                break

    model.load_state_dict(best_state)
    test_accuracy = None if run.stop_requested else evaluate_model(model, loaders['test'])
    atomic_write(run.run_dir / 'model.pt', lambda temporary: torch.save(best_state, temporary))
    run.finish(test_accuracy, plot=plot)
    if run.stop_requested:
        raise KeyboardInterrupt
    return model, run.logging_dict['validation_accuracy'], test_accuracy, run.logging_dict


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Train the PyTorch MLP (autograd) and test the model that is best "
                    "on validation.")
    add_common_arguments(parser)
    parser.add_argument('--use_batch_norm', action='store_true',
                        help='batch normalisation between each hidden linear layer '
                             'and its activation')
    parser.add_argument('--device', default='auto', choices=['auto', 'cpu', 'cuda', 'mps'],
                        help='where to train: auto takes a CUDA or MPS GPU when there '
                             'is one, else the CPU (default: auto)')
    run_command_line(parser, argv, lambda path: load_checkpoint(path)['meta']['config'],
                     lambda args: train(
                         args.hidden_dims, args.lr, args.use_batch_norm, args.batch_size,
                         args.epochs, args.seed, args.data_dir, dataset=args.dataset,
                         validation_size=args.validation_size, activation=args.activation,
                         optimizer=args.optimizer, momentum=args.momentum,
                         weight_decay=args.weight_decay, scheduler=args.scheduler,
                         patience=args.patience, dropout=args.dropout, device=args.device,
                         out_dir=args.out_dir, resume=args.resume, plot=not args.no_plot,
                         progress=not args.no_progress))


if __name__ == '__main__':
    main()
