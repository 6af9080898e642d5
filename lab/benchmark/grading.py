"""The `grading` sub-command: seconds per submission of ``python grade.py``.

It grades copies of this repository's own files, every item including the
training checks, as a course would: ``python grade.py FOLDER --format json``
as a whole process, ``--repeats`` times (the median is the figure), then a
folder of ``--batch`` copies with ``--jobs``. The targets: one submission in
at most 4 s (median) and a batch of 60 in at most 4 minutes with ``--jobs 2``
on a quiet 2-core machine. On a shared machine the wall time is not that, so
the CPU time (user + system of every process, the student's included) is
reported beside it: it is about the wall time on an idle machine. A batch
smaller than 60 gives seconds per submission, and the time of 60 is that
figure times 60, marked as an extrapolation.
"""
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lab.benchmark.common import REPOSITORY, machine_facts, summary
from lab.cli import positive_int
from lab.fileio import atomic_write
from lab.grading.spec import STUDENT_FILES

ONE_SUBMISSION_TARGET_S = 4.0
BATCH_OF_60_TARGET_S = 4 * 60.0


def copy_our_files(folder):
    folder.mkdir(parents=True)
    for name in STUDENT_FILES.values():
        shutil.copyfile(REPOSITORY / name, folder / name)


def children_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_grade(arguments, cwd):
    """Wall and CPU seconds of one ``python grade.py ...`` process (with every process it
    waited for: the student processes, the batch's workers), and its output."""
    started, cpu_before = time.perf_counter(), children_cpu_seconds()
    result = subprocess.run([sys.executable, str(REPOSITORY / 'grade.py'), *map(str, arguments)],
                            cwd=cwd, capture_output=True, text=True)
    seconds, cpu = time.perf_counter() - started, children_cpu_seconds() - cpu_before
    if result.returncode != 0:
        raise RuntimeError(f"grade.py failed ({result.returncode}): {result.stderr[-500:]}")
    return seconds, cpu, result.stdout


def measure_grading(repeats, batch, jobs):
    """Time one submission ``repeats`` times and a batch of ``batch`` with ``jobs``."""
    results = {**machine_facts(), 'repeats': repeats, 'batch': batch, 'jobs': jobs,
               'threads_per_submission': 1}
    with tempfile.TemporaryDirectory(prefix='grading-benchmark-') as scratch:
        scratch = Path(scratch)
        copy_our_files(scratch / 'ours')
        one, one_cpu, totals = [], [], []
        for _ in range(repeats):
            seconds, cpu, stdout = timed_grade([scratch / 'ours', '--format', 'json'], scratch)
            report = json.loads(stdout)
            one.append(seconds)
            one_cpu.append(cpu)
            totals.append(f"{report['total']:g} / {report['max_total']:g}")
        results['one_submission_s'] = summary(one)
        results['one_submission_cpu_s'] = summary(one_cpu)
        results['one_submission_totals'] = totals
        for index in range(batch):
            copy_our_files(scratch / 'batch' / f'student{index:03d}')
        seconds, cpu, _ = timed_grade([scratch / 'batch', '--jobs', jobs, '--out',
                                       scratch / 'grades', '--no_progress'], scratch)
        results['batch_s'] = seconds
        results['batch_cpu_s_per_submission'] = cpu / batch
        results['batch_s_per_submission'] = seconds / batch
        results['batch_of_60_s'] = seconds / batch * 60
        results['batch_of_60_measured'] = batch == 60
    results['load_average_end'] = os.getloadavg()[0]
    return results


def print_grading_table(results):
    one = results['one_submission_s']
    extrapolated = '' if results['batch_of_60_measured'] else ' (extrapolated)'
    print(f"grade.py on this repository's own files (every item, training included); "
          f"{results['date']}, {results['cpu_count']} cores ({results['processor']}), "
          f"load average {results['load_average']:.1f} at the start and "
          f"{results['load_average_end']:.1f} at the end; 1 thread per submission")
    print(f"  one submission: median {one['median']:.1f} s (min {one['min']:.1f}, max "
          f"{one['max']:.1f}, {results['repeats']} runs), target < "
          f"{ONE_SUBMISSION_TARGET_S:g} s: "
          f"{'ok' if one['median'] < ONE_SUBMISSION_TARGET_S else 'MISSED'}; totals "
          f"{', '.join(sorted(set(results['one_submission_totals'])))}")
    cpu = results['one_submission_cpu_s']
    print(f"  one submission: median {cpu['median']:.1f} CPU s (min {cpu['min']:.1f}, max "
          f"{cpu['max']:.1f}): about its wall time on an idle machine, whatever the load now; "
          f"target <= {ONE_SUBMISSION_TARGET_S:g} s: "
          f"{'ok' if cpu['median'] <= ONE_SUBMISSION_TARGET_S else 'MISSED'}")
    print(f"  batch of {results['batch']} with --jobs {results['jobs']}: "
          f"{results['batch_s']:.1f} s, {results['batch_s_per_submission']:.1f} s per "
          f"submission; 60 submissions: {results['batch_of_60_s'] / 60:.1f} min{extrapolated}, "
          f"target < {BATCH_OF_60_TARGET_S / 60:g} min: "
          f"{'ok' if results['batch_of_60_s'] < BATCH_OF_60_TARGET_S else 'MISSED'}")
    idle_60 = results['batch_cpu_s_per_submission'] * 60 / results['jobs']
    print(f"  batch: {results['batch_cpu_s_per_submission']:.1f} CPU s per submission, so 60 "
          f"on {results['jobs']} idle cores: {idle_60 / 60:.1f} min, target <= "
          f"{BATCH_OF_60_TARGET_S / 60:g} min: "
          f"{'ok' if idle_60 <= BATCH_OF_60_TARGET_S else 'MISSED'}")


def run_grading_benchmark(args):
    """The `grading` sub-command."""
    results = measure_grading(args.repeats, args.batch, args.jobs)
    print_grading_table(results)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results, indent=2) + '\n'
    atomic_write(args.json, lambda temporary: Path(temporary).write_text(text))
    print(f'Numbers written to {args.json}')


def add_grading_command(subcommands):
    parser = subcommands.add_parser(
        'grading', help='seconds per submission of grade.py (about 2 minutes, from the 6.7 s '
                        'of CPU per submission in docs/grading.md)')
    parser.add_argument('--repeats', type=positive_int, default=5,
                        help='gradings of one submission; the median is reported (default: 5)')
    parser.add_argument('--batch', type=positive_int, default=10,
                        help='submissions in the batch (default: 10; 60 for the target as is)')
    parser.add_argument('--jobs', type=positive_int, default=2,
                        help='--jobs of the batch (default: 2)')
    parser.add_argument('--json', default='results/benchmark_grading.json',
                        help='where to write the numbers '
                             '(default: results/benchmark_grading.json)')
    parser.set_defaults(run=run_grading_benchmark)

