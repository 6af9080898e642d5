"""The lab tier: everything built around the assignment's files.

The assignment tier (``modules.py``, ``mlp_numpy.py``, ``mlp_pytorch.py``,
``cifar10_utils.py``, the two training scripts and ``unittests.py``) sits at
the repository's root and reads like the official templates filled in. This
package holds the rest, one concern per module, imports flowing one way:

- ground floor, importing nothing of the assignment: ``fileio`` (atomic writes,
  strict JSON, the folder lock), ``downloads``, ``cifar10_files`` (CIFAR-10's
  files read without running code) and ``loaders`` (in-memory data sets and
  their mini-batch loaders). ``cifar10_utils.py`` stands on these.
- middle: ``datasets`` (every data set behind one name), ``settings``,
  ``checkpoints``, ``optimizers``, ``mirror``, ``plotting``, ``runs``, ``cli``.
- top: ``studies`` (the experiments), ``benchmark`` and ``grading``, each used
  by an entry-point script at the root.
"""
import importlib.util
import sys

REQUIRED_PACKAGES = ('numpy', 'tqdm', 'threadpoolctl')
"""What every script needs before its first line of work (matplotlib and torch are named
where they are imported). Checked here, at the first import of ``lab``, so that a script
started outside the project's environment says so in one line, not in a traceback."""

_missing = [name for name in REQUIRED_PACKAGES if importlib.util.find_spec(name) is None]
if _missing:
    sys.exit(f"error: {sys.executable} lacks {', '.join(_missing)}: activate the project's "
             f"environment (source .venv/bin/activate) or install the requirements "
             f"(pip install -r requirements-lock.txt)")
