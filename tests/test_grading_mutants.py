"""The grader recognises the classic mistakes: every mutant in the catalogue loses points.

Each mutant of ``tests/grading_mutants.py`` is this repository's own files with one
mistake put in. The grader runs on each, in its sandbox, like on a student's folder: the
mutant must lose the points of its item, and for at least 90% of the catalogue that
item's diagnosis must name the mistake.
"""
from concurrent.futures import ThreadPoolExecutor

import pytest

from grading_mutants import MUTANTS, apply_mutant, reference_sources, write_submission
from lab.grading.grader import grade_submission
from lab.grading.items import ITEM_CHECKS
from lab.grading.rubric import Rubric, load_rubric


def test_catalogue_holds_thirty_distinct_mutants_that_apply_to_our_files():
    sources = reference_sources()
    assert len(MUTANTS) >= 30
    assert len({mutant.name for mutant in MUTANTS}) == len(MUTANTS)
    for mutant in MUTANTS:
        assert mutant.item in ITEM_CHECKS, mutant.name
        changed = apply_mutant(mutant, sources)
        assert changed[mutant.file] != sources[mutant.file], mutant.name


def test_apply_mutant_refuses_an_edit_whose_text_is_gone():
    mutant = MUTANTS[0]
    sources = reference_sources()
    sources[mutant.file] = sources[mutant.file].replace(mutant.replacements[0][0], '')
    with pytest.raises(ValueError, match='occurs 0 times'):
        apply_mutant(mutant, sources)


def rubric_for(mutant):
    """The items a mutant of ``mutant.file`` can affect: PyTorch's or all the others."""
    torch_file = mutant.file == 'mlp_pytorch.py'
    return Rubric(tuple(item for item in load_rubric().items
                        if ('pytorch' in item.id) == torch_file))


@pytest.fixture(scope='module')
def mutant_reports(tmp_path_factory):
    """Every mutant graded once, two at a time: {name: Report}."""
    sources = reference_sources()
    root = tmp_path_factory.mktemp('mutants')

    def grade(mutant):
        folder = write_submission(root / mutant.name, apply_mutant(mutant, sources))
        return mutant.name, grade_submission(folder, rubric=rubric_for(mutant))

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(grade, MUTANTS))


def item_of(report, item_id):
    return next(item for item in report.items if item.id == item_id)


@pytest.mark.slow
@pytest.mark.parametrize('mutant', MUTANTS, ids=[mutant.name for mutant in MUTANTS])
def test_mutant_loses_the_points_of_its_item(mutant, mutant_reports):
    item = item_of(mutant_reports[mutant.name], mutant.item)
    assert not item.passed and item.points == 0, item
    assert item.diagnosis


@pytest.mark.slow
def test_at_least_nine_in_ten_mutants_are_named(mutant_reports):
    unnamed = [mutant.name for mutant in MUTANTS
               if mutant.words not in item_of(mutant_reports[mutant.name], mutant.item).diagnosis]
    assert len(unnamed) <= 0.1 * len(MUTANTS), unnamed


# -- the students' styles and the correct variants (issue 24) -------------------------------
#
# Each student mutant is graded on its own item only (the rubric then runs only that item's
# probes), once per module; the correct variants on every item of their file's part.

from grading_correct_variants import VARIANTS  # noqa: E402
from grading_mutants import CATALOGUE, STUDENT_MUTANTS  # noqa: E402

GRADED_FUNCTIONS = {
    ('modules.py', 'LinearModule'), ('modules.py', 'ELUModule'),
    ('modules.py', 'SoftMaxModule'), ('modules.py', 'CrossEntropyModule'),
    ('mlp_numpy.py', 'MLP'), ('mlp_pytorch.py', 'MLP')}
"""Every class a student writes, each of which student mutants must rewrite."""


def rewritten_classes(mutant):
    """The (file, class) pairs whose methods ``mutant`` replaces."""
    return {(mutant.file, owner_of(mutant.file, old)) for old, _ in mutant.replacements
            if old.lstrip().startswith('def ')}


