"""The judge: asks the student's functions questions and names what is wrong, in one place.

Each graded function of the assignment is declared once, in a module of
:mod:`lab.grading.functions`, as :class:`Item`\\ s: what to ask (``ask``, on inputs
from ``inputs``), the right answer (``reference``), the known mistakes as data
(:class:`Mistake`: a name, words in the maths' language, the wrong formula on the
same inputs) and the questions that localise an unknown one (:class:`Questions`).
This module holds what is common to all of them: the :class:`Student` who is
asked (two processes, NumPy-only and PyTorch, through :mod:`lab.grading.sandbox`),
the comparison, the diagnosis by asking further questions, and the words for a call
that failed. Nothing the student's process says is used but the values it returns
from the student's functions.
"""
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from lab.grading import spec

DOCS = 'docs/derivations.md'


# -- what a verdict is -----------------------------------------------------------------------

@dataclass(frozen=True)
class Verdict:
    """One item's outcome: passed, or the mistake's short name, its words and the evidence.

    ``diagnosis`` is the text a student reads: the words, the evidence and the pointer
    to the derivation, built from the fields, never parsed back.
    """
    passed: bool
    words: str = ''
    mistake: str = ''
    evidence: str = ''
    doc: str = ''

    @property
    def diagnosis(self):
        if self.passed:
            return ''
        text = self.words
        if self.evidence:
            text += f'; {self.evidence}'
        if self.doc:
            text += f' (see {DOCS}#{self.doc})'
        return text


PASS = Verdict(True)


@dataclass(frozen=True)
class Mistake:
    """A known mistake: a short stable name, words in the maths, and its formula.

    ``formula(q)`` is what a function making the mistake returns on the inputs ``q``.
    """
    name: str
    words: str
    formula: Callable


@dataclass(frozen=True)
class Questions:
    """Further questions that tell the causes of a wrong answer apart.

    Attributes
    ----------
    rows : callable, optional
        ``rows(q, index)``: the inputs of the batch made of row ``index`` alone; asked to
        see whether a batch of one is right where the whole batch is wrong.
    regions : callable, optional
        ``regions(q)``: ``[(words, mask)]`` of parts of the answer (a branch, the label
        entries) to see whether the error lives in one part only.
    factors : callable, optional
        ``factors(q)``: ``{words: value}``, the meaningful quantities (N, 1/N, C, alpha)
        a wrong scale may equal.
    at_zero : callable, optional
        ``at_zero(q)``: the inputs with x = 0, where only the bias is left.
    properties : tuple
        ``(words, mistake, holds(returned, q))``: a property of the returned value that
        names the cause when it holds (a softmax whose columns sum to 1).
    """
    rows: Callable = None
    regions: Callable = None
    factors: Callable = None
    at_zero: Callable = None
    properties: tuple = ()


@dataclass(frozen=True)
class Item:
    """One graded item: a question to the student's code and how its answer is judged.

    ``ask(student, q)`` returns a dict of answers (shared by the items with the same
    ``ask`` and ``inputs``: asked once); ``answer`` picks this item's. The generic judge
    compares it with ``reference(q)``, then tries ``mistakes``, then asks ``questions``.
    An item whose judgement is not a comparison of one value gives ``check(student, q,
    item) -> Verdict`` instead. ``explained_by`` lists items whose failure is the likely
    cause of this one's.
    """
    id: str
    name: str
    points: float
    function: str
    files: tuple
    doc: str
    inputs: Callable
    ask: Callable = None
    answer: str = ''
    reference: Callable = None
    mistakes: tuple = ()
    questions: Questions = field(default_factory=Questions)
    check: Callable = None
    explained_by: tuple = ()
    evidence: Callable = None
    bias_like: bool = False


# -- asking the student ----------------------------------------------------------------------

