"""Write the generated docs (python -m docgen) or check them (python -m docgen --check)."""

import argparse
import os
import sys

from docgen import DOC, ROOT


def generated() -> dict:
    """Return file name (under doc/, or ../README.md) -> its generated text."""
    from docgen import api, benchmark, nodes, readme
    with open(readme.README, encoding='utf-8') as source:
        readme_text = readme.render(source.read())
    return {'api.md': api.render(), 'nodes.md': nodes.render(),
            'benchmark.md': benchmark.render(), os.path.relpath(readme.README, DOC): readme_text}


def stale(texts: dict) -> list:
    """Return the names in `texts` whose file under doc/ differs (or is missing)."""
    out = []
    for name, text in texts.items():
        path = os.path.join(DOC, name)
        try:
            with open(path, encoding='utf-8') as current:
                if current.read() == text:
                    continue
        except FileNotFoundError:
            pass
        out.append(name)
    return out


def _shown(name: str) -> str:
    return os.path.relpath(os.path.join(DOC, name), ROOT)


def main(argv=None) -> int:
    """Write or check every generated doc; exit 1 on --check when one is out of date."""
    parser = argparse.ArgumentParser(prog='python -m docgen', description=__doc__)
    parser.add_argument('--check', action='store_true',
                        help='write nothing; exit 1 and name the files that are out of date')
    args = parser.parse_args(argv)
    texts = generated()
    outdated = stale(texts)
    if args.check:
        for name in outdated:
            print(f'docgen: {_shown(name)} is out of date: run `make docs`')
        return 1 if outdated else 0
    os.makedirs(DOC, exist_ok=True)
    for name in outdated:
        with open(os.path.join(DOC, name), 'w', encoding='utf-8') as out:
            out.write(texts[name])
    print(f'docgen: {len(texts)} generated docs, {len(outdated)} rewritten'
          + (': ' + ', '.join(_shown(name) for name in outdated) if outdated else ''))
    return 0


if __name__ == '__main__':
    sys.exit(main())
