"""The bookkeeping of one training run, shared by both training scripts.

A run has a folder of its own, a log of per-epoch metrics, a best epoch,
reasons to stop early (patience, a diverged loss, Ctrl-C), a checkpoint after
every epoch and a summary at the end. The training loops themselves stay in
``train_mlp_numpy.py`` and ``train_mlp_pytorch.py``, where a student reads them
next to the maths; ``train_epoch`` knows nothing of a run, which wraps it::

    run = TrainingRun(framework='numpy', settings=settings, parts=parts, files=NumpyFiles)
    with run:                                  # folder, lock, Ctrl-C, resume
        for epoch in run.epochs():             # ends early on patience, divergence, Ctrl-C
            batches = run.progress(loader)     # progress bar; stops the epoch after Ctrl-C
            train_epoch(model, batches, ..., on_batch=batches.record)  # stops on a NaN loss
            run.end_epoch(...)                 # log, best model, checkpoint
    run.finish(test_accuracy)                  # weights, summary, curves

Imports flow one way: runs -> checkpoints, plotting -> fileio.
"""
import math
import platform
import shlex
import signal
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from tqdm import tqdm

from lab.checkpoints import (CheckpointError, check_finite, check_optimizer, check_run_state,
                             optimizer_hyperparameters, read_checkpoint, run_name,
                             save_checkpoint, scheduled_lr, set_optimizer_rate)
from lab.fileio import FolderLock, Terminated, printable, save_json, temporary_files
from lab.settings import ConfigurationError

METRICS = ('train_loss', 'train_accuracy', 'validation_loss', 'validation_accuracy',
           'learning_rate', 'epoch_seconds')
RUNAWAY_FACTOR = 10_000
"""A run has diverged once an epoch's mean training loss exceeds this many times
the loss of its very first batch (the untrained network's, about ln C for C
classes). Runs that recovered later, thanks to a decaying learning rate, were
seen up to about 640 times it; runaway ones pass a billion times it."""


class DivergenceError(RuntimeError):
    """The training loss became NaN or infinite."""


class StopRequested(Exception):
    """Ctrl-C or SIGTERM asked the run to stop after the current batch."""


SAFE_LEARNING_RATES = {'sgd': 0.1, 'adam': 0.001}
"""A learning rate each optimiser trains the data sets here with: the assignment's for SGD,
PyTorch's default for Adam. Advice after a divergence never suggests more."""


def divergence_advice(settings, lr):
    """What diverged, and what to change, for a run of ``settings`` that diverged while
    training at learning rate ``lr`` (the schedule's rate of that epoch).

    SGD's L2 decay alone multiplies every weight by ``1 - lr * weight_decay`` a step, which
    grows without bound once that passes -1; momentum ``m`` lengthens each step about
    ``1 / (1 - m)`` times. The smaller rate suggested is one tenth of ``lr``, and never
    more than the optimiser's usual rate.
    """
    decay, momentum = settings['weight_decay'], settings['momentum']
    if settings['optimizer'] == 'sgd' and lr * decay > 1:
        return (f"training diverged because --weight_decay {decay:g} at learning rate "
                f"{lr:g} multiplies the weights by {1 - lr * decay:.3g} every step; use a "
                f"--weight_decay below {1 / lr:.3g}")
    smaller = min(lr / 10, SAFE_LEARNING_RATES[settings['optimizer']])
    if momentum:
        return (f"training diverged at learning rate {lr:g} with --momentum {momentum:g} "
                f"(steps about {1 / (1 - momentum):.3g} times longer); try a smaller --lr, "
                f"such as {smaller:g}, or a smaller --momentum")
    return f"training diverged at learning rate {lr:g}; try a smaller --lr, such as {smaller:g}"


