"""The documents: every relative link and image resolves, and the README stays a first read.

A link is ``[text](target)``, an image ``![alt](target)`` or ``<img src="target">``. A
relative target must name a file of the repository; a ``#fragment`` must name a heading of
the target (or of the same document), by the anchors a code host makes of headings. Each
layer's ``backward`` in ``modules.py`` links its derivation, and that link resolves too.
"""
import ast
import re

import pytest

from conftest import REPO

DOCUMENTS = sorted([REPO / 'README.md', *(REPO / 'docs').glob('*.md')])
README_MAX_LINES = 300
LINK = re.compile(r'!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)')
IMAGE_TAG = re.compile(r'<img\s[^>]*src="([^"]+)"')
DERIVATION = re.compile(r'Derivation: (docs/\S+?\.md)#([\w-]+)')


def without_code(text):
    """The text without fenced code blocks and inline code, where brackets are not links."""
    text = re.sub(r'^```.*?^```', '', text, flags=re.M | re.S)
    return re.sub(r'`[^`\n]*`', '', text)


def anchor(heading):
    """The anchor a code host makes of a heading: lower case, punctuation dropped,
    spaces to hyphens."""
    text = re.sub(r'[`*_]', '', heading.strip().lower())
    text = re.sub(r'[^\w\- ]', '', text)
    return text.replace(' ', '-')


def anchors_of(path):
    headings = re.findall(r'^#{1,6}\s+(.+?)\s*#*$', without_code(path.read_text()), flags=re.M)
    return {anchor(heading) for heading in headings}


def targets_of(path):
    text = without_code(path.read_text())
    return LINK.findall(text) + IMAGE_TAG.findall(text)


def broken(path, target, root=REPO):
    """Why the relative ``target`` of a link in ``path`` does not resolve inside ``root``,
    or None."""
    file_part, _, fragment = target.partition('#')
    destination = (path.parent / file_part).resolve() if file_part else path
    if not destination.exists():
        return f'{target}: no such file'
    if root.resolve() not in destination.parents and destination != root.resolve():
        return f'{target}: outside the repository'
    if fragment and destination.suffix == '.md' and fragment not in anchors_of(destination):
        return f'{target}: {destination.name} has no heading #{fragment}'
    return None


def test_the_link_checker_catches_a_broken_link_and_a_missing_anchor(tmp_path):
    page = tmp_path / 'page.md'
    page.write_text('# Title\n\n## Two words\n\n[ok](#two-words) [bad](#three) '
                    '![gone](missing.png) `[code](not-a-link)`\n')
    problems = [broken(page, target, root=tmp_path) for target in targets_of(page)]
    assert problems == [None, '#three: page.md has no heading #three', 'missing.png: no such file']


@pytest.mark.parametrize('path', DOCUMENTS, ids=lambda path: path.relative_to(REPO).as_posix())
def test_every_relative_link_and_image_resolves(path):
    targets = [target for target in targets_of(path)
               if not re.match(r'[a-z][a-z0-9+.-]*:', target)]   # http:, https:, mailto:
    problems = [problem for target in targets if (problem := broken(path, target))]
    assert not problems, f'{path.name}: ' + '; '.join(problems)


def test_the_readme_is_a_first_read():
    lines = (REPO / 'README.md').read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f'README.md has {len(lines)} lines'


def test_every_backward_links_its_derivation():
    tree = ast.parse((REPO / 'modules.py').read_text())
    for layer in (node for node in tree.body if isinstance(node, ast.ClassDef)):
        backward = next((node for node in layer.body if isinstance(node, ast.FunctionDef)
                         and node.name == 'backward'), None)
        if backward is None:
            continue
        found = DERIVATION.search(ast.get_docstring(backward) or '')
        assert found, f'{layer.name}.backward does not link its derivation'
        document, fragment = found.groups()
        assert fragment in anchors_of(REPO / document), (
            f'{layer.name}.backward links {document}#{fragment}, which has no such heading')
