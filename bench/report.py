"""
A run's results as JSON, a Markdown table and a PNG plot, each result beside its ceiling.

Ceilings (what the hardware allows, from numbers measured in the same run): the latency floor
is the empty descriptor's p50 (the RMW alone), measured in the same phase, its frames taking
turns with the result's (else at the same size, else the median of all its phases). End to
end, a transport that moves the payload once more costs at least floor + size / bandwidth,
with the bandwidth of
host memcpy (cpu, ros_msg; ros_msg on a GPU also pays the pinned H2D copy) or of the pinned
H2D copy (pinned, pinned_copy); cuda_ipc's ceiling is the floor. A hand-over reads no payload,
so the shared-memory transports' ceiling is the floor. Throughput ceilings: host memcpy (cpu,
ros_msg), the best kernel read of a mapped slot (pinned), pinned H2D (pinned_copy), the
kernel read of device memory (cuda_ipc). ratio = latency / ceiling (>= 1, lower is better),
or GB/s / ceiling (<= 1, higher is better).

`python -m bench.report RESULTS.json` rewrites the .md and .png beside a JSON (e.g. a run's
results from a machine without matplotlib).
"""

import json
import os
import statistics
import sys

KIB, MIB = 1 << 10, 1 << 20
LATENCY_BANDWIDTH = {'cpu': ['host_memcpy_GBps'], 'ros_msg': ['host_memcpy_GBps'],
                     'pinned': ['h2d_GBps'], 'pinned_copy': ['h2d_GBps'], 'cuda_ipc': []}
THROUGHPUT_CEILING = {'cpu': 'host_memcpy_GBps', 'ros_msg': 'host_memcpy_GBps',
                      'pinned': 'kernel_read_GBps', 'pinned_copy': 'h2d_GBps',
                      'cuda_ipc': 'device_read_GBps'}
MEASURE_TITLES = {'e2e': 'End to end: publish -> every byte read once, checksum verified',
                  'handover': 'Hand-over: publish -> the subscriber holds the frame (no payload '
                              'read)',
                  'throughput': 'Throughput: up to 3 frames in flight, the subscriber reads '
                                'every byte'}


def size_label(size: int) -> str:
    """4096 -> '4 KiB'."""
    return f'{size // MIB} MiB' if size >= MIB else f'{size // KIB} KiB'


def _ceiling(document: dict, key: str, size: int):
    values = document['ceilings'].get(key, {})
    return values.get(size, values.get(str(size)))


def floor_ms(document: dict, result: dict = None, size: int = 0, measure: str = ''):
    """
    Return the empty descriptor's p50 that a result (or a size and measure) compares with.

    The one measured in the same phase (frames in turn), else at the same size and measure,
    else the median over every phase (its message never changes).
    """
    floors = [r for r in document['results'] if r['transport'] == 'descriptor' and
              r['measure'] != 'throughput' and r.get('n')]
    if result is not None:
        size, measure = result['size'], result['measure']
        same_phase = [r['p50_ms'] for r in floors if r.get('id') == result.get('id')]
        if same_phase:
            return same_phase[0]
    same_size = [r['p50_ms'] for r in floors if (r['size'], r['measure']) == (size, measure)]
    if same_size:
        return same_size[0]
    return statistics.median(r['p50_ms'] for r in floors) if floors else None


def add_ceilings(document: dict) -> None:
    """Give every result its ceiling and ratio (in place)."""
    gpu = bool(document['machine']['gpu'].get('name'))
    for result in document['results']:
        transport, size, measure = result['transport'], result['size'], result['measure']
        result.pop('ceiling', None)
        if transport == 'descriptor' or not result.get('n'):
            continue
        if measure == 'throughput':
            bandwidth = _ceiling(document, THROUGHPUT_CEILING[transport], size)
            if bandwidth and 'GBps' in result:
                result['ceiling'] = {'GBps': bandwidth, 'of': THROUGHPUT_CEILING[transport]}
                result['ratio'] = result['GBps'] / bandwidth
            continue
        floor = floor_ms(document, result)
        if floor is None:
            continue
        keys = list(LATENCY_BANDWIDTH[transport])
        if transport == 'ros_msg' and gpu:
            keys.append('h2d_GBps')
        if measure == 'handover' and transport != 'ros_msg':
            keys = []  # nothing to move
        bandwidths = [_ceiling(document, key, size) for key in keys]
        if None in bandwidths:
            continue
        ceiling_ms = floor + sum(size / (bandwidth * 1e9) * 1e3 for bandwidth in bandwidths)
        result['ceiling'] = {'ms': ceiling_ms, 'of': ' + '.join(['descriptor floor'] + keys)}
        result['ratio'] = result['p50_ms'] / ceiling_ms


