"""Train the PyTorch MLP with autograd, on the CPU or a GPU.

    python train_mlp_pytorch.py                    # CIFAR-10, the assignment's defaults
    python train_mlp_pytorch.py --use_batch_norm --device cuda
    python train_mlp_pytorch.py --help

Same outputs as ``train_mlp_numpy.py``: the model best on validation is kept
and tested; curves, a JSON summary, the best ``state_dict`` and a checkpoint go
to a folder named after the settings under ``--out_dir``.
"""
import json
from pathlib import Path

import torch
import torch.nn.functional as F

from lab.checkpoints import RandomStates, TorchFiles
from lab.cli import ArgumentParser, add_common_arguments, run_command_line
from lab.datasets import get_dataloader, get_dataset
from mlp_pytorch import ACTIVATIONS, MLP
from lab.runs import TrainingRun
from lab.settings import ConfigurationError, run_settings, settings_of


def select_device(name='auto'):
    """The torch device for ``--device``: 'auto' takes CUDA, then MPS, then the CPU."""
    if name == 'auto':
        if torch.cuda.is_available():
            return torch.device('cuda')
        return torch.device('mps' if torch.backends.mps.is_available() else 'cpu')
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
    """Accuracy (and, with ``return_loss``, mean loss) over every sample of ``data_loader``,
    each batch counting by its size, as ``train_mlp_numpy.evaluate_model``."""
    model.eval()
    accuracy_sum, loss_sum, n_samples = 0.0, 0.0, 0
    for images, labels in data_loader:
        logits = model(images)
        accuracy_sum += accuracy(logits, labels) * len(labels)
        loss_sum += F.cross_entropy(logits, labels).item() * len(labels)
        n_samples += len(labels)
    if return_loss:
        return accuracy_sum / n_samples, loss_sum / n_samples
    return accuracy_sum / n_samples


def train_epoch(model, loader, optimizer, on_batch=None):
    """One pass over the training set; returns the mean loss and accuracy.

    Each step: forward, loss, backward, update. ``on_batch(loss, accuracy,
    n_samples)``, when given, sees each batch's loss before its update (the
    training script uses it to draw a progress bar and to stop on a NaN loss
    before the step that would spread it into the weights).
    """
    model.train()
    loss_sum, correct_sum, n_samples = 0.0, 0.0, 0
    for images, labels in loader:
        logits = model(images)
        loss = F.cross_entropy(logits, labels)
        batch_loss, batch_accuracy = loss.item(), accuracy(logits, labels)
        if on_batch is not None:
            on_batch(batch_loss, batch_accuracy, len(labels))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        loss_sum += batch_loss * len(labels)
        correct_sum += batch_accuracy * len(labels)
        n_samples += len(labels)
    return loss_sum / n_samples, correct_sum / n_samples


def make_optimizer(name, model, lr, momentum, weight_decay):
    """``torch.optim.SGD`` or ``Adam``, as ``lab.optimizers.make_optimizer`` for NumPy."""
    if name == 'adam':
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum,
                           weight_decay=weight_decay)


def make_scheduler(name, optimizer, epochs):
    """The schedules of ``lab.optimizers.make_scheduler``, from ``torch.optim.lr_scheduler``."""
    if name == 'step':
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, epochs // 3),
                                               gamma=0.1)
    if name == 'cosine':
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    return None


def train(hidden_dims, lr, use_batch_norm, batch_size, epochs, seed, data_dir,
          dataset='cifar10', validation_size=None, activation='elu', optimizer='sgd',
          momentum=0.0, weight_decay=0.0, scheduler='none', patience=None, dropout=0.0,
          device='auto', out_dir=None, resume=None, plot=True, progress=True):
    """Train the PyTorch MLP and test the model that was best on validation.

    Parameters are those of ``train_mlp_numpy.train`` (a ``checkpoint.pt`` for
    ``resume``), without ``dtype`` (float32), plus:

    use_batch_norm : bool
        Batch normalisation between each hidden linear layer and its activation.
    device : str
        'auto', 'cpu', 'cuda' or 'mps'. The data are moved to it once.

    Returns what ``train_mlp_numpy.train`` returns: the model of the best
    epoch, the validation accuracy of every epoch, that model's test accuracy
    (None when no epoch finished or Ctrl-C stopped the run), and the per-epoch
    ``logging_dict``.
    """
    settings = run_settings(settings_of(train, locals()))  # every parameter but paths and display
    device = select_device(device)
    torch.manual_seed(seed)
    data = get_dataset(dataset, data_dir, validation_size)
    loaders = get_dataloader(data, batch_size, seed=seed, device=device)
    model = MLP(data['train'].n_features, hidden_dims, len(data['train'].classes),
                use_batch_norm, activation, dropout).to(device)
    sgd_or_adam = make_optimizer(optimizer, model, lr, momentum, weight_decay)
    lr_schedule = make_scheduler(scheduler, sgd_or_adam, epochs)

    parts = {'model': model, 'optimizer': sgd_or_adam, 'scheduler': lr_schedule,
             'random': RandomStates(torch=torch.default_generator, loader=loaders['train'].rng)}
    run = TrainingRun(framework='pytorch', settings=settings, parts=parts, files=TorchFiles,
                      out_dir=out_dir, resume=resume, plot=plot, show_progress=progress)
    print(f"training on {device}")
    with run:
        for epoch in run.epochs():
            batches = run.progress(loaders['train'])
            train_loss, train_accuracy = train_epoch(model, batches, sgd_or_adam,
                                                     on_batch=batches.record)
            validation_accuracy, validation_loss = evaluate_model(
                model, loaders['validation'], return_loss=True)
            run.end_epoch(train_loss, train_accuracy, validation_loss, validation_accuracy,
                          learning_rate=sgd_or_adam.param_groups[0]['lr'])
            if lr_schedule:
                lr_schedule.step()

    model.load_state_dict(run.best_state)
    test_accuracy = evaluate_model(model, loaders['test']) if run.should_test else None
    run.finish(test_accuracy)
    return model, run.validation_accuracies, test_accuracy, run.logging_dict


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
    settings = json.loads((run_dir / 'summary.json').read_text())['config']
    weights = TorchFiles.read_weights(run_dir / 'model.pt', device)
    linear_weights = [value for value in weights.values() if value.dim() == 2]
    model = MLP(linear_weights[0].shape[1], settings['hidden_dims'],
                linear_weights[-1].shape[0], settings['use_batch_norm'],
                settings['activation'], settings['dropout'])
    model.load_state_dict(weights)
    return model.to(device).eval()


def main(argv=None):
    parser = ArgumentParser(
        description="Train the PyTorch MLP (autograd) and test the model that is best "
                    "on validation.")
    add_common_arguments(parser, activations=ACTIVATIONS)
    parser.add_argument('--device', default='auto', choices=['auto', 'cpu', 'cuda', 'mps'],
                        help='where to train: auto takes a CUDA or MPS GPU when there '
                             'is one, else the CPU (default: auto)')
    run_command_line(parser, train, TorchFiles, argv)


if __name__ == '__main__':
    main()
