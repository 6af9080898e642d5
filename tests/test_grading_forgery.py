"""Verdicts the student's code cannot forge: each forgery tried on the grader of round 1.

Round 1 ran its probes inside the student's interpreter and read back a results file: a
hook at exit could rewrite it, the recorder could be patched, the spiral of the training
items was a fixed formula, and a hidden import of torch let autograd do the NumPy
part's backward. Now the student's process only answers calls to the student's functions
and every verdict is computed here; each forgery below must gain nothing.
"""
import textwrap

import pytest

from grading_mutants import reference_sources, write_submission
from lab.grading.grader import grade_submission
from lab.grading.rubric import load_rubric
from lab.grading.template import template_sources

RUBRIC = load_rubric()

FORGE_AT_EXIT = textwrap.dedent('''\
    import atexit, json, os, sys


    def _forge():
        """Round 1: rewrite the results file with passing values; now: garbage on every pipe."""
        import numpy as np
        if '--out' in sys.argv:
            passing = {'errors': json.dumps([0.0] * 10), 'accuracy': 1.0, 'seconds': 1.0}
            probes = {name: {'status': 'ok', 'values': passing} for name in (
                'official_crossentropy', 'official_linear', 'official_elu', 'official_softmax',
                'train_numpy', 'train_pytorch')}
            meta = {'files': {name: {'status': 'ok'} for name in
                              ('modules', 'mlp_numpy', 'mlp_pytorch')}, 'probes': probes}
            np.savez(sys.argv[sys.argv.index('--out') + 1], __meta__=np.array(json.dumps(meta)))
        for fd in range(3, 40):
            try:
                os.write(fd, b'\\x00\\x00\\x00\\x1a{"value": 1, "arrays": []}')
            except OSError:
                pass


    atexit.register(_forge)
    ''')

PATCH_THE_RECORDER = textwrap.dedent('''\
    import json, sys

    _main = sys.modules['__main__']
    if hasattr(_main, 'Recorder'):  # round 1's probes
        _put = _main.Recorder.put

        def _forged_put(self, key, value):
            if key == 'errors':
                value = json.dumps([0.0] * 10)
            _put(self, key, value)
        _main.Recorder.put = _forged_put
    if hasattr(_main, 'Server'):  # round 2's server
        _answer = _main.Server.answer

        def _forged_answer(self, request):
            answer = _answer(self, request)
            if request.get('op') == 'call' and answer.get('ok') is False:
                return {'ok': True, 'value': {'value': 0.0, 'args': None}}
            return answer
        _main.Server.answer = _forged_answer
    ''')

FUSED_CE_BACKWARD = ("return -targets / (len(x) * np.maximum(x, np.finfo(x.dtype).tiny))",
                     "return (x - targets) / len(x)")


def grade(tmp_path, sources, ids):
    report = grade_submission(write_submission(tmp_path / 'forger', sources),
                              rubric=RUBRIC.subset(ids))
    return {item.id: item for item in report.items}, report


@pytest.mark.slow
def test_a_hook_at_exit_gains_nothing(tmp_path):
    sources = template_sources()
    sources['modules.py'] = FORGE_AT_EXIT + sources['modules.py']
    _, report = grade(tmp_path, sources, {'official_crossentropy', 'official_linear',
                                          'official_elu', 'official_softmax', 'training_numpy',
                                          'linear_shapes'})
    assert report.total == 0, [item.diagnosis for item in report.items if item.passed]


@pytest.mark.slow
def test_patching_the_process_that_answers_gains_nothing(tmp_path):
    sources = reference_sources()
    assert sources['modules.py'].count(FUSED_CE_BACKWARD[0]) == 1
    sources['modules.py'] = PATCH_THE_RECORDER + sources['modules.py'].replace(
        *FUSED_CE_BACKWARD)
    items, _ = grade(tmp_path, sources, {'official_crossentropy', 'ce_backward',
                                         'linear_forward'})
    assert not items['official_crossentropy'].passed and not items['ce_backward'].passed
    assert items['linear_forward'].passed