class CallFailed(Exception):
    """A call to the student's code that gave no value; ``failure`` is a dict saying why.

    Keys: ``kind`` ('raised', 'timeout', 'not_implemented', 'file', 'process', 'type'),
    and, as they apply, ``type``, ``message``, ``where``, ``raised_in``, ``file``,
    ``status``.
    """

    def __init__(self, failure):
        super().__init__(failure.get('message', failure.get('kind')))
        self.failure = failure


@dataclass(frozen=True)
class Handle:
    """An object living in the student's process."""
    number: int
    process: str


class Student:
    """The student's code, asked through one NumPy-only and one PyTorch process.

    A process is started when first needed (PyTorch's at once when ``torch_soon``, so
    that torch imports while the NumPy items are asked) and started again after a
    call that killed it, at most ``RESTARTS`` times; a file whose import failed is
    not tried again. ``stop()`` ends both.
    """
    RESTARTS = 3

    def __init__(self, folder, limits, deadline, torch_soon=False):
        self.folder, self.limits, self.deadline = folder, limits, deadline
        self.sessions, self.file_status, self.restarts = {}, {}, 0
        self.answers, self.notes, self._files = {}, set(), {}
        self.torch_soon = torch_soon

    def start(self):
        """Start the PyTorch process now when it will be needed, so torch imports while the
        NumPy items are asked."""
        if self.torch_soon:
            self._session('torch')

    def _session(self, process):
        from lab.grading import sandbox
        session = self.sessions.get(process)
        if session is not None and session.alive:
            return session
        if session is not None:
            if self.restarts >= self.RESTARTS:
                raise CallFailed({'kind': 'process', 'message': session.why_ended()})
            self.restarts += 1
            session.stop()
        self.sessions[process] = None
        session = sandbox.StudentSession(self.folder, self.limits, self.deadline,
                                         numpy_only=process == 'numpy')
        self.sessions[process] = session
        return session

    def _imported(self, process, session):
        files = spec.NUMPY_FILES if process == 'numpy' else spec.TORCH_FILES
        if getattr(session, 'imported', False):
            return
        try:
            status = session.call('import', spec.IMPORT_SECONDS, files=list(files))
        except Exception as error:  # SessionEnded: the import itself killed the process
            status = {name: {'status': 'process', 'message': str(error)} for name in files}
            self.file_status.update(status)
            raise CallFailed({'kind': 'process', 'message': str(error)}) from None
        answer = self._answer(status)
        if not isinstance(answer, dict):
            raise CallFailed({'kind': 'type', 'message': 'the import gave no status'})
        for name in files:
            self.file_status[name] = answer.get(name) if isinstance(answer.get(name), dict) \
                else {'status': 'error'}
        session.imported = True

    @staticmethod
    def _answer(answer):
        if not isinstance(answer, dict) or not isinstance(answer.get('ok'), bool):
            raise CallFailed({'kind': 'type', 'message': 'an answer of the wrong form'})
        if answer['ok']:
            return answer.get('value')
        error = answer.get('error')
        error = {key: str(error.get(key))[:600] if error.get(key) is not None else None
                 for key in ('type', 'message', 'where', 'raised_in')} \
            if isinstance(error, dict) else {}
        kind = {'NotImplementedError': 'not_implemented',
                'CallTimeout': 'timeout'}.get(error.get('type'), 'raised')
        raise CallFailed({'kind': kind, **error})

    def request(self, process, needs, op, seconds=spec.CALL_SECONDS, **args):
        """One operation in the student's process, which needs the file ``needs``."""
        if not (Path(self.folder) / spec.STUDENT_FILES[needs]).is_file():
            self.file_status[needs] = {'status': 'missing'}
        state = self.file_status.get(needs)
        if state is not None and state.get('status') != 'ok':
            raise CallFailed({'kind': 'file', 'file': needs, **state})
        session = self._session(process)
        from lab.grading.sandbox import SessionEnded
        try:
            self._imported(process, session)
            state = self.file_status.get(needs, {})
            if state.get('status') != 'ok':
                raise CallFailed({'kind': 'file', 'file': needs, **state})
            return self._answer(session.call(op, seconds, **args))
        except SessionEnded as error:
            raise CallFailed({'kind': 'process', 'message': str(error)}) from None

    def new(self, file, name, *args, **kwargs):
        process = 'torch' if file in spec.TORCH_FILES else 'numpy'
        value = self.request(process, file, 'new', file=file, name=name,
                             args=[self._plain(arg) for arg in args], kwargs=kwargs)
        return self._handle(value, process, file)

    def _handle(self, value, process, file):
        if not (isinstance(value, dict) and set(value) == {'$handle'}
                and type(value['$handle']) is int):
            raise CallFailed({'kind': 'type', 'message': 'an object handle of the wrong form'})
        handle = Handle(value['$handle'], process)
        self._files[handle] = file
        return handle

    @staticmethod
    def _plain(value):
        return {'$handle': value.number} if isinstance(value, Handle) else value

    def _op(self, handle, op, seconds=spec.CALL_SECONDS, **args):
        return self.request(handle.process, self._files[handle], op, seconds,
                            target=handle.number, **args)

    def call(self, handle, method, *args, echo=False, seconds=spec.CALL_SECONDS):
        """``handle.method(*args)`` on copies of the arguments: its value, and with
        ``echo`` the arguments after the call too."""
        value = self._op(handle, 'call', seconds, method=method,
                         args=[self._plain(arg) for arg in args], echo=echo)
        if not isinstance(value, dict) or 'value' not in value:
            raise CallFailed({'kind': 'type', 'message': 'a call answer of the wrong form'})
        if isinstance(value['value'], dict) and set(value['value']) == {'$handle'}:
            value['value'] = self._handle(value['value'], handle.process, self._files[handle])
        return (value['value'], value.get('args')) if echo else value['value']

    def get(self, handle, *path):
        return self._op(handle, 'get', path=list(path))

    def set(self, handle, *path, value):
        self._op(handle, 'set', path=list(path), value=np.asarray(value, dtype=float))

    def cached(self, handle):
        names = self._op(handle, 'cached')
        return [str(name) for name in names] if isinstance(names, list) else []

    def seed(self, file, seed):
        process = 'torch' if file in spec.TORCH_FILES else 'numpy'
        self.request(process, file, 'seed', seed=seed)

    def perturbed(self, file, method, args, perturb, handle=None, fresh=None, h=1e-5):
        """``method``'s values with each entry of one array at +h and -h: (size, 2, ...)."""
        process = 'torch' if file in spec.TORCH_FILES else 'numpy'
        extra = {'target': handle.number} if handle else {'fresh': fresh}
        return array_answer(self.request(process, file, 'perturbed', 30.0, method=method,
                                         args=list(args), perturb=perturb, h=h, **extra))

    def layers(self, handle, x):
        found = self._op(handle, 'layers', x=x)
        if not isinstance(found, list):
            raise CallFailed({'kind': 'type', 'message': 'a list of layers of the wrong form'})
        layers = []
        for entry in found:
            if not isinstance(entry, dict):
                raise CallFailed({'kind': 'type', 'message': 'a layer of the wrong form'})
            layers.append({'handle': self._handle(entry.get('handle'), handle.process,
                                                  self._files[handle]),
                           'kind': str(entry.get('kind')),
                           'weight_shape': entry.get('weight_shape'),
                           'calls': entry.get('calls') if type(entry.get('calls')) is int
                           else 1})
        return layers

    def backward_order(self, handle, layers, dout):
        """Positions of ``layers`` whose backward ``handle.backward(dout)`` calls, in order."""
        order = self._op(handle, 'backward_order', layers=[layer.number for layer in layers],
                         dout=dout)
        if not isinstance(order, list) or not all(type(index) is int for index in order):
            raise CallFailed({'kind': 'type', 'message': 'an order of the wrong form'})
        return order

    def torch_layers(self, handle, x):
        found = self._op(handle, 'torch_layers', seconds=8.0, x=x)
        if not isinstance(found, dict):
            raise CallFailed({'kind': 'type', 'message': 'layers of the wrong form'})
        found['linears'] = [self._handle(entry, 'torch', 'mlp_pytorch')
                            for entry in found.get('linears') or []]
        return found

    def train_numpy(self, **args):
        return array_answer(self.request('numpy', 'mlp_numpy', 'train_numpy',
                                         spec.TRAINING_SECONDS, **args))

    def torch_forward(self, handle, x, training):
        return array_answer(self._op(handle, 'torch_forward', x=x, training=training))

    def torch_train(self, handle, **args):
        return array_answer(self._op(handle, 'torch_train', spec.TRAINING_SECONDS, **args))

    def ask(self, item, q):
        """``item.ask(self, q)``, once per (ask, inputs) pair of this submission."""
        key = (item.ask, item.inputs)
        if key not in self.answers:
            try:
                self.answers[key] = ('ok', item.ask(self, q))
            except CallFailed as failed:
                self.answers[key] = ('failed', failed)
        status, value = self.answers[key]
        if status == 'failed':
            raise value
        return value

    def stop(self):
        for session in self.sessions.values():
            if session is not None:
                session.stop()


