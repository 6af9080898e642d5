"""Tests of optimizers.py against torch.optim, step for step."""
import math

import numpy as np
import pytest
import torch

from conftest import rel_error
from mlp_numpy import MLP
from modules import SoftmaxCrossEntropyModule
from lab.optimizers import SGD, Adam, CosineAnnealingLR, StepLR, make_optimizer, make_scheduler

SHAPES = [(5, 3), (5,), (2, 5), (2,)]


class ToyModel:
    """Stand-in following the model protocol: ``parameters()`` returns
    ``(param, grad)`` pairs, and the gradients are rebound on every
    ``set_grads`` like a layer's backward may do."""

    def __init__(self, params):
        self.params = params
        self.grads = [np.zeros_like(p) for p in params]

    def parameters(self):
        return list(zip(self.params, self.grads))

    def set_grads(self, grads):
        self.grads = [g.copy() for g in grads]


def random_params(seed, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(dtype) for shape in SHAPES]


def random_grads(rng, dtype=np.float64):
    return [rng.standard_normal(shape).astype(dtype) for shape in SHAPES]


SGD_SETTINGS = [
    dict(momentum=0.0),
    dict(momentum=0.9),
    dict(momentum=0.9, nesterov=True),
    dict(momentum=0.0, weight_decay=0.01),
    dict(momentum=0.8, weight_decay=0.05),
    dict(momentum=0.7, nesterov=True, weight_decay=0.1),
]
ADAM_SETTINGS = [
    dict(),
    dict(weight_decay=0.01),
    dict(betas=(0.8, 0.99), eps=1e-6),
    dict(betas=(0.5, 0.9), weight_decay=0.1),
]
CASES = ([(SGD, torch.optim.SGD, 0.1, kw) for kw in SGD_SETTINGS]
         + [(Adam, torch.optim.Adam, 0.01, kw) for kw in ADAM_SETTINGS])


@pytest.mark.parametrize("ours, theirs, lr, kwargs", CASES,
                         ids=["-".join([c[0].__name__] + [f"{k}={v}" for k, v in c[3].items()])
                              for c in CASES])
def test_matches_torch_for_20_steps(ours, theirs, lr, kwargs):
    params = random_params(seed=0)
    model = ToyModel([p.copy() for p in params])
    torch_params = [torch.tensor(p, requires_grad=True) for p in params]
    optimizer = ours(model, lr=lr, **kwargs)
    torch_optimizer = theirs(torch_params, lr=lr, **kwargs)
    rng = np.random.default_rng(1)
    for step in range(20):
        grads = random_grads(rng)
        model.set_grads(grads)
        for tp, g in zip(torch_params, grads):
            tp.grad = torch.tensor(g)
        optimizer.step()
        torch_optimizer.step()
        for p, tp in zip(model.params, torch_params):
            assert rel_error(p, tp.detach().numpy()) < 1e-10, f"step {step + 1}"


