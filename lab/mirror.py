"""The bridge between the two MLPs: copy weights from one to the other.

The NumPy and the PyTorch MLP build their linear and batch-norm layers in the
same order and shapes, and the NumPy modules name their arrays as PyTorch
names its attributes ('weight', 'bias', 'running_mean', 'running_var'). So
weights copy across one to one, and the tests can show that both networks
compute the same outputs and gradients.
"""
import torch
from torch import nn

from modules import BatchNormModule, LinearModule

COUNTERPARTS = {LinearModule: nn.Linear, BatchNormModule: nn.BatchNorm1d}
"""The NumPy modules with parameters and the PyTorch layers that mirror them."""


def paired_layers(numpy_mlp, torch_mlp):
    """Pair each NumPy module that has parameters with its PyTorch layer, in forward order.

    Raises
    ------
    ValueError
        If the two MLPs differ in their sequence of linear and batch-norm
        layers or in any weight shape, naming both sequences.
    """
    numpy_modules = [module for module in numpy_mlp.modules if type(module) in COUNTERPARTS]
    torch_layers = [layer for layer in torch_mlp.layers
                    if type(layer) in COUNTERPARTS.values()]
    numpy_layout = [f"{COUNTERPARTS[type(module)].__name__} {module.params['weight'].shape}"
                    for module in numpy_modules]
    torch_layout = [f"{type(layer).__name__} {tuple(layer.weight.shape)}"
                    for layer in torch_layers]
    if numpy_layout != torch_layout:
        raise ValueError(f"the two MLPs differ in architecture: NumPy layers (weight shapes) "
                         f"{numpy_layout}, PyTorch layers {torch_layout}")
    return list(zip(numpy_modules, torch_layers))


def copy_numpy_to_torch(numpy_mlp, torch_mlp):
    """Copy a NumPy MLP's parameters and running statistics into a PyTorch MLP, in place."""
    with torch.no_grad():
        for module, layer in paired_layers(numpy_mlp, torch_mlp):
            for name, value in {**module.params, **module.buffers}.items():
                getattr(layer, name).copy_(torch.from_numpy(value))


def copy_torch_to_numpy(torch_mlp, numpy_mlp):
    """Copy a PyTorch MLP's parameters and running statistics into a NumPy MLP, in place."""
    for module, layer in paired_layers(numpy_mlp, torch_mlp):
        for name, value in {**module.params, **module.buffers}.items():
            value[...] = getattr(layer, name).detach().cpu().numpy()
