"""Training: each MLP learns a spiral drawn at grading time, scored on labels kept here.

The grader draws the spiral's seed, rotation, direction, centre and which arm carries which
label when it grades, sends the training points with their labels and the test points
without theirs, and scores the predictions (the argmax of the returned logits) itself. A
model that predicts from a fixed formula of the inputs cannot know where the spiral lies
nor which arm is which, so it cannot pass (a formula of the centred spiral reached at most
0.72 of the 0.75 needed over 20 000 draws).
"""
import secrets

import numpy as np

from lab.grading import spec
from lab.grading.judge import CallFailed, Item, PASS, Verdict, failure_verdict, judge

TASK = spec.TRAINING


def spiral(rng, n_per_class=TASK['n_per_class'], n_classes=TASK['n_classes']):
    """Points (N, 2) and labels (N,) of a spiral whose rotation, turn, centre and labelling
    of the arms come from ``rng``."""
    rotation, turn = rng.uniform(0, 2 * np.pi), rng.choice([-1.0, 1.0])
    label_of_arm = rng.permutation(n_classes)
    points, labels = [], []
    for arm in range(n_classes):
        radius = rng.uniform(0.05, 1.0, n_per_class)
        angle = rotation + turn * (arm * 4.0 + radius * 4.0) + 0.2 * rng.standard_normal(
            n_per_class)
        points.append(np.stack([radius * np.sin(angle), radius * np.cos(angle)], axis=1))
        labels.append(np.full(n_per_class, label_of_arm[arm]))
    order = rng.permutation(n_per_class * n_classes)
    centre = rng.uniform(0.5, 1.0) * np.array([np.cos(rotation), np.sin(rotation)])
    return (np.concatenate(points) * 2 + centre)[order], np.concatenate(labels)[order]


def task(year):
    """A task drawn now: training points and labels, test points, and the labels kept here."""
    rng = np.random.default_rng(secrets.randbits(64))
    points, labels = spiral(rng, 2 * TASK['n_per_class'])
    half = len(points) // 2
    return {'x': points[:half], 'y': labels[:half], 'x_test': points[half:],
            'y_test': labels[half:], 'seed': int(rng.integers(2 ** 31))}


def sgd(q):
    return {'x': q['x'], 'y': q['y'], 'x_test': q['x_test'], 'epochs': TASK['epochs'],
            'batch_size': TASK['batch_size'], 'lr': TASK['lr'], 'seed': q['seed']}


def ask_numpy(student, q):
    """Plain SGD with the student's MLP, SoftMaxModule and CrossEntropyModule."""
    student.seed('mlp_numpy', 0)
    model = student.new('mlp_numpy', 'MLP', 2, list(TASK['hidden']), TASK['n_classes'])
    layers = student.layers(model, q['x'][:2])
    ends_in_softmax = bool(layers) and 'softmax' in layers[-1]['kind'].lower()
    return student.train_numpy(
        model=model.number, layers=[layer['handle'].number for layer in layers],
        softmax=student.new('modules', 'SoftMaxModule').number,
        loss=student.new('modules', 'CrossEntropyModule').number,
        ends_in_softmax=ends_in_softmax, **sgd(q))


def ask_pytorch(student, q):
    """Plain SGD with the student's PyTorch MLP and nn.CrossEntropyLoss."""
    student.seed('mlp_pytorch', 0)
    model = student.new('mlp_pytorch', 'MLP', 2, list(TASK['hidden']), TASK['n_classes'])
    return student.torch_train(model, **sgd(q))


def trained(explained_by):
    def check(student, q, item):
        try:
            logits = student.ask(item, q)
        except CallFailed as failed:
            verdict = failure_verdict(item.function, failed.failure)
            accuracy = None
        else:
            if logits.shape != (len(q['x_test']), TASK['n_classes']):
                verdict = Verdict(False, f'{item.function}: the trained model returns shape '
                                         f'{logits.shape} for {len(q["x_test"])} points, '
                                         f'expected ({len(q["x_test"])}, {TASK["n_classes"]})',
                                  'wrong output shape')
                accuracy = None
            else:
                accuracy = float(np.mean(logits.argmax(axis=1) == q['y_test']))
                if accuracy >= TASK['accuracy']:
                    return PASS
                verdict = Verdict(False, f"{item.function} reaches a test accuracy of "
                                         f"{accuracy:.3f} on a spiral drawn for this grading "
                                         f"({TASK['epochs']} epochs of SGD, lr {TASK['lr']}, "
                                         f"hidden {TASK['hidden']}), expected at least "
                                         f"{TASK['accuracy']}", 'does not learn')
        from lab.grading.functions import all_items
        items = all_items()
        for other in explained_by:
            cause = judge(items[other], student, q['year'])
            if not cause.passed:
                return Verdict(False, f'{verdict.words} | the likely cause: {cause.words}',
                               cause.mistake, cause.evidence, cause.doc)
        if 'mlp_numpy' in item.files:
            accumulating = accumulation_words(student, q['year'])
            if accumulating:
                return Verdict(False, f'{verdict.words} | the likely cause: {accumulating}',
                               'gradients accumulate', '', 'linear')
        return verdict
    return check


def inputs(year):
    return {**task(year), 'year': year}


def accumulation_words(student, year):
    """Two backward passes of one LinearModule on the same input: the second grads must
    equal the first; twice them means each backward adds to grads instead of setting them."""
    from lab.grading.functions import linear
    q = linear.inputs(year)
    try:
        layer = linear.layer_with(student, q)
        found = []
        for _ in range(2):
            student.call(layer, 'forward', q['x'])
            student.call(layer, 'backward', q['dout'])
            found.append(student.get(layer, 'grads', 'weight'))
    except CallFailed:
        return None
    first, second = found
    if isinstance(first, np.ndarray) and isinstance(second, np.ndarray) and \
            first.shape == second.shape and np.allclose(second, 2 * first) and first.any():
        return ("LinearModule.backward adds to grads instead of setting them: after two "
                "backward passes grads hold the sum of both (they accumulate, as PyTorch's "
                ".grad does, but nothing here zeroes them)")
    return None


ITEMS = [
    Item(id='training_numpy', name='training: the NumPy MLP learns the spiral', points=3,
         function='training the NumPy MLP', files=('modules', 'mlp_numpy'),
         doc='the-whole-network', inputs=inputs, ask=ask_numpy,
         check=trained(('linear_forward', 'linear_dweight', 'linear_dbias', 'linear_dx',
                        'elu_forward', 'elu_backward', 'softmax_forward', 'softmax_backward',
                        'ce_backward', 'linear_init', 'mlp_numpy_layers', 'mlp_numpy_forward',
                        'mlp_numpy_backward'))),
    Item(id='training_pytorch', name='training: the PyTorch MLP learns the spiral', points=3,
         function='training the PyTorch MLP', files=('mlp_pytorch',), doc='the-whole-network',
         inputs=inputs, ask=ask_pytorch,
         check=trained(('mlp_pytorch_architecture', 'mlp_pytorch_forward',
                        'mlp_pytorch_init'))),
]
