"""The class at a glance: ``class_report.html``, one self-contained page for course staff.

The page shows, with matplotlib figures embedded as base64 PNG (nothing is fetched
from anywhere: no script, font or style sheet):

- the distribution of totals, with the median and the number of full marks;
- each item's pass rate, in the rubric's order;
- the mistakes ranked by how many students made them, with the diagnosis words
  and links to those students' feedback files;
- the submissions with problems (the grader could not run all or part of them),
  each with its one-line reason;
- the pairs of near-identical submissions and copies of known solutions
  (:mod:`lab.grading.copies`), with the matching lines side by side.

It reads only the report fields every grader version keeps: ``submission``,
``total``, ``max_total``, ``problems`` and per item ``id``, ``name``,
``passed``, ``diagnosis`` and ``mistake``. Every piece of text that a student
could have written (a name, an exception message inside a diagnosis, code) goes
through ``html.escape``; links are built from the names with ``urllib.parse.quote``
and only to feedback files that exist.
"""
import base64
import html
import io
import json
import statistics
import urllib.parse
from collections import defaultdict
from pathlib import Path

import lab.plotting  # noqa: F401  first: matplotlib draws with Agg whatever MPLBACKEND says
from matplotlib.figure import Figure

from lab.fileio import atomic_write
from lab.grading import copies as copy_check
from lab.grading.compare import printable

