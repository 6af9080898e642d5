from modules import *


class MLP(object):
    def __init__(self, n_inputs, n_hidden, n_classes):
        sizes = [n_inputs] + list(n_hidden) + [n_classes]
        self.layers = []
        for i in range(len(sizes) - 1):
            self.layers.append(LinearModule(sizes[i], sizes[i + 1], input_layer=(i == 0)))
            if i < len(sizes) - 2:
                self.layers.append(ELUModule(1.0))
        self.layers.append(SoftMaxModule())

    def forward(self, x):
        out = x.reshape(x.shape[0], -1)
        for layer in self.layers:
            out = layer.forward(out)
        return out

    def backward(self, dout):
        for layer in reversed(self.layers):
            dout = layer.backward(dout)

    def clear_cache(self):
        for layer in self.layers:
            layer.clear_cache()
