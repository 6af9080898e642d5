"""The grader recognises mistakes it has in no catalogue: the mutants of grading_mutants.py.

Each mutant is this repository's own files with one mistake put in, most of them written
as students write (loops, other names, a mistake inside otherwise correct code). The
grader runs on each like on a student's folder, asked only the items the mutant's file
can affect: at least 95% must lose the points of their own item, and at least 85% must
be named there in the maths' words (the mutant's ``words``). The correct solutions in
unusual styles must keep every point.
"""
from concurrent.futures import ThreadPoolExecutor

import pytest

from grading_mutants import MUTANTS, apply_mutant, reference_sources, write_submission
from lab.grading.functions import all_items
from lab.grading.grader import grade_submission
from lab.grading.rubric import load_rubric

RUBRIC = load_rubric()
ITEMS = all_items()


def test_the_catalogue_holds_sixty_distinct_mutants_that_apply_to_our_files():
    sources = reference_sources()
    assert len(MUTANTS) >= 60
    assert len({mutant.name for mutant in MUTANTS}) == len(MUTANTS)
    for mutant in MUTANTS:
        assert mutant.item in ITEMS, mutant.name
        changed = apply_mutant(mutant, sources)
        assert changed[mutant.file] != sources[mutant.file], mutant.name


def test_apply_mutant_refuses_an_edit_whose_text_is_gone():
    mutant = MUTANTS[0]
    sources = reference_sources()
    sources[mutant.file] = sources[mutant.file].replace(mutant.replacements[0][0], '')
    with pytest.raises(ValueError, match='occurs 0 times'):
        apply_mutant(mutant, sources)


def rubric_for(mutant):
    """The items a change of ``mutant.file`` can affect; training only for its own item
    (it costs a second, and its likely cause is another item's diagnosis anyway)."""
    file = mutant.file.removesuffix('.py')
    return RUBRIC.subset({item.id for item in RUBRIC.items
                          if file in item.graded.files or (file == 'modules'
                                                           and 'mlp_numpy' in item.graded.files)
                          if not item.id.startswith('training') or item.id == mutant.item})


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
def test_at_least_95_percent_of_the_mutants_lose_the_points_of_their_item(mutant_reports):
    kept = [mutant.name for mutant in MUTANTS
            if item_of(mutant_reports[mutant.name], mutant.item).passed]
    assert len(kept) <= 0.05 * len(MUTANTS), kept


@pytest.mark.slow
def test_at_least_85_percent_of_the_mutants_are_named_in_the_maths_words(mutant_reports):
    unnamed = {mutant.name: item_of(mutant_reports[mutant.name], mutant.item).diagnosis
               for mutant in MUTANTS
               if mutant.words not in item_of(mutant_reports[mutant.name],
                                              mutant.item).diagnosis}
    assert len(unnamed) <= 0.15 * len(MUTANTS), unnamed