def array_answer(value):
    """``value`` as a float array, or CallFailed saying what came instead."""
    if isinstance(value, np.ndarray) and value.dtype.kind in 'biuf':
        return value.astype(float)
    raise CallFailed({'kind': 'type', 'message': f'returned {describe(value)}, not an array'})


def describe(value):
    """A few words for a returned value that is not what was expected."""
    if value is None:
        return 'None'
    if isinstance(value, np.ndarray):
        return f'an array of shape {value.shape}'
    if isinstance(value, dict) and set(value) == {'$object'}:
        return f"a {value['$object']}"
    return f'a {type(value).__name__}'


# -- the words for a failed call ---------------------------------------------------------------

NUMPY2_SIGNS = (
    ('only 0-dimensional arrays can be converted', 'an array is assigned to a scalar slot '
     '(a[i] = array of one element), an error since NumPy 2: index it or call .item()'),
    ('setting an array element with a sequence', 'an array is assigned to a scalar slot, an '
     'error since NumPy 2: index it or call .item()'),
    ("has no attribute 'float_'", 'np.float_ was removed in NumPy 2: use np.float64'),
    ("has no attribute 'NaN'", 'np.NaN was removed in NumPy 2: use np.nan'),
    ("has no attribute 'Inf'", 'np.Inf was removed in NumPy 2: use np.inf'),
    ("has no attribute 'float'", 'np.float was removed (NumPy 1.24): use float'),
    ("has no attribute 'int'", 'np.int was removed (NumPy 1.24): use int'),
    ("has no attribute 'product'", 'np.product was removed in NumPy 2: use np.prod'),
)


