"""Training curves as PNG files.

Importing this module sets matplotlib to draw to files with Agg, whatever the
environment asks for: an ``MPLBACKEND`` naming no backend (a typo) would
otherwise stop the import of matplotlib itself, after the training it follows.
The environment itself is left as it was, so that programs this process starts
(a notebook's kernel, a training script) still get the backend the user chose.
"""
import os

_backend_asked = os.environ.get('MPLBACKEND')
os.environ['MPLBACKEND'] = 'Agg'
import matplotlib

if _backend_asked is None:
    del os.environ['MPLBACKEND']
else:
    os.environ['MPLBACKEND'] = _backend_asked
matplotlib.use('Agg')  # draw to files; no display needed
import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

from lab.fileio import atomic_write


def save_figure(figure, path, dpi=100):
    """Save a matplotlib figure as PNG atomically, then close it."""
    atomic_write(path, lambda temporary: figure.savefig(temporary, format='png', dpi=dpi))
    plt.close(figure)


def plot_training_curves(logging_dict, run_dir, title, best_epoch=None):
    """Draw ``loss.png`` and ``accuracy.png`` (train and validation) into ``run_dir``.

    Parameters
    ----------
    logging_dict : dict
        Lists ``train_loss``, ``validation_loss``, ``train_accuracy`` and
        ``validation_accuracy``, one value per epoch.
    run_dir : Path
    title : str
    best_epoch : int, optional
        1-based number of the epoch kept as the final model, marked on both plots.
    """
    epochs = range(1, len(logging_dict['train_loss']) + 1)
    for quantity, y_label in (('loss', 'cross-entropy loss (nats)'), ('accuracy', 'accuracy')):
        figure, axes = plt.subplots(figsize=(6, 4))
        axes.plot(epochs, logging_dict[f'train_{quantity}'], marker='o', label='train')
        axes.plot(epochs, logging_dict[f'validation_{quantity}'], marker='o', label='validation')
        if best_epoch is not None:
            axes.axvline(best_epoch, color='grey', linestyle=':', label='best epoch')
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_xlabel('epoch')
        axes.set_ylabel(y_label)
        axes.set_title(f'{title}: {quantity}')
        axes.grid(alpha=0.3)
        axes.legend()
        figure.tight_layout()
        save_figure(figure, run_dir / f'{quantity}.png')
