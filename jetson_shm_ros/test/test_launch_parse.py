"""
Check launch/demo_launch.py and config/demo.yaml without launch or launch_ros.

The launch file is read with `ast`: every executable it starts must be a console script of
setup.py, its arguments must come from the schemas (process.options) of exactly the nodes it
starts, and every key of config/demo.yaml must be an option of the node it is under, with a
value that option accepts.
"""

import ast
import os
import types

from jetson_shm_ros.process.role_options import CONSUMER_NODE_OPTIONS, PRODUCER_NODE_OPTIONS
import pytest
import yaml

PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCH_FILE = os.path.join(PACKAGE_DIR, 'launch', 'demo_launch.py')
CONFIG_FILE = os.path.join(PACKAGE_DIR, 'config', 'demo.yaml')
NODE_OPTIONS = {'producer': PRODUCER_NODE_OPTIONS, 'consumer': CONSUMER_NODE_OPTIONS}
# What issue 4 says users change: each must be a launch argument.
REQUIRED_ARGUMENTS = {'shape', 'dtype', 'rate_hz', 'frames', 'slots', 'policy', 'backend',
                      'mode', 'namespace', 'rmw'}


def _tree(path: str) -> ast.Module:
    with open(path, encoding='utf-8') as source:
        return ast.parse(source.read(), path)


def _assigned(tree: ast.Module, name: str):
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(target, ast.Name) and target.id == name for target in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f'{name} is not assigned at module level')


def _calls(tree: ast.Module, function: str):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                node.func.id == function:
            yield node


def _keyword(call: ast.Call, name: str):
    for keyword in call.keywords:
        if keyword.arg == name:
            return ast.literal_eval(keyword.value)
    return None


def _options(node: str) -> dict:
    return {option.name: option for option in NODE_OPTIONS[node]}


def _launch_arguments(tree: ast.Module):
    """Run only the launch file's jetson_shm_ros imports and its ARGUMENTS assignment."""
    wanted = [node for node in tree.body if
              (isinstance(node, ast.ImportFrom) and node.module.startswith('jetson_shm_ros')) or
              (isinstance(node, ast.Assign) and node.targets[0].id == 'ARGUMENTS')]
    module = types.ModuleType('demo_launch_arguments')
    exec(compile(ast.Module(body=wanted, type_ignores=[]), LAUNCH_FILE, 'exec'),
         module.__dict__)
    return module.ARGUMENTS


def _console_scripts() -> dict:
    scripts = {}
    for call in _calls(_tree(os.path.join(PACKAGE_DIR, 'setup.py')), 'setup'):
        for entry in (_keyword(call, 'entry_points') or {}).get('console_scripts', []):
            name, target = (part.strip() for part in entry.split('='))
            scripts[name] = target
    return scripts


@pytest.fixture(scope='module')
def launch_tree():
    return _tree(LAUNCH_FILE)


def test_every_executable_is_an_installed_console_script(launch_tree):
    nodes = {(_keyword(call, 'executable'), _keyword(call, 'name'))
             for call in _calls(launch_tree, 'Node')}
    assert nodes == {('producer', 'producer'), ('consumer', 'consumer')}, nodes
    scripts = _console_scripts()
    for executable, _ in nodes:
        assert executable in scripts, f'{executable} is not in setup.py console_scripts'
        assert scripts[executable] == f'jetson_shm_ros.nodes.{executable}:main'
    assert _assigned(launch_tree, 'PACKAGE') == 'jetson_shm_ros'


def test_the_launch_arguments_are_every_option_of_the_nodes_it_starts(launch_tree):
    arguments = _launch_arguments(launch_tree)
    started = {_keyword(call, 'executable') for call in _calls(launch_tree, 'Node')}
    for node in started:
        names = {argument.name for argument in arguments if node in argument.nodes}
        assert names == set(_options(node)), f'{node}: {names ^ set(_options(node))}'
    for argument in arguments:
        assert set(argument.nodes) <= started, argument
        assert argument.description, argument


def test_launch_arguments_cover_what_users_change_and_default_to_cyclone(launch_tree):
    declared = {call.args[0].value for call in _calls(launch_tree, 'DeclareLaunchArgument')
                if call.args and isinstance(call.args[0], ast.Constant)}
    declared |= {argument.name for argument in _launch_arguments(launch_tree)}
    assert REQUIRED_ARGUMENTS <= declared, REQUIRED_ARGUMENTS - declared
    assert _assigned(launch_tree, 'DEFAULT_RMW') == 'rmw_cyclonedds_cpp'


def test_every_config_key_is_an_option_of_its_node_with_a_value_it_accepts():
    with open(CONFIG_FILE, encoding='utf-8') as source:
        config = yaml.safe_load(source)
    seen = set()
    for key, section in config.items():
        node = key.rsplit('/', 1)[-1]
        assert node in NODE_OPTIONS, f'{key}: no node {node!r}'
        assert set(section) == {'ros__parameters'}, key
        options = _options(node)
        unknown = set(section['ros__parameters']) - set(options)
        assert not unknown, f'{key}: {sorted(unknown)} are not parameters of {node}'
        for name, value in section['ros__parameters'].items():
            options[name].parse(value)  # raises OptionError naming the bad value
        seen.add(node)
    assert seen == set(NODE_OPTIONS)


def test_launch_and_config_files_are_installed_by_setup_py():
    with open(os.path.join(PACKAGE_DIR, 'setup.py'), encoding='utf-8') as source:
        text = source.read()
    assert "glob(os.path.join('launch', '*.py'))" in text
    assert "glob(os.path.join('config', '*.yaml'))" in text


def _rmw_problem():
    """Return rmw_problem(), which the launch files call before starting any node."""
    from jetson_shm_ros.ros.middleware import rmw_problem
    return rmw_problem


def test_a_missing_rmw_is_one_sentence_naming_it_and_how_to_install_it(monkeypatch):
    monkeypatch.setenv('ROS_DISTRO', 'humble')
    rmw_problem = _rmw_problem()
    message = rmw_problem('rmw_cyclonedds_cpp_not_here')
    assert 'rmw_cyclonedds_cpp_not_here' in message
    assert 'sudo apt install ros-humble-rmw-cyclonedds-cpp-not-here' in message
    assert message.count('. ') == 0 and message.endswith('.') and '\n' not in message


def test_an_installed_rmw_is_accepted():
    from ament_index_python.packages import get_resources

    installed = sorted(get_resources('rmw_typesupport'))
    assert installed, 'no RMW implementation in the ament index'
    assert _rmw_problem()(installed[0]) is None