SHAPE_SIGNS = (
    (r'could not be broadcast together with shapes .*\(\d+, ?1\)',
     'an array of shape (k, 1) where a vector (k,) belongs: a bias or other vector kept as a '
     'column'),
    (r'not aligned|matmul: Input operand|mat1 and mat2 shapes',
     'a matrix product of shapes that do not fit: a transpose missing, or one too many'),
    (r'called without a forward pass',
     'one layer object used at two places in the network (shared) keeps only its latest '
     'cache; each layer needs its own object'),
)
"""Error messages that name a cause in the maths: a column for a vector, a transpose."""


def failure_verdict(function, failure, doc=''):
    """The verdict for a call to ``function`` that gave no value (a CallFailed's dict)."""
    kind = failure.get('kind')
    where = f" at {failure['where']}" if failure.get('where') else ''
    message = failure.get('message') or ''
    if kind == 'file':
        return file_verdict(function, failure)
    if kind == 'process':
        return Verdict(False, f'{function}: not graded: the student process {message}',
                       'the process stopped')
    if kind == 'timeout':
        return Verdict(False, f'{function} {message}{where}: an infinite loop, or a loop '
                              f'over every element?', 'ran past its time budget')
    if kind == 'not_implemented':
        return Verdict(False, f'{function}: not implemented yet (NotImplementedError{where})',
                       'not implemented yet')
    if kind == 'type':
        return Verdict(False, f'{function} {message}', 'returns the wrong type', doc=doc)
    name = failure.get('type')
    if name == 'ModuleNotFoundError' and 'must not use PyTorch' in message:
        return Verdict(False, f'{function}: {message}', 'uses PyTorch in the NumPy part')
    if name == 'NameError' and any(f"name '{word}' is not defined" in message
                                   for word in ('out', 'dx')):
        return Verdict(False, f"{function}: not implemented yet: the template's body is still "
                              f"empty ({message}{where})", 'not implemented yet')
    if name == 'TypeError' and '__init__()' in message:
        return Verdict(False, f'{function}: changed required signature: '
                              f'{message.split(" (from")[0]}{where}',
                       'changed required signature')
    if name == 'RecursionError':
        return Verdict(False, f'{function} recurses without end (RecursionError{where}): a '
                              f'method that calls itself, e.g. forward calling self.forward',
                       'endless recursion')
    raised_in = failure.get('raised_in')
    culprit = f' in {raised_in}' if raised_in and raised_in not in function else ''
    words = f'{function} raised {name}{culprit}: {message}{where}'
    if "has no attribute '_modules'" in message:
        words += ('; MLP.__init__ must call super().__init__() before it adds layers (or is '
                  'it still empty?)')
    for sign, hint in NUMPY2_SIGNS:
        if sign in message:
            return Verdict(False, f'{words}; {hint}', 'a NumPy 2 incompatibility')
    for sign, hint in SHAPE_SIGNS:
        if re.search(sign, message):
            words += f'; {hint}'
            break
    return Verdict(False, words, f'crashed: {name}' + (f' in {raised_in}' if culprit else ''))


