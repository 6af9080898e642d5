"""The environments agree: the lock file pins every direct dependency at the version
requirements.txt gives, and pins everything else too; CI sets up and tests as the README says."""
import re
import subprocess

from conftest import REPO

PIN = re.compile(r'^([A-Za-z0-9_.-]+)==([^\s;#]+)')


def pins(path):
    """{normalised name: version} of the ``name==version`` lines of a requirements file."""
    found = {}
    for line in (REPO / path).read_text().splitlines():
        match = PIN.match(line.strip())
        if match:
            name, version = match.groups()
            found[re.sub(r'[-_.]+', '-', name).lower()] = version
    return found


def requirement_lines(path):
    return [line.strip() for line in (REPO / path).read_text().splitlines()
            if line.strip() and not line.lstrip().startswith('#')]


def test_the_lock_pins_every_direct_dependency_at_the_same_version():
    direct, locked = pins('requirements.txt'), pins('requirements-lock.txt')
    assert direct, 'requirements.txt pins nothing'
    for name, version in direct.items():
        assert name in locked, f'{name} is in requirements.txt but not in the lock'
        # The lock records the build actually installed (torch 2.13.0+cpu for 2.13.0).
        assert locked[name].split('+')[0] == version, (name, version, locked[name])


def test_every_line_of_the_lock_is_a_pin():
    unpinned = [line for line in requirement_lines('requirements-lock.txt') if not PIN.match(line)]
    assert not unpinned, f'requirements-lock.txt has lines that pin nothing: {unpinned}'


def readme_block(marker):
    """The commands ``.ci/run`` reads from README.md after ``<!-- marker -->``, read by
    ``.ci/run``'s own function."""
    script = (REPO / '.ci' / 'run').read_text()
    function = re.search(r'^readme_block\(\) \{.*?^\}', script, re.S | re.M)[0]
    return subprocess.run(['bash', '-c', f'{function}\nreadme_block {marker}'], cwd=REPO,
                          capture_output=True, text=True, check=True).stdout.splitlines()


def test_ci_sets_up_a_venv_inside_the_clone_from_the_lock_as_the_readme_says():
    setup = readme_block('set-up')
    assert 'python3 -m venv .venv && source .venv/bin/activate' in setup, setup
    assert any(line.startswith('pip install -r requirements-lock.txt') for line in setup), setup
    script = (REPO / '.ci' / 'run').read_text()
    assert 'eval "$setup_commands"' in script and 'eval "$test_command"' in script


def test_ci_runs_the_readmes_test_command_with_pytest():
    [command] = readme_block('test-command')
    assert command.startswith('python -m pytest'), command
