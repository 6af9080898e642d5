"""A catalogue of mistakes, each made by editing this repository's own reference files.

Every mutant is the reference with one classic mistake put in by exact text replacement
(each old text must occur exactly once, so a change in the reference files shows up as a
failing test rather than a silently unchanged mutant). The grader must take points off
``item`` for it and, to count as recognised, say ``words`` in that item's diagnosis.

Two styles. ``MUTANTS`` edit one expression of the reference (``style='reference-edit'``).
``STUDENT_MUTANTS`` replace whole methods with code written the way students write it
(loops over the batch, einsum, other names, helper methods, their own caches) holding one
realistic mistake in otherwise correct code (``style='student'``): the grader has to name
a mistake in code that looks nothing like ours. ``CATALOGUE`` is both.
"""
import ast
import textwrap
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
    style: str = 'reference-edit'


def mutant(name, file, replacements, item, words, style='reference-edit'):
    return Mutant(name, file, tuple(replacements), item, words, style)


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


def method_text(file, owner, name):
    """The exact text of method ``owner.name`` in the reference ``file``, docstring included."""
    text = (ROOT / file).read_text(encoding='utf-8')
    for node in ast.parse(text).body:
        if isinstance(node, ast.ClassDef) and node.name == owner:
            for method in node.body:
                if isinstance(method, ast.FunctionDef) and method.name == name:
                    lines = text.splitlines()[method.lineno - 1:method.end_lineno]
                    return '\n'.join(lines)
    raise LookupError(f'{file} has no method {owner}.{name}')


def rewrite(file, owner, name, code):
    """Replace method ``owner.name`` of ``file`` by ``code`` (one or more ``def`` blocks)."""
    return method_text(file, owner, name), textwrap.indent(textwrap.dedent(code).strip(), '    ')


def student(name, file, methods, item, words, imports=()):
    """A mutant written as a student writes: whole methods, {(owner, name): code}."""
    replacements = [rewrite(file, owner, method, code) for (owner, method), code in methods.items()]
    return mutant(name, file, [*imports, *replacements], item, words, style='student')


TORCH_IMPORTS = ('from torch import nn',
                 'import torch\nimport torch.nn.functional as F\nfrom torch import nn')
"""The PyTorch file's import, widened to what students import."""

LINEAR_FORWARD_CACHING_X = '''
def forward(self, x):
    self.x = x
    return x @ self.params['weight'].T + self.params['bias']
'''

LINEAR_BACKWARD_FROM_X = '''
def backward(self, dout):
    x = self.x
    self.grads['weight'] = dout.T @ x
    self.grads['bias'] = np.sum(dout, axis=0)
    return dout @ self.params['weight']
'''

MLP_NUMPY_INIT = '''
def __init__(self, n_inputs, n_hidden, n_classes, use_batch_norm=False,
             activation='elu', dropout=0.0, dtype=np.float64, rng=None):
    self.n_inputs, self.n_hidden, self.n_classes = n_inputs, list(n_hidden), n_classes
    self.use_batch_norm, self.activation, self.dropout = False, activation, dropout
    self.dtype = np.dtype(dtype)
    self.training = True
{body}
'''


def mlp_numpy_init(body):
    """A student's NumPy MLP constructor: the bookkeeping, then ``body`` building self.modules."""
    return MLP_NUMPY_INIT.format(body=textwrap.indent(textwrap.dedent(body).strip(), '    '))


MLP_TORCH_INIT = '''
def __init__(self, n_inputs, n_hidden, n_classes, use_batch_norm=False,
             activation='elu', dropout=0.0):
    super().__init__()
    self.n_inputs, self.n_hidden, self.n_classes = n_inputs, list(n_hidden), n_classes
    self.use_batch_norm, self.activation, self.dropout = use_batch_norm, activation, dropout
{body}
'''


def mlp_torch_init(body):
    """A student's PyTorch MLP constructor: the bookkeeping, then ``body``."""
    return MLP_TORCH_INIT.format(body=textwrap.indent(textwrap.dedent(body).strip(), '    '))


