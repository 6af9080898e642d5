"""The whole grader on files: ours, the template, other years, broken files, new items.

Each submission runs in its student processes (a NumPy-only one and a PyTorch one) and is
judged here; a test grades only the items its change can affect. Our own files are
graded once per module, with every item.
"""
import json
import textwrap

import pytest

from grading_mutants import reference_sources, write_submission
from lab.grading.grader import detect_year, grade_submission, source_problems
from lab.grading.rubric import load_rubric
from lab.grading.template import write_template

RUBRIC = load_rubric()
ELU_2024_INIT = '''    def __init__(self, alpha=1.0):
        super().__init__()
        # A Python float: a NumPy float64 scalar would promote float32 data.
        self.alpha = float(alpha)
'''
ELU_2023_INIT = '''    def __init__(self):
        super().__init__()
        self.alpha = 1.0
'''


def changed(file, old, new):
    """Our sources with ``old`` replaced by ``new`` in ``file`` (``old`` must be there once)."""
    sources = reference_sources()
    assert sources[file].count(old) == 1, old
    sources[file] = sources[file].replace(old, new)
    return sources


def grade(tmp_path, sources, ids, **options):
    """The report on ``sources`` for the items ``ids``: {id: ItemResult} and the report."""
    report = grade_submission(write_submission(tmp_path / 'submission', sources),
                              rubric=RUBRIC.subset(ids), **options)
    return {item.id: item for item in report.items}, report


# -- file-level problems and the year ----------------------------------------------------------

def test_merge_conflict_marker_is_named_with_its_line():
    problems = source_problems('modules.py', '<<<<<<< HEAD\nimport numpy as np\n=======\n')
    assert len(problems) == 1
    assert 'modules.py line 1' in problems[0] and 'merge-conflict marker' in problems[0]


def test_syntax_error_names_file_and_line():
    problems = source_problems('mlp_numpy.py', 'import numpy as np\n\ndef f(:\n    pass\n')
    assert problems and problems[0].startswith('mlp_numpy.py line 3: syntax error')


def test_stray_torch_import_in_modules_and_editor_auto_import_are_named():
    source = 'import numpy as np\nimport torch\nfrom filecmp import clear_cache\n'
    problems = source_problems('modules.py', source)
    assert any('line 2' in line and 'imports torch' in line for line in problems)
    assert any('line 3' in line and 'auto-import' in line for line in problems)
    assert source_problems('mlp_pytorch.py', 'import torch\nfrom torch import nn\n') == []


def test_names_removed_in_numpy_2_are_named():
    problems = source_problems('modules.py', 'import numpy as np\nx = np.float_(1) + np.NaN\n')
    assert any('np.float_' in line and 'NumPy 2' in line for line in problems)
    assert any('np.NaN' in line for line in problems)


@pytest.mark.parametrize('init, year', [
    ('    def __init__(self, alpha):\n        self.alpha = alpha\n', 2025),
    ('    def __init__(self, alpha=1.0, *, extra=None):\n        self.alpha = alpha\n', 2025),
    ('    def __init__(self):\n        self.alpha = 1.0\n', 2023),
    ('    pass\n', 2023),
])
def test_year_is_read_from_elu_module_signature(tmp_path, init, year):
    (tmp_path / 'modules.py').write_text(f'class ELUModule(object):\n{init}')
    assert detect_year(tmp_path)[0] == year


def test_year_is_assumed_when_modules_is_unreadable(tmp_path):
    (tmp_path / 'modules.py').write_text('<<<<<<< HEAD\n')
    year, how = detect_year(tmp_path)
    assert year == 2025 and how.startswith('assumed')


# -- our files, the template, an empty folder ----------------------------------------------------

@pytest.fixture(scope='module')
def our_report(tmp_path_factory):
    folder = write_submission(tmp_path_factory.mktemp('ours'), reference_sources())
    return grade_submission(folder)


@pytest.mark.slow
def test_our_own_files_get_full_marks(our_report):
    assert [item.diagnosis for item in our_report.items if not item.passed] == []
    assert our_report.total == our_report.max_total == RUBRIC.max_total
    assert our_report.problems == []
    assert json.loads(json.dumps(our_report.to_json()))['total'] == RUBRIC.max_total


@pytest.mark.slow
def test_the_template_gets_zero_with_not_implemented_on_every_item(tmp_path):
    write_template(tmp_path / 'template')
    report = grade_submission(tmp_path / 'template')
    assert report.total == 0
    assert all('not implemented yet' in item.diagnosis for item in report.items), [
        item.diagnosis for item in report.items if 'not implemented yet' not in item.diagnosis]


@pytest.mark.slow
def test_an_empty_folder_gets_zero_and_each_item_names_its_missing_file(tmp_path):
    (tmp_path / 'empty').mkdir()
    report = grade_submission(tmp_path / 'empty')
    assert report.total == 0
    assert all('.py is missing' in item.diagnosis for item in report.items)
    assert sum('is missing' in problem for problem in report.problems) == 3


