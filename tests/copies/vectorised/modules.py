import numpy as np


class LinearModule(object):
    def __init__(self, in_features, out_features, input_layer=False):
        std = np.sqrt(1.0 / in_features) if input_layer else np.sqrt(2.0 / in_features)
        self.params = {'weight': np.random.normal(0, std, size=(out_features, in_features)),
                       'bias': np.zeros(out_features)}
        self.grads = {'weight': np.zeros((out_features, in_features)),
                      'bias': np.zeros(out_features)}
        self.x = None

    def forward(self, x):
        self.x = x
        out = x.dot(self.params['weight'].T) + self.params['bias'][None, :]
        return out

    def backward(self, dout):
        self.grads['weight'] = dout.T.dot(self.x)
        self.grads['bias'] = np.sum(dout, axis=0)
        dx = dout.dot(self.params['weight'])
        return dx

    def clear_cache(self):
        self.x = None


class ELUModule(object):
    def __init__(self, alpha):
        self.alpha = alpha
        self.x = None

    def forward(self, x):
        self.x = x
        return np.where(x > 0, x, self.alpha * (np.exp(x) - 1))

    def backward(self, dout):
        grad = np.where(self.x > 0, 1.0, self.alpha * np.exp(self.x))
        return dout * grad

    def clear_cache(self):
        self.x = None


class SoftMaxModule(object):
    def forward(self, x):
        z = x - x.max(axis=1, keepdims=True)
        e = np.exp(z)
        self.out = e / e.sum(axis=1, keepdims=True)
        return self.out

    def backward(self, dout):
        s = self.out
        inner = np.sum(dout * s, axis=1, keepdims=True)
        return s * (dout - inner)

    def clear_cache(self):
        self.out = None


class CrossEntropyModule(object):
    def forward(self, x, y):
        n = x.shape[0]
        return -np.mean(np.log(x[np.arange(n), y]))

    def backward(self, x, y):
        n, c = x.shape
        t = np.eye(c)[y]
        return -t / (x * n)