@pytest.mark.parametrize("ours, theirs, kwargs", [
    (SGD, torch.optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3)),
    (Adam, torch.optim.Adam, dict(lr=0.01, weight_decay=1e-3)),
], ids=["SGD", "Adam"])
def test_trains_the_numpy_mlp_like_torch(ours, theirs, kwargs):
    """On the real MLP: updates land in the layers' own arrays, the loss
    falls, and every step equals torch.optim's on the same gradients."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 6))
    y = (x[:, 0] + x[:, 1] > 0).astype(int) + (x[:, 2] > 1)
    model = MLP(6, [16], 3, rng=np.random.default_rng(1))
    loss_module = SoftmaxCrossEntropyModule()
    layer_arrays = [param for param, _ in model.parameters()]
    torch_params = [torch.tensor(param, requires_grad=True) for param in layer_arrays]
    optimizer = ours(model, **kwargs)
    torch_optimizer = theirs(torch_params, **kwargs)
    losses = []
    for _ in range(30):
        losses.append(loss_module.forward(model.forward(x), y))
        model.backward(loss_module.backward())
        for tp, (_, grad) in zip(torch_params, model.parameters()):
            tp.grad = torch.tensor(grad)
        optimizer.step()
        torch_optimizer.step()
    assert all(param is array for (param, _), array in zip(model.parameters(), layer_arrays))
    for param, tp in zip(layer_arrays, torch_params):
        assert rel_error(param, tp.detach().numpy()) < 1e-10
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("build", [
    lambda m: SGD(m, lr=0.1, momentum=0.9, weight_decay=0.01),
    lambda m: Adam(m, lr=0.01, weight_decay=0.01),
], ids=["SGD", "Adam"])
def test_float32_stays_float32_and_grads_untouched(build):
    model = ToyModel(random_params(seed=0, dtype=np.float32))
    optimizer = build(model)
    param_ids = [id(p) for p in model.params]
    rng = np.random.default_rng(1)
    for _ in range(3):
        grads = random_grads(rng, dtype=np.float32)
        model.set_grads(grads)
        optimizer.step()
        for g, model_g in zip(grads, model.grads):
            np.testing.assert_array_equal(model_g, g)   # weight decay not written back
    assert [id(p) for p in model.params] == param_ids   # updated in place
    assert all(p.dtype == np.float32 for p in model.params)
    assert all(a.dtype == np.float32
               for key, a in optimizer.state_dict().items() if isinstance(a, np.ndarray))


@pytest.mark.parametrize("build", [
    lambda m: SGD(m, lr=0.1),
    lambda m: SGD(m, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
    lambda m: Adam(m, lr=0.01, betas=(0.8, 0.99), weight_decay=0.01),
], ids=["SGD", "SGD-nesterov", "Adam"])
def test_state_dict_round_trip_resumes_exactly(build, tmp_path):
    rng = np.random.default_rng(1)
    all_grads = [random_grads(rng) for _ in range(20)]

    def run(model, optimizer, steps):
        for grads in steps:
            model.set_grads(grads)
            optimizer.step()

    # Uninterrupted: 20 steps, the learning rate halved after 10 (as a scheduler would).
    reference = ToyModel(random_params(seed=0))
    optimizer = build(reference)
    run(reference, optimizer, all_grads[:10])
    optimizer.lr /= 2
    run(reference, optimizer, all_grads[10:])

    # Interrupted after 10 steps: checkpoint with np.savez, resume in fresh objects.
    first = ToyModel(random_params(seed=0))
    optimizer = build(first)
    run(first, optimizer, all_grads[:10])
    optimizer.lr /= 2
    np.savez(tmp_path / "ckpt.npz", **optimizer.state_dict())
    resumed = ToyModel([p.copy() for p in first.params])
    optimizer = build(resumed)
    with np.load(tmp_path / "ckpt.npz") as saved:      # allow_pickle=False
        optimizer.load_state_dict(saved)
    run(resumed, optimizer, all_grads[10:])

    for p, q in zip(resumed.params, reference.params):
        np.testing.assert_array_equal(p, q)


def test_float32_mlp_stays_float32():
    model = MLP(6, [8], 3, dtype=np.float32, rng=np.random.default_rng(1))
    loss_module = SoftmaxCrossEntropyModule()
    optimizer = Adam(model, lr=0.01, weight_decay=0.01)
    x = np.random.default_rng(0).standard_normal((16, 6)).astype(np.float32)
    for _ in range(2):
        loss_module.forward(model.forward(x), np.arange(16) % 3)
        model.backward(loss_module.backward())
        optimizer.step()
    assert all(param.dtype == np.float32 for param, _ in model.parameters())
    assert all(state.dtype == np.float32
               for param_state in optimizer.state for state in param_state.values())


def test_state_dict_keys_and_mismatch_errors():
    model = ToyModel(random_params(seed=0))
    sgd = SGD(model, lr=0.1, momentum=0.9)
    assert set(sgd.state_dict()) == {'lr', 'step'} | {f'momentum_buffer.{i}' for i in range(4)}
    adam = Adam(model)
    assert set(adam.state_dict()) == ({'lr', 'step'} | {f'exp_avg.{i}' for i in range(4)}
                                      | {f'exp_avg_sq.{i}' for i in range(4)})
    with pytest.raises(ValueError, match="missing keys.*exp_avg"):
        adam.load_state_dict(sgd.state_dict())
    state = sgd.state_dict()
    state['momentum_buffer.1'] = np.zeros(7)
    with pytest.raises(ValueError, match=r"momentum_buffer.1.*shape"):
        sgd.load_state_dict(state)


def test_step_errors_name_the_problem():
    model = ToyModel(random_params(seed=0))
    optimizer = SGD(model, lr=0.1)
    model.grads[1] = np.zeros((4,))
    with pytest.raises(ValueError, match="gradient has shape"):
        optimizer.step()
    model.params.append(np.zeros(3))
    model.grads.append(np.zeros(3))
    with pytest.raises(ValueError, match="new optimiser"):
        optimizer.step()


@pytest.mark.parametrize("ours, theirs, kwargs", [
    (StepLR, torch.optim.lr_scheduler.StepLR, dict(step_size=7, gamma=0.5)),
    (StepLR, torch.optim.lr_scheduler.StepLR, dict(step_size=1)),
    (CosineAnnealingLR, torch.optim.lr_scheduler.CosineAnnealingLR, dict(T_max=30)),
    (CosineAnnealingLR, torch.optim.lr_scheduler.CosineAnnealingLR,
     dict(T_max=10, eta_min=0.001)),
])
def test_schedulers_match_torch_for_30_epochs(ours, theirs, kwargs):
    optimizer = SGD(ToyModel(random_params(seed=0)), lr=0.1)
    torch_optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    scheduler = ours(optimizer, **kwargs)
    torch_scheduler = theirs(torch_optimizer, **kwargs)
    assert scheduler.get_last_lr() == pytest.approx(torch_scheduler.get_last_lr())
    for epoch in range(30):
        torch_optimizer.step()      # no gradients: only keeps torch's order check quiet
        scheduler.step()
        torch_scheduler.step()
        expected = torch_scheduler.get_last_lr()[0]
        assert math.isclose(optimizer.lr, expected, rel_tol=1e-12, abs_tol=1e-15), epoch
        assert scheduler.get_last_lr() == [optimizer.lr]


def test_scheduler_state_dict_round_trip():
    def lrs_over_next_epochs(scheduler, epochs):
        lrs = []
        for _ in range(epochs):
            scheduler.step()
            lrs.append(scheduler.get_last_lr()[0])
        return lrs

    scheduler = CosineAnnealingLR(SGD(ToyModel(random_params(seed=0)), lr=0.1), T_max=10)
    lrs_over_next_epochs(scheduler, 4)
    lr_at_checkpoint = scheduler.get_last_lr()[0]
    state = {k: np.asarray(v) for k, v in scheduler.state_dict().items()}   # as np.load gives
    expected = lrs_over_next_epochs(scheduler, 4)

    resumed = CosineAnnealingLR(SGD(ToyModel(random_params(seed=0)), lr=0.1), T_max=10)
    resumed.load_state_dict(state)
    assert resumed.get_last_lr() == [lr_at_checkpoint]
    assert lrs_over_next_epochs(resumed, 4) == expected


def test_make_scheduler():
    optimizer = SGD(ToyModel(random_params(seed=0)), lr=0.1)
    assert make_scheduler('none', optimizer, epochs=10) is None
    step = make_scheduler('step', optimizer, epochs=10)
    assert isinstance(step, StepLR) and step.step_size == 3 and step.gamma == 0.1
    assert make_scheduler('step', optimizer, epochs=2).step_size == 1
    cosine = make_scheduler('Cosine', optimizer, epochs=10)
    assert isinstance(cosine, CosineAnnealingLR) and cosine.T_max == 10
    with pytest.raises(ValueError, match="choose 'none', 'step' or 'cosine'"):
        make_scheduler('linear', optimizer, epochs=10)


def test_make_optimizer():
    model = ToyModel(random_params(seed=0))
    sgd = make_optimizer('sgd', model, lr=0.1, momentum=0.9, weight_decay=0.01, nesterov=True)
    assert isinstance(sgd, SGD) and (sgd.lr, sgd.momentum, sgd.weight_decay, sgd.nesterov) == (
        0.1, 0.9, 0.01, True)
    adam = make_optimizer('Adam', model, lr=1e-3, weight_decay=0.01)
    assert isinstance(adam, Adam) and (adam.lr, adam.weight_decay) == (1e-3, 0.01)
    with pytest.raises(ValueError, match="SGD only"):
        make_optimizer('adam', model, lr=1e-3, momentum=0.9)
    with pytest.raises(ValueError, match="choose 'sgd' or 'adam'"):
        make_optimizer('rmsprop', model, lr=0.1)


@pytest.mark.parametrize("build, message", [
    (lambda m: SGD(m, lr=0), "lr must be > 0"),
    (lambda m: SGD(m, lr=-0.1), "lr must be > 0"),
    (lambda m: SGD(m, lr=0.1, momentum=1.0), r"momentum must be in \[0, 1\)"),
    (lambda m: SGD(m, lr=0.1, momentum=-0.1), r"momentum must be in \[0, 1\)"),
    (lambda m: SGD(m, lr=0.1, nesterov=True), "nesterov=True needs momentum > 0"),
    (lambda m: SGD(m, lr=0.1, weight_decay=-1e-4), "weight_decay must be >= 0"),
    (lambda m: Adam(m, lr=0), "lr must be > 0"),
    (lambda m: Adam(m, betas=(0.9, 1.0)), r"betas must be two numbers in \[0, 1\)"),
    (lambda m: Adam(m, betas=(-0.1, 0.999)), r"betas must be two numbers in \[0, 1\)"),
    (lambda m: Adam(m, eps=-1e-8), "eps must be >= 0"),
    (lambda m: Adam(m, weight_decay=-0.1), "weight_decay must be >= 0"),
    (lambda m: StepLR(SGD(m, lr=0.1), step_size=0), "step_size must be an integer >= 1"),
    (lambda m: StepLR(SGD(m, lr=0.1), step_size=3, gamma=0), "gamma must be > 0"),
    (lambda m: CosineAnnealingLR(SGD(m, lr=0.1), T_max=0), "T_max must be an integer >= 1"),
    (lambda m: CosineAnnealingLR(SGD(m, lr=0.1), T_max=5, eta_min=-1), "eta_min must be >= 0"),
    (lambda m: make_scheduler('cosine', SGD(m, lr=0.1), epochs=0), "epochs must be >= 1"),
])
def test_bad_arguments_raise_helpful_value_errors(build, message):
    with pytest.raises(ValueError, match=message):
        build(ToyModel(random_params(seed=0)))
