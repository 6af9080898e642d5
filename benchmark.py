"""Benchmarks of this repository against its peers, one sub-command each.

    python benchmark.py train [--epochs 7] [--json results/benchmark_train.json]
    python benchmark.py table [--json results/benchmark_train.json]
    python benchmark.py levers [--repeats 7] [--json results/benchmark_levers.json]
    python benchmark.py data  [--repeats 3] [--json results/benchmark_data.json]
    python benchmark.py grading [--repeats 5] [--batch 10] [--jobs 2]
    python benchmark.py contention [--busy 0 1 2] [--json results/benchmark_contention.json]

`train` times training epochs (batch 128, learning rate 0.1, float32) of this
NumPy MLP, this PyTorch MLP on the CPU, a plain PyTorch eager loop and, where
it is installed, scikit-learn's MLPClassifier, on the Fashion-MNIST shape
(784-128-10) and the CIFAR-10 shape (3072-128-10). Beside them it times the
NumPy matrix products of the same epoch and nothing else, the floor that the
NumPy MLP is measured against. It runs everything twice, in a fresh process
with one thread and in one with all the machine's threads (BLAS and PyTorch
alike), and in each process it interleaves the systems epoch by epoch, so
that whatever else the machine does hits them alike; it reports the median of
the epochs with their min and max. It also times the main job,
`python train_mlp_numpy.py` with its defaults as a whole process, against ten
PyTorch-eager epochs in the same process, and sweeps one training step over
batch sizes and widths. To show where the NumPy MLP's time goes, it profiles
its training step stage by stage and measures the machine's memory copy
bandwidth, the ceiling of the stages that only move memory. The JSON keeps
every measurement, with the BLAS library and its threads where threadpoolctl
is installed; `table` prints the README's tables from it.

`levers` times the speed-ups that were tried and not kept, each beside what
the code does: the SGD update against a blocked one and SciPy's BLAS axpy, the
first layer's products with a column-major weight and in PyTorch, a
fresh batch against a reused buffer, page faults per step, the first pass over
a product's result with one BLAS thread and with all, element-wise work beside
a busy core, `SGD.step` against a bare loop, and (where SciPy is installed)
training epochs with a second OpenBLAS thread pool in the process.

`contention` times epochs of the NumPy MLP, this PyTorch MLP and PyTorch eager beside 0, 1
and 2 busy processes, on one thread, on all and on the default of lab/threads.py.

`data` measures the data pipeline: loading CIFAR-10 from its extracted
batches (wall time and peak memory, in a fresh process), and one epoch of
training batches from our loader against torch's DataLoader over a
TensorDataset. Without data/cifar-10-batches-py it writes random images of the
real size and format (50 000 + 10 000) to a temporary folder and loads those.
"""
import sys

from lab.benchmark.common import BATCH_SIZE, SHAPES, WorkerError, check_output_file
from lab.benchmark.contention import add_contention_commands
from lab.benchmark.data import add_data_command
from lab.benchmark.grading import add_grading_command
from lab.benchmark.levers import add_levers_commands
from lab.benchmark.train import add_train_commands
from lab.cli import ArgumentParser, ReaderSafeStream
from lab.downloads import CorruptDataError


DURATIONS = ("Durations are those of a 2-core AMD EPYC, quiet unless the line says "
             "otherwise (docs/speed.md); other programs running beside a benchmark can make it take "
             "several times as long, and its numbers are then not comparable.")


def main(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0], epilog=DURATIONS)
    subcommands = parser.add_subparsers(title='benchmarks', dest='benchmark', required=True,
                                        metavar='{train,table,levers,data,grading,contention}')
    add_train_commands(subcommands)
    add_levers_commands(subcommands)
    add_data_command(subcommands)
    add_grading_command(subcommands)
    add_contention_commands(subcommands)
    args = parser.parse_args(argv)
    if getattr(args, 'n_train', None) is not None and args.n_train < BATCH_SIZE:
        parser.error(f"argument --n_train: must be at least one batch, {BATCH_SIZE}, "
                     f"got {args.n_train}")
    if args.benchmark == 'data' and args.batch_size > SHAPES['cifar10'][1]:
        parser.error(f"argument --batch_size: must be at most CIFAR-10's "
                     f"{SHAPES['cifar10'][1]} training images, got {args.batch_size}")
    try:
        if args.benchmark != 'table' and getattr(args, 'json', None):
            check_output_file(args.json)  # before minutes of measuring, not after
    except OSError as error:
        parser.error(f"argument --json: {error}")
    sys.stdout = ReaderSafeStream(sys.stdout)  # `... | head` ends the output, not the benchmark
    try:
        args.run(args)
    except (WorkerError, CorruptDataError, OSError) as error:
        sys.exit(f"benchmark.py {args.benchmark}: error: {error}")


if __name__ == '__main__':
    main()
