"""What a submission's files and names can do to the grader itself: damaged or hostile zips,
files too large or too deep to parse, links, names that are not UTF-8 or hold escape codes,
text that a spreadsheet would run. Each is one line in the report, never a traceback, and
never costs the other students their rows. No student code runs here: these are quick.
"""
import csv
import os
import zipfile

import pytest

from lab.grading.cli import (SubmissionError, extract_zip, printable, printable_report,
                             spreadsheet_safe, submission_name)
from lab.grading.grader import detect_year, file_problems
from lab.grading.report import format_text, write_grades_csv
from lab.grading.sandbox import MAX_SOURCE_BYTES, copy_sources

ELU_2023 = 'class ELUModule:\n    def __init__(self):\n        pass\n'


# -- zips -----------------------------------------------------------------------------------

def damaged_zip(path, compression):
    """A zip whose one member's compressed data is overwritten with junk after its header."""
    with zipfile.ZipFile(path, 'w', compression=compression) as bundle:
        bundle.writestr('modules.py', 'x = 1\n' * 2000)
    data = bytearray(path.read_bytes())
    start = data.index(b'modules.py') + len('modules.py')
    data[start + 8:start + 60] = bytes(range(52))
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize('compression', [zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2,
                                         zipfile.ZIP_LZMA])
def test_a_zip_with_damaged_data_is_refused_in_one_line(tmp_path, compression):
    archive = damaged_zip(tmp_path / 'damaged.zip', compression)
    with pytest.raises(SubmissionError) as refused:
        extract_zip(archive, tmp_path / 'out')
    assert '\n' not in str(refused.value) and 'damaged.zip' in str(refused.value)
    assert list((tmp_path / 'out').iterdir()) == []


def test_an_encrypted_member_refuses_the_zip(tmp_path):
    archive = tmp_path / 'locked.zip'
    with zipfile.ZipFile(archive, 'w') as bundle:
        bundle.writestr('modules.py', 'x = 1\n')
    data = bytearray(archive.read_bytes())
    for header in (b'PK\x03\x04', b'PK\x01\x02'):  # set the "encrypted" flag bit
        at = data.index(header)
        flag_at = at + (6 if header == b'PK\x03\x04' else 8)
        data[flag_at] |= 1
    archive.write_bytes(bytes(data))
    with pytest.raises(SubmissionError, match='encrypted'):
        extract_zip(archive, tmp_path / 'out')


def test_a_name_too_long_refuses_the_zip(tmp_path):
    archive = tmp_path / 'long.zip'
    with zipfile.ZipFile(archive, 'w') as bundle:
        bundle.writestr('modules.py', 'x = 1\n')
        bundle.writestr('a' * 300 + '.py', 'x = 1\n')
    with pytest.raises(SubmissionError, match='longer than 255 bytes'):
        extract_zip(archive, tmp_path / 'out')
    assert list((tmp_path / 'out').iterdir()) == []


def test_a_file_and_a_folder_of_the_same_name_refuse_the_zip(tmp_path):
    archive = tmp_path / 'clash.zip'
    with zipfile.ZipFile(archive, 'w') as bundle:
        bundle.writestr('work.py', 'x = 1\n')
        bundle.writestr('work.py/modules.py', 'x = 1\n')
    with pytest.raises(SubmissionError, match='a file and a folder both named'):
        extract_zip(archive, tmp_path / 'out')


def test_a_zip_with_one_unsafe_member_is_refused_whole(tmp_path):
    archive = tmp_path / 'mixed.zip'
    with zipfile.ZipFile(archive, 'w') as bundle:
        bundle.writestr('modules.py', 'x = 1\n')
        bundle.writestr('mlp_numpy.py', 'x = 1\n')
        bundle.writestr('../escape.py', 'x = 1\n')
    with pytest.raises(SubmissionError, match='outside the folder'):
        extract_zip(archive, tmp_path / 'out')
    assert list((tmp_path / 'out').iterdir()) == []


