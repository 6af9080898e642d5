"""Helpers and fixtures shared by the tests: one of each.

- ``rel_error`` and ``numerical_gradient``: the oracle of the gradient checks.
- ``run_script``, ``start_script`` and ``run_main``: a script run as a user runs it, in a
  fresh interpreter, or its ``main(argv)`` called in this process where a fresh interpreter
  is not what is under test (0.7 s less a run); ``only_run_dir``, ``last_line`` and
  ``finished_runs``: what such runs leave.
- ``SPIRAL`` and ``SPIRAL_RUN``: a quick run on generated data, as ``train``'s keyword
  arguments and as flags; ``SCRIPTS`` and ``BOTH_SCRIPTS``: the two training scripts.
- ``checkpoint_name``, ``copy_of_run``, ``flip_a_bit_of_the_data`` and ``Reduce``: damaged,
  edited and hostile files made from real ones.
- ``needs_fashion_mnist``: skips a test where Debian's Fashion-MNIST is not installed.
- ``mirror_pair``, ``cross_entropy_losses`` and ``assert_mirrors_agree``: a NumPy MLP
  and its PyTorch copy, and the check that they compute the same outputs, loss and
  gradients.
- ``suite_thread_policy``: the training scripts' thread policy, for the whole suite; with
  pytest-xdist, each worker's share of the CPUs.
- ``code_lines`` and ``imported_modules``: the one code-line counter and the one
  import reader of the tests that check the code's shape.
"""
import ast
import contextlib
import importlib
import io
import os
import shutil
import signal
import subprocess
import sys
import traceback
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import mlp_numpy
import mlp_pytorch
from lab.datasets import DEBIAN_FASHION_MNIST_DIR
from lab.mirror import copy_numpy_to_torch
from lab.threads import (THREAD_VARIABLES, apply_thread_policy, choose_threads,
                         first_layer_product, usable_cpus)
from modules import SoftmaxCrossEntropyModule

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = ('train_mlp_numpy.py', 'train_mlp_pytorch.py')
SPIRAL = dict(dataset='spiral', data_dir='unused', progress=False, plot=False)
SPIRAL_RUN = ('--dataset', 'spiral', '--hidden_dims', '8', '--batch_size', '32',
              '--no_progress')
"""The command-line flags of a quick spiral run."""
BOTH_SCRIPTS = ['train_mlp_numpy.py',
                pytest.param('train_mlp_pytorch.py', marks=pytest.mark.slow)]
"""For a test of code the scripts share: the PyTorch script's case is in the full suite only."""

needs_fashion_mnist = pytest.mark.skipif(
    not DEBIAN_FASHION_MNIST_DIR.exists(),
    reason="Debian's dataset-fashion-mnist is not installed "
           "(apt-get install dataset-fashion-mnist)")