def file_verdict(function, failure):
    """Why a file could not be used for ``function``: missing, or its import failed."""
    file = spec.STUDENT_FILES.get(failure.get('file'), failure.get('file'))
    status = failure.get('status')
    if status == 'missing':
        return Verdict(False, f'{function}: {file} is missing from the submission',
                       f'{file} is missing')
    if status == 'process':
        return Verdict(False, f'{function}: importing {file}: the student process '
                              f'{failure.get("message")}', f'{file} cannot be imported')
    error = failure.get('error') if isinstance(failure.get('error'), dict) else {}
    name, message = error.get('type'), str(error.get('message'))
    where = error.get('where') or file
    if name in ('SyntaxError', 'IndentationError', 'TabError'):
        filename, _, line = str(where).partition(':')
        text = f'{function}: {filename} line {line}: {name}: {message}'
        if '<<<<<<<' in message or '=======' in message or '>>>>>>>' in message:
            text += ' (a merge-conflict marker)'
        return Verdict(False, text, f'{file} has a {name}')
    if name == 'NotImplementedError':
        return Verdict(False, f'{function}: not implemented yet ({file} raised '
                              f'NotImplementedError)', 'not implemented yet')
    if name == 'CallTimeout':
        return Verdict(False, f'{function}: importing {file} ran past its time budget: an '
                              f'infinite loop?', 'ran past its time budget')
    if name == 'ModuleNotFoundError' and 'must not use PyTorch' in message:
        return Verdict(False, f'{function}: {file}: {message}', 'uses PyTorch in the NumPy part')
    text = f'{function}: {file} could not be imported: {name}: {message} at {where}'
    for sign, hint in NUMPY2_SIGNS:
        if sign in message:
            return Verdict(False, f'{text}; {hint}', 'a NumPy 2 incompatibility')
    return Verdict(False, text, f'{file} cannot be imported: {name}')


# -- comparing and showing -----------------------------------------------------------------------