REPORT_NAME = 'class_report.html'
MAX_MATCHES_SHOWN = 4
MAX_LINES_SHOWN = 30
MAX_TEXT = 400
STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 70em; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; width: 100%; }
td, th { border: 1px solid #ddd; padding: .3em .5em; vertical-align: top; text-align: left; }
th { background: #f4f4f4; }
td.count { text-align: right; white-space: nowrap; } img { max-width: 100%; }
pre { margin: 0; font-size: .85em; white-space: pre-wrap; } .words { color: #444; }
.side { width: 50%; } .note { color: #555; }
"""


def escape(text, limit=MAX_TEXT):
    """Student text as HTML text: escaped, on one line, control characters shown as
    escapes, at most ``limit`` characters."""
    text = printable(' '.join(str(text).split()))
    if len(text) > limit:
        text = text[:limit - 1] + '…'
    return html.escape(text, quote=True)


def figure_tag(figure, description):
    """An ``<img>`` holding ``figure`` as a base64 PNG."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format='png', dpi=90, bbox_inches='tight')
    data = base64.b64encode(buffer.getvalue()).decode('ascii')
    return f'<img alt="{html.escape(description)}" src="data:image/png;base64,{data}">'


def totals_figure(reports):
    """Histogram of the totals, the median marked, the full marks counted."""
    totals = [report['total'] for report in reports]
    best = max((report['max_total'] for report in reports), default=0) or 1
    figure = Figure(figsize=(8, 3.2))
    axes = figure.subplots()
    edges = [value - 0.5 for value in range(int(best) + 2)]  # a bar per whole point
    axes.hist(totals, bins=edges, color='#4c72b0', edgecolor='white')
    median = statistics.median(totals) if totals else 0
    axes.axvline(median, color='#c44e52', linewidth=2, label=f"median {median:g}")
    full = sum(report['total'] >= report['max_total'] > 0 for report in reports)
    axes.set_title(f"Totals of {len(reports)} submissions: median {median:g} / {best:g}, "
                   f"{full} with full marks")
    axes.set_xlabel('total points')
    axes.set_ylabel('submissions')
    axes.legend(loc='upper left')
    return figure


def item_order(reports):
    """Every item as ``(id, name)``, in the rubric's order (the order the reports give)."""
    order = {}
    for report in reports:
        for item in report.get('items', []):
            order.setdefault(item.get('id') or item['name'], item['name'])
    return list(order.items())


def pass_rates(reports):
    """Per item, in the rubric's order: ``(name, passed, graded)``."""
    counts = defaultdict(lambda: [0, 0])
    for report in reports:
        for item in report.get('items', []):
            count = counts[item.get('id') or item['name']]
            count[0] += bool(item['passed'])
            count[1] += 1
    return [(name, *counts[key]) for key, name in item_order(reports)]


def pass_rate_figure(rates):
    """Horizontal bars: each item's share of submissions that passed it, top to bottom."""
    figure = Figure(figsize=(8, 0.28 * len(rates) + 1))
    axes = figure.subplots()
    shares = [passed / graded if graded else 0 for _, passed, graded in rates]
    positions = range(len(rates))
    axes.barh(positions, shares, color=['#55a868' if share >= 0.8 else '#dd8452'
                                        for share in shares])
    axes.set_yticks(list(positions), [name for name, _, _ in rates], fontsize=8,
                   parse_math=False)  # a '$' is a dollar, not mathematics
    axes.invert_yaxis()
    axes.set_xlim(0, 1)
    axes.set_xlabel('share of submissions that passed')
    axes.set_title('Pass rate per item, in the rubric\'s order')
    for position, share in zip(positions, shares):
        axes.text(min(share, 0.9) + 0.01, position, f"{share:.0%}", va='center', fontsize=7)
    return figure


def diagnosis_words(item):
    """What a diagnosis says, without its evidence (the values, the input)."""
    first = (str(item.get('diagnosis') or '').strip().splitlines() or [''])[0]
    for cut in ('; expected', ': expected', '; for x', '; for '):
        first = first.split(cut)[0]
    return first.strip()


def ranked_mistakes(reports):
    """The mistakes, most made first: each ``item``, ``mistake`` (its short name, or the
    diagnosis words where the grader gave none), ``words`` (the shortest diagnosis
    among those students'), and ``students``."""
    groups = {}
    for report in reports:
        for item in report.get('items', []):
            if item['passed']:
                continue
            words = diagnosis_words(item)
            key = (item.get('id') or item['name'], item.get('mistake') or words)
            group = groups.setdefault(key, {'item': item['name'], 'mistake': key[1],
                                            'words': words, 'students': []})
            if len(words) < len(group['words']):
                group['words'] = words
            group['students'].append(report['submission'])
    return sorted(groups.values(), key=lambda group: (-len(group['students']),
                                                       group['item'], group['mistake']))


def mistakes_figure(mistakes, shown=12):
    """Horizontal bars: how many students made each of the most common mistakes."""
    top = mistakes[:shown]
    figure = Figure(figsize=(8, 0.32 * len(top) + 1))
    axes = figure.subplots()
    labels = [_short(f"{group['item']}: {group['mistake']}", 70) for group in top]
    axes.barh(range(len(top)), [len(group['students']) for group in top], color='#c44e52')
    axes.set_yticks(list(range(len(top))), labels, fontsize=7, parse_math=False)
    axes.invert_yaxis()
    axes.set_xlabel('students')
    axes.set_title(f"The {len(top)} most common mistakes")
    return figure


def _short(text, limit):
    return text if len(text) <= limit else text[:limit - 1] + '…'


def feedback_link(name, out_dir):
    """A link to a student's feedback file, relative to the report; their escaped name
    alone where the file is not there."""
    file = Path(out_dir) / 'feedback' / f"{name}.json"
    try:
        present = file.is_file()
    except (OSError, ValueError):
        present = False
    if not present:
        return escape(name)
    # A name that is not UTF-8 (a zip made on Windows) holds surrogates: its link
    # quotes the file name's own bytes.
    target = 'feedback/' + urllib.parse.quote(f"{name}.json", safe='', errors='surrogateescape')
    return f'<a href="{html.escape(target)}">{escape(name)}</a>'


def render(reports, out_dir, pairs, sources, copy_problem=''):
    """The page's HTML: every section, figures embedded."""
    count = len(reports)
    parts = ['<!DOCTYPE html>', '<html lang="en"><head><meta charset="utf-8">',
             '<title>Class report</title>', f'<style>{STYLE}</style></head><body>',
             f'<h1>Class report: {count} submissions</h1>']
    if not reports:
        parts.append('<p>No submission was graded.</p></body></html>')
        return '\n'.join(parts)
    totals = [report['total'] for report in reports]
    full = sum(report['total'] >= report['max_total'] > 0 for report in reports)
    best = max(report['max_total'] for report in reports)
    parts += ['<h2>Totals</h2>',
              f'<p>Median {statistics.median(totals):g} of {best:g}, mean '
              f'{statistics.fmean(totals):.1f}; {full} of {count} with full marks.</p>',
              figure_tag(totals_figure(reports), 'histogram of the totals')]
    rates = pass_rates(reports)
    parts += ['<h2>Pass rate per item</h2>',
              figure_tag(pass_rate_figure(rates), "each item's pass rate")]
    parts += _mistakes_section(ranked_mistakes(reports), count, out_dir)
    parts += _problems_section(reports, out_dir)
    parts += _copies_section(pairs, sources, out_dir, copy_problem)
    parts.append('</body></html>')
    return '\n'.join(parts)


def _mistakes_section(mistakes, count, out_dir):
    parts = ['<h2>Mistakes, most made first</h2>']
    if not mistakes:
        return parts + ['<p>No point was lost.</p>']
    parts.append(figure_tag(mistakes_figure(mistakes), 'the most common mistakes'))
    parts.append('<table><tr><th>students</th><th>item and mistake</th><th>who</th></tr>')
    for group in mistakes:
        students = ', '.join(feedback_link(name, out_dir) for name in group['students'])
        words = (f'<div class="words">{escape(group["words"])}</div>'
                 if group['words'] and group['words'] != group['mistake'] else '')
        parts.append(f'<tr><td class="count">{len(group["students"])} of {count}</td>'
                     f'<td><b>{escape(group["item"])}</b>: {escape(group["mistake"])}{words}'
                     f'</td><td>{students}</td></tr>')
    return parts + ['</table>']


def _problems_section(reports, out_dir):
    troubled = [report for report in reports if report.get('problems')]
    parts = ['<h2>Submissions the grader could not run (all or part)</h2>']
    if not troubled:
        return parts + ['<p>None: every submission ran.</p>']
    parts.append('<table><tr><th>submission</th><th>total</th><th>reason</th></tr>')
    for report in troubled:
        problems = report['problems']
        more = f' <span class="note">(and {len(problems) - 1} more)</span>' \
            if len(problems) > 1 else ''
        parts.append(f'<tr><td>{feedback_link(report["submission"], out_dir)}</td>'
                     f'<td class="count">{report["total"]:g} / {report["max_total"]:g}</td>'
                     f'<td>{escape(problems[0])}{more}</td></tr>')
    return parts + ['</table>']


def _copies_section(pairs, sources, out_dir, copy_problem):
    parts = ['<h2>Near-identical code</h2>',
             f'<p class="note">Pairs whose code is near-identical after comments, names and '
             f'layout are normalised (either side has at least '
             f'{copy_check.THRESHOLD:.0%} of its code in the other), and submissions with as '
             f'much of theirs in this repository\'s solution or in a folder given with '
             f'<code>--compare_with</code>. The figures are the share of each side\'s code '
             f'that the other holds. Copies never change points: look at the lines side by '
             f'side before you decide anything.</p>']
    if copy_problem:
        return parts + [f'<p>The copy check did not run: {escape(copy_problem)}</p>']
    if not pairs:
        return parts + ['<p>None found.</p>']
    for pair in pairs:
        kind = 'a known solution' if pair['reference'] else 'a submission'
        parts.append(f'<h3>{feedback_link(pair["a"], out_dir)} and {escape(pair["b"])} '
                     f'({kind}): {pair["similarity_a"]:.0%} / {pair["similarity_b"]:.0%}</h3>')
        parts.append('<table>')
        for match in pair['matches'][:MAX_MATCHES_SHOWN]:
            sides = []
            for name, key in ((pair['a'], 'lines_a'), (pair['b'], 'lines_b')):
                first, last = match[key]
                text = copy_check.source_lines(sources.get(name), match['file'],
                                               [first, min(last, first + MAX_LINES_SHOWN - 1)])
                sides.append(f'<td class="side">{html.escape(match["file"])} lines {first}-{last}'
                             f'<pre>{html.escape(text)}</pre></td>')
            parts.append(f'<tr>{"".join(sides)}</tr>')
        if len(pair['matches']) > MAX_MATCHES_SHOWN:
            hidden = len(pair['matches']) - MAX_MATCHES_SHOWN
            parts.append(f'<tr><td colspan="2" class="note">and {hidden} shorter shared '
                         f'stretches</td></tr>')
        parts.append('</table>')
    return parts


def write_class_report(out_dir, reports, sources, compare_with=()):
    """After a batch: find the copies, add them to ``class_summary.json`` and write
    ``class_report.html``; return the report's path.

    Parameters
    ----------
    sources : dict
        ``{submission name: its folder or zip}``, to read the code from.
    compare_with : list of paths
        Folders of known solutions (``--compare_with``), besides this repository's.
    """
    out_dir = Path(out_dir)
    references = copy_check.reference_folders(compare_with)
    graded = {report['submission'] for report in reports}
    copy_problem = ''
    try:
        pairs = copy_check.find_copies({name: path for name, path in sources.items()
                                        if name in graded}, references)
    except Exception as error:  # a fault of the check costs the check, not the report
        pairs, copy_problem = [], f"{type(error).__name__}: {error}"
    summary_file = out_dir / 'class_summary.json'
    if summary_file.is_file():
        summary = json.loads(summary_file.read_text())
        summary['copies'] = [{key: pair[key] for key in
                              ('a', 'b', 'reference', 'similarity', 'similarity_a',
                               'similarity_b', 'matches')} for pair in pairs]
        text = json.dumps(summary, indent=2, allow_nan=False) + '\n'
        atomic_write(summary_file, lambda temporary: Path(temporary).write_text(text))
    everyone = {**references, **sources}
    page = render(reports, out_dir, pairs, everyone, copy_problem)
    path = out_dir / REPORT_NAME
    atomic_write(path, lambda temporary: Path(temporary).write_text(page, encoding='utf-8'))
    return path
