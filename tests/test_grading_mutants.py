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
