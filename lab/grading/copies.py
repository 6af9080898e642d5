"""Pairs of submissions whose code is near-identical, and copies of a known solution.

Fingerprinting is copydetect's (winnowing, as MOSS does): each file is split into
Python tokens by Pygments, every name becomes one letter (``V`` for a variable or
an attribute, ``F`` for a function, ``O`` for a class), strings become ``S``, and
comments and layout go; hashes of every run of ``NOISE_TOKENS`` characters of what
is left are winnowed to a sample that any shared run of ``GUARANTEE_TOKENS`` or
more is sure to hit. Two files share a fingerprint where they share such a run,
wherever it lies in each file, so renaming every name, reformatting, changing the
comments or reordering the methods hides nothing. Fingerprints of the starting
files (``template.py``'s, the same skeleton the official template gives) are
removed first, so what every student was given never counts, and, between
submissions, those that many of the class hold (``common_fingerprints``).

The similarity of a pair is, for each side, the share of its fingerprinted code
that the other side holds too (copydetect's figure), over the three files; a pair
of submissions is listed when either side is at least ``THRESHOLD`` (a copy padded
with code of one's own is still a copy), a submission near a reference when the
submission's side is (a reference may hold much more), and in both cases only where
they share at least ``MIN_SHARED_TOKENS``. Copies never change points:
they are listed for a person to look at.
"""
import hashlib
import tempfile
import zipfile
from pathlib import Path

import numpy as np

import lab.plotting  # noqa: F401  copydetect imports pyplot: this makes it Agg whatever
#                                  MPLBACKEND says (a typo there would stop the import)

STUDENT_FILES = ('modules.py', 'mlp_numpy.py', 'mlp_pytorch.py')
SOLUTION = Path(__file__).resolve().parents[2]
"""This repository's root, which holds its own solution's three files."""
SOLUTION_NAME = "this repository's solution"
NOISE_TOKENS = 25
GUARANTEE_TOKENS = 30
THRESHOLD = 0.6
"""A side of a pair shares at least this much of its code (see docs/grading.md)."""
MIN_SHARED_TOKENS = 100
"""A pair shares at least this much code (about five lines): two unfilled templates
share all of the little that is left of them, and that is no copy."""
COMMON_SHARE = 0.1
"""A fingerprint in more than this share of the submissions is not evidence of copying."""
MAX_SOURCE_BYTES = 200 * 2 ** 10
"""A larger file is not compared: the largest of 60 real solutions is 21 kB, and a
hostile 1 MB file takes up to 6 s of CPU to fingerprint."""


def read_sources(path):
    """The three files of a submission, a folder or a zip, as ``{file name: text}``.

    A zip is read in memory, nothing extracted: for each file name, the member of that
    name nearest the top. Files that are missing, too large or unreadable are left out.
    """
    path = Path(path)
    sources = {}
    if path.is_dir():
        for name in STUDENT_FILES:
            file = path / name
            if file.is_file() and not file.is_symlink() and file.stat().st_size <= MAX_SOURCE_BYTES:
                sources[name] = file.read_bytes().decode('utf-8', 'replace')
        return sources
    try:
        with zipfile.ZipFile(path) as bundle:
            members = sorted((member for member in bundle.infolist()
                              if Path(member.filename).name in STUDENT_FILES
                              and '__MACOSX' not in member.filename
                              and member.file_size <= MAX_SOURCE_BYTES),
                             key=lambda member: member.filename.count('/'))
            for member in members:
                name = Path(member.filename).name
                if name not in sources:
                    with bundle.open(member) as handle:
                        data = handle.read(MAX_SOURCE_BYTES + 1)
                    if len(data) <= MAX_SOURCE_BYTES:
                        sources[name] = data.decode('utf-8', 'replace')
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError,
            RuntimeError, OSError, ValueError):
        pass  # the grader says why it could not read this zip; here it just has no code
    return sources


def reference_folders(compare_with=()):
    """Known solutions to compare every submission with, as ``{name: path}``: this
    repository's own, then each submission (sub-folder or zip) of each folder given,
    or the folder itself where it holds the files."""
    references = {SOLUTION_NAME: SOLUTION}
    for folder in compare_with:
        folder = Path(folder)
        if any((folder / name).is_file() for name in STUDENT_FILES):
            references[f"{folder.name} (given)"] = folder
            continue
        for entry in sorted(folder.iterdir()):
            if not entry.name.startswith(('.', '__')) and (
                    entry.is_dir() or entry.suffix.lower() == '.zip'):
                references[f"{folder.name}/{entry.name}"] = entry
    return references


