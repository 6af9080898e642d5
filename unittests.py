"""Numerical gradient checks of every NumPy module and of whole MLPs.

Each hand-written backward pass is compared with central differences in
float64: for a scalar function f, df/dx_i ~ (f(x + h e_i) - f(x - h e_i)) / 2h,
with an error of order h^2. A layer is checked through the scalar
L = sum(layer(x) * dout) for a random ``dout``, whose gradient with respect to
the layer's output is exactly ``dout``.

Run with ``pytest`` (collected through pytest.ini) or ``python unittests.py``.
"""
import unittest

import numpy as np

from mlp_numpy import MLP
from modules import (BatchNormModule, CrossEntropyModule, DropoutModule,
                     ELUModule, LeakyReLUModule, LinearModule, MSEModule, ReLUModule,
                     SigmoidModule, SoftmaxCrossEntropyModule, SoftMaxModule,
                     TanhModule)


def rel_error(x, y):
    """Largest relative error between two arrays, safe where both are near 0."""
    return np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y)))


def eval_numerical_gradient(f, x, h=1e-5):
    """Central-difference gradient of the scalar function ``f()`` of array ``x``.

    ``x`` is perturbed in place, one entry at a time, and restored, so ``f``
    must read ``x`` at call time (as modules read ``params`` in ``forward``).
    """
    grad = np.zeros_like(x)
    for index in np.ndindex(*x.shape):
        original = x[index]
        x[index] = original + h
        f_plus = f()
        x[index] = original - h
        f_minus = f()
        x[index] = original
        grad[index] = (f_plus - f_minus) / (2 * h)
    return grad


def elementwise_layer_gradients(layer, x, dout):
    """Analytic and numerical dL/dx for L = sum(layer.forward(x) * dout)."""
    layer.forward(x)
    analytic = layer.backward(dout)
    numerical = eval_numerical_gradient(lambda: np.sum(layer.forward(x) * dout), x)
    return analytic, numerical


class TestLosses(unittest.TestCase):

    def test_cross_entropy_input_gradient(self):
        rng = np.random.default_rng(0)
        for _ in range(5):
            n_samples, n_classes = rng.integers(2, 10, size=2)
            logits = rng.standard_normal((n_samples, n_classes))
            probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
            labels = rng.integers(n_classes, size=n_samples)
            loss = CrossEntropyModule()
            analytic = CrossEntropyModule().backward(probabilities, labels)
            numerical = eval_numerical_gradient(
                lambda: loss.forward(probabilities, labels), probabilities)
            self.assertLess(rel_error(analytic, numerical), 1e-6)

    def test_cross_entropy_one_hot_equals_labels(self):
        rng = np.random.default_rng(1)
        probabilities = rng.dirichlet(np.ones(4), size=6)
        labels = rng.integers(4, size=6)
        one_hot = np.eye(4)[labels]
        loss = CrossEntropyModule()
        self.assertAlmostEqual(loss.forward(probabilities, labels),
                               loss.forward(probabilities, one_hot))
        np.testing.assert_allclose(loss.backward(probabilities, labels),
                                   loss.backward(probabilities, one_hot))

    def test_softmax_cross_entropy_gradient(self):
        rng = np.random.default_rng(2)
        for labels_as_one_hot in (False, True):
            logits = rng.standard_normal((7, 5))
            labels = rng.integers(5, size=7)
            targets = np.eye(5)[labels] if labels_as_one_hot else labels
            loss = SoftmaxCrossEntropyModule()
            loss.forward(logits, targets)
            analytic = loss.backward()
            numerical = eval_numerical_gradient(lambda: loss.forward(logits, targets), logits)
            self.assertLess(rel_error(analytic, numerical), 1e-6)

    def test_fused_loss_equals_softmax_then_cross_entropy(self):
        rng = np.random.default_rng(3)
        logits = rng.standard_normal((8, 6))
        labels = rng.integers(6, size=8)
        softmax, cross_entropy, fused = (SoftMaxModule(), CrossEntropyModule(),
                                         SoftmaxCrossEntropyModule())
        probabilities = softmax.forward(logits)
        separate_loss = cross_entropy.forward(probabilities, labels)
        separate_grad = softmax.backward(cross_entropy.backward(probabilities, labels))
        self.assertAlmostEqual(fused.forward(logits, labels), separate_loss, places=12)
        np.testing.assert_allclose(fused.backward(), separate_grad, rtol=1e-10, atol=1e-14)

    def test_mean_squared_error_gradient(self):
        rng = np.random.default_rng(12)
        for shape in ((7,), (5, 1), (4, 3)):
            predictions = rng.standard_normal(shape)
            targets = rng.standard_normal(shape)
            loss = MSEModule()
            analytic = MSEModule().backward(predictions, targets)
            numerical = eval_numerical_gradient(lambda: loss.forward(predictions, targets),
                                                predictions)
            self.assertLess(rel_error(analytic, numerical), 1e-6, f"shape {shape}")

    def test_fused_loss_is_finite_for_huge_logits(self):
        logits = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4]])
        labels = np.array([1, 2])
        fused = SoftmaxCrossEntropyModule()
        with np.errstate(over='raise', divide='raise', invalid='raise'):
            loss = fused.forward(logits, labels)
            dlogits = fused.backward()
        self.assertAlmostEqual(loss, 1e4)
        np.testing.assert_allclose(dlogits, [[0.5, -0.5, 0.0], [0.0, 0.0, 0.0]])


