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
