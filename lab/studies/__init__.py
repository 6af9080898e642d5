"""The studies of ``experiments.py``, one module each, and the harness they share.

Each study module holds one function, named as the module, that trains small
models, draws its figures into ``out_dir`` and returns its numbers; helpers
only that study needs live beside it. ``harness`` holds what several studies
use: data subsets, the instrumented NumPy and PyTorch training loops and the
plot helpers. Imports flow one way: ``experiments.py`` -> a study -> ``harness``
-> the project's modules.
"""
import lab.plotting  # noqa: F401  first: it makes matplotlib draw to files whatever MPLBACKEND says
import matplotlib

# Set here, before any study imports pyplot, so that every study draws to files
# and in the same style, whichever of them is imported first or alone.
matplotlib.use('Agg')
matplotlib.rcParams.update({'axes.grid': True, 'grid.alpha': 0.3, 'legend.fontsize': 8,
                            'axes.titlesize': 10, 'axes.labelsize': 9})
