"""What the grader writes: the text report, JSON, Gradescope's results.json, grades.csv and
the class summary.

Every function here takes reports as JSON-ready dicts (``Report.to_json()``):
``submission``, ``year``, ``total``, ``max_total``, ``problems`` and ``items``,
each item with ``name``, ``points``, ``max_points``, ``passed``, ``diagnosis``,
``visibility`` and, where the grader recognised it, ``mistake``.
"""
import csv
import json
import re
import textwrap
from collections import Counter
from pathlib import Path

from lab.fileio import atomic_write

WIDTH = 100
GRADESCOPE_VISIBILITY = ('visible', 'hidden', 'after_due_date', 'after_published')


def points_text(value):
    """2 for 2.0, 1.5 for 1.5: points as a person writes them."""
    return f"{value:g}"


def format_text(report):
    """The report a student reads: each item with its points, and why each lost point was lost."""
    lines = [f"Grading {report.get('submission') or 'the submission'} "
             f"(the assignment of {report.get('year', '?')})", '']
    for problem in report.get('problems', []):
        lines += textwrap.wrap(f"! {problem}", WIDTH, subsequent_indent='  ')
    if report.get('problems'):
        lines.append('')
    width = max((len(item['name']) for item in report['items']), default=0)
    for item in report['items']:
        mark = 'ok  ' if item['passed'] else 'LOST'
        lines.append(f"{mark} {item['name']:<{width}}  {points_text(item['points']):>4} / "
                     f"{points_text(item['max_points'])}")
        if not item['passed'] and item.get('diagnosis'):
            for paragraph in str(item['diagnosis']).splitlines():
                lines += textwrap.wrap(paragraph, WIDTH, initial_indent='     ',
                                       subsequent_indent='       ',
                                       break_on_hyphens=False) or ['']
    lines += ['', f"Total: {points_text(report['total'])} / "
                  f"{points_text(report['max_total'])}"]
    return '\n'.join(lines)


def format_json(report):
    """One submission's report as a single JSON object (one line)."""
    return json.dumps(report, allow_nan=False)


def gradescope_results(report):
    """The report in the schema of Gradescope's autograder ``results.json``."""
    output = f"Total {points_text(report['total'])} / {points_text(report['max_total'])}"
    if report.get('problems'):
        output += '\n' + '\n'.join(report['problems'])
    return {
        'score': report['total'],
        'execution_time': round(report.get('elapsed_s', 0.0), 2),
        'output': output,
        'visibility': 'visible',
        'tests': [{'name': item['name'],
                   'score': item['points'],
                   'max_score': item['max_points'],
                   'output': 'passed' if item['passed'] else item.get('diagnosis', ''),
                   'visibility': (item.get('visibility')
                                  if item.get('visibility') in GRADESCOPE_VISIBILITY
                                  else 'visible')}
                  for item in report['items']],
    }


def write_json(path, data):
    """Write ``data`` as indented JSON, atomically."""
    text = json.dumps(data, indent=2, allow_nan=False) + '\n'
    atomic_write(path, lambda temporary: Path(temporary).write_text(text))


def item_names(reports):
    """Every item's name, in the order the reports give them."""
    names = {}
    for report in reports:
        names.update(dict.fromkeys(item['name'] for item in report['items']))
    return list(names)


def write_grades_csv(path, reports):
    """grades.csv: one row per submission, one column per item, then the total."""
    names = item_names(reports)

    def write(temporary):
        with open(temporary, 'w', newline='') as handle:
            writer = csv.writer(handle)
            writer.writerow(['submission', 'year', *names, 'total', 'max_total', 'problems'])
            for report in reports:
                points = {item['name']: points_text(item['points']) for item in report['items']}
                writer.writerow([report['submission'], report.get('year', ''),
                                 *(points.get(name, '') for name in names),
                                 points_text(report['total']),
                                 points_text(report['max_total']),
                                 ' | '.join(report.get('problems', []))])
    atomic_write(path, write)


def mistake_of(item):
    """The name of an item's mistake, the same for every submission that makes it.

    The grader's ``mistake`` where it gives one; else the diagnosis's first clause,
    before its evidence, with numbers blanked. A phrase that does not name its function
    ("not implemented yet") gets the item's name in front.
    """
    text = item.get('mistake') or ''
    if not text:
        first_line = (str(item.get('diagnosis') or '').strip().splitlines() or [''])[0]
        text = re.split(r'; |: expected | for (?:x|logits|input|inputs|dout) ', first_line)[0]
        text = re.sub(r'-?\d+(?:\.\d+)?(?:e[+-]?\d+)?', '#', text)[:200] or 'not recognised'
    if text[:1].islower():
        text = f"{item['name']}: {text}"
    return text


def class_summary(reports, most_common=5):
    """Per item: how many lost points, and the most common mistakes with their counts.

    Returns
    -------
    dict
        ``submissions``, ``mean_total``, ``max_total`` and ``items``: per item
        ``name``, ``lost`` (how many submissions lost points on it) and
        ``mistakes``, a list of ``[mistake, count]``, most common first.
    """
    count = len(reports)
    items = []
    for name in item_names(reports):
        failed = [item for report in reports for item in report['items']
                  if item['name'] == name and not item['passed']]
        mistakes = Counter(mistake_of(item) for item in failed).most_common(most_common)
        items.append({'name': name, 'lost': len(failed),
                      'mistakes': [[mistake, times] for mistake, times in mistakes]})
    totals = [report['total'] for report in reports]
    return {'submissions': count,
            'mean_total': round(sum(totals) / count, 2) if count else 0.0,
            'max_total': max((report['max_total'] for report in reports), default=0),
            'items': items}


def format_class_summary(summary):
    """The class summary as text: the items most lost first, each with its mistakes."""
    count = summary['submissions']
    lines = [f"Class summary: {count} submissions, mean total "
             f"{points_text(summary['mean_total'])} / {points_text(summary['max_total'])}", '']
    for item in sorted(summary['items'], key=lambda item: -item['lost']):
        if not item['lost']:
            continue
        lines.append(f"{item['name']}: {item['lost']} of {count} lost points")
        for mistake, times in item['mistakes']:
            lines += textwrap.wrap(f"{times} of {count}: {mistake}", WIDTH,
                                   initial_indent='    ', subsequent_indent='        ')
    return '\n'.join(lines)
