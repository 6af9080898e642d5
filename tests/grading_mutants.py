"""A catalogue of mistakes, each made by editing this repository's own reference files.

Every mutant is the reference with one classic mistake put in by exact text replacement
(each old text must occur exactly once, so a change in the reference files shows up as a
failing test rather than a silently unchanged mutant). The grader must take points off
``item`` for it and, to count as recognised, say ``words`` in that item's diagnosis.
"""
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STUDENT_FILES = ('modules.py', 'mlp_numpy.py', 'mlp_pytorch.py')

CE_BACKWARD = "return -targets / (len(x) * np.maximum(x, np.finfo(x.dtype).tiny))"
CE_FORWARD = "return -np.sum(targets * np.log(np.maximum(x, np.finfo(x.dtype).tiny))) / len(x)"
LINEAR_DW = "self.grads['weight'] = dout.T @ x        # dL/dW = dout^T x"
LINEAR_DB = "self.grads['bias'] = dout.sum(axis=0)    # dL/db = dout^T 1"
LINEAR_DX = "return dout @ self.params['weight']      # dL/dx = dout W"
LINEAR_FORWARD = "return x @ self.params['weight'].T + self.params['bias']"
ELU_FORWARD = "out = np.where(positive, x, self.alpha * np.expm1(np.minimum(x, 0)))"
ELU_BACKWARD = "return dout * np.where(positive, 1, out + self.alpha)"
SOFTMAX_EXP = "exp = np.exp(x - x.max(axis=1, keepdims=True))"
SOFTMAX_OUT = "out = exp / exp.sum(axis=1, keepdims=True)\n        self.cache = out"
SOFTMAX_BACKWARD = "return out * (dout - (dout * out).sum(axis=1, keepdims=True))"
CE_TARGETS_FORWARD = ("targets = as_target_distribution(y, x)\n        return -np.sum(")
CE_TARGETS_BACKWARD = ("targets = as_target_distribution(y, x)\n        return -targets")
PT_BATCH_NORM = ("            if use_batch_norm:\n                layers.append(nn.BatchNorm1d"
                 "(fan_out))\n            layers.append(ACTIVATIONS[activation]())")


@dataclass(frozen=True)
class Mutant:
    """One mistake: where it goes, how it is made, what must lose points, and the words."""
    name: str
    file: str
    replacements: tuple
    item: str
    words: str


def mutant(name, file, replacements, item, words):
    return Mutant(name, file, tuple(replacements), item, words)


