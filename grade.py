"""Grade a student's modules.py, mlp_numpy.py and mlp_pytorch.py, naming each mistake.

    python grade.py PATH                   # a folder or a .zip: print the report
    python grade.py PATH --format json     # the report as one JSON object
    python grade.py SUBMISSIONS/ --jobs 2  # every folder or zip: grades.csv, feedback, summary
    python grade.py --template practice/   # the student's starting files

See docs/grading.md. The student's code runs in a process of its own, with
limits; the verdicts are computed here, from the data it sends back.
"""
import sys

if __name__ == '__main__':
    try:
        from lab.grading.cli import main
    except KeyboardInterrupt:  # Ctrl-C while the grader was still loading
        print('\ninterrupted: nothing was graded yet', file=sys.stderr)
        sys.exit(130)
    sys.exit(main())