class EarlyStopping:
    """Stop training once validation accuracy (higher is better) has not
    improved for ``patience`` epochs in a row.

    Call ``step(value)`` once per epoch. A value strictly greater than the
    best so far is an improvement and resets the count; anything else
    (equal, lower, NaN) adds one epoch without improvement.

    Parameters
    ----------
    patience : int or None, optional
        Epochs without improvement to tolerate; ``step`` returns True on the
        ``patience``-th. ``None`` (default) or 0 never stops, while ``best``
        and ``best_epoch`` are still tracked.

    Attributes
    ----------
    patience : int or None
    best : float
        Best value so far, ``-inf`` before the first ``step``.
    best_epoch : int
        0-based index of the ``step`` call that gave ``best`` (so
        ``val_accuracies[best_epoch] == best``), -1 before the first.
    epochs_without_improvement : int
    """

    def __init__(self, patience=None):
        if patience is not None and not (isinstance(patience, (int, np.integer))
                                         and patience >= 0):
            raise ValueError(f"patience must be an integer >= 0 or None, got "
                             f"{patience!r}; None or 0 disables early stopping.")
        self.patience = patience
        self.best = -math.inf
        self.best_epoch = -1
        self.epochs_without_improvement = 0
        self.epoch = -1

    def step(self, value):
        """Record this epoch's validation value.

        Returns
        -------
        bool
            True when training should stop.
        """
        self.epoch += 1
        if value > self.best:
            self.best = float(value)
            self.best_epoch = self.epoch
            self.epochs_without_improvement = 0
        else:
            self.epochs_without_improvement += 1
        return bool(self.patience) and self.epochs_without_improvement >= self.patience

    def state_dict(self):
        """``{'best', 'best_epoch', 'epochs_without_improvement', 'epoch'}``:
        plain numbers (``patience`` is a constructor argument)."""
        return {'best': self.best, 'best_epoch': self.best_epoch,
                'epochs_without_improvement': self.epochs_without_improvement,
                'epoch': self.epoch}

    def load_state_dict(self, state):
        """Restore ``state_dict()``."""
        self.best = float(state['best'])
        self.best_epoch = int(state['best_epoch'])
        self.epochs_without_improvement = int(state['epochs_without_improvement'])
        self.epoch = int(state['epoch'])


class EpochProgress:
    """The batches of one epoch, behind a progress bar that shows the running mean loss.

    Iterating yields the loader's batches and stops (raising ``StopRequested``)
    once Ctrl-C has asked the run to stop. ``record`` is the ``on_batch``
    callback of ``train_epoch``: it adds one batch's loss to the bar's mean and
    raises ``DivergenceError`` on a non-finite loss, before the step that would
    spread it into the weights. ``first_loss`` is the loss of the epoch's
    first batch.
    """

    def __init__(self, run, loader, epoch):
        self.run, self.loader, self.epoch = run, loader, epoch
        self.loss_sum, self.n_samples, self.n_batches = 0.0, 0, 0
        self.first_loss = None
        self.bar = tqdm(loader, desc=f"epoch {epoch}", leave=False, mininterval=0.5,
                        disable=not run.show_progress)

    def __iter__(self):
        for batch in self.bar:
            if self.run.stop_requested:
                self.bar.close()
                raise StopRequested
            yield batch
        self.bar.close()

    def record(self, loss, accuracy, n_samples):
        """Add one batch's mean loss, weighted by its number of samples (the accuracy,
        part of ``on_batch``'s signature, is not shown)."""
        loss = float(loss)
        self.n_batches += 1
        if not math.isfinite(loss):
            raise DivergenceError(f"the training loss became {loss} in epoch {self.epoch}, "
                                  f"batch {self.n_batches}: "
                                  f"{self.run.divergence_advice()}")
        if self.first_loss is None:
            self.first_loss = loss
        self.loss_sum += loss * n_samples
        self.n_samples += n_samples
        if self.n_batches % 20 == 0:
            self.bar.set_postfix(loss=f"{self.loss_sum / self.n_samples:.4f}", refresh=False)