def show(value):
    """A short, readable rendering of an array or number for a diagnosis."""
    if value is None:
        return 'None'
    if isinstance(value, str):
        return value
    array = np.asarray(value, dtype=float)
    if array.ndim == 0:
        return f'{float(array):.6g}'
    text = np.array2string(array, precision=4, suppress_small=True, separator=', ',
                           max_line_width=200, threshold=30)
    text = ' '.join(text.split())
    return text if len(text) <= 240 else text[:237] + '...'


def close(returned, expected, rtol=spec.RTOL, atol=spec.ATOL):
    """True when ``returned`` has the shape of ``expected`` and the same values."""
    if not isinstance(returned, (np.ndarray, float, int)) or isinstance(returned, bool):
        return False
    returned = np.asarray(returned, dtype=float)
    expected = np.asarray(expected, dtype=float)
    if returned.shape != expected.shape:
        return False
    return bool(np.allclose(returned, expected, rtol=rtol, atol=atol))


def same_values(returned, expected):
    """``close``, also when only axes of length 1 differ, e.g. (1, M) for (M,)."""
    if not isinstance(returned, (np.ndarray, float, int)):
        return False
    returned = np.asarray(returned, dtype=float)
    expected = np.asarray(expected, dtype=float)
    if returned.size != expected.size or returned.squeeze().shape != expected.squeeze().shape:
        return False
    return close(returned.reshape(expected.shape), expected)


def scale_factor(returned, expected):
    """The c with returned = c * expected when one fits; None when none does."""
    norm = float(np.sum(expected * expected))
    if norm == 0:
        return None
    factor = float(np.sum(returned * expected)) / norm
    return factor if close(returned, factor * expected) else None


FACTOR_WORDS = {
    'N': 'is N = {v:g} times the right value: the 1/N of the mean over the batch is missing',
    '1/N': ('is 1/N of the right value (N = {inv:g}): it divides by the batch size N once too '
            'often (twice, or where no mean is taken)'),
    'N²': 'is N² = {v:g} times the right value: it multiplies by N where it should divide',
    '1/N²': 'is 1/N² of the right value (N² = {inv:g}): it divides by N twice too often',
    'C': 'is C = {v:g} times the right value: a sum over the classes where one class counts',
    '1/C': ('is 1/C of the right value (C = {inv:g}): a mean over every entry or over the '
            'classes, where only the N samples are averaged'),
    '1/(N·C)': 'is 1/(N·C) of the right value (N·C = {inv:g}): a mean over every entry',
    'N/C': ('is N/C = {v:g} times the right value: it divides by the number of classes C '
            'where the mean is over the N samples'),
    'alpha': 'is alpha = {v:g} times the right value: alpha applied once too often',
    '1/alpha': 'is the right value divided by alpha = {inv:g}: alpha is missing',
    '-1': 'has the wrong sign',
    '0': 'is all zeros: the gradient never reaches it',
}


def factor_verdict(item, factor, factors, size):
    """Words for a returned value that is ``factor`` times the right one: named when the
    factor is a meaningful quantity (a sign, N, 1/N, C, alpha); for an array (where a common
    factor of every entry is itself a finding) also when it is not; None otherwise."""
    candidates = {'-1': -1.0, '0': 0.0, **factors}
    for name, value in candidates.items():
        if np.isclose(factor, value, rtol=1e-6, atol=1e-12):
            words = FACTOR_WORDS.get(name, f'is {name} = {{v:g}} times the right value')
            return (f'{item.function} {words.format(v=value, inv=1 / value if value else 0)}',
                    f'scaled by {name}')
    if size > 1:
        return (f'{item.function} is {factor:.4g} times the right value in every entry: a '
                f'constant factor that is none of the layer\'s quantities '
                f'({", ".join(factors) or "N"})', 'a constant factor')
    return None


# -- the generic judge -----------------------------------------------------------------------------

def judge(item, student, year):
    """The verdict on ``item`` for ``student``, the assignment of ``year``."""
    q = item.inputs(year)
    try:
        if item.check is not None:
            return item.check(student, q, item)
        returned = answer_of(student.ask(item, q), item.answer)
    except CallFailed as failed:
        return failure_verdict(item.function, failed.failure, item.doc)
    return judge_value(item, student, q, returned)