def worker_share_of_the_cpus():
    """The CPUs each pytest-xdist worker may keep busy (at least 1), or None outside xdist."""
    workers = os.environ.get('PYTEST_XDIST_WORKER_COUNT')
    return None if workers is None else max(1, usable_cpus()[1] // int(workers))


@pytest.fixture(scope='session', autouse=True)
def suite_thread_policy():
    """The scripts' thread policy (lab/threads.py) for the suite's largest product, Fashion-MNIST
    batches of 128 into 128 units, at most each xdist worker's share of the CPUs: set in this
    process, and in the environment of every script and notebook kernel a test starts, so a
    busy machine, or the other workers, do not slow the suite many times."""
    product_size = first_layer_product(128, 28 * 28, [128], 10)
    share = worker_share_of_the_cpus()
    requested = None
    if share is not None:
        policy = choose_threads(product_size=product_size)
        if policy.source == 'policy':
            requested = min(policy.threads, share)
    choice = apply_thread_policy(requested, product_size=product_size)
    with pytest.MonkeyPatch.context() as patch:
        if choice.source != 'environment':
            for name in THREAD_VARIABLES:
                patch.setenv(name, str(choice.threads))
        yield choice


def rel_error(x, y, floor=1e-12):
    """Largest relative error between two arrays; ``floor`` keeps it finite where both are 0."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return float(np.max(np.abs(x - y) / np.maximum(floor, np.abs(x) + np.abs(y)), initial=0.0))


def numerical_gradient(f, x, h=1e-5):
    """Central-difference gradient of the scalar function ``f()`` with respect to array ``x``.

    The fourth-order stencil (f(x-2h) - 8 f(x-h) + 8 f(x+h) - f(x+2h)) / 12h:
    its truncation error, of order h^4, stays negligible where the loss curves
    strongly (batch norm of a small batch, cross-entropy of a small
    probability), where the error of the two-point difference, h^2 / 6 times
    the third derivative, reaches a 1e-6 tolerance; its rounding error is about
    that of the two-point difference. ``x`` is perturbed in place, one entry at
    a time, and restored, so ``f`` must read ``x`` at call time (as the modules
    read ``params`` in ``forward``).
    """
    grad = np.zeros(x.shape, dtype=np.float64)
    for index in np.ndindex(*x.shape):
        original = x[index]
        values = []
        for offset in (-2 * h, -h, h, 2 * h):
            x[index] = original + offset
            values.append(float(f()))
        x[index] = original
        f_minus_2, f_minus_1, f_plus_1, f_plus_2 = values
        grad[index] = (f_minus_2 - 8 * f_minus_1 + 8 * f_plus_1 - f_plus_2) / (12 * h)
    return grad


def run_script(script, *arguments, cwd, timeout=120, **options):
    """Run one of the repository's scripts in a fresh interpreter, as a user would."""
    return subprocess.run([sys.executable, str(REPO / script), *arguments], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, **options)


def start_script(script, *arguments, cwd, **options):
    """``run_script`` without waiting: the running process, its output in pipes."""
    return subprocess.Popen([sys.executable, str(REPO / script), *arguments], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **options)


PYTHONS_WARNING_FILTERS = [('ignore', DeprecationWarning), ('ignore', PendingDeprecationWarning),
                           ('ignore', ImportWarning), ('ignore', ResourceWarning)]
"""Python's own warning filters (``python -W`` unset, a release build) but for __main__'s
DeprecationWarnings: a script run in this process shows the warnings a user would see."""


@contextlib.contextmanager
def process_state_kept():
    """Whatever a script's ``main`` may change in its process, put back afterwards: the
    working folder, ``sys.argv``, the standard streams, the Ctrl-C and SIGTERM handlers,
    the environment, the thread counts, the global random states, the warning filters and
    matplotlib's open figures."""
    from threadpoolctl import threadpool_info, threadpool_limits
    saved_cwd, saved_argv = os.getcwd(), sys.argv
    saved_streams = sys.stdout, sys.stderr
    saved_handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT,
                                                                       signal.SIGTERM)}
    saved_environment = dict(os.environ)
    blas_threads = {pool['user_api']: pool['num_threads'] for pool in threadpool_info()}
    torch_threads, torch_random = torch.get_num_threads(), torch.get_rng_state()
    numpy_random = np.random.get_state()
    try:
        with warnings.catch_warnings():
            warnings.resetwarnings()
            for action, category in PYTHONS_WARNING_FILTERS:
                warnings.simplefilter(action, category)
            yield
    finally:
        os.chdir(saved_cwd)
        sys.argv = saved_argv
        sys.stdout, sys.stderr = saved_streams
        for signum, handler in saved_handlers.items():
            signal.signal(signum, handler)
        os.environ.clear()
        os.environ.update(saved_environment)
        threadpool_limits(blas_threads)
        torch.set_num_threads(torch_threads)
        torch.set_rng_state(torch_random)
        np.random.set_state(numpy_random)
        if 'matplotlib.pyplot' in sys.modules:
            sys.modules['matplotlib.pyplot'].close('all')