class TrainingRun:
    """Bookkeeping of one training run: see the module docstring for its use.

    Every parameter is passed by keyword.

    Parameters
    ----------
    framework : str
        'numpy' or 'pytorch', for the folder name and the summary.
    settings : dict
        The settings that define the run (``run_settings``), JSON-serialisable.
    parts : dict
        What a checkpoint saves and restores, by name: objects with
        ``state_dict()`` and ``load_state_dict()`` (the model under 'model',
        the optimiser, the schedule (None for none), the random generators).
    files : NumpyFiles or TorchFiles
        How this framework writes and reads checkpoints and weights.
    out_dir : str or Path, optional
        Parent of the run folder; 'results/' when None. Not with ``resume``.
    resume : str or Path, optional
        A checkpoint to continue; the run continues in its folder.
    plot, show_progress : bool
        Draw the curves at the end; show a progress bar over each epoch.

    Raises
    ------
    ConfigurationError, CheckpointError
        For ``out_dir`` with ``resume``, or a checkpoint that cannot continue
        with ``settings``, before anything is written.
    """

    def __init__(self, *, framework, settings, parts, files, out_dir=None, resume=None,
                 plot=True, show_progress=True):
        self.framework, self.settings, self.parts, self.files = framework, settings, parts, files
        self.plot, self.show_progress = plot, show_progress
        if resume is not None and out_dir is not None:
            raise ConfigurationError("--resume continues a run in its own folder; drop "
                                     "--out_dir (or copy the run folder there first)")
        if resume is not None:
            read_resumable_checkpoint(files, resume, settings)  # refuse before writing a lock
        self.resume = resume
        self.run_dir = Path(resume).parent if resume else None
        self.out_dir = Path('results' if out_dir is None else out_dir)
        self.logging_dict = {name: [] for name in METRICS}
        self.stopper = EarlyStopping(settings['patience'])
        self.status, self.message = 'running', ''
        self.stop_requested = False
        self.finishing = False
        self.best_state = files.copy(parts['model'].state_dict())
        self.initial_loss = None
        self.epoch_progress = None
        self.started, self.elapsed_before = time.perf_counter(), 0.0
        self.lock = None
        self._previous_handlers = {}
        self.stop_signal = None
        self._fresh_optimizer = optimizer_hyperparameters(parts.get('optimizer'))
        self._quiet_arithmetic = np.errstate(over='ignore', invalid='ignore', divide='ignore')

    @property
    def output_names(self):
        """The names of the files a run writes into its folder."""
        return (f"checkpoint{self.files.suffix}", f"model{self.files.suffix}", 'summary.json',
                'loss.png', 'accuracy.png')

    # -- opening and closing: the folder, its lock, Ctrl-C, the summary whatever happens -

    def __enter__(self):
        """Claim a fresh folder, or lock the checkpoint's folder and restore the checkpoint.

        The checkpoint is read again under the lock, since another run may
        have moved it on since it was checked; temporary files that a killed
        run left there are removed.

        Raises
        ------
        FolderBusyError
            If another run holds the folder.
        """
        self._install_interrupt_handler()  # first: a folder is never left half set up
        try:
            if self.run_dir is None:
                self.run_dir = claim_run_folder(self.out_dir,
                                                run_name(self.framework, self.settings))
            self.lock = FolderLock(self.run_dir)
            self.lock.acquire()
        except BaseException:
            self._restore_handlers()
            raise
        try:
            if self.resume is not None:
                for path in temporary_files(self.run_dir, self.output_names):
                    path.unlink()
                self._restore(read_resumable_checkpoint(self.files, self.resume, self.settings))
        except BaseException:
            self._close()
            raise
        # A diverging step overflows before its loss is seen: the one line of
        # ``DivergenceError`` says so, without NumPy's warnings beside it.
        self._quiet_arithmetic.__enter__()
        return self

    def __exit__(self, kind, error, traceback):
        self.finishing = True
        self._quiet_arithmetic.__exit__(None, None, None)
        if kind is DivergenceError:
            self.status, self.message = 'diverged', str(error)
            print(f"\n{self.message}. Keeping the best model so far"
                  f"{f' (epoch {self.best_epoch})' if self.best_epoch else ': none'}.",
                  file=sys.stderr, flush=True)
            return True
        if kind is StopRequested:
            self.status = 'interrupted'
            self.message = (f"interrupted by {self.stop_signal} after {self.epochs_done} "
                            f"complete epochs")
            return True
        if kind is not None:  # a second Ctrl-C or an error: keep a record of what finished
            self.status = 'interrupted' if issubclass(kind, KeyboardInterrupt) else 'failed'
            self.message = self.message or f"{kind.__name__}: {error}"
            try:
                self._write_summary(None)
            except OSError:
                pass  # the error being raised says more (the disk that is full, say)
            finally:
                self._close()
            if self.status == 'interrupted':
                print(self.resume_advice(), file=sys.stderr, flush=True)
        return False

    def _install_interrupt_handler(self):
        """Turn the first Ctrl-C, or SIGTERM (what ``kill``, ``timeout``, Slurm and Docker
        send), into a request to stop after the current batch.

        A second one interrupts at once, except once training has ended: then
        every one waits until the results are written (``finish``). The command
        line exits with 130 after Ctrl-C and 143 after SIGTERM. Outside the main
        thread (where signal handlers cannot be set) both keep their usual effect.
        """
        def request_stop(signum, frame):
            name = 'SIGTERM' if signum == signal.SIGTERM else 'Ctrl-C'
            self.stop_signal = self.stop_signal or name
            if self.finishing:
                self.stop_requested = True
                print(f"\n{name}: writing the results first, then quitting",
                      file=sys.stderr, flush=True)
                return
            if self.stop_requested:
                raise Terminated if name == 'SIGTERM' else KeyboardInterrupt
            self.stop_requested = True
            print(f"\n{name}: stopping after this batch and saving what is finished "
                  f"(press Ctrl-C again to quit at once)", file=sys.stderr, flush=True)
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous_handlers[signum] = signal.signal(signum, request_stop)
            except ValueError:
                pass

    def _restore_handlers(self):
        """Give Ctrl-C and SIGTERM their earlier effect back."""
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)
        self._previous_handlers = {}

    def _close(self):
        """Give Ctrl-C and SIGTERM their earlier effect back and release the folder's lock."""
        self._restore_handlers()
        if self.lock is not None:
            self.lock.release()

    # -- the epoch loop ------------------------------------------------------------------

    def epochs(self):
        """Yield the numbers of the epochs still to train, stopping early on patience."""
        for epoch in range(self.epochs_done + 1, self.settings['epochs'] + 1):
            self.epoch_started = time.perf_counter()
            yield epoch
            if self.status == 'early_stopped':
                return

    def progress(self, loader):
        """The batches of the next epoch, with a progress bar: see ``EpochProgress``."""
        self.epoch_progress = EpochProgress(self, loader, self.epochs_done + 1)
        return self.epoch_progress

    @property
    def epochs_done(self):
        return len(self.logging_dict['validation_accuracy'])

    @property
    def best_epoch(self):
        """Number (1-based) of the epoch with the best validation accuracy, None before any."""
        return self.stopper.best_epoch + 1 if self.stopper.best_epoch >= 0 else None

    @property
    def validation_accuracies(self):
        return self.logging_dict['validation_accuracy']

    def end_epoch(self, train_loss, train_accuracy, validation_loss, validation_accuracy,
                  learning_rate):
        """Record a finished epoch, keep the model if it is the best, and save a checkpoint.

        Raises
        ------
        DivergenceError
            If the epoch's mean training loss ran away (``RUNAWAY_FACTOR``):
            the epoch is not recorded, and the run keeps the epochs before it.
        """
        if self.initial_loss is None:
            self.initial_loss = self.epoch_progress.first_loss
        if train_loss > RUNAWAY_FACTOR * self.initial_loss:
            raise DivergenceError(
                f"the mean training loss of epoch {self.epochs_done + 1} was {train_loss:.3g}, "
                f"more than {RUNAWAY_FACTOR:,} times the first batch's {self.initial_loss:.3g}: "
                f"{self.divergence_advice()}")
        metrics = dict(train_loss=train_loss, train_accuracy=train_accuracy,
                       validation_loss=validation_loss,
                       validation_accuracy=validation_accuracy, learning_rate=learning_rate,
                       epoch_seconds=time.perf_counter() - self.epoch_started)
        for name in METRICS:
            self.logging_dict[name].append(float(metrics[name]))
        patience_ran_out = self.stopper.step(validation_accuracy)
        improved = self.best_epoch == self.epochs_done
        if improved:
            self.best_state = self.files.copy(self.parts['model'].state_dict())
        print(f"epoch {self.epochs_done:3d}/{self.settings['epochs']}  "
              f"train loss {train_loss:.4f}  acc {train_accuracy:.4f}  "
              f"| val loss {validation_loss:.4f}  acc {validation_accuracy:.4f}"
              f"{' *' if improved else '  '}  | {metrics['epoch_seconds']:.2f} s", flush=True)
        if patience_ran_out:
            self.status = 'early_stopped'
            self.message = (f"stopped early: no better validation accuracy for "
                            f"{self.stopper.patience} epochs")
            print(self.message, flush=True)
        save_checkpoint(self.run_dir / f"checkpoint{self.files.suffix}", self)

    @property
    def should_test(self):
        """True when the best model should be tested: an epoch finished and no Ctrl-C."""
        return self.best_epoch is not None and self.status != 'interrupted'

    # -- state for checkpoints -----------------------------------------------------------

    def state_dict(self):
        """The run's progress as plain JSON-serialisable values."""
        return {'logging_dict': self.logging_dict, 'stopper': self.stopper.state_dict(),
                'initial_loss': self.initial_loss,
                'elapsed_seconds': self.elapsed_before + time.perf_counter() - self.started}

    def _restore(self, checkpoint):
        """Continue from a checkpoint read by ``read_resumable_checkpoint``.

        Raises
        ------
        CheckpointError
            If a part does not fit (an edited or foreign file).
        """
        state = checkpoint['run']
        check_run_state(state, METRICS)
        epochs_done = len(state['logging_dict']['validation_accuracy'])
        model, optimizer = self.parts['model'], self.parts.get('optimizer')
        try:
            model.load_state_dict(checkpoint['best_model'])  # its shapes checked, then the last
            for name, part in self.parts.items():
                if part is not None and name != 'scheduler':
                    part.load_state_dict(checkpoint[name])
        except (KeyError, ValueError, TypeError, RuntimeError, IndexError) as error:
            raise CheckpointError(f"not a readable checkpoint: its contents do not fit this "
                                  f"run ({type(error).__name__}: "
                                  f"{printable(error)[:300]})") from None
        for what in ('model', 'best_model'):
            check_finite(checkpoint[what], f"{what.replace('_', ' ')} weight")
        if optimizer is not None:
            check_finite(optimizer.state_dict(), 'optimiser state')
            check_optimizer(optimizer, self._fresh_optimizer, checkpoint['settings'],
                            epochs_done)
            self._continue_schedule(epochs_done)
        self.best_state = self.files.copy(checkpoint['best_model'])
        self.logging_dict = {name: [float(value) for value in state['logging_dict'][name]]
                             for name in METRICS}
        self.stopper.load_state_dict(state['stopper'])
        self.initial_loss = float(state['initial_loss'])
        self.elapsed_before = float(state['elapsed_seconds'])
        print(f"resuming {self.run_dir} after epoch {self.epochs_done}", flush=True)

    def _continue_schedule(self, epochs_done):
        """Set the learning rate to that of the next epoch under this run's schedule.

        The schedule is always that of the current ``--epochs``: a run resumed with
        more epochs goes on as one started with that many would from the same epoch
        (a cosine rate rises to its place on the longer curve). The schedule is
        rebuilt from the settings, stepped once per finished epoch, never read
        from the file.
        """
        optimizer, schedule = self.parts['optimizer'], self.parts.get('scheduler')
        set_optimizer_rate(optimizer, self.settings['lr'])
        if schedule is not None:
            with warnings.catch_warnings():  # PyTorch's "step before optimizer.step()"
                warnings.simplefilter('ignore')
                for _ in range(epochs_done):
                    schedule.step()

    def divergence_advice(self):
        """What diverged in the epoch being trained, and what to change."""
        return divergence_advice(self.settings, scheduled_lr(self.settings, self.epochs_done))

    # -- outputs -------------------------------------------------------------------------

    def finish(self, test_accuracy):
        """Write the best weights, ``summary.json`` and the curves; print the result.

        Ctrl-C waits while they are written (see ``_install_interrupt_handler``).

        Raises
        ------
        KeyboardInterrupt
            After writing everything, when Ctrl-C stopped the run, so that the
            command line exits with code 130.
        """
        try:
            self.files.save_weights(self.best_state, self.run_dir / f"model{self.files.suffix}")
            if self.status == 'running':
                self.status = 'completed'
            self._write_summary(test_accuracy)
            if self.plot and self.epochs_done:
                self._plot()
        finally:
            self._close()
        if test_accuracy is not None:
            print(f"best epoch {self.best_epoch}: validation accuracy {self.stopper.best:.4f}, "
                  f"test accuracy {test_accuracy:.4f}")
        elif self.best_epoch is None:
            print("no epoch finished, so there is no model to test")
        print(f"results in {self.run_dir}", flush=True)
        if self.stop_requested:
            print(self.resume_advice(), file=sys.stderr, flush=True)
            raise Terminated if self.stop_signal == 'SIGTERM' else KeyboardInterrupt

    def resume_advice(self):
        """The command that continues this run from its last checkpoint, or why none can."""
        if not self.epochs_done:
            return "no epoch finished, so there is no checkpoint to continue from"
        checkpoint = shlex.quote(str(self.run_dir / f"checkpoint{self.files.suffix}"))
        return f"to continue this run: python train_mlp_{self.framework}.py --resume {checkpoint}"

    def _plot(self):
        """Draw the curves; curves that cannot be drawn (a broken matplotlib, a missing
        font) are one warning line, and the run and its result stand."""
        try:
            from lab.plotting import plot_training_curves
            batch_norm = ' with batch norm' if self.settings['use_batch_norm'] else ''
            title = (f"{self.framework} MLP {self.settings['hidden_dims']}{batch_norm} on "
                     f"{self.settings['dataset']}")
            plot_training_curves(self.logging_dict, self.run_dir, title, self.best_epoch)
        except OSError:
            raise
        except Exception as error:
            print(f"warning: no curves drawn ({type(error).__name__}: "
                  f"{printable(str(error).split(chr(10))[0])[:200]}); the results are in "
                  f"summary.json", file=sys.stderr, flush=True)

    def _write_summary(self, test_accuracy):
        summary = {
            'framework': self.framework,
            'status': self.status,
            'message': self.message,
            'config': self.settings,
            'epochs_completed': self.epochs_done,
            'best_epoch': self.best_epoch,
            'best_validation_accuracy': self.stopper.best if self.best_epoch else None,
            'test_accuracy': test_accuracy,
            'metrics': self.logging_dict,
            'wall_seconds': self.elapsed_before + time.perf_counter() - self.started,
            'finished_at': datetime.now(timezone.utc).isoformat(timespec='seconds'),
            'versions': library_versions(),
        }
        save_json(self.run_dir / 'summary.json', summary)


