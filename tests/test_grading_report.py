"""The class report: one self-contained HTML page whose figures and links all resolve and
in which no student's text becomes markup, whatever the names and messages hold."""
import base64
import json
import shutil
import subprocess
import sys
import urllib.parse
from html.parser import HTMLParser
from pathlib import Path

import pytest

from conftest import REPO
from lab.grading.class_report import pass_rates, ranked_mistakes, write_class_report

FIXTURES = Path(__file__).parent / 'copies'
HOSTILE_NAMES = ['<script>alert(1)&amp;', 'o\'brien & "co"', 'pct%20#frag?q=1',
                 '<img src=x onerror=alert(2)>', 'plain', 'caf\udce9']
ALLOWED_TAGS = {'html', 'head', 'meta', 'title', 'style', 'body', 'h1', 'h2', 'h3', 'p',
                'img', 'table', 'tr', 'th', 'td', 'a', 'b', 'div', 'span', 'pre', 'code'}
COPIED_CODE = '''import numpy as np


class SoftMaxModule:
    def forward(self, x):
        """</pre><script>alert(3)</script>"""
        shifted = x - x.max(axis=1, keepdims=True)
        exponentials = np.exp(shifted)
        self.out = exponentials / exponentials.sum(axis=1, keepdims=True)
        return self.out

    def backward(self, dout):
        s = self.out
        return s * (dout - (dout * s).sum(axis=1, keepdims=True))
'''


def item(id_, name, passed, points, max_points, diagnosis='', mistake=''):
    return {'id': id_, 'name': name, 'points': points, 'max_points': max_points,
            'passed': passed, 'diagnosis': diagnosis, 'visibility': 'visible',
            'mistake': mistake}


def report(name, items, problems=()):
    return {'submission': name, 'year': 2025, 'total': sum(i['points'] for i in items),
            'max_total': sum(i['max_points'] for i in items), 'problems': list(problems),
            'items': items}


def batch():
    """Seven reports: hostile names, a hostile exception message, a mistake made twice."""
    forward_ok = item('linear_forward', 'LinearModule.forward', True, 2, 2)
    db_lost = item('linear_dbias', 'LinearModule.backward: db', False, 0, 1,
                   'LinearModule.backward (db) averages the bias gradient over the batch; '
                   'expected [1, 2], returned [0.5, 1]', 'bias gradient averaged')
    db_ok = item('linear_dbias', 'LinearModule.backward: db', True, 1, 1)
    crash = item('linear_forward', 'LinearModule.forward', False, 0, 2,
                 'LinearModule.forward raised ValueError: </td></table><script>alert(4)'
                 '</script> $x^2$')
    return [report(HOSTILE_NAMES[0], [forward_ok, db_lost]),
            report(HOSTILE_NAMES[1], [crash, db_lost],
                   ['the run was stopped: <b>bold</b> & \x1b[2J cleared']),
            report(HOSTILE_NAMES[2], [crash, db_ok]),
            report(HOSTILE_NAMES[3], [forward_ok, db_lost]),
            report(HOSTILE_NAMES[4], [crash, db_ok], ['modules.py is missing']),
            report('zoë', [forward_ok, db_ok]),
            report(HOSTILE_NAMES[5], [forward_ok, db_lost])]  # a Windows zip's name


class Page(HTMLParser):
    """Every tag with its attributes, and the page's text, as a browser reads them."""

    def __init__(self):
        super().__init__()
        self.tags, self.text = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


@pytest.fixture(scope='module')
def written(tmp_path_factory):
    """The report of ``batch()``, rendered once for the tests that read it."""
    tmp_path = tmp_path_factory.mktemp('report')
    out = tmp_path / 'grades'
    (out / 'feedback').mkdir(parents=True)
    reports = batch()
    for one in reports[:4] + reports[5:]:  # 'plain' has no feedback file: no link to it
        (out / 'feedback' / f"{one['submission']}.json").write_text(json.dumps(one))
    (out / 'class_summary.json').write_text(json.dumps({'submissions': 5, 'items': []}))
    sources = {}
    for index, one in enumerate(reports):
        folder = tmp_path / 'submissions' / f"s{index}"
        folder.mkdir(parents=True)
        code = COPIED_CODE if index in (0, 1) else f"def helper_{index}(value):\n    " \
            f"return value * {index} + {index * 7}\n"
        (folder / 'modules.py').write_text(code)
        sources[one['submission']] = folder
    path = write_class_report(out, reports, sources)
    page = Page()
    page.feed(path.read_text(encoding='utf-8'))
    return out, path, page, reports


def test_no_student_text_becomes_markup(written):
    out, path, page, reports = written
    assert {tag for tag, _ in page.tags} <= ALLOWED_TAGS
    assert not [attrs for _, attrs in page.tags if any(name.startswith('on') for name in attrs)]
    text = ' '.join(page.text)
    for name in HOSTILE_NAMES[:5]:
        assert name in text, f"{name!r} is shown as text"
    assert 'caf\\udce9' in text, 'a name that is not UTF-8 is shown escaped'
    assert '</td></table><script>alert(4)</script> $x^2$' in text
    assert '<b>bold</b>' in text and '\x1b' not in path.read_text()
    assert '</pre><script>alert(3)</script>' in text, 'copied lines are shown as text'


