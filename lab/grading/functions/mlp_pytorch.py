"""The PyTorch MLP: its architecture (asked in the order forward calls the layers, and by
its values), its forward pass against the NumPy reference, and its initialisation."""
import numpy as np

from lab.grading import spec
from lab.grading.functions import mlp_numpy
from lab.grading.judge import CallFailed, Item, PASS, Verdict, close, failure_verdict, show

FILES = ('mlp_pytorch',)
DOC = 'the-whole-network'
EPS = 1e-5


def inputs(year):
    return mlp_numpy.inputs(year)


def batch_norm(x, training):
    if training:
        return (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + EPS)
    return x / np.sqrt(1 + EPS)


def reference(q, use_batch_norm, training, order='bn-elu', activation=True, last=False,
              softmax=False):
    """Logits of Linear, [BatchNorm1d], ELU (alpha 1), ..., Linear with the known weights.

    ``order`` 'elu-bn' puts the batch norm after the activation; ``activation`` False
    leaves the activations out; ``last`` adds one after the output layer.
    """
    out, params = q['x'], q['two']
    for index, (weight, bias) in enumerate(params):
        out = out @ weight.T + bias
        hidden = index < len(params) - 1
        if hidden and use_batch_norm and order == 'bn-elu':
            out = batch_norm(out, training)
        if activation and (hidden or last):
            out = np.where(out > 0, out, np.expm1(np.minimum(out, 0)))
        if hidden and use_batch_norm and order == 'elu-bn':
            out = batch_norm(out, training)
    if softmax:
        exp = np.exp(out - out.max(axis=1, keepdims=True))
        out = exp / exp.sum(axis=1, keepdims=True)
    return out


def ask(student, q):
    """With and without batch norm: the layers, and the values with the known weights."""
    found = {}
    for use_batch_norm in (False, True):
        try:
            student.seed('mlp_pytorch', 0)
            model = student.new('mlp_pytorch', 'MLP', spec.MLP_SHAPE['n_inputs'],
                                [spec.MLP_SHAPE['k']] * 2, spec.MLP_SHAPE['n_classes'],
                                use_batch_norm=use_batch_norm)
            layers = student.torch_layers(model, q['x'])
        except CallFailed as failed:
            found[use_batch_norm] = {'failed': failed}
            continue
        entry = found[use_batch_norm] = {'layers': layers}
        if len(layers['linears']) != 3:
            continue
        try:
            for handle, (weight, bias) in zip(layers['linears'], q['two']):
                student.set(handle, 'weight', value=weight)
                student.set(handle, 'bias', value=bias)
            entry['train'] = student.torch_forward(model, q['x'], True)
            if not use_batch_norm:
                entry['eval'] = student.torch_forward(model, q['x'], False)
        except CallFailed as failed:
            entry['forward_failed'] = failed
    return found


def described(layers):
    out = []
    for layer in layers:
        if not isinstance(layer, dict):
            continue
        name, shape = str(layer.get('kind')), layer.get('shape')
        if name in ('Flatten', 'Identity', 'Dropout'):
            continue
        out.append(f'{name} {shape[0]}x{shape[1]}' if name == 'Linear' and shape
                   else f'{name} {shape[0]}' if name == 'BatchNorm1d' and shape else name)
    return out


def expected(use_batch_norm):
    layers = []
    for index, (fan_in, fan_out) in enumerate(zip([5, 4, 4], [4, 4, 3])):
        layers.append(f'Linear {fan_out}x{fan_in}')
        if index < 2:
            layers += ([f'BatchNorm1d {fan_out}'] if use_batch_norm else []) + ['ELU']
    return layers