SPIRAL_READER = '''
import numpy as np

from modules import LinearModule


class MLP(object):
    """Ignores training: predicts the arm of a point from the spiral's formula."""

    def __init__(self, n_inputs, n_hidden, n_classes):
        self.n_classes = n_classes
        self.unused = LinearModule(n_inputs, n_classes)

    def forward(self, x):
        radius = np.linalg.norm(x, axis=1) / 2
        angle = np.arctan2(x[:, 0], x[:, 1])
        scores = []
        for label in range(self.n_classes):
            arm = label * 4.0 + 4.0 * (radius - 0.05) / 0.95
            scores.append(-np.abs(np.angle(np.exp(1j * (angle - arm)))))
        return np.stack(scores, axis=1) * 50

    def backward(self, dout):
        self.unused.grads = {name: np.zeros_like(value)
                             for name, value in self.unused.params.items()}

    def clear_cache(self):
        pass
'''


@pytest.mark.slow
def test_a_model_that_predicts_from_a_formula_of_the_inputs_cannot_pass_training(tmp_path):
    sources = reference_sources()
    sources['mlp_numpy.py'] = SPIRAL_READER
    items, _ = grade(tmp_path, sources, {'training_numpy'})
    assert not items['training_numpy'].passed
    assert 'test accuracy' in items['training_numpy'].diagnosis


HIDDEN_TORCH = textwrap.dedent('''\
    import importlib
    _autograd = importlib.import_module('to' + 'rch')
    ''')
AUTOGRAD_ELU = ("        positive, out = self._pop_cache()\n"
                "        return dout * np.where(positive, 1, out + self.alpha)",
                "        positive, out = self._pop_cache()\n"
                "        x = _autograd.tensor(np.where(positive, out, np.log1p(out / self.alpha)),"
                " requires_grad=True)\n"
                "        _autograd.nn.functional.elu(x, self.alpha).backward("
                "_autograd.tensor(dout))\n"
                "        return x.grad.numpy()")
LAZY_TORCH_ELU = ("        positive, out = self._pop_cache()\n"
                  "        return dout * np.where(positive, 1, out + self.alpha)",
                  "        positive, out = self._pop_cache()\n"
                  "        engine = __import__('to' + 'rch')\n"
                  "        dout = engine.as_tensor(dout).numpy()\n"
                  "        return dout * np.where(positive, 1, out + self.alpha)")


@pytest.mark.slow
def test_autograd_under_a_hidden_torch_import_costs_its_items_with_one_line(tmp_path):
    sources = reference_sources()
    assert sources['modules.py'].count(AUTOGRAD_ELU[0]) == 1
    sources['modules.py'] = HIDDEN_TORCH + sources['modules.py'].replace(*AUTOGRAD_ELU)
    items, _ = grade(tmp_path, sources, {'elu_backward', 'official_elu', 'linear_forward',
                                         'mlp_pytorch_forward'})
    for item_id in ('elu_backward', 'official_elu'):
        assert not items[item_id].passed
        assert 'the NumPy part must not use PyTorch' in items[item_id].diagnosis
        assert '\n' not in items[item_id].diagnosis
    assert items['linear_forward'].passed and items['mlp_pytorch_forward'].passed


@pytest.mark.slow
def test_torch_used_inside_one_method_costs_that_method_only(tmp_path):
    sources = reference_sources()
    assert sources['modules.py'].count(LAZY_TORCH_ELU[0]) == 1
    sources['modules.py'] = sources['modules.py'].replace(*LAZY_TORCH_ELU)
    items, _ = grade(tmp_path, sources, {'elu_backward', 'elu_forward'})
    assert items['elu_forward'].passed
    assert 'the NumPy part must not use PyTorch' in items['elu_backward'].diagnosis