def test_every_image_and_link_resolves(written):
    out, path, page, reports = written
    images = [attrs['src'] for tag, attrs in page.tags if tag == 'img']
    assert len(images) == 3, 'totals, pass rates, mistakes'
    for source in images:
        prefix = 'data:image/png;base64,'
        assert source.startswith(prefix)
        assert base64.b64decode(source[len(prefix):]).startswith(b'\x89PNG\r\n\x1a\n')
    links = [attrs['href'] for tag, attrs in page.tags if tag == 'a']
    assert links, 'the mistakes link to feedback'
    targets = [path.parent / urllib.parse.unquote(link, errors='surrogateescape')
               for link in links]  # a name that is not UTF-8 is linked by its own bytes
    for link, target in zip(links, targets):
        assert target.is_file() and target.parent == out / 'feedback', link
    linked = {json.loads(target.read_text())['submission'] for target in targets}
    assert linked == set(HOSTILE_NAMES[:4]) | {HOSTILE_NAMES[5]}, \
        'each feedback file there is linked, no other'
    assert not [tag for tag, attrs in page.tags if tag in ('script', 'link')
                or 'http' in attrs.get('src', '') + attrs.get('href', '')]


def test_the_numbers_on_the_page(written):
    out, path, page, reports = written
    text = ' '.join(page.text)
    assert 'Median 2 of 3, mean 1.6; 1 of 7 with full marks.' in text
    assert pass_rates(reports) == [('LinearModule.forward', 4, 7),
                                   ('LinearModule.backward: db', 3, 7)]
    mistakes = ranked_mistakes(reports)
    assert [(group['mistake'], len(group['students'])) for group in mistakes] == [
        ('bias gradient averaged', 4),
        ('LinearModule.forward raised ValueError: </td></table><script>alert(4)</script> '
         '$x^2$', 3)]
    assert mistakes[0]['words'].endswith('averages the bias gradient over the batch')
    assert 'the run was stopped' in text and 'modules.py is missing' in text


def test_the_copies_are_in_the_page_and_the_summary(written):
    out, path, page, reports = written
    summary = json.loads((out / 'class_summary.json').read_text())
    assert summary['submissions'] == 5  # as written by the fixture, 'what the batch wrote is kept'
    [pair] = summary['copies']
    assert {pair['a'], pair['b']} == set(HOSTILE_NAMES[:2]) and pair['similarity'] == 1.0
    assert pair['matches'][0]['file'] == 'modules.py'
    text = ' '.join(page.text)
    assert 'exponentials.sum(axis=1, keepdims=True)' in text


def test_an_empty_batch_still_gives_a_page(tmp_path):
    path = write_class_report(tmp_path, [], {})
    assert 'No submission was graded' in path.read_text()


def test_compare_with_must_be_a_folder(tmp_path):
    (tmp_path / 'class' / 'alice').mkdir(parents=True)
    run = subprocess.run([sys.executable, 'grade.py', str(tmp_path / 'class'), '--compare_with',
                          str(tmp_path / 'nowhere')], cwd=REPO, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 2 and 'Traceback' not in run.stderr
    assert run.stderr.splitlines()[-1].endswith('not a folder; give a folder of submissions '
                                                'or of one solution')


@pytest.mark.slow
def test_a_batch_writes_the_report_with_its_copies(tmp_path):
    """grade.py's batch, on a rubric of one item: the page and the summary's copies."""
    submissions = tmp_path / 'class'
    shutil.copytree(FIXTURES / 'vectorised', submissions / 'walter')
    shutil.copytree(FIXTURES / 'vectorised', submissions / 'jesse')
    shutil.copytree(FIXTURES / 'loops', submissions / 'gus')
    rubric = tmp_path / 'rubric.toml'
    rubric.write_text('[[item]]\nid = "elu_forward"\nname = "ELUModule.forward"\n'
                      'points = 2\nvisibility = "visible"\n')
    run = subprocess.run([sys.executable, 'grade.py', str(submissions), '--jobs', '2',
                          '--out', str(tmp_path / 'grades'), '--rubric', str(rubric),
                          '--no_progress'], cwd=REPO, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    page = tmp_path / 'grades' / 'class_report.html'
    assert f"and {page}" in run.stdout
    summary = json.loads((tmp_path / 'grades' / 'class_summary.json').read_text())
    assert [(pair['a'], pair['b']) for pair in summary['copies']] == [('jesse', 'walter')]
    assert 'Median 2 of 2' in page.read_text()


def test_a_fault_of_the_copy_check_costs_the_check_not_the_page(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError('<b>tokenizer</b> broke')

    monkeypatch.setattr('lab.grading.copies.find_copies', broken)
    path = write_class_report(tmp_path, batch(), {})
    page = Page()
    page.feed(path.read_text())
    assert 'The copy check did not run: RuntimeError: <b>tokenizer</b> broke' in ''.join(page.text)
    assert 'Median 2 of 3' in ''.join(page.text)