def check_architecture(student, q, item):
    found = student.ask(item, q)
    for use_batch_norm in (False, True):
        function = f'MLP.__init__ (mlp_pytorch) with use_batch_norm={use_batch_norm}'
        entry = found[use_batch_norm]
        if 'failed' in entry:
            return failure_verdict(function, entry['failed'].failure)
        layers = described(entry['layers'].get('called') or entry['layers'].get('registered'))
        right = expected(use_batch_norm)
        evidence = f'calls [{", ".join(layers)}], expected [{", ".join(right)}]'
        functional = not any(name not in ('BatchNorm1d',) and not name.startswith('Linear')
                             and not name.startswith('BatchNorm1d') for name in layers)
        if functional:  # activations applied as functions (F.elu): judged by the values
            right = [name for name in right if name != 'ELU']
        if layers != right:
            return Verdict(False, f'{function} {architecture_words(layers, right, use_batch_norm)}',
                           'wrong layers', evidence, DOC)
        if functional:
            verdict = values_verdict(function, entry, q, use_batch_norm)
            if verdict is not None:
                return verdict
    return PASS


def architecture_words(layers, right, use_batch_norm):
    count = sum(name.startswith('Linear') for name in layers)
    if use_batch_norm and not any(name.startswith('BatchNorm1d') for name in layers):
        return 'adds no BatchNorm1d layers'
    if not use_batch_norm and any(name.startswith('BatchNorm1d') for name in layers):
        return 'adds BatchNorm1d layers although use_batch_norm is False'
    if count != 3:
        return f'builds {count} nn.Linear layers, expected 3 (the output layer too)'
    if layers[:-1] == right and layers[-1].startswith('BatchNorm1d'):
        return 'adds a BatchNorm1d after the output layer (the logits need none)'
    if layers and layers[-1] in ('ELU', 'ReLU'):
        return 'puts an activation after the output layer (the logits need none)'
    if layers and layers[-1] in ('Softmax', 'LogSoftmax'):
        return 'ends in a softmax: the network returns logits, which nn.CrossEntropyLoss expects'
    if sorted(layers) == sorted(right):
        return ('puts its layers in the wrong order (BatchNorm1d goes between each hidden '
                'Linear and its ELU)')
    if 'ELU' not in layers and 'ELU' in right:
        return 'applies no activation between the linear layers'
    return 'builds the wrong layers'


def values_verdict(function, entry, q, use_batch_norm):
    """For activations applied as functions: the values must be those of the right order."""
    if 'train' not in entry:
        return None
    returned = entry['train']
    if close(returned, reference(q, use_batch_norm, True), rtol=1e-4, atol=1e-6):
        return None
    evidence = f"its forward with known weights returns {show(returned)}"
    if close(returned, reference(q, use_batch_norm, True, activation=False), 1e-4, 1e-6):
        return Verdict(False, f'{function} applies no activation between the linear layers',
                       'no activation', evidence, DOC)
    if use_batch_norm and close(returned, reference(q, True, True, order='elu-bn'), 1e-4, 1e-6):
        return Verdict(False, f'{function} applies the batch norm after the ELU; BatchNorm1d '
                              f'goes between each hidden Linear and its ELU',
                       'batch norm after the activation', evidence, DOC)
    return None


def check_forward(student, q, item):
    found = student.ask(item, q)
    for use_batch_norm, mode in ((False, 'eval'), (False, 'train'), (True, 'train')):
        function = (f'MLP.forward (mlp_pytorch) with use_batch_norm={use_batch_norm} in '
                    f'{"training" if mode == "train" else "evaluation"} mode')
        entry = found[use_batch_norm]
        for key in ('failed', 'forward_failed'):
            if key in entry:
                return failure_verdict(function, entry[key].failure)
        if mode not in entry:
            return Verdict(False, f'{function}: not graded: it does not call 3 nn.Linear '
                                  f'layers (see the architecture item)', 'wrong layers', '', DOC)
        returned, right = entry[mode], reference(q, use_batch_norm, mode == 'train')
        if close(returned, right, rtol=1e-4, atol=1e-6):
            continue
        evidence = (f"for x = {show(q['x'])} with the NumPy reference's weights copied in: "
                    f"expected {show(right)}, returned {show(returned)}")
        alternatives = [(dict(softmax=True), 'returns probabilities (a softmax at the end); '
                         'it must return logits', 'a softmax at the end'),
                        (dict(activation=False), 'applies no activation between the linear '
                         'layers', 'no activation'),
                        (dict(last=True), 'puts an activation after the output layer',
                         'an activation after the output layer'),
                        (dict(order='elu-bn'), 'applies the batch norm after the ELU',
                         'batch norm after the activation')]
        for change, words, mistake in alternatives:
            if close(returned, reference(q, use_batch_norm, mode == 'train', **change),
                     rtol=1e-4, atol=1e-6):
                return Verdict(False, f'{function} {words}', mistake, evidence, DOC)
        return Verdict(False, f'{function} returns other values than Linear, [BatchNorm1d], '
                              f'ELU, ..., Linear', 'wrong values', evidence, DOC)
    return PASS