def _cell(result: dict) -> str:
    if result is None:
        return ''
    if result.get('error') or not result.get('n'):
        return 'failed' if result.get('error') else 'no sample'
    ratio = f', x{result["ratio"]:.2f}' if 'ratio' in result else ''
    if result['measure'] == 'throughput':
        if 'GBps' not in result:
            return 'no rate'
        if result['transport'] == 'descriptor':
            return f'{result["fps"]:.0f}/s'
        return f'{result["GBps"]:.3g} GB/s, {result["fps"]:.4g}/s{ratio}'
    return f'{result["p50_ms"]:.3g} / {result["p99_ms"]:.3g}{ratio} (n {result["n"]})'


def markdown(document: dict) -> str:
    """Return the tables: one per measure, a row per size, a column per transport."""
    machine, versions = document['machine'], document['versions']
    gpu = machine['gpu'].get('name')
    lines = [f'# jetson_shm_ros benchmark: {document["mode"]} mode, {document["started_utc"]}',
             '',
             f'Machine: {machine["cpu"]}, {machine["cores"]} cores, {machine["memory_GiB"]} GiB, '
             f'{machine["os"]}; GPU: ' + (f'{gpu}, driver {machine["gpu"].get("driver")}'
                                          if gpu else 'none') + '.',
             'Versions: ' + ', '.join(f'{key} {value}' for key, value in versions.items()
                                      if value) + '.']
    if 'load_average_1min' in document:
        before, after = document['load_average_1min']
        lines.append(f'Load average (1 min) on its {machine["cores"]} cores: {before} before, '
                     f'{after} after the run.')
    lines.append('')
    transports = list(dict.fromkeys(r['transport'] for r in document['results']))
    sizes = sorted({r['size'] for r in document['results']})
    index = {(r['transport'], r['size'], r['measure']): r for r in document['results']}
    for measure in ('e2e', 'handover', 'throughput'):
        columns = [t for t in transports if (t, sizes[0], measure) in index or any(
            (t, size, measure) in index for size in sizes)]
        if not columns:
            continue
        unit = 'GB/s, frames/s, x ratio to ceiling' if measure == 'throughput' else \
            'p50 / p99 ms, x p50 / ceiling, samples'
        lines += [f'## {MEASURE_TITLES[measure]} ({unit})', '',
                  '| size | ' + ' | '.join(columns) + ' |',
                  '|---|' + '---|' * len(columns)]
        for size in sizes:
            lines.append(f'| {size_label(size)} | ' + ' | '.join(
                _cell(index.get((t, size, measure))) for t in columns) + ' |')
        lines.append('')
    from bench.targets import targets  # it reads floor_ms() and size_label() of this module
    rows = targets(document)
    if rows:
        lines += ['## Targets of issue 10 that this run covers', '',
                  '| target | measured (p50) | verdict |', '|---|---|---|']
        lines += [f'| {name} | {value} | {verdict} |' for name, value, verdict in rows]
        lines.append('')
    lines += ['## Ceilings measured in this run (GB/s)', '',
              '| size | ' + ' | '.join(document['ceilings']) + ' |',
              '|---|' + '---|' * len(document['ceilings'])]
    for size in sizes:
        lines.append(f'| {size_label(size)} | ' + ' | '.join(
            f'{_ceiling(document, key, size):.3g}' if _ceiling(document, key, size) else ''
            for key in document['ceilings']) + ' |')
    return '\n'.join(lines) + '\n'


