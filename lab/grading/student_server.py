"""The student's side of grading: answer calls to the student's own functions, nothing else.

This file runs in the student's process (started by :class:`sandbox.StudentSession`),
copied beside ``grading_spec.py`` (a copy of :mod:`lab.grading.spec`). It imports the
student's files and then answers requests read from a private pipe, one at a time:
"build ``LinearModule(4, 2)``", "call its ``forward`` on this array", "read its
``grads['weight']``". It computes no verdict and no test: the grader's process does
every comparison, on the values it asked for. In the NumPy process (``--numpy-only``)
PyTorch cannot be imported.

Usage (by the grader only)::

    python -I -B student_server.py REQUEST_FD ANSWER_FD SUBMISSION_DIR [--numpy-only]
"""
import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import io
import os
import signal
import sys
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import grading_spec as spec  # noqa: E402  (the copy of lab/grading/spec.py beside this file)

sys.path.pop(0)
import numpy as np  # noqa: E402

_read, _write, _asarray, _array = os.read, os.write, np.asarray, np.array
_ndarray = np.ndarray

NO_TORCH = ('the NumPy part must not use PyTorch, as the assignment says: '
            'modules.py and mlp_numpy.py are graded where torch cannot be imported')


class CallTimeout(Exception):
    """Raised by the alarm inside the student's code when a call runs past its budget."""


class Refused(types.ModuleType):
    """What ``import torch`` gives in the NumPy process: a stand-in whose every use raises.

    A stray, unused import costs nothing (as in the official tests, which import
    modules.py where torch is installed); calling anything of it, as autograd would be
    called, raises the one line saying that the NumPy part must not use PyTorch.
    """

    def __getattr__(self, name):
        if name.startswith('__'):
            raise AttributeError(name)
        return Refused(f'{self.__name__}.{name}')

    def __call__(self, *args, **kwargs):
        raise ModuleNotFoundError(NO_TORCH, name='torch')