STUDENT_MUTANTS = [
    # LinearModule.__init__
    student('student_init_variance_as_std', 'modules.py', {('LinearModule', '__init__'): '''
        def __init__(self, in_features, out_features, input_layer=False,
                     dtype=np.float64, rng=None):
            super().__init__()
            self.in_features, self.out_features = in_features, out_features
            self.input_layer = input_layer
            # Kaiming: variance 2 / fan_in (1 / fan_in for the first layer)
            var = 1.0 / in_features if input_layer else 2.0 / in_features
            W = np.random.normal(0, var, size=(out_features, in_features))
            self.params = {'weight': W.astype(dtype), 'bias': np.zeros(out_features, dtype=dtype)}
            self.grads = {'weight': np.zeros_like(self.params['weight']),
                          'bias': np.zeros_like(self.params['bias'])}
        '''}, 'linear_init', 'square root'),
    student('student_init_input_layer_swapped', 'modules.py', {('LinearModule', '__init__'): '''
        def __init__(self, in_features, out_features, input_layer=False,
                     dtype=np.float64, rng=None):
            super().__init__()
            self.in_features, self.out_features = in_features, out_features
            self.input_layer = input_layer
            if input_layer:
                std = np.sqrt(2 / in_features)
            else:
                std = np.sqrt(1 / in_features)
            self.params = {}
            self.params['weight'] = (std * np.random.randn(out_features, in_features)).astype(dtype)
            self.params['bias'] = np.zeros(out_features, dtype=dtype)
            self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        '''}, 'linear_init', 'input_layer'),
    student('student_init_random_bias', 'modules.py', {('LinearModule', '__init__'): '''
        def __init__(self, in_features, out_features, input_layer=False,
                     dtype=np.float64, rng=None):
            super().__init__()
            self.in_features, self.out_features = in_features, out_features
            self.input_layer = input_layer
            gain = 1 if input_layer else 2
            weight = np.random.randn(out_features, in_features) * np.sqrt(gain / in_features)
            bias = np.random.randn(out_features) * np.sqrt(gain / in_features)
            self.params = {'weight': weight.astype(dtype), 'bias': bias.astype(dtype)}
            self.grads = {'weight': np.zeros_like(self.params['weight']),
                          'bias': np.zeros_like(self.params['bias'])}
        '''}, 'linear_init', 'bias'),
    # LinearModule.forward and backward
    student('student_linear_caches_output', 'modules.py', {('LinearModule', 'forward'): '''
        def forward(self, x):
            N = x.shape[0]
            out = np.zeros((N, self.out_features))
            for n in range(N):
                out[n] = self.params['weight'] @ x[n] + self.params['bias']
            self.cache = out
            return out
        '''}, 'linear_dweight', 'output instead of the input'),
    student('student_linear_einsum_dweight_transposed', 'modules.py',
            {('LinearModule', 'backward'): '''
        def backward(self, dout):
            x = self.cache
            self.grads['weight'] = np.einsum('ni,nj->ij', x, dout)
            self.grads['bias'] = np.einsum('nj->j', dout)
            if self.input_layer:
                return None
            return np.einsum('nj,ji->ni', dout, self.params['weight'])
        '''}, 'linear_dweight', 'transpose'),
    student('student_linear_loop_dbias_last_sample', 'modules.py',
            {('LinearModule', 'backward'): '''
        def backward(self, dout):
            x = self.cache
            dW = np.zeros_like(self.params['weight'])
            db = np.zeros_like(self.params['bias'])
            for n in range(x.shape[0]):
                dW += np.outer(dout[n], x[n])
                db = dout[n]
            self.grads['weight'], self.grads['bias'] = dW, db
            if self.input_layer:
                return None
            return dout @ self.params['weight']
        '''}, 'linear_dbias', 'last sample'),
    student('student_linear_dx_weight_transposed', 'modules.py',
            {('LinearModule', 'backward'): '''
        def backward(self, dout):
            x = self.cache
            self.grads['weight'] = np.dot(dout.T, x)
            self.grads['bias'] = np.sum(dout, axis=0)
            if self.input_layer:
                return None
            dx = np.dot(dout, self.params['weight'].T)
            return dx
        '''}, 'linear_dx', 'transpose'),
    student('student_linear_dbias_not_summed', 'modules.py', {('LinearModule', 'backward'): '''
        def backward(self, dout):
            x = self.cache
            self.grads['weight'] = dout.T @ x
            self.grads['bias'] = dout
            if self.input_layer:
                return None
            return dout @ self.params['weight']
        '''}, 'linear_dbias', 'sum'),
    student('student_linear_forward_bias_as_column', 'modules.py',
            {('LinearModule', 'forward'): '''
        def forward(self, x):
            self.cache = x
            W, b = self.params['weight'], self.params['bias']
            return (W @ x.T).T + b.reshape(-1, 1)
        '''}, 'linear_forward', 'bias'),
    student('student_linear_grads_accumulate', 'modules.py', {('LinearModule', 'backward'): '''
        def backward(self, dout):
            x = self.cache
            self.grads['weight'] += dout.T @ x
            self.grads['bias'] += dout.sum(axis=0)
            if self.input_layer:
                return None
            return dout @ self.params['weight']
        '''}, 'training_numpy', 'accumulate'),
    student('student_linear_keeps_x_clear_cache_forgets_it', 'modules.py',
            {('LinearModule', 'forward'): LINEAR_FORWARD_CACHING_X,
             ('LinearModule', 'backward'): LINEAR_BACKWARD_FROM_X}, 'clear_cache', 'self.x'),
    student('student_init_bias_column', 'modules.py', {('LinearModule', '__init__'): '''
        def __init__(self, in_features, out_features, input_layer=False,
                     dtype=np.float64, rng=None):
            super().__init__()
            self.in_features, self.out_features = in_features, out_features
            self.input_layer = input_layer
            scale = np.sqrt(1 / in_features) if input_layer else np.sqrt(2 / in_features)
            self.params = {'weight': np.random.randn(out_features, in_features) * scale,
                           'bias': np.zeros((out_features, 1))}
            self.grads = {'weight': np.zeros((out_features, in_features)),
                          'bias': np.zeros((out_features, 1))}
        '''}, 'linear_shapes', 'bias'),
    # ELUModule
    student('student_elu_forward_minus_one_forgotten', 'modules.py', {('ELUModule', 'forward'): '''
        def forward(self, x):
            out = x.copy()
            neg = x <= 0
            out[neg] = self.alpha * np.exp(x[neg])
            self.cache = (~neg, out)
            return out
        '''}, 'elu_forward', 'where x <= 0'),
    student('student_elu_backward_dout_only_negative', 'modules.py',
            {('ELUModule', 'forward'): '''
        def forward(self, x):
            self.cache = x
            return np.where(x > 0, x, self.alpha * (np.exp(x) - 1))
        ''', ('ELUModule', 'backward'): '''
        def backward(self, dout):
            x = self.cache
            dx = np.where(x > 0, 1, self.alpha * np.exp(x) * dout)
            return dx
        '''}, 'elu_backward', 'where x > 0'),
    student('student_elu_backward_exp_of_output', 'modules.py',
            {('ELUModule', 'forward'): '''
        def forward(self, x):
            out = np.where(x > 0, x, self.alpha * (np.exp(x) - 1))
            self.cache = out
            return out
        ''', ('ELUModule', 'backward'): '''
        def backward(self, dout):
            out = self.cache
            grad = np.ones_like(out)
            grad[out <= 0] = self.alpha * np.exp(out[out <= 0])
            return dout * grad
        '''}, 'elu_backward', 'from the output'),
    student('student_elu_backward_relu_derivative', 'modules.py',
            {('ELUModule', 'forward'): '''
        def forward(self, x):
            self.cache = x
            return np.where(x > 0, x, self.alpha * np.expm1(x))
        ''', ('ELUModule', 'backward'): '''
        def backward(self, dout):
            x = self.cache
            return dout * (x > 0)
        '''}, 'elu_backward', '0 for x <= 0'),
    student('student_elu_backward_loop_alpha_one', 'modules.py', {('ELUModule', 'backward'): '''
        def backward(self, dout):
            positive, out = self.cache
            dx = np.empty_like(dout)
            for i in range(dout.shape[0]):
                for j in range(dout.shape[1]):
                    if positive[i, j]:
                        dx[i, j] = dout[i, j]
                    else:
                        dx[i, j] = dout[i, j] * (out[i, j] + 1)
            return dx
        '''}, 'elu_backward', 'alpha'),
    # SoftMaxModule
    student('student_softmax_max_over_batch', 'modules.py', {('SoftMaxModule', 'forward'): '''
        def forward(self, x):
            x_max = np.max(x)
            exp_x = np.exp(x - x_max)
            out = exp_x / np.sum(exp_x, axis=1, keepdims=True)
            self.cache = out
            return out
        '''}, 'softmax_stable', 'each row'),
    student('student_softmax_loop_sum_over_everything', 'modules.py',
            {('SoftMaxModule', 'forward'): '''
        def forward(self, x):
            out = np.zeros_like(x)
            exps = np.exp(x - x.max(axis=1, keepdims=True))
            total = np.sum(exps)
            for n in range(x.shape[0]):
                out[n] = exps[n] / total
            self.cache = out
            return out
        '''}, 'softmax_forward', 'rows'),
    student('student_softmax_backward_inner_product', 'modules.py',
            {('SoftMaxModule', 'backward'): '''
        def backward(self, dout):
            s_all = self.cache
            dx = np.zeros_like(dout)
            for n in range(dout.shape[0]):
                s = s_all[n]
                jacobian = np.diag(s) - s @ s.T
                dx[n] = dout[n] @ jacobian
            return dx
        '''}, 'softmax_backward', 'outer product'),
    student('student_softmax_backward_batch_jacobian', 'modules.py',
            {('SoftMaxModule', 'backward'): '''
        def backward(self, dout):
            y = self.cache
            jacobian = np.diag(y.sum(axis=0)) - y.T @ y
            return dout @ jacobian
        '''}, 'softmax_backward', 'each sample'),
    student('student_softmax_backward_uses_logits', 'modules.py',
            {('SoftMaxModule', 'forward'): '''
        def forward(self, x):
            self.cache = x
            e = np.exp(x - np.max(x, axis=1, keepdims=True))
            return e / e.sum(axis=1, keepdims=True)
        ''', ('SoftMaxModule', 'backward'): '''
        def backward(self, dout):
            s = self.cache
            return s * (dout - np.sum(dout * s, axis=1, keepdims=True))
        '''}, 'softmax_backward', 'input instead of the output'),
    student('student_softmax_backward_einsum_sum_over_batch', 'modules.py',
            {('SoftMaxModule', 'backward'): '''
        def backward(self, dout):
            s = self.cache
            inner = np.einsum('nc,nc->c', dout, s)
            return s * (dout - inner)
        '''}, 'softmax_backward', 'rows'),
    student('student_softmax_backward_first_forward', 'modules.py',
            {('SoftMaxModule', 'forward'): '''
        def forward(self, x):
            if not hasattr(self, 'outputs'):
                self.outputs = []
            shifted = x - np.max(x, axis=1, keepdims=True)
            out = np.exp(shifted) / np.sum(np.exp(shifted), axis=1, keepdims=True)
            self.outputs.append(out)
            return out
        ''', ('SoftMaxModule', 'backward'): '''
        def backward(self, dout):
            s = self.outputs[0]
            return s * (dout - np.sum(dout * s, axis=1, keepdims=True))
        '''}, 'latest_cache', 'latest'),
    # CrossEntropyModule
    student('student_ce_one_hot_width_from_labels', 'modules.py',
            {('CrossEntropyModule', 'forward'): '''
        def _one_hot(self, y):
            if y.ndim == 2:
                return y
            return np.eye(np.max(y) + 1)[y]

        def forward(self, x, y):
            t = self._one_hot(y)
            return -np.sum(t * np.log(x)) / x.shape[0]
        ''', ('CrossEntropyModule', 'backward'): '''
        def backward(self, x, y):
            t = self._one_hot(y)
            return -t / x / x.shape[0]
        '''}, 'ce_absent_class', 'highest class'),
    student('student_ce_fancy_index_every_label', 'modules.py',
            {('CrossEntropyModule', 'forward'): '''
        def forward(self, x, y):
            N = x.shape[0]
            if y.ndim == 2:
                y = np.argmax(y, axis=1)
            log_likelihood = -np.log(x[:, y])
            return np.sum(log_likelihood) / N
        '''}, 'ce_forward', 'label entries'),
    student('student_ce_mean_over_classes', 'modules.py',
            {('CrossEntropyModule', 'forward'): '''
        def forward(self, x, y):
            if y.ndim == 1:
                y = np.eye(x.shape[1])[y]
            per_class = -np.sum(y * np.log(x), axis=0)
            return np.mean(per_class)
        '''}, 'ce_forward', 'classes'),
    student('student_ce_one_hot_whole_columns', 'modules.py',
            {('CrossEntropyModule', 'forward'): '''
        def forward(self, x, y):
            targets = np.zeros_like(x)
            if y.ndim == 1:
                targets[:, y] = 1
            else:
                targets = y
            return -np.sum(targets * np.log(x)) / len(x)
        '''}, 'ce_forward', 'one-hot'),
    student('student_ce_backward_every_entry', 'modules.py',
            {('CrossEntropyModule', 'backward'): '''
        def backward(self, x, y):
            N = x.shape[0]
            dx = -1 / x
            return dx / N
        '''}, 'ce_backward', 'label entries'),
    student('student_ce_backward_loop_sum_not_mean', 'modules.py',
            {('CrossEntropyModule', 'backward'): '''
        def backward(self, x, y):
            labels = np.argmax(y, axis=1) if y.ndim == 2 else y
            dx = np.zeros_like(x)
            for n, label in enumerate(labels):
                dx[n, label] = -1.0 / x[n, label]
            return dx
        '''}, 'ce_backward', 'the 1/N of the mean over the batch is missing'),
    student('student_ce_backward_fused_by_index', 'modules.py',
            {('CrossEntropyModule', 'backward'): '''
        def backward(self, x, y):
            N = x.shape[0]
            grad = x.copy()
            grad[np.arange(N), y] -= 1
            return grad / N
        '''}, 'ce_backward', 'logits'),
    student('student_ce_forward_sum_of_picked_logs', 'modules.py',
            {('CrossEntropyModule', 'forward'): '''
        def forward(self, x, y):
            picked = x[range(len(y)), y]
            return np.sum(-np.log(picked))
        '''}, 'ce_forward', 'the 1/N of the mean over the batch is missing'),
    # the NumPy MLP
    student('student_mlp_numpy_clear_cache_own_only', 'mlp_numpy.py',
            {('MLP', 'forward'): '''
        def forward(self, x):
            self.input = self._input_batch(x)
            out = self.input
            for module in self.modules:
                out = module.forward(out)
            self.output = out
            return out
        ''', ('MLP', 'clear_cache'): '''
        def clear_cache(self):
            self.input = None
            self.output = None
        '''}, 'clear_cache', 'layers'),
    student('student_mlp_numpy_activation_first', 'mlp_numpy.py',
            {('MLP', '__init__'): mlp_numpy_init('''
        from modules import ELUModule
        self.modules = []
        sizes = [n_inputs] + list(n_hidden)
        for i in range(len(n_hidden)):
            self.modules.append(ELUModule())
            self.modules.append(LinearModule(sizes[i], sizes[i + 1], input_layer=(i == 0)))
        self.modules.append(LinearModule(sizes[-1], n_classes, input_layer=not n_hidden))
        ''')}, 'mlp_numpy_layers', 'order'),
    student('student_mlp_numpy_activation_after_every_linear', 'mlp_numpy.py',
            {('MLP', '__init__'): mlp_numpy_init('''
        from modules import ELUModule
        self.modules = []
        dims = [n_inputs, *n_hidden, n_classes]
        for i in range(len(dims) - 1):
            self.modules.append(LinearModule(dims[i], dims[i + 1], input_layer=(i == 0)))
            self.modules.append(ELUModule())
        ''')}, 'mlp_numpy_layers', 'after the output layer'),
    student('student_mlp_numpy_crashes_without_hidden', 'mlp_numpy.py',
            {('MLP', '__init__'): mlp_numpy_init('''
        from modules import ELUModule
        self.modules = [LinearModule(n_inputs, n_hidden[0], input_layer=True), ELUModule()]
        for fan_in, fan_out in zip(n_hidden[:-1], n_hidden[1:]):
            self.modules += [LinearModule(fan_in, fan_out), ELUModule()]
        self.modules.append(LinearModule(n_hidden[-1], n_classes))
        ''')}, 'mlp_numpy_layers', 'n_hidden=[]'),
    student('student_mlp_numpy_last_hidden_without_activation', 'mlp_numpy.py',
            {('MLP', '__init__'): mlp_numpy_init('''
        from modules import ELUModule
        self.modules = []
        in_size = n_inputs
        for i, size in enumerate(n_hidden):
            self.modules.append(LinearModule(in_size, size, input_layer=(i == 0)))
            if i < len(n_hidden) - 1:
                self.modules.append(ELUModule())
            in_size = size
        self.modules.append(LinearModule(in_size, n_classes, input_layer=not n_hidden))
        ''')}, 'mlp_numpy_layers', 'no activation'),
    student('student_mlp_numpy_no_input_layer_flag', 'mlp_numpy.py',
            {('MLP', '__init__'): mlp_numpy_init('''
        from modules import ELUModule
        self.modules = []
        previous = n_inputs
        for units in n_hidden:
            self.modules.append(LinearModule(previous, units))
            self.modules.append(ELUModule())
            previous = units
        self.modules.append(LinearModule(previous, n_classes))
        ''')}, 'mlp_numpy_layers', 'input_layer'),
    student('student_mlp_numpy_forward_skips_output_layer', 'mlp_numpy.py',
            {('MLP', 'forward'): '''
        def forward(self, x):
            out = self._input_batch(x)
            for layer in self.modules[:-1]:
                out = layer.forward(out)
            return out
        '''}, 'mlp_numpy_forward', 'output layer'),
    student('student_mlp_numpy_forward_ends_in_softmax', 'mlp_numpy.py',
            {('MLP', 'forward'): '''
        def forward(self, x):
            from modules import SoftMaxModule
            h = self._input_batch(x)
            for m in self.modules:
                h = m.forward(h)
            self.softmax = SoftMaxModule()
            return self.softmax.forward(h)
        '''}, 'mlp_numpy_forward', 'softmax'),
    student('student_mlp_numpy_one_shared_activation', 'mlp_numpy.py',
            {('MLP', '__init__'): mlp_numpy_init('''
        from modules import ELUModule
        elu = ELUModule()
        widths = [n_inputs] + list(n_hidden) + [n_classes]
        self.modules = []
        for i in range(len(widths) - 1):
            self.modules.append(LinearModule(widths[i], widths[i + 1], input_layer=i == 0))
            if i < len(widths) - 2:
                self.modules.append(elu)
        ''')}, 'mlp_numpy_backward', 'shared'),
    student('student_mlp_numpy_backward_forward_order', 'mlp_numpy.py',
            {('MLP', 'backward'): '''
        def backward(self, dout):
            for module in self.modules:
                dout = module.backward(dout)
        '''}, 'mlp_numpy_backward', 'reverse'),
    student('student_mlp_numpy_backward_skips_activations', 'mlp_numpy.py',
            {('MLP', 'backward'): '''
        def backward(self, dout):
            linears = [m for m in self.modules if isinstance(m, LinearModule)]
            for layer in reversed(linears):
                dout = layer.backward(dout)
            for m in self.modules:
                m.clear_cache()
        '''}, 'mlp_numpy_backward', 'activation'),
    # the PyTorch MLP
    student('student_mlp_pytorch_default_init', 'mlp_pytorch.py', {('MLP', '__init__'): mlp_torch_init('''
        sizes = [n_inputs] + list(n_hidden) + [n_classes]
        layers = []
        for i in range(len(sizes) - 1):
            layers.append(nn.Linear(sizes[i], sizes[i + 1]))
            if i < len(sizes) - 2:
                if use_batch_norm:
                    layers.append(nn.BatchNorm1d(sizes[i + 1]))
                layers.append(nn.ELU())
        self.layers = nn.Sequential(*layers)
        ''')}, 'mlp_pytorch_init', 'Kaiming'),
    student('student_mlp_pytorch_activation_never_applied', 'mlp_pytorch.py', {
        ('MLP', '__init__'): mlp_torch_init('''
        sizes = [n_inputs, *n_hidden, n_classes]
        self.linears = nn.ModuleList()
        self.norms = nn.ModuleList()
        for i in range(len(sizes) - 1):
            linear = nn.Linear(sizes[i], sizes[i + 1])
            nn.init.kaiming_normal_(linear.weight)
            nn.init.zeros_(linear.bias)
            self.linears.append(linear)
            if i < len(sizes) - 2 and use_batch_norm:
                self.norms.append(nn.BatchNorm1d(sizes[i + 1]))
        self.elu = nn.ELU()
        '''),
        ('MLP', 'forward'): '''
        def forward(self, x):
            x = x.reshape(x.shape[0], -1)
            for i, linear in enumerate(self.linears[:-1]):
                x = linear(x)
                if self.use_batch_norm:
                    x = self.norms[i](x)
            return self.linears[-1](x)
        ''', ('MLP', 'linear_layers'): '''
        def linear_layers(self):
            return list(self.linears)
        '''}, 'mlp_pytorch_architecture', 'no activation', imports=[TORCH_IMPORTS]),
    student('student_mlp_pytorch_batch_norm_after_functional_elu', 'mlp_pytorch.py', {
        ('MLP', '__init__'): mlp_torch_init('''
        sizes = [n_inputs, *n_hidden, n_classes]
        self.linears = nn.ModuleList()
        self.bns = nn.ModuleList()
        for i in range(len(sizes) - 1):
            linear = nn.Linear(sizes[i], sizes[i + 1])
            nn.init.kaiming_normal_(linear.weight, nonlinearity='relu')
            nn.init.zeros_(linear.bias)
            self.linears.append(linear)
            if use_batch_norm and i < len(sizes) - 2:
                self.bns.append(nn.BatchNorm1d(sizes[i + 1]))
        '''),
        ('MLP', 'forward'): '''
        def forward(self, x):
            x = torch.flatten(x, 1)
            for i, linear in enumerate(self.linears[:-1]):
                x = F.elu(linear(x))
                if self.use_batch_norm:
                    x = self.bns[i](x)
            return self.linears[-1](x)
        ''', ('MLP', 'linear_layers'): '''
        def linear_layers(self):
            return list(self.linears)
        '''}, 'mlp_pytorch_architecture', 'after', imports=[TORCH_IMPORTS]),
    student('student_mlp_pytorch_functional_softmax', 'mlp_pytorch.py', {
        ('MLP', 'forward'): '''
        def forward(self, x):
            x = x.view(x.size(0), -1)
            logits = self.layers(x)
            return F.softmax(logits, dim=1)
        '''}, 'mlp_pytorch_forward', 'softmax', imports=[TORCH_IMPORTS]),
    student('student_mlp_pytorch_missing_output_layer', 'mlp_pytorch.py', {('MLP', '__init__'): mlp_torch_init('''
        layers = []
        in_dim = n_inputs
        for i, h in enumerate(n_hidden):
            linear = nn.Linear(in_dim, h)
            nn.init.kaiming_normal_(linear.weight)
            layers.append(linear)
            if use_batch_norm:
                layers.append(nn.BatchNorm1d(h))
            layers.append(nn.ELU())
            in_dim = h
        if not n_hidden:
            layers.append(nn.Linear(n_inputs, n_classes))
        self.layers = nn.Sequential(*layers)
        ''')}, 'mlp_pytorch_architecture', 'output layer'),
]
"""Mistakes in students' own styles, each in otherwise correct code."""

CATALOGUE = MUTANTS + STUDENT_MUTANTS
"""Every mutant: the reference edits and the students' styles."""


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
