"""The training scripts' command line (lab/cli.py): every bad value refused in one line,
exit code 2, before any work or any file; flags take plain values only; paths are printed
so that any terminal can show them.

The scripts run in this process (``run_main``) but where the interpreter's own start is
under test (the terminal's encoding).
"""
import os

import pytest
import torch

from conftest import SPIRAL_RUN, last_line, run_main, run_script


BAD_ARGUMENTS = {
    'hidden size 0': (['--hidden_dims', '128', '0'], '--hidden_dims'),
    'negative hidden size': (['--hidden_dims', '-3'], '--hidden_dims'),
    'lr 0': (['--lr', '0'], '--lr'),
    'negative lr': (['--lr', '-0.1'], '--lr'),
    'lr not a number': (['--lr', 'fast'], '--lr'),
    'batch size 0': (['--batch_size', '0'], '--batch_size'),
    'batch larger than the data': (['--batch_size', '100000'], 'larger than the'),
    'epochs 0': (['--epochs', '0'], '--epochs'),
    'negative validation size': (['--validation_size', '-5'], 'validation_size'),
    'validation size too large': (['--validation_size', '100000'], 'validation_size'),
    'unknown data set': (['--dataset', 'imagenet'], '--dataset'),
    'momentum with adam': (['--optimizer', 'adam', '--momentum', '0.9'], '--momentum'),
    'dropout of 1': (['--dropout', '1'], '--dropout'),
    'negative seed': (['--seed', '-1'], '--seed'),
    'seed above 2**32 - 1': (['--seed', '4294967296'], '--seed'),
    'batch norm of single samples': (['--use_batch_norm', '--batch_size', '1'],
                                     '--use_batch_norm needs --batch_size of at least 2'),
    'too wide for memory': (['--hidden_dims', '1000000000'], 'memory'),
}


SCRIPT_CASES = [('train_mlp_numpy.py', case) for case in BAD_ARGUMENTS] + [
    ('train_mlp_pytorch.py', case) for case in
    ('lr 0', 'batch larger than the data', 'validation size too large', 'unknown data set',
     'seed above 2**32 - 1', 'batch norm of single samples')]


@pytest.mark.parametrize('script, case', SCRIPT_CASES,
                         ids=[f"{script[10:-3]}-{case}" for script, case in SCRIPT_CASES])
def test_bad_values_are_refused_before_any_work(script, case, tmp_path):
    arguments, reason = BAD_ARGUMENTS[case]
    out_dir = tmp_path / 'out'
    result = run_main(script, '--dataset', 'spiral', '--out_dir', str(out_dir),
                      *arguments, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith(f'{script}: error:') and reason in last_line, last_line
    assert 'Traceback' not in result.stderr
    assert not out_dir.exists()


@pytest.mark.parametrize('arguments, expected', [
    (['--lr', '1_0'], "argument --lr: expected a number such as 0.1 or 1e-3, got '1_0'"),
    (['--weight_decay', '0x10'], 'argument --weight_decay: expected a number'),
    (['--momentum', '０.５'], 'argument --momentum: expected a number'),
    (['--out_dir='], "argument --out_dir: expected the path of a folder, got ''"),
])
def test_flags_take_plain_values_only(arguments, expected, tmp_path):
    result = run_main('train_mlp_numpy.py', '--dataset', 'spiral', *arguments, cwd=tmp_path)
    assert result.returncode == 2 and expected in last_line(result)
    assert not any(tmp_path.iterdir())


def test_unknown_device_is_refused(tmp_path):
    result = run_main('train_mlp_pytorch.py', '--device', 'tpu', cwd=tmp_path)
    assert result.returncode == 2 and '--device' in result.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_missing_gpu_is_explained(tmp_path):
    result = run_main('train_mlp_pytorch.py', '--dataset', 'spiral', '--device', 'cuda',
                      '--out_dir', str(tmp_path / 'out'), cwd=tmp_path)
    assert result.returncode == 2 and 'no CUDA GPU' in result.stderr
    assert not (tmp_path / 'out').exists()


def test_a_path_the_terminal_cannot_encode_is_printed_escaped(tmp_path):
    result = run_script('train_mlp_numpy.py', *SPIRAL_RUN, '--epochs', '1', '--no_plot',
                        '--out_dir', str(tmp_path / 'résultats'), cwd=tmp_path,
                        env={**os.environ, 'PYTHONIOENCODING': 'ascii'})
    assert result.returncode == 0, result.stderr
    assert 'results in ' in result.stdout and r'r\xe9sultats' in result.stdout