class TestLayers(unittest.TestCase):

    def test_linear_gradients(self):
        rng = np.random.default_rng(4)
        for input_layer in (False, True):
            n_samples, in_features, out_features = rng.integers(2, 10, size=3)
            x = rng.standard_normal((n_samples, in_features))
            dout = rng.standard_normal((n_samples, out_features))
            layer = LinearModule(in_features, out_features, input_layer=input_layer, rng=rng)
            layer.params['bias'][:] = rng.standard_normal(out_features)
            layer.forward(x)
            dx = layer.backward(dout)
            loss = lambda: np.sum(layer.forward(x) * dout)
            for name in ('weight', 'bias'):
                numerical = eval_numerical_gradient(loss, layer.params[name])
                self.assertLess(rel_error(layer.grads[name], numerical), 1e-6, name)
            if input_layer:
                self.assertIsNone(dx, "an input layer computes no gradient for the data")
            else:
                self.assertLess(rel_error(dx, eval_numerical_gradient(loss, x)), 1e-6)

    def test_linear_weight_perturbed_through_a_flat_view(self):
        # Parameters are ordinary C-ordered arrays, so reshape(-1) is a view:
        # perturbing it perturbs the weight that forward reads.
        rng = np.random.default_rng(11)
        x = rng.standard_normal((4, 6))
        dout = rng.standard_normal((4, 3))
        layer = LinearModule(6, 3, rng=rng)
        layer.forward(x)
        layer.backward(dout)
        flat_weight = layer.params['weight'].reshape(-1)
        self.assertTrue(np.shares_memory(flat_weight, layer.params['weight']))
        numerical = eval_numerical_gradient(lambda: np.sum(layer.forward(x) * dout),
                                            flat_weight)
        self.assertLess(rel_error(layer.grads['weight'].reshape(-1), numerical), 1e-6)

    def test_activation_gradients(self):
        rng = np.random.default_rng(5)
        activations = [ELUModule(alpha=1.0), ELUModule(alpha=0.5), ReLUModule(),
                       LeakyReLUModule(), LeakyReLUModule(0.2), SigmoidModule(),
                       TanhModule()]
        for layer in activations:
            # Keep inputs away from the kinks at 0, where central differences
            # of ReLU-like functions straddle two slopes.
            x = rng.standard_normal((6, 9))
            x[np.abs(x) < 1e-3] = 0.5
            dout = rng.standard_normal((6, 9))
            analytic, numerical = elementwise_layer_gradients(layer, x, dout)
            self.assertLess(rel_error(analytic, numerical), 1e-6, type(layer).__name__)

    def test_softmax_gradient(self):
        rng = np.random.default_rng(6)
        x = rng.standard_normal((5, 7))
        dout = rng.standard_normal((5, 7))
        analytic, numerical = elementwise_layer_gradients(SoftMaxModule(), x, dout)
        self.assertLess(rel_error(analytic, numerical), 1e-6)

    def test_batch_norm_gradients(self):
        rng = np.random.default_rng(8)
        for training in (True, False):
            n_samples, n_features = 6, 5
            # Features with their own offset and scale, as a linear layer gives.
            x = 4 * rng.standard_normal((n_samples, n_features)) + rng.standard_normal(n_features)
            dout = rng.standard_normal((n_samples, n_features))
            layer = BatchNormModule(n_features)
            layer.params['weight'][:] = rng.standard_normal(n_features)
            layer.params['bias'][:] = rng.standard_normal(n_features)
            layer.running_mean[:] = rng.standard_normal(n_features)
            layer.running_var[:] = rng.uniform(0.5, 2.0, n_features)
            if not training:
                layer.eval()
            layer.forward(x)
            dx = layer.backward(dout)
            loss = lambda: np.sum(layer.forward(x) * dout)
            mode = 'training' if training else 'evaluation'
            for name in ('weight', 'bias'):
                numerical = eval_numerical_gradient(loss, layer.params[name])
                self.assertLess(rel_error(layer.grads[name], numerical), 1e-6,
                                f"{name} in {mode} mode")
            self.assertLess(rel_error(dx, eval_numerical_gradient(loss, x)), 1e-6,
                            f"input in {mode} mode")

    def test_dropout_gradient(self):
        rng = np.random.default_rng(9)
        x = rng.standard_normal((6, 8))
        dout = rng.standard_normal((6, 8))
        layer = DropoutModule(p=0.4)

        def loss():
            # The same mask at every call: a fresh generator with one seed.
            layer.rng = np.random.default_rng(10)
            return np.sum(layer.forward(x) * dout)

        loss()
        dx = layer.backward(dout)
        self.assertLess(rel_error(dx, eval_numerical_gradient(loss, x)), 1e-6)


