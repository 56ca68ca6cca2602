"""doc/api.md: the public API, from the modules' own docstrings and signatures."""

import importlib
import inspect
import re

from docgen import GENERATED_NOTE

# The modules a user's code imports from, in reading order: the rclpy API, then the ROS-free
# core that it is built on. Each lists the public names it defines itself.
MODULES = (
    'jetson_shm_ros',
    'jetson_shm_ros.ros.publisher',
    'jetson_shm_ros.ros.subscription',
    'jetson_shm_ros.ros.frame_info',
    'jetson_shm_ros.core.errors',
    'jetson_shm_ros.core.frame_producer',
    'jetson_shm_ros.core.frame_consumer',
    'jetson_shm_ros.core.backend',
    'jetson_shm_ros.core.image_layout',
    'jetson_shm_ros.process.options',
)
_FIELD = re.compile(r'^:(param|return|returns|raises|raise)\s*([^:]*):\s*(.*)$')
_ADDRESS = re.compile(r' at 0x[0-9a-fA-F]+')


def _docstring(thing) -> str:
    """Return a docstring as Markdown: `:param x: text` lines become a list."""
    text = inspect.getdoc(thing) or ''
    lines = []
    for line in text.splitlines():
        field = _FIELD.match(line.strip())
        if field:
            kind, name, rest = field.groups()
            label = {'param': f'`{name.strip()}`', 'raise': f'raises `{name.strip()}`',
                     'raises': f'raises `{name.strip()}`'}.get(kind, 'returns')
            lines.append(f'- {label}: {rest}')
        elif lines and lines[-1].startswith('- ') and line.startswith(' ') and line.strip():
            lines[-1] += ' ' + line.strip()  # a field's continuation line
        else:
            lines.append(line)
    return '\n'.join(lines).strip()


def _signature(thing) -> str:
    try:
        text = str(inspect.signature(thing))
    except (TypeError, ValueError):
        return '(...)'
    return _ADDRESS.sub('', text)


def _defined_here(module, value) -> bool:
    return getattr(value, '__module__', None) == module.__name__


def _members(cls):
    for name, value in vars(cls).items():
        if name.startswith('_') and name not in ('__enter__', '__exit__'):
            continue
        if isinstance(value, property):
            yield name, 'property', value
        elif isinstance(value, (staticmethod, classmethod)):
            yield name, 'method', value.__func__
        elif inspect.isfunction(value):
            yield name, 'method', value


def _class(name: str, cls, level: str) -> list:
    init = cls.__init__ if '__init__' in vars(cls) else None
    signature = _signature(cls) if init is not None or inspect.isclass(cls) else ''
    bases = [base.__name__ for base in cls.__bases__ if base is not object]
    lines = [f'{level} class `{name}{signature}`', '']
    if bases:
        lines += [f'Derives from {", ".join(f"`{base}`" for base in bases)}.', '']
    lines += [_docstring(cls), '']
    for member, kind, value in _members(cls):
        if kind == 'property':
            lines += [f'- **`{member}`** (property): ' + _docstring(value).replace('\n', ' ')]
        else:
            doc = _docstring(value)
            lines += [f'- **`{member}{_signature(value)}`**' + (': ' if doc else '')
                      + '\n  '.join(doc.splitlines())]
    return lines + ['']


def _module(name: str) -> list:
    module = importlib.import_module(name)
    lines = [f'## `{name}`', '', _docstring(module), '']
    names = getattr(module, '__all__', None)
    if names is None:
        names = [key for key, value in vars(module).items() if not key.startswith('_') and
                 (inspect.isclass(value) or inspect.isfunction(value)) and
                 _defined_here(module, value)]
        if name == 'jetson_shm_ros':
            names = []
    if name == 'jetson_shm_ros':
        return lines + ['Public names: ' + ', '.join(f'`{key}`' for key in module.__all__)
                        + ' (documented in their modules below).', '']
    for key in names:
        value = getattr(module, key)
        if inspect.isclass(value):
            lines += _class(key, value, '###')
        elif callable(value):
            lines += [f'### `{key}{_signature(value)}`', '', _docstring(value), '']
    return lines


def render() -> str:
    """Return doc/api.md."""
    lines = ['# API reference', '', GENERATED_NOTE.format(source='the docstrings'), '',
             'The rclpy API (`from jetson_shm_ros import ShmPublisher, ShmSubscription`) and '
             'the ROS-free core it is built on. Prose and examples: [the README](../README.md) '
             'and [design.md](design.md).', '']
    lines += [f'- [`{name}`](#{name.replace(".", "")})' for name in MODULES] + ['']
    for name in MODULES:
        lines += _module(name)
    text = '\n'.join(lines)
    return re.sub(r'\n{3,}', '\n\n', text).rstrip() + '\n'