def test_damaged_data_after_good_members_leaves_nothing_extracted(tmp_path):
    archive = tmp_path / 'late.zip'
    with zipfile.ZipFile(archive, 'w', compression=zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr('mlp_numpy.py', 'x = 1\n')
        bundle.writestr('modules.py', 'y = 2\n' * 2000)
    data = bytearray(archive.read_bytes())
    start = data.index(b'modules.py') + len('modules.py')
    data[start + 8:start + 60] = bytes(range(52))
    archive.write_bytes(bytes(data))
    with pytest.raises(SubmissionError):
        extract_zip(archive, tmp_path / 'out')
    assert list((tmp_path / 'out').iterdir()) == []


# -- files the grader reads itself ----------------------------------------------------------

def test_an_expression_too_deep_to_parse_is_a_line_not_a_traceback(tmp_path):
    (tmp_path / 'modules.py').write_text('x = ' + '1+' * 400_000 + '1\n' + ELU_2023)
    assert detect_year(tmp_path) == (2025, 'assumed: modules.py cannot be read')
    problems = file_problems(tmp_path)
    assert any('modules.py' in line and 'nested too deeply' in line for line in problems)


def test_a_file_over_the_cap_is_neither_read_nor_copied_and_the_report_says_so(tmp_path):
    source = tmp_path / 'big'
    source.mkdir()
    (source / 'modules.py').write_text(ELU_2023 + '#' * MAX_SOURCE_BYTES)
    problems = file_problems(source)
    assert any('modules.py' in line and 'over the cap of 1 MiB' in line for line in problems)
    assert detect_year(source)[1].startswith('assumed')
    (tmp_path / 'copy').mkdir()
    assert copy_sources(source, tmp_path / 'copy') == []


def test_a_linked_modules_py_is_neither_copied_nor_parsed(tmp_path):
    elsewhere = tmp_path / 'elsewhere.py'
    elsewhere.write_text(ELU_2023)  # a 2023 file: parsing it would say 2023
    folder = tmp_path / 'linked'
    folder.mkdir()
    (folder / 'modules.py').symlink_to(elsewhere)
    assert detect_year(folder) == (2025, 'assumed: modules.py cannot be read')
    problems = file_problems(folder)
    assert any('modules.py is a symbolic link: not read and not run' in line
               for line in problems)
    (tmp_path / 'copy').mkdir()
    assert copy_sources(folder, tmp_path / 'copy') == []


# -- names and text the student wrote -------------------------------------------------------

def test_a_folder_name_that_is_not_utf8_is_escaped(tmp_path):
    folder = tmp_path / os.fsdecode(b'Zo\xeb')
    folder.mkdir()
    name = submission_name(folder)
    assert name == 'Zo\\xeb'
    name.encode('utf-8')  # printable, writable anywhere
    write_grades_csv(tmp_path / 'grades.csv', [spreadsheet_safe(printable_report(
        {'submission': os.fsdecode(b'Zo\xeb'), 'year': 2024, 'total': 0, 'max_total': 1,
         'problems': [], 'items': []}))])
    assert 'Zo\\xeb' in (tmp_path / 'grades.csv').read_text()


@pytest.mark.parametrize('text', ['=HYPERLINK("http://x")', '+1+1', '-2+3', '@SUM(A1)',
                                  '\tindent'])
def test_grades_csv_cells_cannot_start_a_formula(tmp_path, text):
    report = printable_report({'submission': text, 'year': 2024, 'total': 0, 'max_total': 1,
                               'problems': [text], 'items': []})
    write_grades_csv(tmp_path / 'grades.csv', [spreadsheet_safe(report)])
    with open(tmp_path / 'grades.csv', newline='') as handle:
        row = list(csv.DictReader(handle))[0]
    for cell in (row['submission'], row['problems']):
        assert not cell.startswith(('=', '+', '-', '@', '\t')), cell


def test_escape_codes_from_a_student_are_printed_escaped():
    fake = '\x1b[2K\x1b[1A\rTotal: 46 / 46'
    report = printable_report({
        'submission': 'mallory\x1b[31m', 'year': 2024, 'total': 0, 'max_total': 2,
        'problems': [f'modules.py cannot be imported: {fake}'],
        'items': [{'name': 'LinearModule.forward', 'points': 0, 'max_points': 2,
                   'passed': False, 'diagnosis': f'raised ValueError: {fake}'}]})
    text = format_text(report)
    assert '\x1b' not in text and '\r' not in text
    assert '\\x1b[2K' in text
    assert text.splitlines()[-1] == 'Total: 0 / 2'
    assert printable('line one\nline two', keep_newlines=True) == 'line one\nline two'
    assert printable('line one\nline two') == 'line one\\nline two'
