"""What the layers keep between calls: backward uses the latest forward pass, and
clear_cache drops every cached array (the layers', and the NumPy MLP's through its layers)."""
import numpy as np

from lab.grading import spec
from lab.grading.functions import elu, linear, softmax
from lab.grading.judge import PASS, CallFailed, Item, Verdict, answer_of, attempt, close, \
    failure_verdict, show

FILES = ('modules',)


def inputs(year):
    return {'linear': linear.inputs(year), 'elu': elu.inputs(year),
            'softmax': softmax.inputs(year), 'year': year}


def latest(student, q):
    """Each layer after forward(x1), forward(x2), backward(dout): its gradient."""
    found = {}
    layer = linear.layer_with(student, q['linear'])
    found['linear'] = attempt(lambda: (
        student.call(layer, 'forward', q['linear']['x_earlier']),
        student.call(layer, 'forward', q['linear']['x']),
        student.call(layer, 'backward', q['linear']['dout']),
        student.get(layer, 'grads', 'weight'))[-1])
    layer, _ = elu.make_elu(student, q['year'])
    found['elu'] = attempt(lambda: (
        student.call(layer, 'forward', -q['elu']['x']),
        student.call(layer, 'forward', q['elu']['x']),
        student.call(layer, 'backward', q['elu']['dout']))[-1])
    layer = student.new('modules', 'SoftMaxModule')
    found['softmax'] = attempt(lambda: (
        student.call(layer, 'forward', -2 * q['softmax']['x']),
        student.call(layer, 'forward', q['softmax']['x']),
        student.call(layer, 'backward', q['softmax']['dout']))[-1])
    return found




def check_latest(student, q, item):
    try:
        found = student.ask(item, q)
    except CallFailed as failed:
        return failure_verdict(item.function, failed.failure)
    cases = [('LinearModule.backward', 'linear', linear.ITEMS[1], 'dweight',
              lambda p: p['dout'].T @ p['x_earlier']),
             ('ELUModule.backward', 'elu', elu.ITEMS[1], 'dx',
              lambda p: elu.ITEMS[1].reference({**p, 'x': -p['x']})),
             ('SoftMaxModule.backward', 'softmax', softmax.ITEMS[2], 'dx',
              lambda p: softmax.jacobian_product({**p, 'x': -2 * p['x']}))]
    problems = []
    for function, key, single, answer, stale in cases:
        value = found[key]
        if isinstance(value, CallFailed):
            problems.append(failure_verdict(function, value.failure).words)
            continue
        try:
            own = answer_of(student.ask(single, single.inputs(q['year'])), answer)
        except CallFailed:
            own = single.reference(single.inputs(q['year']))
        if close(value, own):
            continue
        if close(value, stale(single.inputs(q['year']))):
            problems.append(f'{function} uses a stale cache: after forward(x1) then '
                            f'forward(x2), backward used x1; it must use the latest forward '
                            f'pass')
        else:
            problems.append(f'{function} returns another gradient after forward(x1), '
                            f'forward(x2) than after forward(x2) alone ({show(own)} against '
                            f'{show(value)}): a cache kept from an earlier call?')
    if not problems:
        return PASS
    return Verdict(False, ' | '.join(problems), 'a stale cache', '', 'the-whole-network')


def held(student, handle):
    return student.cached(handle)


def ask_clear(student, q):
    """Each layer after forward then clear_cache; the NumPy MLP's layers likewise."""
    found = {}
    layers = {'LinearModule': lambda: linear.layer_with(student, q['linear']),
              'ELUModule': lambda: elu.make_elu(student, q['year'])[0],
              'SoftMaxModule': lambda: student.new('modules', 'SoftMaxModule')}
    for name, make in layers.items():
        def one(make=make, name=name):
            layer = make()
            before = set(student.cached(layer))
            x = q['linear']['x'] if name == 'LinearModule' else q['softmax']['x']
            student.call(layer, 'forward', x)
            student.call(layer, 'clear_cache')
            return sorted(set(student.cached(layer)) - before)
        found[name] = attempt(one)

    def mlp():
        shape = spec.MLP_SHAPE
        student.seed('mlp_numpy', 0)
        model = student.new('mlp_numpy', 'MLP', shape['n_inputs'], [shape['k']] * 2,
                            shape['n_classes'])
        x = np.random.default_rng(41).standard_normal((shape['n_samples'], shape['n_inputs']))
        layers = student.layers(model, x)
        student.call(model, 'clear_cache')
        return sorted({f"{layer['kind']}.{name}" for layer in layers
                       for name in student.cached(layer['handle'])})
    found['MLP'] = attempt(mlp)
    return found


def check_clear(student, q, item):
    found = student.ask(item, q)
    problems, mistake = [], 'a cache left behind'
    for name in ('LinearModule', 'ELUModule', 'SoftMaxModule'):
        value = found[name]
        if isinstance(value, CallFailed):
            problems.append(failure_verdict(f'{name}.clear_cache', value.failure).words)
        elif value:
            problems.append(f'{name}.clear_cache leaves arrays cached in '
                            f'{", ".join("self." + attribute for attribute in value)} after '
                            f'forward; set them to None')
    layers_right = not problems
    value = found['MLP']
    if isinstance(value, CallFailed):
        if value.failure.get('kind') != 'file' or value.failure.get('status') != 'missing' \
                or not problems:
            problems.append(failure_verdict('MLP.clear_cache (mlp_numpy)', value.failure).words)
    elif value:
        if layers_right:
            problems.append(f"MLP.clear_cache (mlp_numpy) never calls its layers' clear_cache: "
                            f"after forward and clear_cache they still hold "
                            f"{', '.join(value)}")
            mistake = "the layers' clear_cache never called"
        else:
            problems.append(f'MLP.clear_cache (mlp_numpy) leaves its layers holding '
                            f'{", ".join(value)}')
    if not problems:
        return PASS
    return Verdict(False, ' | '.join(problems), mistake, '', 'the-whole-network')


ITEMS = [
    Item(id='latest_cache', name='backward uses the latest forward pass', points=1,
         function='backward', files=FILES, doc='the-whole-network', inputs=inputs, ask=latest,
         check=check_latest),
    Item(id='clear_cache', name='clear_cache', points=1, function='clear_cache',
         files=('modules', 'mlp_numpy'), doc='the-whole-network', inputs=inputs,
         ask=ask_clear, check=check_clear),
]