class FileFingerprint:
    """copydetect's fingerprint of one file, with a hash that is the same in every run.

    copydetect hashes k-grams with Python's ``hash``, which is salted afresh in each
    process, so which fingerprints winnowing keeps, and so every similarity figure,
    changed from run to run (a test of the matching lines failed one run in three).
    Here the k-grams are hashed with BLAKE2b; the tokenizing, the normalising, the
    winnowing and the overlap are copydetect's own functions.

    Attributes
    ----------
    raw_code, filtered_code, offsets, k, hashes, hash_idx, token_coverage
        As copydetect's ``CodeFingerprint``, which the functions of
        ``copydetect.utils`` read.
    """

    def __init__(self, name, text, boilerplate=()):
        from copydetect.utils import filter_code, get_token_coverage, winnow
        self.raw_code = text
        self.k = NOISE_TOKENS
        self.filtered_code, self.offsets = filter_code(text, name)
        grams = [self.filtered_code[i:i + self.k]
                 for i in range(len(self.filtered_code) - self.k + 1)]
        hashes = np.array([stable_hash(gram) for gram in grams], dtype=np.int64)
        indices = np.array([], dtype=np.int64)
        if len(hashes):
            hashes, indices = winnow(hashes, GUARANTEE_TOKENS - NOISE_TOKENS + 1,
                                     remove_duplicates=False)
        self.hash_idx = {}
        for value, index in zip(hashes.tolist(), indices.tolist()):
            if value not in boilerplate:
                self.hash_idx.setdefault(value, []).append(index)
        self.hashes = set(self.hash_idx)
        self.token_coverage = get_token_coverage(self.hash_idx, self.k, len(self.filtered_code))


def stable_hash(text):
    """A 64-bit hash of ``text``, the same in every process."""
    return int.from_bytes(hashlib.blake2b(text.encode('utf-8', 'replace'),
                                          digest_size=8).digest(), 'little', signed=True)


class Fingerprints:
    """The fingerprints of one submission's files, with the template's removed."""

    def __init__(self, sources, boilerplate):
        self.files = {}
        for name, text in sources.items():
            fingerprint = FileFingerprint(name, text, boilerplate.get(name, set()))
            if fingerprint.token_coverage:
                self.files[name] = fingerprint

    def remove(self, common):
        """Forget the fingerprints in ``common`` (per file name): code many share."""
        from copydetect.utils import get_token_coverage
        for name, fingerprint in list(self.files.items()):
            drop = fingerprint.hashes & common.get(name, set())
            fingerprint.hashes -= drop
            for value in drop:
                del fingerprint.hash_idx[value]
            fingerprint.token_coverage = get_token_coverage(
                fingerprint.hash_idx, fingerprint.k, len(fingerprint.filtered_code))
            if not fingerprint.token_coverage:
                del self.files[name]

    def coverage(self):
        return sum(fingerprint.token_coverage for fingerprint in self.files.values())


def template_fingerprints():
    """The hashes of the starting files, per file name: what every student was given."""
    from lab.grading.template import write_template
    with tempfile.TemporaryDirectory(prefix='template-') as folder:
        write_template(Path(folder) / 'template')
        return {name: FileFingerprint(name, (Path(folder) / 'template' / name).read_text()).hashes
                for name in STUDENT_FILES}


def compare(first, second):
    """How much of each submission the other holds, and where, file by file.

    Returns
    -------
    dict
        ``similarity`` (the larger side's share: a copy padded with code of one's own
        is still a copy), ``shared_tokens`` (how much code
        both hold, in copydetect's tokens: a name, an operator or a character of a
        number each), ``similarity_a`` and
        ``similarity_b`` (each side's share of its own fingerprinted code held by
        the other), ``matches``: per shared stretch ``file``, ``lines_a`` and
        ``lines_b`` (first and last line, from 1), longest first.
    """
    from copydetect.utils import find_fingerprint_overlap, get_copied_slices
    shared_a = shared_b = 0
    matches = []
    for name in sorted(set(first.files) & set(second.files)):
        a, b = first.files[name], second.files[name]
        index_a, index_b = find_fingerprint_overlap(a.hashes, b.hashes, a.hash_idx, b.hash_idx)
        if not len(index_a):
            continue
        slices_a = get_copied_slices(index_a, a.k)
        shared_a += int(np.sum(slices_a[1] - slices_a[0]))
        slices_b = get_copied_slices(index_b, b.k)
        shared_b += int(np.sum(slices_b[1] - slices_b[0]))
        matches += [dict(match, file=name) for match in _aligned_stretches(a, b)]
    coverage_a, coverage_b = first.coverage(), second.coverage()
    similarity_a = shared_a / coverage_a if coverage_a else 0.0
    similarity_b = shared_b / coverage_b if coverage_b else 0.0
    matches.sort(key=lambda match: -(match['lines_a'][1] - match['lines_a'][0]))
    return {'similarity': round(max(similarity_a, similarity_b), 3),
            'shared_tokens': min(shared_a, shared_b),
            'similarity_a': round(similarity_a, 3), 'similarity_b': round(similarity_b, 3),
            'matches': matches}


