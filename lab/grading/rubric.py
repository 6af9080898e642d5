"""The rubric: which items are graded, their points and their visibility, read from TOML.

Course staff edit ``rubric.toml`` (beside this file) or pass their own file. Each item's
``id`` names an item declared in :mod:`lab.grading.functions`; its name and points default
to what that module declares, and the rest is theirs to change.
"""
import tomllib
from dataclasses import dataclass
from pathlib import Path

from lab.grading.functions import all_items

DEFAULT_RUBRIC = Path(__file__).with_name('rubric.toml')
VISIBILITIES = ('visible', 'hidden', 'after_due_date', 'after_published')
"""Gradescope's visibility values."""


class RubricError(ValueError):
    """A rubric file that cannot be used; the message names the problem and the fix."""


@dataclass(frozen=True)
class RubricItem:
    """One graded item: its id, its name in reports, points, visibility, and the
    :class:`lab.grading.judge.Item` that grades it."""
    id: str
    name: str
    points: float
    visibility: str = 'visible'
    graded: object = None


@dataclass(frozen=True)
class Rubric:
    """The graded items, in report order."""
    items: tuple

    @property
    def max_total(self):
        return sum(item.points for item in self.items)

    def ids(self):
        return [item.id for item in self.items]

    def subset(self, ids):
        """The rubric of the items ``ids`` only, in this rubric's order."""
        unknown = set(ids) - set(self.ids())
        if unknown:
            raise RubricError(f'no items {sorted(unknown)} in this rubric')
        return Rubric(tuple(item for item in self.items if item.id in set(ids)))


def load_rubric(path=None, functions='lab.grading.functions'):
    """Read a rubric TOML file (the default one when ``path`` is None) whose ids are the
    items declared in the package ``functions``.

    Raises
    ------
    RubricError
        For a missing or malformed file, an unknown item id, a repeated id,
        negative points or an unknown visibility, naming the item.
    """
    path = Path(DEFAULT_RUBRIC if path is None else path)
    try:
        with open(path, 'rb') as stream:
            data = tomllib.load(stream)
    except FileNotFoundError:
        raise RubricError(f'rubric file {path} not found; give an existing .toml file') from None
    except tomllib.TOMLDecodeError as error:
        raise RubricError(f'rubric file {path} is not valid TOML: {error}') from None
    entries = data.get('item')
    if not isinstance(entries, list) or not entries:
        raise RubricError(f'rubric file {path} has no [[item]] tables; see '
                          f'{DEFAULT_RUBRIC.name} for the format')
    items, seen, known = [], set(), all_items(functions)
    for number, entry in enumerate(entries, start=1):
        items.append(_item(entry, number, path, seen, known))
    return Rubric(tuple(items))


def _item(entry, number, path, seen, known):
    item_id = entry.get('id')
    where = f'rubric file {path}, item {number}'
    if item_id not in known:
        raise RubricError(f'{where}: unknown id {item_id!r}; known ids: '
                          f'{", ".join(known)}')
    if item_id in seen:
        raise RubricError(f'{where}: id {item_id!r} appears twice; keep one')
    seen.add(item_id)
    points = entry.get('points', known[item_id].points)
    if isinstance(points, bool) or not isinstance(points, (int, float)) or points < 0:
        raise RubricError(f'{where} ({item_id}): points must be a number >= 0, got {points!r}')
    visibility = entry.get('visibility', 'visible')
    if visibility not in VISIBILITIES:
        raise RubricError(f'{where} ({item_id}): visibility must be one of '
                          f'{", ".join(VISIBILITIES)}, got {visibility!r}')
    unknown = set(entry) - {'id', 'name', 'points', 'visibility'}
    if unknown:
        raise RubricError(f'{where} ({item_id}): unknown keys {sorted(unknown)}; an item has '
                          f'id, name, points and visibility')
    return RubricItem(item_id, str(entry.get('name', known[item_id].name)), float(points),
                      visibility, known[item_id])