def plot(document: dict, path: str) -> None:
    """Latency (end to end, hand-over) and throughput vs payload size, log-log."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter
    results = [r for r in document['results'] if r.get('n')]
    transports = list(dict.fromkeys(r['transport'] for r in document['results']))
    colors = dict(zip(transports, plt.get_cmap('tab10').colors))
    sizes = sorted({r['size'] for r in document['results']})
    figure, axes = plt.subplots(1, 3, figsize=(18, 5.5))
    for axis, measure in zip(axes, ('e2e', 'handover', 'throughput')):
        key = 'GBps' if measure == 'throughput' else 'p50_ms'
        for transport in transports:
            points = sorted((r['size'], r[key]) for r in results if r['transport'] == transport
                            and r['measure'] == measure and key in r)
            if points and not (measure == 'throughput' and transport == 'descriptor'):
                axis.plot([p[0] for p in points], [p[1] for p in points], 'o-',
                          color=colors[transport], label=transport)
        _draw_ceilings(axis, document, measure, sizes)
        axis.set_xscale('log', base=2)
        axis.set_yscale('log')
        axis.set_xticks(sizes, [size_label(size) for size in sizes])
        axis.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f'{value:g}'))
        axis.set_xlabel('payload size')
        axis.set_ylabel('GB/s' if measure == 'throughput' else 'p50 latency (ms)')
        axis.set_title(MEASURE_TITLES[measure].split(':')[0], fontsize=11)
        axis.grid(True, which='both', alpha=0.3)
        axis.legend(fontsize=8)
    gpu = document['machine']['gpu'].get('name') or 'no GPU'
    figure.suptitle(f'{document["machine"]["cpu"]} ({document["machine"]["cores"]} cores), '
                    f'{gpu}; {document["versions"].get("rmw")}; {document["mode"]} mode, '
                    f'{document["started_utc"][:10]}', fontsize=11)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def _draw_ceilings(axis, document: dict, measure: str, sizes: list) -> None:
    floors = [floor_ms(document, size=size, measure=measure) for size in sizes]
    if measure == 'throughput':
        for key, style in (('host_memcpy_GBps', ':'), ('h2d_GBps', '--'),
                           ('kernel_read_GBps', '-.')):
            values = [_ceiling(document, key, size) for size in sizes]
            if all(values):
                axis.plot(sizes, values, style, color='gray', label=f'ceiling {key[:-5]}')
        return
    if None in floors:
        return
    axis.plot(sizes, floors, ':', color='black', label='ceiling: descriptor floor')
    if measure == 'handover':
        return
    for key, style in (('host_memcpy_GBps', '--'), ('h2d_GBps', '-.')):
        values = [_ceiling(document, key, size) for size in sizes]
        if all(values):
            axis.plot(sizes, [f + size / (v * 1e9) * 1e3 for f, size, v in
                              zip(floors, sizes, values)], style, color='gray',
                      label=f'ceiling: floor + size / {key[:-5]}')


def write_all(document: dict, base: str) -> dict:
    """Write base.json, base.md and (with matplotlib) base.png; return the paths."""
    add_ceilings(document)
    paths = {'json': base + '.json', 'md': base + '.md'}
    with open(paths['json'], 'w') as out:
        json.dump(document, out, indent=1)  # key order kept: the .md follows it
        out.write('\n')
    with open(paths['md'], 'w') as out:
        out.write(markdown(document))
    try:
        plot(document, base + '.png')
        paths['png'] = base + '.png'
    except ImportError as error:
        print(f'bench: no plot ({error}); run `python -m bench.report {paths["json"]}` where '
              'matplotlib is installed')
    return paths


def main(argv) -> int:
    """Rewrite the Markdown and the plot of a results JSON."""
    with open(argv[1]) as source:
        document = json.load(source)
    for key, values in document['ceilings'].items():
        document['ceilings'][key] = {int(size): value for size, value in values.items()}
    print('\n'.join(write_all(document, os.path.splitext(argv[1])[0]).values()))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
