"""
One run from several: `python -m bench.merge OUT_BASE RUN.json RUN.json ...`.

A full run on the GPU machine does not fit one call of the lent machine (10 minutes), so it is
made in parts by size (`--sizes`); this joins the parts into OUT_BASE.{json,md,png} as if they
were one run. The parts must come from the same machine, mode and software; phase ids are
renumbered (each part counts from 0) and each size's ceilings come from the part that measured
that size.
"""

import json
import sys

from bench import report

SAME = ('mode', 'machine', 'versions', 'budgets')


def _comparable(value):
    # A new lent machine is the same machine under another host name.
    return {k: v for k, v in value.items() if k != 'hostname'} if isinstance(value, dict) \
        else value


def merge(documents: list) -> dict:
    """Return one results document made of `documents` (parts of one run, by size)."""
    first = documents[0]
    for other in documents[1:]:
        for key in SAME:
            if _comparable(other[key]) != _comparable(first[key]):
                raise ValueError(f'the parts differ in {key!r}: not one run')
    merged = {key: first[key] for key in first if key not in ('results', 'ceilings')}
    merged['started_utc'] = min(d['started_utc'] for d in documents)
    merged['seconds'] = sum(d['seconds'] for d in documents)
    merged['load_average_1min'] = [documents[0]['load_average_1min'][0],
                                   documents[-1]['load_average_1min'][1]]
    merged['parts'] = len(documents)
    merged['ceilings'], merged['results'] = {}, []
    for document in documents:
        offset = 1 + max((r.get('id', 0) for r in merged['results']), default=-1)
        for key, values in document['ceilings'].items():
            merged['ceilings'].setdefault(key, {}).update(
                {int(size): value for size, value in values.items()})
        for result in document['results']:
            merged['results'].append(dict(result, id=result.get('id', 0) + offset))
    return merged


def main(argv) -> int:
    """Merge the parts named on the command line."""
    if len(argv) < 3:
        print(__doc__.strip().split('\n')[0], file=sys.stderr)
        return 2
    documents = []
    for path in argv[2:]:
        with open(path, encoding='utf-8') as source:
            documents.append(json.load(source))
    print('\n'.join(report.write_all(merge(documents), argv[1]).values()))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