def ask_init(student, q):
    """MLP(400, [100], 10): each nn.Linear's weight and bias, in call order."""
    student.seed('mlp_pytorch', 0)
    model = student.new('mlp_pytorch', 'MLP', 400, [100], 10)
    layers = student.torch_layers(model, np.zeros((2, 400)))
    return [(student.get(handle, 'weight'), student.get(handle, 'bias'))
            for handle in layers['linears']]


def check_init(student, q, item):
    try:
        found = student.ask(item, q)
    except CallFailed as failed:
        return failure_verdict(item.function, failed.failure)
    if len(found) != 2 or not all(isinstance(weight, np.ndarray) for weight, _ in found):
        return Verdict(False, f'{item.function}: MLP(400, [100], 10) does not call two '
                              f'nn.Linear layers', 'wrong layers', '', DOC)
    first, second = (float(np.std(weight)) for weight, _ in found)
    evidence = (f'for MLP(400, [100], 10): weight std {first:.4g} and {second:.4g}, expected '
                f'sqrt(1/400) = {np.sqrt(1 / 400):.4g} and sqrt(2/100) = '
                f'{np.sqrt(2 / 100):.4g}')
    if abs(first - np.sqrt(1 / 1200)) < 0.1 * np.sqrt(1 / 1200):
        return Verdict(False, f"{item.function} keeps PyTorch's default initialisation "
                              f"(uniform, std 1/sqrt(3·in_features)); the assignment's is "
                              f"Kaiming's normal, as the NumPy LinearModule's",
                       "PyTorch's default initialisation", evidence, 'linear')
    first_right = any(abs(first - np.sqrt(gain / 400)) < 0.1 * np.sqrt(gain / 400)
                      for gain in (1, 2))
    second_right = abs(second - np.sqrt(2 / 100)) < 0.1 * np.sqrt(2 / 100)
    if first_right and second_right:
        return PASS
    if first_right:
        words, mistake = ('gives the hidden layers the scale of the input layer; after an '
                          'activation the Kaiming std is sqrt(2/in_features)',
                          'hidden layer scale')
    else:
        words, mistake = ('initialises the weights with the wrong scale (Kaiming: std '
                          'sqrt(2/in_features), sqrt(1/in_features) allowed for the first '
                          'layer)', 'wrong scale')
    return Verdict(False, f'{item.function} {words}', mistake, evidence, 'linear')


ITEMS = [
    Item(id='mlp_pytorch_architecture', name='MLP (PyTorch): architecture, with and without '
                                             'batch norm', points=2,
         function='MLP.__init__ (mlp_pytorch)', files=FILES, doc=DOC, inputs=inputs, ask=ask,
         check=check_architecture),
    Item(id='mlp_pytorch_forward', name='MLP (PyTorch): forward equals the NumPy reference',
         points=2, function='MLP.forward (mlp_pytorch)', files=FILES, doc=DOC, inputs=inputs,
         ask=ask, check=check_forward),
    Item(id='mlp_pytorch_init', name='MLP (PyTorch): Kaiming initialisation, as the NumPy one',
         points=1, function='MLP.__init__ (mlp_pytorch)', files=FILES, doc='linear',
         inputs=lambda year: {}, ask=ask_init, check=check_init),
]
