"""
doc/nodes.md: every node (console script), its parameters, and every launch file's arguments.

Nodes come from setup.py's console_scripts, each node's parameters from the options schema it
declares (the `*_NODE_OPTIONS` tuple its module names), launch arguments from the launch files'
`ARGUMENTS` and `DeclareLaunchArgument` calls, read with `ast` (launch is not on PyPI).
"""

import ast
import glob
import os
import types

from docgen import GENERATED_NOTE, PACKAGE_DIR

LAUNCH_DIR = os.path.join(PACKAGE_DIR, 'launch')


def _tree(path: str) -> ast.Module:
    with open(path, encoding='utf-8') as source:
        return ast.parse(source.read(), path)


def console_scripts() -> dict:
    """Return executable name -> 'module:function', from setup.py."""
    scripts = {}
    for node in ast.walk(_tree(os.path.join(PACKAGE_DIR, 'setup.py'))):
        if isinstance(node, ast.keyword) and node.arg == 'entry_points':
            for entry in ast.literal_eval(node.value).get('console_scripts', []):
                name, target = (part.strip() for part in entry.split('='))
                scripts[name] = target
    return scripts


def node_options(target: str) -> tuple:
    """Return (schema name, options) of the node whose main is `target` ('module:function')."""
    from jetson_shm_ros.process import role_options

    module = target.split(':')[0]
    path = os.path.join(PACKAGE_DIR, *module.split('.')) + '.py'
    names = sorted({node.id for node in ast.walk(_tree(path)) if isinstance(node, ast.Name) and
                    node.id.endswith('_NODE_OPTIONS') and hasattr(role_options, node.id)})
    if len(names) != 1:
        raise LookupError(f'{path}: expected one *_NODE_OPTIONS schema, found {names}')
    return names[0], getattr(role_options, names[0])


def _launch_module(path: str) -> types.ModuleType:
    """Run only a launch file's jetson_shm_ros imports and its ARGUMENTS assignment."""
    tree = _tree(path)
    wanted = [node for node in tree.body if
              (isinstance(node, ast.ImportFrom) and node.module.startswith('jetson_shm_ros')) or
              (isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name) and
               node.targets[0].id in ('ARGUMENTS', 'DEFAULT_RMW'))]
    module = types.ModuleType(os.path.basename(path))
    exec(compile(ast.Module(body=wanted, type_ignores=[]), path, 'exec'), module.__dict__)
    return module


def launch_arguments(path: str) -> list:
    """Return (name, default, applies to, description) of every argument of a launch file."""
    rows = []
    module = _launch_module(path)
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Call) and getattr(node.func, 'id', '') == \
                'DeclareLaunchArgument' and node.args and isinstance(node.args[0], ast.Constant):
            keywords = {k.arg: k.value for k in node.keywords}
            default = keywords.get('default_value')
            if isinstance(default, ast.Constant):
                default = default.value
            elif isinstance(default, ast.Name) and hasattr(module, default.id):
                default = getattr(module, default.id)
            else:
                default = '(computed at launch)'
            description = keywords.get('description')
            try:
                description = ast.literal_eval(description) if description else ''
            except ValueError:
                description = ''
            rows.append((node.args[0].value, default, 'all', description))
    arguments = getattr(module, 'ARGUMENTS', None)
    if isinstance(arguments, dict):
        rows += [(name, default, 'all', text) for name, (default, text) in arguments.items()]
    elif arguments:
        rows += [(argument.name, '', ', '.join(argument.nodes),
                  argument.description + "; empty: the config file's value")
                 for argument in arguments]
    return rows


def _cell(value) -> str:
    if isinstance(value, bool):
        value = str(value).lower()
    if isinstance(value, list):
        value = '[' + ','.join(str(item) for item in value) + ']'
    text = str(value).replace('|', '\\|')
    return f'`{text}`' if text else "`''`"


def _parameters(options) -> list:
    lines = ['| parameter | default | allowed | description |', '|---|---|---|---|']
    for option in options:
        allowed = option.allowed() if (option.kind is not str or option.choices) else 'a string'
        lines.append(f'| `{option.name}` | {_cell(option.default)} | '
                     f'{allowed.replace("|", chr(92) + "|")} | {option.description} |')
    return lines


def render() -> str:
    """Return doc/nodes.md."""
    scripts = console_scripts()
    lines = ['# Nodes, parameters and launch files', '',
             GENERATED_NOTE.format(source='setup.py, process/role_options.py and launch/'), '',
             'Each executable is installed as `install/jetson_shm_ros/lib/jetson_shm_ros/<node>`: '
             '`ros2 run jetson_shm_ros <node> --ros-args -p name:=value` and '
             '`install/jetson_shm_ros/lib/jetson_shm_ros/<node> --ros-args -p name:=value` run '
             'the same file. Values are taken as typed (`rate_hz:=30`, `shape:="[64,64,3]"`); a '
             'bad one ends start-up with one `[FATAL] bad_option` line and exit status 2. '
             'Prose: [bridges.md](bridges.md) for the image bridges, the README for producer and '
             'consumer.', '', '## Nodes', '']
    lines += [f'- [`{name}`](#{name}) (`{target}`)' for name, target in scripts.items()]
    lines.append('')
    for name, target in scripts.items():
        schema, options = node_options(target)
        lines += [f'### {name}', '', f'Parameters (`{schema}`):', ''] + _parameters(options) + ['']
    lines += ['## Launch files', '',
              'Each `ros2 launch jetson_shm_ros <file>` argument is listed; `--show-args` prints '
              'the same. Without `launch` (not on PyPI) run the nodes one by one, as the README '
              'shows.', '']
    for path in sorted(glob.glob(os.path.join(LAUNCH_DIR, '*_launch.py'))):
        lines += [f'### {os.path.basename(path)}', '',
                  '| argument | default | applies to | description |', '|---|---|---|---|']
        for name, default, nodes, description in launch_arguments(path):
            lines.append(f'| `{name}` | {_cell(default)} | {nodes} | '
                         f'{description.replace("|", chr(92) + "|")} |')
        lines.append('')
    return '\n'.join(lines).rstrip() + '\n'