class TestMLP(unittest.TestCase):

    def check_mlp_gradients(self, n_hidden, activation, use_batch_norm=False,
                            training=True, regression=False):
        rng = np.random.default_rng(7)
        n_samples, n_inputs, n_classes = 4, 6, 3
        x = rng.standard_normal((n_samples, n_inputs))
        # Regression: the n_classes linear outputs are fitted to real targets by MSE.
        targets = (rng.standard_normal((n_samples, n_classes)) if regression
                   else rng.integers(n_classes, size=n_samples))
        model = MLP(n_inputs, n_hidden, n_classes, activation=activation, rng=rng,
                    use_batch_norm=use_batch_norm)
        for parameter, _ in model.parameters():
            parameter += 0.1 * rng.standard_normal(parameter.shape)
        if use_batch_norm:
            # Running statistics that differ from a fresh layer's, for evaluation mode.
            model.forward(rng.standard_normal((8, n_inputs)))
        if not training:
            model.eval()
        loss = lambda: loss_module.forward(model.forward(x), targets)
        if regression:
            loss_module = MSEModule()
            model.backward(loss_module.backward(model.forward(x), targets))
        else:
            loss_module = SoftmaxCrossEntropyModule()
            loss()
            model.backward(loss_module.backward())
        # In training mode batch norm subtracts the batch mean, and with it the
        # bias of the linear layer before it: that bias's exact gradient is 0,
        # which a relative error cannot judge, so it is compared absolutely.
        zero_gradient = [module.params['bias']
                         for module, following in zip(model.modules, model.modules[1:])
                         if training and isinstance(following, BatchNormModule)]
        for index, (parameter, gradient) in enumerate(model.parameters()):
            numerical = eval_numerical_gradient(loss, parameter)
            message = (f"parameter {index} of MLP{n_hidden} with {activation}, "
                       f"batch norm {use_batch_norm}, training {training}, "
                       f"regression {regression}")
            if any(parameter is bias for bias in zero_gradient):
                self.assertLess(np.max(np.abs(gradient)), 1e-12, message)
                self.assertLess(np.max(np.abs(numerical)), 1e-9, message)
            else:
                self.assertLess(rel_error(gradient, numerical), 1e-6, message)

    def test_logistic_regression(self):
        self.check_mlp_gradients([], 'elu')

    def test_one_hidden_layer(self):
        for activation in ('elu', 'relu', 'leaky_relu', 'sigmoid', 'tanh'):
            self.check_mlp_gradients([5], activation)

    def test_three_hidden_layers(self):
        for activation in ('elu', 'tanh'):
            self.check_mlp_gradients([5, 4, 5], activation)

    def test_regression_with_mean_squared_error(self):
        for n_hidden in ([], [5], [5, 4, 5]):
            self.check_mlp_gradients(n_hidden, 'tanh', regression=True)

    def test_batch_norm(self):
        for n_hidden in ([5], [5, 4, 5]):
            for training in (True, False):
                self.check_mlp_gradients(n_hidden, 'elu', use_batch_norm=True,
                                         training=training)


if __name__ == '__main__':
    unittest.main()