@pytest.mark.slow
def test_a_2023_submission_is_detected_and_a_forced_2024_costs_only_the_elu_test(tmp_path):
    sources = changed('modules.py', ELU_2024_INIT, ELU_2023_INIT)
    folder = write_submission(tmp_path / 'y2023', sources)
    rubric = RUBRIC.subset({'elu_forward', 'elu_backward', 'official_elu', 'linear_dx'})
    detected = grade_submission(folder, rubric=rubric)
    assert detected.year == 2023 and detected.total == detected.max_total
    forced = grade_submission(folder, year=2024, rubric=rubric)
    assert [item.id for item in forced.items if not item.passed] == ['official_elu']
    signature_lines = [line for line in forced.problems if 'changed required signature' in line]
    assert len(signature_lines) == 1 and 'ELUModule' in signature_lines[0]


# -- one function's fault costs its items only -----------------------------------------------------

SOFTMAX_EXP = "        exp = np.exp(x - x.max(axis=1, keepdims=True))"


@pytest.mark.slow
@pytest.mark.parametrize('fault, words', [
    ("        while True:\n            pass\n", 'time budget'),
    ("        return self.forward(x)\n", 'recurses without end'),
    ("        import signal, time\n        signal.signal(signal.SIGALRM, signal.SIG_IGN)\n"
     "        time.sleep(60)\n", 'ignored the alarm'),
])
def test_a_hang_or_recursion_in_one_method_costs_only_its_items(tmp_path, fault, words):
    sources = changed('modules.py', SOFTMAX_EXP, fault + SOFTMAX_EXP)
    items, report = grade(tmp_path, sources, {'softmax_forward', 'linear_forward', 'ce_backward'})
    assert items['linear_forward'].passed and items['ce_backward'].passed, items
    assert words in items['softmax_forward'].diagnosis
    assert report.elapsed_s < 30


@pytest.mark.slow
def test_a_stray_torch_import_and_an_auto_import_are_reported_and_cost_nothing(tmp_path):
    sources = reference_sources()
    sources['modules.py'] = 'import torch\nfrom filecmp import clear_cache\n' + \
        sources['modules.py']
    items, report = grade(tmp_path, sources, {'ce_forward', 'mlp_pytorch_forward'})
    assert any('imports torch' in line for line in report.problems)
    assert any('auto-import' in line for line in report.problems)
    assert items['ce_forward'].passed and items['mlp_pytorch_forward'].passed


# -- the items no check covered before ------------------------------------------------------------

@pytest.mark.slow
def test_an_mlp_clear_cache_that_never_calls_the_layers_loses_its_point(tmp_path):
    sources = changed('mlp_numpy.py', "        for module in self.modules:\n"
                                      "            module.clear_cache()\n", "        pass\n")
    items, _ = grade(tmp_path, sources, {'clear_cache'})
    assert "never calls its layers' clear_cache" in items['clear_cache'].diagnosis


@pytest.mark.slow
def test_a_crash_in_mlp_backward_does_not_cost_clear_cache(tmp_path):
    sources = changed('mlp_numpy.py', '    def backward(self, dout):\n',
                      '    def backward(self, dout):\n        raise ValueError("broken")\n')
    items, _ = grade(tmp_path, sources, {'clear_cache', 'mlp_numpy_backward'})
    assert items['clear_cache'].passed
    assert 'raised ValueError' in items['mlp_numpy_backward'].diagnosis


@pytest.mark.slow
def test_the_numpy_mlp_must_pass_input_layer_to_its_first_layer(tmp_path):
    sources = changed('mlp_numpy.py', 'input_layer=(index == 0)', 'input_layer=False')
    items, _ = grade(tmp_path, sources, {'mlp_numpy_layers', 'linear_init'})
    assert items['linear_init'].passed
    assert 'does not pass input_layer=True' in items['mlp_numpy_layers'].diagnosis


@pytest.mark.slow
def test_the_pytorch_mlp_keeping_the_default_initialisation_loses_the_init_item(tmp_path):
    sources = changed('mlp_pytorch.py', "            nn.init.normal_(linear.weight, mean=0.0, "
                                        "std=math.sqrt(gain / fan_in))\n"
                                        "            nn.init.zeros_(linear.bias)\n", '')
    items, _ = grade(tmp_path, sources, {'mlp_pytorch_init', 'mlp_pytorch_forward'})
    assert items['mlp_pytorch_forward'].passed
    assert "PyTorch's default initialisation" in items['mlp_pytorch_init'].diagnosis


@pytest.mark.slow
def test_a_one_hot_width_from_the_labels_fails_when_the_highest_class_is_absent(tmp_path):
    sources = changed('modules.py', '    targets = np.zeros(predictions.shape, '
                                    'dtype=predictions.dtype)\n',
                      '    targets = np.zeros((n_samples, int(y.max()) + 1), '
                      'dtype=predictions.dtype)\n')
    items, _ = grade(tmp_path, sources, {'ce_forward', 'ce_backward', 'ce_absent_class'})
    assert items['ce_forward'].passed and items['ce_backward'].passed
    assert 'y.max() + 1' in items['ce_absent_class'].diagnosis