def run_main(script, *arguments, cwd):
    """Run a script's ``main(argv)`` in this process: what ``run_script`` returns (the exit
    code, stdout and stderr, an uncaught exception's traceback and exit code 1, a
    ``sys.exit('message')``'s message), without starting an interpreter and importing
    NumPy, PyTorch and matplotlib again (0.7 s, 2 s with PyTorch). Not for what only a fresh
    process shows: signals, closed streams, the environment read at import, what is
    imported."""
    module = importlib.import_module(Path(script).stem)
    stdout, stderr = io.StringIO(), io.StringIO()
    with process_state_kept():
        os.chdir(cwd)
        sys.argv = [str(REPO / script), *arguments]
        sys.stdout, sys.stderr = stdout, stderr
        try:
            module.main(list(arguments))
            returncode = 0
        except SystemExit as exit:
            if exit.code is None or isinstance(exit.code, int):
                returncode = exit.code or 0
            else:
                print(exit.code, file=stderr)
                returncode = 1
        except Exception:  # noqa: BLE001 -- as the interpreter would, print it and exit 1
            traceback.print_exc(file=stderr)
            returncode = 1
    return subprocess.CompletedProcess([script, *arguments], returncode, stdout.getvalue(),
                                       stderr.getvalue())


def last_line(result):
    """The last line a finished script wrote to stderr: its one line of error."""
    return result.stderr.strip().splitlines()[-1]


def only_run_dir(out_dir):
    """The one run folder in ``out_dir``."""
    run_dirs = [path for path in Path(out_dir).iterdir() if path.is_dir()]
    assert len(run_dirs) == 1, run_dirs
    return run_dirs[0]


@pytest.fixture(scope='session')
def finished_runs(tmp_path_factory):
    """One finished two-epoch spiral run of each script, with its plots, to copy
    (``copy_of_run``) and damage or edit."""
    out_dir = tmp_path_factory.mktemp('finished')
    run_dirs = {}
    for script in SCRIPTS:
        result = run_main(script, *SPIRAL_RUN, '--epochs', '2',
                          '--out_dir', str(out_dir / script), cwd=out_dir)
        assert result.returncode == 0, result.stderr
        run_dirs[script] = only_run_dir(out_dir / script)
    return run_dirs