def _aligned_stretches(a, b):
    """The stretches of ``a`` that ``b`` holds, each beside where ``b`` holds it.

    copydetect gives the copied stretches of each file separately; here each shared
    fingerprint's place in ``a`` is paired with its nearest-following place in ``b``, and
    a stretch runs while both places move forward together.
    """
    pairs = []
    for value in a.hashes & b.hashes:
        for index_a in a.hash_idx[value]:
            for index_b in b.hash_idx[value]:
                pairs.append((index_a, index_b))
    pairs.sort()
    stretches, current = [], None
    for index_a, index_b in pairs:
        if (current is not None and index_a - current[1] <= a.k
                and 0 <= index_b - current[3] <= 2 * a.k):
            current[1], current[3] = index_a, index_b
        else:
            if current is not None:
                stretches.append(current)
            current = [index_a, index_a, index_b, index_b]
    if current is not None:
        stretches.append(current)
    result = []
    for start_a, end_a, start_b, end_b in stretches:
        lines_a = _lines(a, start_a, end_a + a.k)
        lines_b = _lines(b, start_b, end_b + b.k)
        if lines_a[1] - lines_a[0] >= 1 or lines_b[1] - lines_b[0] >= 1:
            result.append({'lines_a': lines_a, 'lines_b': lines_b})
    return _drop_contained(result)


def _drop_contained(stretches):
    """Keep a stretch only where no longer one already covers its lines in ``a``."""
    kept = []
    for stretch in sorted(stretches, key=lambda s: s['lines_a'][0] - s['lines_a'][1]):
        start, end = stretch['lines_a']
        if not any(other['lines_a'][0] <= start and end <= other['lines_a'][1] for other in kept):
            kept.append(stretch)
    return kept


def _lines(fingerprint, start, end):
    """The first and last line (from 1) of the raw code behind filtered positions."""
    raw = [_raw_position(fingerprint, position) for position in (start, end - 1)]
    code = fingerprint.raw_code
    return [code.count('\n', 0, raw[0]) + 1, code.count('\n', 0, max(raw[1], raw[0])) + 1]


def _raw_position(fingerprint, position):
    """Where a position of the filtered code lies in the raw code (copydetect's mapping)."""
    offsets = fingerprint.offsets
    if len(offsets):
        row = np.clip(np.searchsorted(offsets[:, 0], position), 0, len(offsets) - 1)
        position += int(offsets[row, 1])
    return min(max(position, 0), len(fingerprint.raw_code))


def common_fingerprints(everyone):
    """Per file name, the fingerprints that more than ``COMMON_SHARE`` of the submissions
    hold (and more than two): given code, or code everyone writes the same way, as
    MOSS's ``-m`` leaves out passages found in many programs. Only submissions are
    compared after this; a reference is compared before it, so that a copy of it made
    by many is still found."""
    limit = max(2, COMMON_SHARE * len(everyone))
    common = {}
    for name in STUDENT_FILES:
        counts = {}
        for fingerprints in everyone:
            if name in fingerprints.files:
                for value in fingerprints.files[name].hashes:
                    counts[value] = counts.get(value, 0) + 1
        common[name] = {value for value, count in counts.items() if count > limit}
    return common


def find_copies(submissions, references, threshold=THRESHOLD):
    """Pairs of near-identical submissions, and submissions near a reference solution.

    Parameters
    ----------
    submissions, references : dict
        ``{name: folder or zip}``; submissions are compared with each other and with
        every reference, references not with each other.

    Returns
    -------
    list of dict
        Per pair at or above ``threshold``: ``a`` (a submission), ``b`` (a submission
        or a reference), ``reference`` (whether ``b`` is one), and ``compare``'s
        fields; most similar first.
    """
    boilerplate = template_fingerprints()
    prints = {name: Fingerprints(read_sources(path), boilerplate)
              for name, path in submissions.items()}
    pairs = []
    for name_b, path in references.items():
        reference = Fingerprints(read_sources(path), boilerplate)
        for name_a, fingerprints_a in prints.items():
            result = compare(fingerprints_a, reference)
            # How much of the submission the reference holds; a reference may be larger.
            pairs.append({'a': name_a, 'b': name_b, 'reference': True, **result,
                          'similarity': result['similarity_a']})
    common = common_fingerprints(list(prints.values()))
    for fingerprints in prints.values():
        fingerprints.remove(common)
    names = list(prints)
    for i, name_a in enumerate(names):
        for name_b in names[i + 1:]:
            pairs.append({'a': name_a, 'b': name_b, 'reference': False,
                          **compare(prints[name_a], prints[name_b])})
    pairs = [pair for pair in pairs if pair['similarity'] >= threshold
             and pair['shared_tokens'] >= MIN_SHARED_TOKENS]
    pairs.sort(key=lambda pair: (-pair['similarity'], pair['a'], pair['b']))
    return pairs


def source_lines(path, file, lines):
    """The text of ``lines`` (first and last, from 1) of ``file`` in a submission."""
    text = read_sources(path).get(file, '')
    return '\n'.join(text.splitlines()[lines[0] - 1:lines[1]])
