"""The graded functions of the assignment, one module each.

Every module here declares ``ITEMS``, a list of :class:`lab.grading.judge.Item`: the
question to the student's code, the reference, the known mistakes as data and the
questions that localise an unknown one. The rubric's ids, the items the grader runs
and the order it asks them in come from these modules; nothing lists them again.
A new graded function is a new module here and an entry in ``rubric.toml``.
"""
import importlib
import pkgutil


def all_items(package=__name__):
    """{id: Item} of every module in ``package``, in module order."""
    found = {}
    module = importlib.import_module(package)
    for info in sorted(pkgutil.iter_modules(module.__path__), key=lambda info: info.name):
        for item in getattr(importlib.import_module(f'{package}.{info.name}'), 'ITEMS', []):
            if item.id in found:
                raise ValueError(f'item id {item.id!r} is declared twice ({info.name})')
            found[item.id] = item
    return found
