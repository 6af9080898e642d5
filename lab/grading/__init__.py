"""Grading students' submissions of the MLP assignment against this repository's reference.

``grader.grade_submission(folder)`` grades one folder; ``probes.py`` is the script that runs
the student's code in a sandboxed process (``sandbox.py``); ``items.py`` holds the graded
items and their diagnoses; ``rubric.toml`` their points. ``python grade.py`` is the entry point.
"""