def read_resumable_checkpoint(files, path, settings):
    """Read a checkpoint to resume, and check that it can continue with ``settings``.

    Raises
    ------
    CheckpointError
        If the file cannot be read (see ``checkpoints.read_checkpoint``).
    ConfigurationError
        If the run was saved with other settings (only ``epochs`` may differ),
        or has already done as many epochs as asked for.
    """
    checkpoint = read_checkpoint(files, path)
    try:
        saved = checkpoint['settings']
        changed = sorted(key for key in settings
                         if key != 'epochs' and saved.get(key) != settings[key])
        epochs_done = len(checkpoint['run']['logging_dict']['validation_accuracy'])
    except (KeyError, TypeError, AttributeError) as error:
        raise CheckpointError(f"not a readable checkpoint: {path} holds no settings and log "
                              f"of a run ({type(error).__name__}: {error})") from error
    check_run_state(checkpoint['run'], METRICS)
    if changed:
        details = ', '.join(f"{key}: saved {saved.get(key)!r}, now {settings[key]!r}"
                            for key in changed)
        raise ConfigurationError(f"{path} was saved by a run with other settings ({details}); "
                                 f"resume with the saved settings (only --epochs may change)")
    if settings['epochs'] <= epochs_done:
        raise ConfigurationError(f"{path} has {epochs_done} epochs done already; pass "
                                 f"--epochs with more than {epochs_done} to train further")
    return checkpoint


def claim_run_folder(out_dir, name):
    """Create and return a new folder ``out_dir/name``, or ``name_2``, ``name_3``, ...

    Creating a folder either succeeds or fails at once, so two runs started
    together never share one, and a finished run is never overwritten.

    Raises
    ------
    OSError
        If the folder cannot be created, naming it.
    """
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for number in range(1, 10000):
            run_dir = out_dir / (name if number == 1 else f"{name}_{number}")
            try:
                run_dir.mkdir()
                return run_dir
            except FileExistsError:
                continue
    except OSError as error:
        raise OSError(error.errno, f"cannot create the output folder {out_dir / name} "
                      f"({error.strerror}); choose a writable --out_dir") from error
    raise OSError(f"{out_dir} already holds 9999 runs named {name}; clean it up")


def library_versions():
    """Versions of Python and the libraries a result depends on."""
    versions = {'python': platform.python_version(), 'numpy': np.__version__}
    if 'torch' in sys.modules:
        versions['torch'] = sys.modules['torch'].__version__
    return versions