FUNCTIONAL_MLP = '''
import torch
from torch import nn
import torch.nn.functional as F


class MLP(nn.Module):
    def __init__(self, n_inputs, n_hidden, n_classes, use_batch_norm=False):
        super().__init__()
        widths = [n_inputs] + list(n_hidden) + [n_classes]
        self.linears = nn.ModuleList([nn.Linear(a, b) for a, b in zip(widths, widths[1:])])
        self.norms = nn.ModuleList([nn.BatchNorm1d(b) for b in n_hidden] if use_batch_norm
                                   else [])
        for index, linear in enumerate(self.linears):
            nn.init.normal_(linear.weight, std=((1.0 if index == 0 else 2.0)
                                                / linear.in_features) ** 0.5)
            nn.init.zeros_(linear.bias)

    def forward(self, x):
        x = x.flatten(start_dim=1)
        for index, linear in enumerate(self.linears[:-1]):
            x = {activation}
        return self.linears[-1](x)
'''


@pytest.mark.slow
@pytest.mark.parametrize('activation, words', [
    ('F.elu(self.norms[index](linear(x))) if self.norms else F.elu(linear(x))', None),
    ('self.norms[index](linear(x)) if self.norms else linear(x)', 'applies no activation'),
    ('self.norms[index](F.elu(linear(x))) if self.norms else F.elu(linear(x))',
     'batch norm after the ELU'),
])
def test_the_pytorch_architecture_with_functional_activations_is_judged_by_its_values(
        tmp_path, activation, words):
    sources = reference_sources()
    sources['mlp_pytorch.py'] = FUNCTIONAL_MLP.replace('{activation}', activation)
    items, _ = grade(tmp_path, sources, {'mlp_pytorch_architecture'})
    verdict = items['mlp_pytorch_architecture']
    assert verdict.passed if words is None else words in verdict.diagnosis, verdict


# -- students' own ways of writing the networks ---------------------------------------------------

SPLIT_LISTS_MLP = '''
from modules import ELUModule, LinearModule


class MLP(object):
    def __init__(self, n_inputs, n_hidden, n_classes):
        widths = [n_inputs] + list(n_hidden) + [n_classes]
        self.activations = [ELUModule(1.0) for _ in n_hidden]
        self.linears = [LinearModule(fan_in, fan_out, input_layer=(index == 0))
                        for index, (fan_in, fan_out) in enumerate(zip(widths, widths[1:]))]

    def forward(self, x):
        for linear, activation in zip(self.linears, self.activations):
            x = activation.forward(linear.forward(x))
        return self.linears[-1].forward(x)

    def backward(self, dout):
        dout = self.linears[-1].backward(dout)
        for linear, activation in reversed(list(zip(self.linears, self.activations))):
            dout = linear.backward(activation.backward(dout))

    def clear_cache(self):
        for layer in self.linears + self.activations:
            layer.clear_cache()
'''


@pytest.mark.slow
def test_an_mlp_keeping_its_layers_in_two_lists_is_read_in_call_order(tmp_path):
    sources = reference_sources()
    sources['mlp_numpy.py'] = SPLIT_LISTS_MLP
    wanted = {'mlp_numpy_layers', 'mlp_numpy_forward', 'mlp_numpy_backward', 'training_numpy',
              'clear_cache'}
    report = grade_submission(write_submission(tmp_path / 'split', sources),
                              rubric=RUBRIC.subset(wanted))
    assert [item.diagnosis for item in report.items if not item.passed] == []


FLOAT32_TORCH_MLP = '''
import torch
from torch import nn


class MLP(nn.Module):
    def __init__(self, n_inputs, n_hidden, n_classes, use_batch_norm=False):
        super().__init__()
        widths = [n_inputs] + list(n_hidden) + [n_classes]
        layers = []
        for fan_in, fan_out in zip(widths, widths[1:]):
            layers += [nn.Linear(fan_in, fan_out)]
            if use_batch_norm:
                layers += [nn.BatchNorm1d(fan_out)]
            layers += [nn.ELU()]
        self.layers = nn.Sequential(*layers[:-2 if use_batch_norm else -1])

    def forward(self, x):
        return self.layers(x.reshape(len(x), -1).to(torch.float32))
'''


@pytest.mark.slow
def test_a_pytorch_mlp_that_works_in_float32_only_is_judged_in_float32(tmp_path):
    sources = reference_sources()
    sources['mlp_pytorch.py'] = FLOAT32_TORCH_MLP
    wanted = {'mlp_pytorch_architecture', 'mlp_pytorch_forward'}
    report = grade_submission(write_submission(tmp_path / 'float32', sources),
                              rubric=RUBRIC.subset(wanted))
    assert [item.diagnosis for item in report.items if not item.passed] == []
