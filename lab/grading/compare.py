"""What changed between two batches: ``python grade.py --compare OLD/grades.csv NEW/grades.csv``.

Per student whose points changed: the total before and after and each item that
changed; students only in one file are named as added or removed; students with
the same points are not listed. A last line sums it up. Items are matched by their
column's name, so an item added to or removed from the rubric shows as ``-`` on the
side that lacks it.
"""
import csv
from pathlib import Path

FIXED_COLUMNS = ('submission', 'year', 'total', 'max_total', 'problems')


class GradesError(ValueError):
    """A file that is not a readable grades.csv."""


def printable(text):
    """Student text for a terminal: control characters shown as escapes, never obeyed."""
    return ''.join(character if character.isprintable() else repr(character)[1:-1]
                   for character in str(text))


def read_grades(path):
    """``{submission: {column: cell}}`` of a grades.csv, and its item columns in order."""
    path = Path(path)
    try:
        with open(path, newline='', encoding='utf-8') as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise GradesError(f"{path}: cannot be read ({error}); give a grades.csv that "
                          f"grade.py wrote") from None
    if not rows or not {'submission', 'total'} <= set(rows[0]):
        raise GradesError(f"{path} is not a grades.csv (its first line should name the "
                          f"columns submission, ..., total); give one that grade.py wrote")
    header = rows[0]
    items = [column for column in header if column not in FIXED_COLUMNS]
    students = {}
    for row in rows[1:]:
        if row:
            cells = dict(zip(header, row + [''] * (len(header) - len(row))))
            students[cells['submission']] = cells
    return students, items


def _number(cell):
    try:
        return float(cell)
    except (TypeError, ValueError):
        return None


def compare_grades(old_path, new_path):
    """The lines to print: per changed student, then the one-line summary."""
    old, old_items = read_grades(old_path)
    new, new_items = read_grades(new_path)
    items = old_items + [item for item in new_items if item not in old_items]
    lines = []
    up = down = level = unchanged = 0
    for name in sorted(set(old) & set(new)):
        before, after = old[name], new[name]
        changed = [(item, before.get(item, '-') or '-', after.get(item, '-') or '-')
                   for item in items if (before.get(item) or '-') != (after.get(item) or '-')]
        total_before, total_after = _number(before['total']), _number(after['total'])
        if not changed and before['total'] == after['total']:
            unchanged += 1
            continue
        if total_before is None or total_after is None or total_before == total_after:
            level += 1
        elif total_after > total_before:
            up += 1
        else:
            down += 1
        lines.append(f"{printable(name)}: total {printable(before['total'])} -> "
                     f"{printable(after['total'])}")
        lines += [f"    {printable(item)}: {printable(was)} -> {printable(now)}"
                  for item, was, now in changed]
    removed = sorted(set(old) - set(new))
    added = sorted(set(new) - set(old))
    lines += [f"{printable(name)}: only in {old_path} (total {printable(old[name]['total'])})"
              for name in removed]
    lines += [f"{printable(name)}: only in {new_path} (total {printable(new[name]['total'])})"
              for name in added]
    changed_count = up + down + level
    lines.append(f"{changed_count} of {len(set(old) & set(new))} students changed ({up} up, "
                 f"{down} down, {level} with the same total), {unchanged} unchanged, "
                 f"{len(added)} added, {len(removed)} removed")
    return lines
