"""Assignment 1, part 2: the NumPy MLP."""
from modules import CrossEntropyModule, ELUModule, LinearModule, SoftMaxModule


class MLP:
    def __init__(self, n_inputs, n_hidden, n_classes):
        widths = [n_inputs, *n_hidden]
        self.modules = []
        for index, (fan_in, fan_out) in enumerate(zip(widths, widths[1:])):
            self.modules += [LinearModule(fan_in, fan_out, input_layer=index == 0), ELUModule(1.0)]
        self.modules.append(LinearModule(widths[-1], n_classes, input_layer=not n_hidden))
        self.modules.append(SoftMaxModule())

    def forward(self, x):
        activations = x.reshape(len(x), -1)
        for module in self.modules:
            activations = module.forward(activations)
        return activations

    def backward(self, dout):
        gradient = dout
        for module in self.modules[::-1]:
            gradient = module.backward(gradient)
        return gradient

    def clear_cache(self):
        for module in self.modules:
            module.clear_cache()