def owner_of(file, method_text):
    """The class of the reference ``file`` that holds ``method_text``."""
    source = reference_sources()[file]
    before = source[:source.index(method_text)]
    return before[before.rindex('\nclass ') + 7:].split('(')[0].split(':')[0]


def test_catalogue_holds_sixty_five_mutants_of_which_twenty_five_in_students_styles():
    sources = reference_sources()
    item_ids = set(load_rubric().ids())
    assert len(CATALOGUE) >= 65 and len(STUDENT_MUTANTS) >= 25
    assert len({mutant.name for mutant in CATALOGUE}) == len(CATALOGUE)
    for mutant in STUDENT_MUTANTS:
        assert mutant.style == 'student' and mutant.item in item_ids, mutant.name
        assert mutant.words, mutant.name
        changed = apply_mutant(mutant, sources)[mutant.file]
        assert changed != sources[mutant.file], mutant.name
        compile(changed, f'{mutant.name}/{mutant.file}', 'exec')
    covered = set().union(*(rewritten_classes(mutant) for mutant in STUDENT_MUTANTS))
    assert GRADED_FUNCTIONS <= covered, GRADED_FUNCTIONS - covered


def test_correct_variants_rewrite_our_files_and_still_compile():
    sources = reference_sources()
    assert len(VARIANTS) >= 6
    assert len({variant.name for variant in VARIANTS}) == len(VARIANTS)
    for variant in VARIANTS:
        changed = apply_mutant(variant, sources)[variant.file]
        assert changed != sources[variant.file], variant.name
        compile(changed, f'{variant.name}/{variant.file}', 'exec')


def rubric_of(item_ids):
    """The rubric restricted to ``item_ids``: only their probes run."""
    return Rubric(tuple(item for item in load_rubric().items if item.id in item_ids))


def grade_all(entries, rubric_of_entry, folder_name, tmp_path_factory):
    """Grade each entry's sources, two at a time: {name: Report}."""
    sources = reference_sources()
    root = tmp_path_factory.mktemp(folder_name)

    def grade(entry):
        folder = write_submission(root / entry.name, apply_mutant(entry, sources))
        return entry.name, grade_submission(folder, rubric=rubric_of_entry(entry))

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(grade, entries))


@pytest.fixture(scope='module')
def student_mutant_reports(tmp_path_factory):
    """Every student mutant graded once, on its own item only: {name: Report}."""
    return grade_all(STUDENT_MUTANTS, lambda mutant: rubric_of({mutant.item}),
                     'student_mutants', tmp_path_factory)


@pytest.fixture(scope='module')
def variant_reports(tmp_path_factory):
    """Every correct variant graded once, on every item of its file's part: {name: Report}."""
    return grade_all(VARIANTS, rubric_for, 'variants', tmp_path_factory)


def catalogue_verdicts(mutant_reports, student_mutant_reports):
    """(mutant, its item's result) for the whole catalogue."""
    reports = {**mutant_reports, **student_mutant_reports}
    return [(mutant, item_of(reports[mutant.name], mutant.item)) for mutant in CATALOGUE]


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason='issue 24: the judge of round 1 names about one student '
                   'mutant in four; the new judge must pass this, then drop this mark')
def test_catalogue_rates_nineteen_in_twenty_lose_points_and_six_in_seven_are_named(
        mutant_reports, student_mutant_reports):
    verdicts = catalogue_verdicts(mutant_reports, student_mutant_reports)
    undetected = [mutant.name for mutant, item in verdicts if item.passed or item.points]
    unnamed = [mutant.name for mutant, item in verdicts if mutant.words not in item.diagnosis]
    assert len(undetected) <= 0.05 * len(verdicts), undetected
    assert len(unnamed) <= 0.15 * len(verdicts), unnamed


@pytest.mark.slow
@pytest.mark.parametrize('variant', [
    pytest.param(variant, id=variant.name, marks=[pytest.mark.xfail(
        strict=True, reason=variant.known_issue)] if variant.known_issue else [])
    for variant in VARIANTS])
def test_correct_variant_gets_every_point(variant, variant_reports):
    lost = {item.id: item.diagnosis for item in variant_reports[variant.name].items
            if not item.passed or item.points != item.max_points}
    assert not lost, lost