def attempt(call):
    """The value of ``call()``, or the CallFailed it raised: one answer of several, so that
    a crash in a later call (backward) costs only the items that need it."""
    try:
        return call()
    except CallFailed as failed:
        return failed


def answer_of(answers, key):
    """``answers[key]``, raising the CallFailed stored there instead of a value."""
    if isinstance(answers[key], CallFailed):
        raise answers[key]
    return answers[key]


def evidence_of(item, q, returned, expected):
    inputs = item.evidence(q) if item.evidence else ''
    return f'{inputs}: expected {show(expected)}, returned {show(returned)}'.lstrip(': ')


def judge_value(item, student, q, returned):
    """Compare ``returned`` with the reference, then name the mistake: known, or by asking."""
    expected = np.asarray(item.reference(q), dtype=float)
    match = same_values if item.bias_like else close
    if match(returned, expected):
        return PASS
    evidence = evidence_of(item, q, returned, expected)

    def fail(words, mistake):
        return Verdict(False, words, mistake, evidence, item.doc)

    if not isinstance(returned, (np.ndarray, float, int)) or isinstance(returned, bool):
        return fail(f'{item.function} returns {describe(returned)}, not an array of numbers',
                    'returns the wrong type')
    for mistake in item.mistakes:
        try:
            value = mistake.formula(q)
        except Exception:  # a formula that cannot be formed for these inputs
            continue
        if value is not None and match(returned, value):
            return fail(f'{item.function} {mistake.words}', mistake.name)
    found = ask_further(item, student, q, np.asarray(returned, dtype=float), expected)
    return fail(*found)


def ask_further(item, student, q, returned, expected):
    """(words, mistake name) for a wrong answer no known mistake explains.

    The shape first (a transpose, a scalar for a vector, one row per sample), then a
    meaningful scale, then the region of the answer where it goes wrong, then a batch
    of one against the whole batch, then the input at zero.
    """
    function = item.function
    if returned.shape != expected.shape:
        return shape_words(function, returned, expected)
    if not np.all(np.isfinite(returned)):
        return (f'{function} returns non-finite values (nan or inf) where the right '
                f'values are finite: an overflow, or a division by zero', 'non-finite values')
    factors = item.questions.factors(q) if item.questions.factors else {}
    factor = scale_factor(returned, expected)
    if factor is not None:
        named = factor_verdict(item, factor, factors, expected.size)
        if named:
            return named
    for words, mistake, holds in item.questions.properties:
        if holds(returned, q):
            return f'{function} {words}', mistake
    if item.questions.regions:
        found = region_words(item, q, returned, expected, factors)
        if found:
            return found
    if item.questions.rows and batch_size(q) > 1:
        found = rows_words(item, student, q, returned)
        if found:
            return found
    if item.questions.at_zero:
        found = zero_words(item, student, q)
        if found:
            return found
    worst = np.unravel_index(np.argmax(np.abs(returned - expected)), expected.shape)
    where = f' (the largest difference at index {tuple(int(i) for i in worst)})' \
        if expected.ndim else ''
    return (f'{function} returns wrong values, and no question asked narrowed them to a '
            f'branch, an axis or a factor{where}', 'wrong values')


def shape_words(function, returned, expected):
    if returned.shape == expected.T.shape and close(returned.T, expected):
        return (f'{function} returns the transpose of the right result: shape '
                f'{returned.shape}, expected {expected.shape}', 'transposed')
    if returned.ndim == 0 or returned.size == 1 and expected.size > 1:
        return (f'{function} returns a scalar where an array of shape {expected.shape} is '
                f'expected', 'a scalar for an array')
    if returned.ndim == expected.ndim + 1 and returned.shape[1:] == expected.shape:
        if close(returned.sum(axis=0), expected):
            return (f'{function} returns one row per sample, shape {returned.shape}: the sum '
                    f'over the batch (axis 0) is missing', 'the sum over the batch missing')
        return (f'{function} returns one row per sample, shape {returned.shape}, expected '
                f'{expected.shape}: a sum over the batch is missing', 'one row per sample')
    if expected.ndim == 0 and returned.ndim >= 1:
        return (f'{function} returns an array of shape {returned.shape}, not the scalar mean '
                f'over the batch', 'an array for a scalar')
    return (f'{function} returns shape {returned.shape}, expected {expected.shape}',
            'wrong shape')


