"""Check launch/record_launch.py without launch or launch_ros: its arguments are the schema's."""

import ast
import os
import types

from jetson_shm_ros.process.role_options import RECORDER_NODE_OPTIONS

PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCH_FILE = os.path.join(PACKAGE_DIR, 'launch', 'record_launch.py')


def _tree() -> ast.Module:
    with open(LAUNCH_FILE, encoding='utf-8') as source:
        return ast.parse(source.read(), LAUNCH_FILE)


def test_every_recorder_option_is_an_argument_and_nothing_else():
    tree = _tree()
    wanted = [node for node in tree.body if
              (isinstance(node, ast.ImportFrom) and node.module.startswith('jetson_shm_ros')) or
              (isinstance(node, ast.Assign) and node.targets[0].id == 'ARGUMENTS')]
    module = types.ModuleType('record_launch_arguments')
    exec(compile(ast.Module(body=wanted, type_ignores=[]), LAUNCH_FILE, 'exec'),
         module.__dict__)
    names = [argument.name for argument in module.ARGUMENTS]
    assert names == [option.name for option in RECORDER_NODE_OPTIONS]
    assert all(argument.nodes == ('shm_recorder',) for argument in module.ARGUMENTS)


def test_it_starts_the_installed_recorder():
    executables = {keyword.value.value for node in ast.walk(_tree())
                   if isinstance(node, ast.Call) and getattr(node.func, 'id', '') == 'Node'
                   for keyword in node.keywords if keyword.arg == 'executable'}
    assert executables == {'shm_recorder'}
    with open(os.path.join(PACKAGE_DIR, 'setup.py'), encoding='utf-8') as source:
        assert "'shm_recorder = jetson_shm_ros.nodes.shm_recorder:main'" in source.read()
