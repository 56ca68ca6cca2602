"""
Check launch/bridges_launch.py without launch or launch_ros (they are not on PyPI).

Read with `ast`: each of this package's executables it starts must be a console script of
setup.py, each parameter it sets must be an option of that node (process.role_options), and each
remapping must name the topic the node really uses.
"""

import ast
import os
import re

from jetson_shm_ros.nodes import image_to_shm, shm_to_image
from jetson_shm_ros.process.role_options import (
    CONSUMER_NODE_OPTIONS, IMAGE_TO_SHM_NODE_OPTIONS, SHM_TO_IMAGE_NODE_OPTIONS)
import pytest

PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCH_FILE = os.path.join(PACKAGE_DIR, 'launch', 'bridges_launch.py')
OPTIONS = {'image_to_shm': IMAGE_TO_SHM_NODE_OPTIONS, 'shm_to_image': SHM_TO_IMAGE_NODE_OPTIONS,
           'consumer': CONSUMER_NODE_OPTIONS}
INPUT_TOPICS = {'image_to_shm': image_to_shm.IMAGE_TOPIC, 'shm_to_image': shm_to_image.IMAGE_TOPIC}


def _our_nodes():
    with open(LAUNCH_FILE, encoding='utf-8') as source:
        tree = ast.parse(source.read(), LAUNCH_FILE)
    for call in ast.walk(tree):
        if isinstance(call, ast.Call) and getattr(call.func, 'id', '') == 'Node':
            keywords = {keyword.arg: keyword.value for keyword in call.keywords}
            package = keywords['package']
            if isinstance(package, ast.Name) and package.id == 'PACKAGE':
                yield ast.literal_eval(keywords['executable']), keywords


def _declared(executable: str) -> set:
    return {option.name for option in OPTIONS[executable]}


def _console_scripts() -> set:
    with open(os.path.join(PACKAGE_DIR, 'setup.py'), encoding='utf-8') as source:
        return set(re.findall(r"'(\w+) = jetson_shm_ros\.nodes\.\1:main'", source.read()))


@pytest.fixture(scope='module')
def nodes():
    found = list(_our_nodes())
    assert {name for name, _ in found} == {'image_to_shm', 'consumer', 'shm_to_image'}, found
    return found


def test_every_executable_is_an_installed_console_script(nodes):
    scripts = _console_scripts()
    for executable, _ in nodes:
        assert executable in scripts, f'{executable} is not a console script in setup.py'


def test_every_parameter_set_is_declared_by_its_node(nodes):
    for executable, keywords in nodes:
        for parameters in keywords['parameters'].elts:
            names = {ast.literal_eval(key) for key in parameters.keys}
            missing = names - _declared(executable)
            assert not missing, f'{executable} does not declare {missing}'


def test_remappings_name_the_topics_the_bridges_use(nodes):
    for executable, keywords in nodes:
        if executable not in INPUT_TOPICS:
            continue
        remapped = {ast.literal_eval(pair.elts[0]) for pair in keywords['remappings'].elts}
        assert remapped == {INPUT_TOPICS[executable]}, (executable, remapped)