def flip_a_bit_of_the_data(path):
    """Flip one bit in the middle of the largest member's data of a zip archive
    (``.npz``, ``torch.save``'s files), as a failing disk or copy would."""
    import struct
    import zipfile
    with zipfile.ZipFile(path) as archive:
        member = max(archive.infolist(), key=lambda info: info.compress_size)
    content = bytearray(Path(path).read_bytes())
    local_header = member.header_offset
    name_length, extra_length = struct.unpack('<HH', content[local_header + 26:local_header + 30])
    data_start = local_header + 30 + name_length + extra_length
    content[data_start + member.compress_size // 2] ^= 0x01
    Path(path).write_bytes(bytes(content))


def mirror_pair(n_inputs, n_hidden, n_outputs, seed=0, **options):
    """A float64 NumPy MLP with perturbed random parameters, and its PyTorch copy.

    The parameters are moved off their initial values (zero biases, unit
    batch-norm scales), so that a gradient that wrongly ignores one shows.
    ``options`` go to both constructors (``activation``, ``use_batch_norm``, ...).
    """
    rng = np.random.default_rng(seed)
    numpy_model = mlp_numpy.MLP(n_inputs, n_hidden, n_outputs, rng=rng, **options)
    for parameter, _ in numpy_model.parameters():
        parameter += 0.1 * rng.standard_normal(parameter.shape)
    torch_model = mlp_pytorch.MLP(n_inputs, n_hidden, n_outputs, **options).double()
    copy_numpy_to_torch(numpy_model, torch_model)
    return numpy_model, torch_model


def assert_mirrors_agree(numpy_model, torch_model, x, numpy_loss, torch_loss, zero_floor=0.0):
    """Run one batch through both MLPs and their losses, forward and backward, and compare.

    Outputs and loss must agree to 1e-8 relative, every parameter exactly, and
    every parameter gradient to 1e-8 relative (or, where the exact gradient is
    0 and both sides are rounding noise, to ``zero_floor`` absolute).

    Parameters
    ----------
    numpy_loss : callable
        ``numpy_loss(outputs)`` returns the loss and dL/d(outputs).
    torch_loss : callable
        ``torch_loss(outputs)`` returns the loss as a tensor.
    """
    numpy_outputs = numpy_model.forward(x)
    numpy_value, doutputs = numpy_loss(numpy_outputs)
    numpy_model.backward(doutputs)
    torch_outputs = torch_model(torch.from_numpy(x))
    torch_value = torch_loss(torch_outputs)
    torch_value.backward()

    assert rel_error(numpy_outputs, torch_outputs.detach().numpy()) < 1e-8
    assert rel_error(numpy_value, torch_value.item()) < 1e-8
    numpy_parameters, torch_parameters = numpy_model.parameters(), list(torch_model.parameters())
    assert len(numpy_parameters) == len(torch_parameters)
    for index, ((parameter, gradient), torch_parameter) in enumerate(
            zip(numpy_parameters, torch_parameters)):
        np.testing.assert_array_equal(parameter, torch_parameter.detach().numpy())
        torch_gradient = torch_parameter.grad.numpy()
        assert (np.max(np.abs(gradient - torch_gradient)) <= zero_floor
                or rel_error(gradient, torch_gradient) < 1e-8), f"parameter {index}"


def cross_entropy_losses(labels):
    """The fused NumPy loss and PyTorch's cross-entropy, for ``assert_mirrors_agree``."""
    loss_module = SoftmaxCrossEntropyModule()

    def numpy_loss(logits):
        return loss_module.forward(logits, labels), loss_module.backward()
    return numpy_loss, lambda logits: F.cross_entropy(logits, torch.from_numpy(labels))


def code_lines(source, node=None):
    """Numbers of the lines of ``source`` (within ``node``, an AST node of it, if
    given) that hold code: not blank, not only a comment, not part of a docstring
    (any statement that is a bare string: module, class, function or attribute)."""
    docstring_lines = set()
    for inner in ast.walk(ast.parse(source)):
        if (isinstance(inner, ast.Expr) and isinstance(inner.value, ast.Constant)
                and isinstance(inner.value.value, str)):
            docstring_lines.update(range(inner.lineno, inner.end_lineno + 1))
    lines = source.splitlines()
    first, last = (node.lineno, node.end_lineno) if node is not None else (1, len(lines))
    return [number for number in range(first, last + 1)
            if number not in docstring_lines and lines[number - 1].strip()
            and not lines[number - 1].strip().startswith('#')]


def imported_modules(path, known=None):
    """The modules a Python file imports, at the top or inside a function.

    ``from a import b`` counts as importing ``a``, and ``a.b`` too when ``a.b``
    is one of ``known``; with ``known`` given, only names in it are returned.
    Relative imports are not read (the project uses none).
    """
    found = set()
    for node in ast.walk(ast.parse(Path(path).read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            if known is not None:
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found if known is None else {name for name in found if name in known}


def checkpoint_name(script):
    """The checkpoint file a training script writes into its run folder."""
    return 'checkpoint.npz' if 'numpy' in script else 'checkpoint.pt'


def copy_of_run(finished_runs, script, tmp_path):
    """A copy of the finished run of ``script`` and the path of its checkpoint."""
    run_dir = shutil.copytree(finished_runs[script], tmp_path / 'run')
    return run_dir, run_dir / checkpoint_name(script)


class Reduce:
    """Pickles as ``function(*arguments)``: what a hostile or crafted pickle calls."""

    def __init__(self, function, *arguments):
        self.function, self.arguments = function, arguments

    def __reduce__(self):
        return self.function, self.arguments
