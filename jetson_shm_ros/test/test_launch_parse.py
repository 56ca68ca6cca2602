"""
Check launch/demo_launch.py and config/demo.yaml without launch or launch_ros.

The launch file is read with `ast`: every executable it starts must be a console script of
setup.py, every parameter it sets must be declared by that node, and every key of
config/demo.yaml must be a declared parameter of the node it is under.
"""

import ast
import os
import re

import pytest
import yaml

PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCH_FILE = os.path.join(PACKAGE_DIR, 'launch', 'demo_launch.py')
CONFIG_FILE = os.path.join(PACKAGE_DIR, 'config', 'demo.yaml')
NODE_SOURCES = {name: os.path.join(PACKAGE_DIR, 'jetson_shm_ros', 'nodes', f'{name}.py')
                for name in ('producer', 'consumer')}
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


def _declared(node: str) -> set:
    with open(NODE_SOURCES[node], encoding='utf-8') as source:
        return set(re.findall(r"declare_parameter\(\s*'(\w+)'", source.read()))


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


def test_every_parameter_the_launch_file_sets_is_declared(launch_tree):
    parameters = _assigned(launch_tree, 'PARAMETERS')
    assert parameters
    for name, (kind, nodes, description) in parameters.items():
        assert kind in ('int', 'float', 'str', 'list'), (name, kind)
        assert description, name
        for node in nodes:
            assert name in _declared(node), f'{node} declares no parameter {name!r}'


def test_launch_arguments_cover_what_users_change_and_default_to_cyclone(launch_tree):
    declared = {call.args[0].value for call in _calls(launch_tree, 'DeclareLaunchArgument')
                if call.args and isinstance(call.args[0], ast.Constant)}
    declared |= set(_assigned(launch_tree, 'PARAMETERS'))
    assert REQUIRED_ARGUMENTS <= declared, REQUIRED_ARGUMENTS - declared
    assert _assigned(launch_tree, 'DEFAULT_RMW') == 'rmw_cyclonedds_cpp'


def test_every_config_key_is_a_declared_parameter_of_its_node():
    with open(CONFIG_FILE, encoding='utf-8') as source:
        config = yaml.safe_load(source)
    seen = set()
    for key, section in config.items():
        node = key.rsplit('/', 1)[-1]
        assert node in NODE_SOURCES, f'{key}: no node {node!r}'
        assert set(section) == {'ros__parameters'}, key
        unknown = set(section['ros__parameters']) - _declared(node)
        assert not unknown, f'{key}: {sorted(unknown)} are not parameters of {node}'
        seen.add(node)
    assert seen == set(NODE_SOURCES)


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
