"""The grader recognises mistakes it has in no catalogue: the mutants of grading_mutants.py.

Each mutant is this repository's own files with one mistake put in: ``MUTANTS`` edit one
expression of the reference, ``STUDENT_MUTANTS`` are written as students write (loops,
other names, a mistake inside otherwise correct code). The grader runs on each like on a
student's folder, asked only the items the mutant's file can affect: at least 95% must
lose the points of their own item, and at least 85% must be named there in the maths'
words (the mutant's ``words``). The correct solutions in unusual styles
(``grading_correct_variants.py``) must keep every point.
"""
from concurrent.futures import ThreadPoolExecutor

import pytest

from grading_correct_variants import VARIANTS
from grading_mutants import CATALOGUE, STUDENT_MUTANTS, apply_mutant, reference_sources, \
    write_submission
from lab.grading.grader import grade_submission
from lab.grading.rubric import load_rubric

RUBRIC = load_rubric()
GRADED_CLASSES = {
    ('modules.py', 'LinearModule'), ('modules.py', 'ELUModule'),
    ('modules.py', 'SoftMaxModule'), ('modules.py', 'CrossEntropyModule'),
    ('mlp_numpy.py', 'MLP'), ('mlp_pytorch.py', 'MLP')}
"""Every class a student writes, each of which student mutants must rewrite."""


def owner_of(file, method_text):
    """The class of the reference ``file`` that holds ``method_text``."""
    source = reference_sources()[file]
    before = source[:source.index(method_text)]
    return before[before.rindex('\nclass ') + 7:].split('(')[0].split(':')[0]


def test_the_catalogue_holds_sixty_five_mutants_of_which_twenty_five_in_students_styles():
    sources = reference_sources()
    assert len(CATALOGUE) >= 65 and len(STUDENT_MUTANTS) >= 25
    assert len({mutant.name for mutant in CATALOGUE}) == len(CATALOGUE)
    for mutant in CATALOGUE:
        assert mutant.item in RUBRIC.ids() and mutant.words, mutant.name
        changed = apply_mutant(mutant, sources)[mutant.file]
        assert changed != sources[mutant.file], mutant.name
        compile(changed, f'{mutant.name}/{mutant.file}', 'exec')
    covered = {(mutant.file, owner_of(mutant.file, old)) for mutant in STUDENT_MUTANTS
               for old, _ in mutant.replacements if old.lstrip().startswith('def ')}
    assert GRADED_CLASSES <= covered, GRADED_CLASSES - covered


def test_apply_mutant_refuses_an_edit_whose_text_is_gone():
    mutant = CATALOGUE[0]
    sources = reference_sources()
    sources[mutant.file] = sources[mutant.file].replace(mutant.replacements[0][0], '')
    with pytest.raises(ValueError, match='occurs 0 times'):
        apply_mutant(mutant, sources)


def test_correct_variants_rewrite_our_files_and_still_compile():
    sources = reference_sources()
    assert len(VARIANTS) >= 6 and len({variant.name for variant in VARIANTS}) == len(VARIANTS)
    for variant in VARIANTS:
        changed = apply_mutant(variant, sources)[variant.file]
        assert changed != sources[variant.file], variant.name
        compile(changed, f'{variant.name}/{variant.file}', 'exec')


def rubric_for(entry, training=False):
    """The items a change of ``entry.file`` can affect (mlp_numpy's use modules.py too);
    training only for a mutant of its own (a second each, and its likely cause is another
    item's diagnosis) unless ``training``."""
    file = entry.file.removesuffix('.py')
    own = getattr(entry, 'item', None)
    return RUBRIC.subset({item.id for item in RUBRIC.items
                          if (file in item.graded.files
                              or file == 'modules' and 'mlp_numpy' in item.graded.files)
                          and (training or not item.id.startswith('training')
                               or item.id == own)})


def grade_all(entries, tmp_path_factory, folder_name, training=False):
    """Every entry graded once, two at a time: {name: Report}."""
    sources = reference_sources()
    root = tmp_path_factory.mktemp(folder_name)

    def grade(entry):
        folder = write_submission(root / entry.name, apply_mutant(entry, sources))
        return entry.name, grade_submission(folder, rubric=rubric_for(entry, training))

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(grade, entries))


@pytest.fixture(scope='module')
def mutant_verdicts(tmp_path_factory):
    """(mutant, its item's result) for the whole catalogue."""
    reports = grade_all(CATALOGUE, tmp_path_factory, 'mutants')
    return [(mutant, next(item for item in reports[mutant.name].items
                          if item.id == mutant.item)) for mutant in CATALOGUE]


@pytest.mark.slow
def test_at_least_95_percent_of_the_mutants_lose_the_points_of_their_item(mutant_verdicts):
    kept = [mutant.name for mutant, item in mutant_verdicts if item.passed or item.points]
    assert len(kept) <= 0.05 * len(mutant_verdicts), kept


@pytest.mark.slow
def test_at_least_85_percent_of_the_mutants_are_named_in_the_maths_words(mutant_verdicts):
    unnamed = {mutant.name: item.diagnosis for mutant, item in mutant_verdicts
               if mutant.words not in item.diagnosis}
    assert len(unnamed) <= 0.15 * len(mutant_verdicts), unnamed


@pytest.fixture(scope='module')
def variant_reports(tmp_path_factory):
    return grade_all(VARIANTS, tmp_path_factory, 'variants', training=True)


@pytest.mark.slow
@pytest.mark.parametrize('variant', [
    pytest.param(variant, id=variant.name, marks=[pytest.mark.xfail(
        strict=True, reason=variant.known_issue)] if variant.known_issue else [])
    for variant in VARIANTS])
def test_a_correct_variant_gets_every_point(variant, variant_reports):
    lost = {item.id: item.diagnosis for item in variant_reports[variant.name].items
            if not item.passed or item.points != item.max_points}
    assert not lost, lost