MUTANTS = [
    # CrossEntropyModule
    mutant('ce_backward_fused_gradient', 'modules.py',
           [(CE_BACKWARD, "return (x - targets) / len(x)")], 'ce_backward', 'dL/d(logits)'),
    mutant('ce_backward_fused_without_mean', 'modules.py',
           [(CE_BACKWARD, "return x - targets")], 'ce_backward', 'dL/d(logits)'),
    mutant('ce_backward_misses_mean', 'modules.py',
           [(CE_BACKWARD, "return -targets / np.maximum(x, np.finfo(x.dtype).tiny)")],
           'ce_backward', '1/N'),
    mutant('ce_backward_wrong_sign', 'modules.py',
           [(CE_BACKWARD, "return targets / (len(x) * np.maximum(x, np.finfo(x.dtype).tiny))")],
           'ce_backward', 'wrong sign'),
    mutant('ce_backward_divides_twice', 'modules.py',
           [(CE_BACKWARD, "return -targets / (len(x) ** 2 * x)")], 'ce_backward',
           'divides by the batch size N once too often'),
    mutant('ce_backward_needs_forward', 'modules.py',
           [(CE_TARGETS_FORWARD, "targets = as_target_distribution(y, x)\n"
                                 "        self.cache = targets\n        return -np.sum("),
            (CE_TARGETS_BACKWARD, "targets = self.cache\n        return -targets")],
           'ce_backward', 'needs a forward pass first'),
    mutant('ce_forward_summed', 'modules.py',
           [(CE_FORWARD, "return -np.sum(targets * np.log(np.maximum(x, np.finfo(x.dtype)"
                         ".tiny)))")], 'ce_forward', 'the 1/N of the mean over the batch is missing'),
    mutant('ce_forward_mean_over_entries', 'modules.py',
           [(CE_FORWARD, "return -np.mean(targets * np.log(np.maximum(x, np.finfo(x.dtype)"
                         ".tiny)))")], 'ce_forward', 'a mean over every entry'),
    mutant('ce_forward_softmax_again', 'modules.py',
           [(CE_FORWARD, "z = np.exp(x) / np.exp(x).sum(axis=1, keepdims=True)\n"
                         "        return -np.sum(targets * np.log(z)) / len(x)")],
           'ce_forward', 'softmax'),
    mutant('ce_one_hot_labels_only', 'modules.py',
           [(CE_TARGETS_FORWARD, "targets = y\n        return -np.sum("),
            (CE_TARGETS_BACKWARD, "targets = y\n        return -targets")],
           'ce_forward', 'one-hot'),
    mutant('ce_numpy2_scalar_slot', 'modules.py',
           [(CE_FORWARD, "loss = np.zeros(1)\n        loss[0] = -np.sum(targets * np.log(x), "
                         "axis=(0, 1), keepdims=True) / len(x)\n        return loss[0]")],
           'ce_forward', 'NumPy 2'),
    # LinearModule
    mutant('linear_weight_decay_in_gradient', 'modules.py',
           [(LINEAR_DW, "self.grads['weight'] = dout.T @ x + 0.01 * self.params['weight']")],
           'linear_dweight', 'weight-decay'),
    mutant('linear_dweight_transposed', 'modules.py',
           [(LINEAR_DW, "self.grads['weight'] = x.T @ dout")], 'linear_dweight', 'transposed'),
    mutant('linear_dweight_averaged', 'modules.py',
           [(LINEAR_DW, "self.grads['weight'] = dout.T @ x / len(x)")], 'linear_dweight',
           'divides by the batch size N once too often'),
    mutant('linear_dbias_averaged', 'modules.py',
           [(LINEAR_DB, "self.grads['bias'] = dout.mean(axis=0)")], 'linear_dbias',
           'divides by the batch size N once too often'),
    mutant('linear_dbias_wrong_axis', 'modules.py',
           [(LINEAR_DB, "self.grads['bias'] = dout.sum(axis=1)")], 'linear_dbias', 'axis'),
    mutant('linear_dx_divided_by_n', 'modules.py',
           [(LINEAR_DX, "return dout @ self.params['weight'] / len(dout)")], 'linear_dx',
           'batch size'),
    mutant('linear_dx_doubled', 'modules.py',
           [(LINEAR_DX, "return 2 * dout @ self.params['weight']")], 'linear_dx',
           'is 2 times the right value in every entry'),
    mutant('linear_forward_without_bias', 'modules.py',
           [(LINEAR_FORWARD, "return x @ self.params['weight'].T")], 'linear_forward',
           'forgets the bias'),
    mutant('linear_forward_in_place', 'modules.py',
           [(LINEAR_FORWARD, "shift = self.params['bias'].sum()\n        x += shift\n"
                             "        return (x - shift) @ self.params['weight'].T"
                             " + self.params['bias']")],
           'linear_forward', 'in place'),
    mutant('linear_weight_stored_transposed', 'modules.py',
           [("rng.standard_normal((out_features, in_features))",
             "rng.standard_normal((in_features, out_features))"),
            (LINEAR_FORWARD, "return x @ self.params['weight'] + self.params['bias']"),
            (LINEAR_DW, "self.grads['weight'] = x.T @ dout"),
            (LINEAR_DX, "return dout @ self.params['weight'].T")],
           'linear_shapes', 'transposed'),
    mutant('kaiming_ignores_input_layer', 'modules.py',
           [("gain = 1.0 if input_layer else 2.0", "gain = 2.0")], 'linear_init',
           'ignores input_layer'),
    mutant('kaiming_fan_out', 'modules.py',
           [("np.sqrt(gain / in_features)", "np.sqrt(gain / out_features)")], 'linear_init',
           'out_features'),
    mutant('init_without_kaiming_scale', 'modules.py',
           [("np.sqrt(gain / in_features) * rng", "rng")], 'linear_init', 'Kaiming scale'),
    mutant('linear_stale_cache', 'modules.py',
           [("self.cache = x\n        return x @",
             "self.cache = x if self.cache is None else self.cache\n        return x @")],
           'latest_cache', 'stale cache'),
    # ELUModule
    mutant('elu_alpha_ignored', 'modules.py',
           [(ELU_FORWARD, "out = np.where(positive, x, np.expm1(np.minimum(x, 0)))"),
            (ELU_BACKWARD, "return dout * np.where(positive, 1, out + 1)")],
           'elu_forward', 'alpha is missing'),
    mutant('elu_backward_alpha_ignored', 'modules.py',
           [(ELU_BACKWARD, "return dout * np.where(positive, 1, out / self.alpha + 1)")],
           'elu_backward', 'alpha is missing'),
    mutant('elu_backward_wrong_branch', 'modules.py',
           [("self.cache = (positive, out)", "self.cache = (positive, x)"),
            (ELU_BACKWARD, "return dout * np.where(positive, self.alpha * np.exp(out), 1)")],
           'elu_backward', 'wrong branch'),
    mutant('elu_backward_without_dout', 'modules.py',
           [(ELU_BACKWARD, "return np.where(positive, 1, out + self.alpha)")],
           'elu_backward', 'dout'),
    mutant('elu_forward_in_place', 'modules.py',
           [(ELU_FORWARD, "x[~positive] = self.alpha * np.expm1(x[~positive])\n"
                          "        out = x")], 'elu_forward', 'in place'),
    mutant('elu_forward_relu', 'modules.py',
           [(ELU_FORWARD, "out = np.maximum(x, 0)")], 'elu_forward', 'ReLU'),
    # SoftMaxModule
    mutant('softmax_without_max_shift', 'modules.py',
           [(SOFTMAX_EXP, "exp = np.exp(x)")], 'softmax_stable', 'max'),
    mutant('softmax_backward_diagonal_only', 'modules.py',
           [(SOFTMAX_BACKWARD, "return dout * out * (1 - out)")], 'softmax_backward',
           'diagonal'),
    mutant('softmax_backward_passes_dout', 'modules.py',
           [(SOFTMAX_BACKWARD, "return dout")], 'softmax_backward', 'unchanged'),
    mutant('softmax_over_the_batch', 'modules.py',
           [(SOFTMAX_OUT, "out = exp / exp.sum(axis=0, keepdims=True)\n        self.cache = out")],
           'softmax_forward', 'normalises over the batch (axis 0)'),
    mutant('softmax_stale_cache', 'modules.py',
           [(SOFTMAX_OUT, "out = exp / exp.sum(axis=1, keepdims=True)\n"
                          "        self.cache = out if self.cache is None else self.cache")],
           'latest_cache', 'stale cache'),
    mutant('clear_cache_does_nothing', 'modules.py',
           [('"""Drop every array cached by ``forward``."""\n        self.cache = None',
             '"""Drop every array cached by ``forward``."""')], 'clear_cache', 'clear_cache'),
    # The NumPy MLP
    mutant('mlp_numpy_without_activations', 'mlp_numpy.py',
           [("            self.modules.append(ACTIVATIONS[activation]())\n", "")],
           'mlp_numpy_layers', 'applies no activation'),
    mutant('mlp_numpy_activation_after_output', 'mlp_numpy.py',
           [("                break  # the output layer: logits, no activation",
             "                pass")], 'mlp_numpy_layers', 'after the output layer'),
    mutant('mlp_numpy_backward_skips_first_layer', 'mlp_numpy.py',
           [("for module in reversed(self.modules):", "for module in reversed(self.modules[1:]):")],
           'mlp_numpy_backward', 'linear layer 0'),
    # The PyTorch MLP
    mutant('mlp_pytorch_ignores_batch_norm', 'mlp_pytorch.py',
           [("            if use_batch_norm:\n", "            if False:\n")],
           'mlp_pytorch_architecture', 'no BatchNorm1d'),
    mutant('mlp_pytorch_batch_norm_after_activation', 'mlp_pytorch.py',
           [(PT_BATCH_NORM, "            layers.append(ACTIVATIONS[activation]())\n"
                            "            if use_batch_norm:\n"
                            "                layers.append(nn.BatchNorm1d(fan_out))")],
           'mlp_pytorch_architecture', 'wrong order'),
    mutant('mlp_pytorch_ends_in_softmax', 'mlp_pytorch.py',
           [("self.layers = nn.Sequential(*layers)",
             "self.layers = nn.Sequential(*layers, nn.Softmax(dim=1))")],
           'mlp_pytorch_architecture', 'softmax'),
]
"""The catalogue; at least 30 mistakes."""


def reference_sources():
    """The reference files' text, by file name."""
    return {name: (ROOT / name).read_text(encoding='utf-8') for name in STUDENT_FILES}


def apply_mutant(mutant, sources):
    """The sources with ``mutant``'s replacements made; each old text must occur once."""
    sources = dict(sources)
    text = sources[mutant.file]
    for old, new in mutant.replacements:
        count = text.count(old)
        if count != 1:
            raise ValueError(f'mutant {mutant.name}: {old!r} occurs {count} times in '
                             f'{mutant.file}, expected once')
        text = text.replace(old, new)
    sources[mutant.file] = text
    return sources


def write_submission(folder, sources):
    """Write the three files into ``folder`` (created) and return it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in sources.items():
        (folder / name).write_text(text, encoding='utf-8')
    return folder
