"""
doc/benchmark.md: every committed run in bench/results, through bench's own report code.

Thin on purpose (bench/ and its results format change): each run's tables come from
`bench.report.markdown()`; a JSON that it cannot read falls back to the .md written beside it.
"""

import glob
import json
import os
import re

from docgen import GENERATED_NOTE, ROOT

RESULTS = os.path.join(ROOT, 'bench', 'results')


def _tables(path: str) -> str:
    base = os.path.splitext(path)[0]
    try:
        from bench import report

        with open(path, encoding='utf-8') as source:
            document = json.load(source)
        for key, values in document.get('ceilings', {}).items():
            document['ceilings'][key] = {int(size): value for size, value in values.items()}
        if hasattr(report, 'add_ceilings'):
            report.add_ceilings(document)
        text = report.markdown(document)
    except Exception as error:  # noqa: B902 -- any format change: show the committed .md
        if not os.path.isfile(base + '.md'):
            return f'(no tables: {type(error).__name__}: {error})\n'
        with open(base + '.md', encoding='utf-8') as source:
            text = source.read()
    return re.sub(r'^(#+) ', r'\1## ', text, flags=re.MULTILINE)  # below this run's heading


def render() -> str:
    """Return doc/benchmark.md."""
    lines = ['# Benchmark results', '',
             GENERATED_NOTE.format(source='bench/results/*.json'), '',
             'Every run committed under `bench/results/`. How they are measured, and what the '
             'numbers mean: [benchmark-method.md](benchmark-method.md); `make bench` makes a '
             'new run.', '']
    runs = sorted(glob.glob(os.path.join(RESULTS, '*.json')))
    lines += [f'- [{os.path.basename(path)[:-5]}](#{os.path.basename(path)[:-5].lower()})'
              for path in runs] + ['']
    for path in runs:
        name = os.path.basename(path)[:-5]
        lines += [f'## {name}', '']
        if os.path.isfile(os.path.join(RESULTS, name + '.png')):
            lines += [f'![{name}](../bench/results/{name}.png)', '']
        lines.append(_tables(path).strip())
        lines.append('')
    return '\n'.join(lines).rstrip() + '\n'