def region_words(item, q, returned, expected, factors):
    """The error confined to one region of the answer (a branch, the label entries)."""
    regions = item.questions.regions(q)
    wrong = [(words, mask) for words, mask in regions
             if mask.any() and not close(returned[mask], expected[mask])]
    right = [words for words, mask in regions
             if mask.any() and close(returned[mask], expected[mask])]
    if len(wrong) != 1 or not right:
        return None
    words, mask = wrong[0]
    text = f'{item.function} is wrong only {words}, and right {" and ".join(right)}'
    factor = scale_factor(returned[mask], expected[mask])
    if factor is not None:
        for name, value in {'-1': -1.0, '0': 0.0, **factors}.items():
            if np.isclose(factor, value, rtol=1e-6, atol=1e-12):
                scale = {'-1': 'has the wrong sign', '0': 'is zero',
                         'alpha': f'is alpha = {value:g} times the right value: alpha applied '
                                  f'once too often',
                         '1/alpha': f'is the right value divided by alpha = {1 / value:g}: '
                                    f'alpha is missing'}.get(
                    name, f'is {name} = {value:g} times the right value')
                return f'{text}: there it {scale}', f'wrong {words}: scaled by {name}'
    return text, f'wrong {words}'


def rows_words(item, student, q, returned_value):
    """A batch of one asked alone: right alone but wrong in the batch means rows are mixed
    (or, when the batch's answer is one sample's, a loop keeping only that sample)."""
    results = []
    for index in range(2):
        one = item.questions.rows(q, index)
        try:
            returned = student.ask(replace(item, inputs=_fixed(one)), one)
        except CallFailed:
            return None
        value = returned[item.answer]
        results.append(close(value, item.reference(one)) if not item.bias_like
                       else same_values(value, item.reference(one)))
    if not all(results):
        return None
    for index in range(batch_size(q)):
        one = item.questions.rows(q, index)
        if close(returned_value, item.reference(one)) or item.bias_like and same_values(
                returned_value, item.reference(one)):
            return (f'{item.function} is right for a batch of one sample, and for the batch of '
                    f'N = {batch_size(q)} it returns the value of sample {index} alone: a loop '
                    f'over the samples that assigns (=) where it should add (+=), keeping '
                    f'only the {"last" if index == batch_size(q) - 1 else "one"} sample',
                    'one sample kept')
    return (f'{item.function} is right for a batch of one sample but wrong for the batch '
            f'of N = {batch_size(q)}: the rows are mixed (a sum, max or mean over axis 0, the '
            f'batch, where it belongs to each sample, row by row)', 'rows mixed: an axis')


def batch_size(q):
    return len(q['x'])


def _fixed(q):
    """An inputs function returning ``q`` (for a further question's own answers)."""
    def inputs(year, q=q):
        return q
    return inputs


def zero_words(item, student, q):
    """At x = 0 only the bias is left: a zero answer there means the bias is never added."""
    zero = item.questions.at_zero(q)
    try:
        value = student.ask(replace(item, inputs=_fixed(zero)), zero)[item.answer]
    except CallFailed:
        return None
    expected = item.reference(zero)
    if close(value, np.zeros_like(expected)) and not close(expected, np.zeros_like(expected)):
        return (f'{item.function} never adds the bias b: at x = 0 it returns 0, expected b',
                'the bias never added')
    if close(value, -expected):
        return (f'{item.function} subtracts the bias b: at x = 0 it returns -b', 'bias sign')
    return None
