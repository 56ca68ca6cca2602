"""
The docs cannot drift: generated docs current, every node, parameter, launch argument in them.

doc/api.md, doc/nodes.md and doc/benchmark.md are written by `make docs` (python -m docgen,
at the repository root); these tests regenerate them in memory and compare. The coverage tests
read the committed files and take the names from the sources: setup.py's console scripts, each
node's options schema, each launch file's arguments.
"""

import glob
import os
import re
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
DOC = os.path.join(ROOT, 'doc')
sys.path.insert(0, ROOT)

from docgen import __main__ as docgen_main  # noqa: E402,I100  (the root, just added)
from docgen import nodes  # noqa: E402
import pytest  # noqa: E402,I100

SCRIPTS = nodes.console_scripts()
LAUNCH_FILES = sorted(glob.glob(os.path.join(nodes.LAUNCH_DIR, '*_launch.py')))


def _read(*parts: str) -> str:
    with open(os.path.join(*parts), encoding='utf-8') as source:
        return source.read()


def _section(text: str, heading: str) -> str:
    """Return the text under a `### heading` up to the next heading of that level or above."""
    match = re.search(rf'^### {re.escape(heading)}\n(.*?)(?=^#{{1,3}} |\Z)', text,
                      re.MULTILINE | re.DOTALL)
    assert match, f'doc/nodes.md has no section "### {heading}"'
    return match.group(1)


def test_generated_docs_are_up_to_date():
    outdated = docgen_main.stale(docgen_main.generated())
    assert not outdated, f'out of date: {outdated}: run `make docs` and commit the result'


def test_there_is_something_to_document():
    assert len(SCRIPTS) >= 5, SCRIPTS
    assert len(LAUNCH_FILES) >= 3, LAUNCH_FILES


@pytest.mark.parametrize('name', sorted(SCRIPTS))
def test_every_node_and_parameter_is_in_the_docs(name):
    schema, options = nodes.node_options(SCRIPTS[name])
    section = _section(_read(DOC, 'nodes.md'), name)
    missing = [option.name for option in options if f'| `{option.name}` |' not in section]
    assert not missing, f'doc/nodes.md, node {name}: parameters missing: {missing}'
    assert len(options) >= 5, f'{name}: {schema} has only {len(options)} options'


@pytest.mark.parametrize('path', LAUNCH_FILES, ids=os.path.basename)
def test_every_launch_argument_is_in_the_docs(path):
    arguments = [row[0] for row in nodes.launch_arguments(path)]
    assert arguments, f'{path}: no launch argument found'
    section = _section(_read(DOC, 'nodes.md'), os.path.basename(path))
    missing = [name for name in arguments if f'| `{name}` |' not in section]
    assert not missing, f'doc/nodes.md, {os.path.basename(path)}: arguments missing: {missing}'


def test_the_readme_names_every_node_and_launch_file():
    readme = _read(ROOT, 'README.md')
    missing = [name for name in list(SCRIPTS) + [os.path.basename(p) for p in LAUNCH_FILES]
               if f'`{name}`' not in readme]
    assert not missing, f'README.md does not name: {missing}'


def test_every_doc_link_resolves():
    broken = []
    for path in [os.path.join(ROOT, 'README.md')] + sorted(glob.glob(os.path.join(DOC, '*.md'))):
        for target in re.findall(r'\]\(([^)#\s]+)(?:#[^)]*)?\)', _read(path)):
            if '://' in target:
                continue
            if not os.path.exists(os.path.join(os.path.dirname(path), target)):
                broken.append(f'{os.path.relpath(path, ROOT)} -> {target}')
    assert not broken, f'links to missing files: {broken}'