class NoTorch(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Gives torch (and its companions) as :class:`Refused` in the NumPy process, however
    it is imported."""

    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'functorch', 'torchvision'):
            return importlib.machinery.ModuleSpec(name, self)
        return None

    def create_module(self, spec):
        module = Refused(spec.name)
        module.__path__ = []  # a package, so that ``import torch.nn`` finds its stand-in too
        return module

    def exec_module(self, module):
        pass


class Sink(io.TextIOBase):
    """Where the student's prints go: nowhere (the grader reads nothing of them)."""

    def write(self, text):
        return len(text)


class Channel:
    """Frames in from the grader, frames out to it, over two private file descriptors."""

    def __init__(self, request_fd, answer_fd):
        self.request_fd, self.answer_fd = request_fd, answer_fd

    def receive(self):
        try:
            return spec.unpack(lambda count: _read(self.request_fd, count))
        except spec.WireError:
            return None

    def send(self, value):
        header, blobs = spec.pack(value)
        for part in (header, *blobs):
            view = memoryview(part)
            while view:
                view = view[_write(self.answer_fd, view):]


# -- running the student's code ------------------------------------------------------------

@contextlib.contextmanager
def budget(seconds):
    """Raise CallTimeout in the student's code after ``seconds`` of wall-clock time."""
    def on_alarm(signum, frame):
        raise CallTimeout(f'ran past its time budget of {seconds:g} s')
    signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    saved = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = Sink()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        sys.stdout, sys.stderr = saved


def error_record(exc, submission):
    """Type, message, and the student's function that raised it, with file and line."""
    where, raised_in = None, None
    tb = exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        filename = os.path.realpath(code.co_filename)
        if filename.startswith(submission + os.sep):
            raised_in = getattr(code, 'co_qualname', code.co_name)
            where = f'{os.path.basename(filename)}:{tb.tb_lineno}'
        tb = tb.tb_next
    if isinstance(exc, SyntaxError) and exc.filename:
        where = f'{os.path.basename(exc.filename)}:{exc.lineno}'
        raised_in = None
    message = str(exc)
    cause = exc.__cause__ or exc.__context__
    if cause is not None and not isinstance(exc, CallTimeout):
        message = f'{message} (from {type(cause).__name__}: {cause})'
    if isinstance(exc, ModuleNotFoundError) and NO_TORCH in message:
        message = NO_TORCH
    return {'type': type(exc).__name__, 'message': message[:600], 'where': where,
            'raised_in': raised_in if raised_in != '<module>' else None}


class Server:
    """The student's objects by handle, and the operations the grader may ask for."""

    def __init__(self, submission, numpy_only):
        self.submission = os.path.realpath(submission)
        self.numpy_only = numpy_only
        self.objects = {}
        self.files = {}

    def keep(self, value):
        handle = len(self.objects) + 1
        self.objects[handle] = value
        return {'$handle': handle}

    def resolve(self, value):
        """Handles as their objects, 0-d arrays as NumPy scalars (np.int64, as the official
        tests pass their sizes)."""
        if isinstance(value, dict) and set(value) == {'$handle'}:
            return self.objects[value['$handle']]
        if isinstance(value, _ndarray) and value.ndim == 0:
            return value[()]
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        return value

    def answer(self, request):
        seconds = float(request.get('seconds', spec.CALL_SECONDS))
        try:
            with budget(seconds):
                operation = getattr(self, 'op_' + request['op'])
                return {'ok': True, 'value': operation(**request['args'])}
        except BaseException as exc:  # the student's code may raise anything, SystemExit too
            if isinstance(exc, KeyboardInterrupt) and not isinstance(exc, CallTimeout):
                raise
            return {'ok': False, 'error': error_record(exc, self.submission)}

    # -- the operations ------------------------------------------------------------------

    def op_import(self, files):
        """Import each named file that exists; the status of each."""
        sys.path.insert(0, self.submission)
        status = {}
        for name in files:
            path = os.path.join(self.submission, spec.STUDENT_FILES[name])
            if not os.path.isfile(path):
                status[name] = {'status': 'missing'}
                continue
            module_spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[name] = module
            try:
                module_spec.loader.exec_module(module)
            except BaseException as exc:
                del sys.modules[name]
                if isinstance(exc, CallTimeout):
                    raise
                status[name] = {'status': 'error', 'error': error_record(exc, self.submission)}
                continue
            self.files[name] = module
            status[name] = {'status': 'ok'}
        return status

    def op_seed(self, seed):
        np.random.seed(seed)
        if not self.numpy_only and 'torch' in sys.modules:
            sys.modules['torch'].manual_seed(seed)

    def op_new(self, file, name, args=(), kwargs=None):
        """Build the student's class ``name`` of ``file``; its handle."""
        cls = getattr(self.files[file], name, None)
        if cls is None:
            raise LookupError(f'{spec.STUDENT_FILES[file]} defines no {name}')
        return self.keep(cls(*self.resolve(list(args)), **(kwargs or {})))

    def op_call(self, target, method, args=(), kwargs=None, echo=False):
        """Call a method on copies of the arguments; its result (and the arguments after)."""
        args = [item.copy() if isinstance(item, _ndarray) else item
                for item in self.resolve(list(args))]
        result = getattr(self.objects[target], method)(*args, **(kwargs or {}))
        if isinstance(result, (list, tuple, dict)) or spec.encode_array(result) is not None or (
                result is None or isinstance(result, (bool, int, float, str))):
            value = result
        else:
            value = self.keep(result)
        return {'value': value, 'args': args if echo else None}

    def _path(self, target, path):
        value = self.objects[target]
        for step in path:
            value = value[step] if isinstance(value, dict) else getattr(value, step)
        return value

    def op_get(self, target, path):
        return self._path(target, path)

    def op_set(self, target, path, value):
        """Write ``value`` into an array in place (transposed into a (in, out) weight)."""
        container = self._path(target, path[:-1])
        current = (container.get(path[-1]) if isinstance(container, dict)
                   else getattr(container, path[-1], None))
        if hasattr(current, 'data') and hasattr(current, 'copy_'):
            import torch
            with torch.no_grad():
                current.copy_(torch.from_numpy(value).to(current.dtype))
        elif (isinstance(current, _ndarray) and value.ndim == 2 and current.shape != value.shape
              and current.shape == value.T.shape):
            current[...] = value.T
        elif isinstance(current, _ndarray) and current.size == value.size:
            current[...] = value.reshape(current.shape)
        elif isinstance(container, dict):
            container[path[-1]] = value.copy()
        else:
            setattr(container, path[-1], value.copy())

    def op_perturbed(self, method, args, perturb, h, target=None, fresh=None):
        """``method``'s results with each entry of one array moved by +h and by -h.

        ``perturb`` is ``['arg', i]`` (the i-th argument) or ``['attr', ...path]`` (an
        array of the object, changed in place, as the official tests do). ``fresh``
        builds a new object for every evaluation (``[file, name, args]``). The grader
        takes the differences; this only calls the function.
        """
        args = self.resolve(list(args))
        if perturb[0] == 'arg':
            array = args[perturb[1]] = _array(args[perturb[1]], dtype=float)
        else:
            array = self._path(target, perturb[1:])
        flat, outputs = array.reshape(-1), []
        for index in range(flat.size):
            original = flat[index]
            pair = []
            for step in (h, -h):
                flat[index] = original + step
                owner = (getattr(self.files[fresh[0]], fresh[1])(*fresh[2]) if fresh
                         else self.objects[target])
                pair.append(_array(getattr(owner, method)(*[item.copy() if isinstance(
                    item, _ndarray) else item for item in args]), dtype=float))
            flat[index] = original
            outputs.append(pair)
        return _array(outputs)

    def op_cached(self, target):
        """Names of the array attributes ``target`` holds, besides params and grads."""
        held = []
        for name, value in vars(self.objects[target]).items():
            if name in ('params', 'grads'):
                continue
            values = list(value.values()) if isinstance(value, dict) else (
                value if isinstance(value, (list, tuple)) else [value])
            if any(isinstance(item, _ndarray) and item.size > 1 for item in values):
                held.append(name)
        return held

    def op_layers(self, target, x):
        """The NumPy MLP's layers in the order ``forward(x)`` calls them: handle and kind.

        Every object with a ``forward`` held in an attribute (a list, a dict or plain) is
        wrapped for one forward pass, whatever the attributes are called.
        """
        model, found = self.objects[target], []
        for value in vars(model).values():
            items = list(value.values()) if isinstance(value, dict) else value
            for item in (items if isinstance(items, (list, tuple)) else [items]):
                if (hasattr(item, 'forward') and not isinstance(item, type)
                        and all(item is not other for other in found)):
                    found.append(item)
        calls = []
        for layer in found:
            def recording(*args, _layer=layer, _original=layer.forward, **kwargs):
                calls.append(_layer)
                return _original(*args, **kwargs)
            layer.forward = recording
        try:
            model.forward(x.copy())
        finally:
            for layer in found:
                vars(layer).pop('forward', None)
        ordered = []
        for layer in calls or found:
            if all(layer is not other for other in ordered):
                ordered.append(layer)
        described = []
        self.layer_order = ordered
        for layer in ordered:
            params = getattr(layer, 'params', None)
            weight = params.get('weight') if isinstance(params, dict) else None
            described.append({'handle': self.keep(layer), 'kind': type(layer).__name__,
                              'weight_shape': list(np.shape(weight)) if weight is not None
                              else None,
                              'calls': sum(call is layer for call in calls)})
        return described

    def op_backward_order(self, target, layers, dout):
        """The positions (in ``layers``, forward order) of the layers whose ``backward``
        ``target.backward(dout)`` calls, in the order it calls them, and its error if any."""
        layers = [self.objects[handle] for handle in layers]
        calls = []
        for position, layer in enumerate(layers):
            def recording(*args, _position=position, _original=layer.backward, **kwargs):
                calls.append(_position)
                return _original(*args, **kwargs)
            layer.backward = recording
        try:
            self.objects[target].backward(dout)
        except Exception:  # the order up to the crash is the answer
            pass
        finally:
            for layer in layers:
                vars(layer).pop('backward', None)
        return calls

    def op_train_numpy(self, model, layers, softmax, loss, x, y, x_test, epochs, batch_size,
                       lr, seed, ends_in_softmax):
        """Plain SGD with the student's MLP, softmax and loss; the logits on ``x_test``."""
        model, softmax, loss = (self.objects[model], self.objects[softmax],
                                self.objects[loss])
        layers = [self.objects[handle] for handle in layers]
        order = np.random.default_rng(seed)
        for _ in range(epochs):
            permutation = order.permutation(len(x))
            for begin in range(0, len(x), batch_size):
                batch = permutation[begin:begin + batch_size]
                out = model.forward(x[batch])
                probabilities = out if ends_in_softmax else softmax.forward(out)
                dprobabilities = loss.backward(probabilities, y[batch])
                model.backward(dprobabilities if ends_in_softmax
                               else softmax.backward(dprobabilities))
                for layer in layers:
                    for name, value in getattr(layer, 'params', {}).items():
                        value -= lr * _asarray(layer.grads[name]).reshape(value.shape)
        return model.forward(x_test)

    # -- PyTorch ---------------------------------------------------------------------------

    def op_torch_layers(self, target, x):
        """The leaf layers registered, and those a forward pass on ``x`` calls, in words."""
        import torch
        torch.set_num_threads(1)
        model = self.objects[target]
        leaves = [module for module in model.modules()
                  if not list(module.children())
                  and type(module).__name__ not in ('Sequential', 'ModuleList', 'ModuleDict')]
        calls, handles = [], []
        for module in leaves:
            handles.append(module.register_forward_hook(
                lambda module, *_: calls.append(module)))
        try:
            model.train()
            model.double()
            try:
                model(torch.from_numpy(x.copy()))
            except RuntimeError:  # code that makes float32 tensors of its own
                model.float()
                calls.clear()
                model(torch.from_numpy(x.copy()).float())
        finally:
            for handle in handles:
                handle.remove()
        return {'registered': [self.describe(module) for module in leaves],
                'called': [self.describe(module) for module in calls],
                'linears': [self.keep(module) for module in (calls or leaves)
                            if isinstance(module, torch.nn.Linear)],
                'dtype': str(next(model.parameters()).dtype).replace('torch.', '')}

    @staticmethod
    def describe(module):
        kind = type(module).__name__
        if kind == 'Linear':
            return {'kind': 'Linear', 'shape': [module.out_features, module.in_features],
                    'bias': module.bias is not None}
        if kind == 'BatchNorm1d':
            return {'kind': 'BatchNorm1d', 'shape': [module.num_features]}
        return {'kind': kind, 'shape': None}

    def op_torch_forward(self, target, x, training):
        import torch
        model = self.objects[target]
        model.train(training)
        dtype = next(model.parameters()).dtype
        with torch.no_grad():
            return model(torch.from_numpy(x.copy()).to(dtype))

    def op_torch_train(self, target, x, y, x_test, epochs, batch_size, lr, seed):
        """Plain SGD with the student's PyTorch MLP; the logits on ``x_test``.

        The update is written out: ``torch.optim.SGD``'s first use imports torch's
        compiler stack, seconds of start-up grading cannot afford.
        """
        import torch
        torch.set_num_threads(1)
        model = self.objects[target]
        loss_function = torch.nn.CrossEntropyLoss()
        x, y = torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.int64))
        order = torch.Generator().manual_seed(seed)
        model.train()
        for _ in range(epochs):
            permutation = torch.randperm(len(x), generator=order)
            for begin in range(0, len(x), batch_size):
                batch = permutation[begin:begin + batch_size]
                model.zero_grad(set_to_none=True)
                loss_function(model(x[batch]), y[batch]).backward()
                with torch.no_grad():
                    for parameter in model.parameters():
                        if parameter.grad is not None:
                            parameter -= lr * parameter.grad
        model.eval()
        with torch.no_grad():
            return model(torch.from_numpy(x_test.astype(np.float32)))


def main(argv):
    request_fd, answer_fd, submission = int(argv[1]), int(argv[2]), argv[3]
    numpy_only = '--numpy-only' in argv[4:]
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    if numpy_only:
        sys.meta_path.insert(0, NoTorch())
    else:  # torch imports while the grader asks the NumPy process (not the student's budget)
        with contextlib.suppress(Exception):
            import torch
            torch.set_num_threads(1)
    sys.setrecursionlimit(spec.RECURSION_LIMIT)
    channel, server = Channel(request_fd, answer_fd), Server(submission, numpy_only)
    os.chdir(submission)
    while (request := channel.receive()) is not None:
        channel.send(server.answer(request))


if __name__ == '__main__':
    main(sys.argv)
