"""Correct solutions in unusual styles: the grader must give each one every point.

Each variant is this repository's reference with whole methods replaced by another correct
way to write them, as students write them: loops over the batch, np.einsum, per-sample
Jacobians, helper methods, caches of their own (with a ``clear_cache`` that drops them),
a bias of shape (1, M), separate lists of layers, functional activations in PyTorch. A
grader that takes a point off any of them mistakes a style for a mistake.
"""
from dataclasses import dataclass

from grading_mutants import TORCH_IMPORTS, mlp_numpy_init, mlp_torch_init, rewrite


@dataclass(frozen=True)
class Variant:
    """One correct rewrite: which file, the exact replacements, and what makes it unusual."""
    name: str
    file: str
    replacements: tuple
    style: str
    known_issue: str = ''


def variant(name, file, methods, style, imports=(), known_issue=''):
    """A correct rewrite; ``known_issue`` says why today's grader still takes points off it."""
    replacements = [rewrite(file, owner, method, code) for (owner, method), code in methods.items()]
    return Variant(name, file, (*imports, *replacements), style, known_issue)


VARIANTS = [
    variant('linear_loops_over_the_batch', 'modules.py', {
        ('LinearModule', 'forward'): '''
        def forward(self, x):
            self.x = x
            W, b = self.params['weight'], self.params['bias']
            out = np.empty((x.shape[0], W.shape[0]))
            for n in range(x.shape[0]):
                for m in range(W.shape[0]):
                    out[n, m] = np.dot(W[m], x[n]) + b[m]
            return out

        def clear_cache(self):
            self.x = None
        ''',
        ('LinearModule', 'backward'): '''
        def backward(self, dout):
            x = self.x
            dW = np.zeros(self.params['weight'].shape)
            db = np.zeros(self.params['bias'].shape)
            for n in range(x.shape[0]):
                dW += np.outer(dout[n], x[n])
                db += dout[n]
            self.grads['weight'], self.grads['bias'] = dW, db
            if self.input_layer:
                return None
            dx = np.zeros_like(x)
            for n in range(x.shape[0]):
                dx[n] = self.params['weight'].T @ dout[n]
            return dx
        '''}, 'loops over samples and outputs; its own cache self.x with a clear_cache'),
    variant('linear_einsum_bias_row', 'modules.py', {
        ('LinearModule', '__init__'): '''
        def __init__(self, in_features, out_features, input_layer=False,
                     dtype=np.float64, rng=None):
            super().__init__()
            self.in_features, self.out_features = in_features, out_features
            self.input_layer = input_layer
            std = np.sqrt((1.0 if input_layer else 2.0) / in_features)
            self.params = {'weight': np.random.normal(0.0, std, (out_features, in_features)),
                           'bias': np.zeros((1, out_features))}
            self.grads = {'weight': np.zeros((out_features, in_features)),
                          'bias': np.zeros((1, out_features))}
        ''',
        ('LinearModule', 'forward'): '''
        def forward(self, x):
            self.cache = x
            return np.einsum('nd,md->nm', x, self.params['weight']) + self.params['bias']
        ''',
        ('LinearModule', 'backward'): '''
        def backward(self, dout):
            x = self.cache
            self.grads['weight'] = np.einsum('nm,nd->md', dout, x)
            self.grads['bias'] = np.sum(dout, axis=0, keepdims=True)
            return np.einsum('nm,md->nd', dout, self.params['weight'])
        '''}, 'np.einsum throughout; a bias of shape (1, M); dx even for the input layer'),
    variant('linear_weight_stored_in_by_out', 'modules.py', {
        ('LinearModule', '__init__'): '''
        def __init__(self, in_features, out_features, input_layer=False,
                     dtype=np.float64, rng=None):
            super().__init__()
            self.in_features, self.out_features = in_features, out_features
            self.input_layer = input_layer
            fan_in = in_features
            std = np.sqrt(1 / fan_in) if input_layer else np.sqrt(2 / fan_in)
            self.params = {'weight': np.random.normal(0, std, (in_features, out_features)),
                           'bias': np.zeros(out_features)}
            self.grads = {'weight': np.zeros((in_features, out_features)),
                          'bias': np.zeros(out_features)}
        ''',
        ('LinearModule', 'forward'): '''
        def forward(self, x):
            self.cache = x
            return x @ self.params['weight'] + self.params['bias']
        ''',
        ('LinearModule', 'backward'): '''
        def backward(self, dout):
            x = self.cache
            self.grads['weight'] = x.T @ dout
            self.grads['bias'] = dout.sum(axis=0)
            return dout @ self.params['weight'].T
        '''}, 'W stored as (in_features, out_features) and used so throughout: out = x W + b',
        known_issue='the template names no shape for W and the official test passes, but '
        'round 1 takes linear_shapes, linear_dweight and the three NumPy MLP items off (10 '
        'points), as it does for 9 of 39 real solutions; the judge decides: accept the '
        'convention, or keep linear_shapes alone and drop this mark'),
    variant('elu_caches_its_derivative', 'modules.py', {
        ('ELUModule', 'forward'): '''
        def forward(self, x):
            negative = x <= 0
            exp_neg = np.exp(np.where(negative, x, 0.0))
            out = np.where(negative, self.alpha * (exp_neg - 1), x)
            self.local_grad = np.where(negative, self.alpha * exp_neg, 1.0)
            return out

        def clear_cache(self):
            self.local_grad = None
        ''',
        ('ELUModule', 'backward'): '''
        def backward(self, dout):
            return dout * self.local_grad
        '''}, 'caches dout-free local derivative in forward; masks instead of np.where on x'),
    variant('elu_row_loops', 'modules.py', {
        ('ELUModule', 'forward'): '''
        def forward(self, x):
            self.cache = x
            out = np.zeros_like(x)
            for i, row in enumerate(x):
                out[i] = np.where(row > 0, row, self.alpha * (np.exp(np.minimum(row, 0)) - 1))
            return out
        ''',
        ('ELUModule', 'backward'): '''
        def backward(self, dout):
            x = self.cache
            dx = np.zeros_like(dout)
            for i in range(x.shape[0]):
                slope = np.ones_like(x[i])
                slope[x[i] <= 0] = self.alpha * np.exp(x[i][x[i] <= 0])
                dx[i] = dout[i] * slope
            return dx
        '''}, 'a loop over the rows, a slope array filled by a mask'),
    variant('softmax_per_sample_jacobian', 'modules.py', {
        ('SoftMaxModule', 'forward'): '''
        def forward(self, x):
            out = np.zeros_like(x)
            for n, row in enumerate(x):
                e = np.exp(row - row.max())
                out[n] = e / e.sum()
            self.cache = out
            return out
        ''',
        ('SoftMaxModule', 'backward'): '''
        def backward(self, dout):
            s = self.cache
            dx = np.zeros_like(dout)
            for n in range(s.shape[0]):
                jacobian = np.diag(s[n]) - np.outer(s[n], s[n])
                dx[n] = jacobian.T @ dout[n]
            return dx
        '''}, 'a row at a time; the full Jacobian diag(s) - s s^T of each sample'),
    variant('softmax_einsum_jacobian', 'modules.py', {
        ('SoftMaxModule', 'backward'): '''
        def backward(self, dout):
            y = self.cache
            n_classes = y.shape[1]
            outer = np.einsum('ij,ik->ijk', y, y)
            diagonal = np.einsum('ij,jk->ijk', y, np.eye(n_classes))
            return np.einsum('ijk,ik->ij', diagonal - outer, dout)
        '''}, 'the batch of Jacobians as one (N, C, C) tensor with np.einsum'),
    variant('cross_entropy_picks_then_logs', 'modules.py', {
        ('CrossEntropyModule', 'forward'): '''
        def _labels(self, x, y):
            return np.argmax(y, axis=1) if np.ndim(y) == 2 else np.asarray(y, dtype=int)

        def forward(self, x, y):
            labels = self._labels(x, y)
            picked = np.clip(x[np.arange(len(labels)), labels], 1e-12, 1.0)
            return float(-np.mean(np.log(picked)))
        ''',
        ('CrossEntropyModule', 'backward'): '''
        def backward(self, x, y):
            labels = self._labels(x, y)
            dx = np.zeros_like(x)
            for n, label in enumerate(labels):
                dx[n, label] = -1.0 / (len(labels) * x[n, label])
            return dx
        '''}, 'indexes the labels instead of a one-hot product; a helper method; a loop'),
    variant('cross_entropy_log_sum', 'modules.py', {
        ('CrossEntropyModule', 'forward'): '''
        def forward(self, x, y):
            targets = y if y.ndim == 2 else np.eye(x.shape[1])[y]
            per_sample = -np.log(np.sum(targets * x, axis=1))
            return per_sample.mean()
        ''',
        ('CrossEntropyModule', 'backward'): '''
        def backward(self, x, y):
            targets = y if y.ndim == 2 else np.eye(x.shape[1])[y]
            return -(targets / x) / x.shape[0]
        '''}, 'log of the summed one-hot product, per sample, then a mean'),
    variant('mlp_numpy_separate_lists', 'mlp_numpy.py', {
        ('MLP', '__init__'): mlp_numpy_init('''
        self.linears, self.activations = self._build(n_inputs, list(n_hidden), n_classes)
        self.modules = [layer for pair in zip(self.linears, self.activations)
                        for layer in pair] + [self.linears[-1]]
        '''),
        ('MLP', 'forward'): '''
        @staticmethod
        def _build(n_inputs, n_hidden, n_classes):
            from modules import ELUModule
            sizes = [n_inputs] + n_hidden + [n_classes]
            linears = [LinearModule(sizes[i], sizes[i + 1], input_layer=(i == 0))
                       for i in range(len(sizes) - 1)]
            return linears, [ELUModule() for _ in n_hidden]

        def forward(self, x):
            h = np.asarray(x, dtype=float).reshape(len(x), -1)
            for linear, activation in zip(self.linears, self.activations):
                h = activation.forward(linear.forward(h))
            return self.linears[-1].forward(h)
        ''',
        ('MLP', 'backward'): '''
        def backward(self, dout):
            dout = self.linears[-1].backward(dout)
            for linear, activation in reversed(list(zip(self.linears, self.activations))):
                dout = linear.backward(activation.backward(dout))
        ''',
        ('MLP', 'clear_cache'): '''
        def clear_cache(self):
            for layer in self.linears + self.activations:
                layer.clear_cache()
        '''}, 'linear layers and activations in two lists; a static helper builds them'),
    variant('mlp_pytorch_module_list_functional_elu', 'mlp_pytorch.py', {
        ('MLP', '__init__'): mlp_torch_init('''
        sizes = [n_inputs, *n_hidden, n_classes]
        self.linears = nn.ModuleList()
        self.norms = nn.ModuleList()
        for i in range(len(sizes) - 1):
            linear = nn.Linear(sizes[i], sizes[i + 1])
            nn.init.kaiming_normal_(linear.weight, nonlinearity='relu' if i else 'linear')
            nn.init.zeros_(linear.bias)
            self.linears.append(linear)
            if use_batch_norm and i < len(sizes) - 2:
                self.norms.append(nn.BatchNorm1d(sizes[i + 1]))
        '''),
        ('MLP', 'forward'): '''
        def forward(self, x):
            x = torch.flatten(x, start_dim=1)
            for i, linear in enumerate(self.linears[:-1]):
                x = linear(x)
                if self.use_batch_norm:
                    x = self.norms[i](x)
                x = F.elu(x)
            return self.linears[-1](x)
        ''',
        ('MLP', 'linear_layers'): '''
        def linear_layers(self):
            return list(self.linears)
        '''}, 'nn.ModuleList, batch norm before a functional ELU, kaiming_normal_',
        imports=[TORCH_IMPORTS]),
    variant('mlp_pytorch_kaiming_uniform_every_layer', 'mlp_pytorch.py', {
        ('MLP', '__init__'): mlp_torch_init('''
        modules = []
        fan_in = n_inputs
        for width in n_hidden:
            modules.append(nn.Linear(fan_in, width))
            if use_batch_norm:
                modules.append(nn.BatchNorm1d(width))
            modules.append(nn.ELU())
            fan_in = width
        modules.append(nn.Linear(fan_in, n_classes))
        for module in modules:
            if isinstance(module, nn.Linear):
                nn.init.kaiming_uniform_(module.weight, nonlinearity='relu')
        self.layers = nn.Sequential(*modules)
        ''')}, "kaiming_uniform_ with ReLU's gain on every layer, the first included; "
               "PyTorch's own bias initialisation (the template asks Kaiming of the weights "
               "only), as real submissions do"),
]
"""At least six correct solutions, none written like ours."""
