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
                     'cpu_sum': ['host_memcpy_GBps'], 'iceoryx2': ['host_memcpy_GBps'],
                     'pinned': ['h2d_GBps'], 'pinned_copy': ['h2d_GBps'], 'cuda_ipc': [],
                     # the copy down into the slot (inside t0) and the consumer's read of it;
                     # the link's D2H rate is taken to be its measured H2D rate
                     'pinned_publish': ['h2d_GBps', 'h2d_GBps']}
THROUGHPUT_CEILING = {'cpu': 'host_memcpy_GBps', 'ros_msg': 'host_memcpy_GBps',
                      'cpu_sum': 'host_memcpy_GBps', 'iceoryx2': 'host_memcpy_GBps',
                      'pinned': 'kernel_read_GBps', 'pinned_copy': 'h2d_GBps',
                      'pinned_publish': 'h2d_GBps',
                      'cuda_ipc': 'device_read_GBps'}
# The executor the subscriber spun (results from before it was a dimension: 'single').
DEFAULT_EXECUTOR = 'single'
MEASURE_TITLES = {'e2e': 'End to end: publish -> every byte read once, checksum verified',
                  'handover': 'Hand-over: publish -> the subscriber holds the frame (no payload '
                              'read)',
                  'throughput': 'Throughput: up to 3 frames in flight, the subscriber reads '
                                'every byte'}


def size_label(size: int) -> str:
    """4096 -> '4 KiB'."""
    return f'{size // MIB} MiB' if size >= MIB else f'{size // KIB} KiB'


def executor_of(result: dict) -> str:
    """Return the executor a result's subscriber spun ('single' for older results)."""
    return result.get('executor', DEFAULT_EXECUTOR)


def main_results(document: dict) -> list:
    """Return the results of the main matrix (the default executor)."""
    return [r for r in document['results'] if executor_of(r) == DEFAULT_EXECUTOR]


def _ceiling(document: dict, key: str, size: int):
    values = document['ceilings'].get(key, {})
    return values.get(size, values.get(str(size)))


def floor_ms(document: dict, result: dict = None, size: int = 0, measure: str = ''):
    """
    Return the empty descriptor's p50 that a result (or a size and measure) compares with.

    The one measured in the same phase (frames in turn), else at the same size and measure,
    else the median over every phase (its message never changes); floors of another executor
    than the default only from the result's own phase.
    """
    floors = [r for r in document['results'] if r['transport'] == 'descriptor' and
              r['measure'] != 'throughput' and r.get('n')]
    if result is not None:
        size, measure = result['size'], result['measure']
        same_phase = [r['p50_ms'] for r in floors if r.get('id') == result.get('id')]
        if same_phase:
            return same_phase[0]
        if executor_of(result) != DEFAULT_EXECUTOR:
            return None
    floors = [r for r in floors if executor_of(r) == DEFAULT_EXECUTOR]
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
                                          if gpu else 'none') +
             (', CUDA MPS on (one GPU context for all processes)'
              if machine['gpu'].get('mps') else '') + '.',
             'Versions: ' + ', '.join(f'{key} {value}' for key, value in versions.items()
                                      if value) + '.']
    if 'load_average_1min' in document:
        before, after = document['load_average_1min']
        lines.append(f'Load average (1 min) on its {machine["cores"]} cores: {before} before, '
                     f'{after} after the run.')
    lines.append('')
    transports = list(dict.fromkeys(r['transport'] for r in document['results']))
    sizes = sorted({r['size'] for r in document['results']})
    index = {(r['transport'], r['size'], r['measure']): r for r in main_results(document)}
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
    lines += _extra_tables(document, transports, sizes, index)
    from bench.targets import targets  # it reads floor_ms() and size_label() of this module
    rows = targets(document)
    if rows:
        lines += ['## Targets (issues 10 and 16) that this run covers', '',
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


def _extra_tables(document: dict, transports: list, sizes: list, index: dict) -> list:
    """CPU per frame, publisher side, iceoryx2 side by side, and the executors."""
    lines = []
    with_cpu = [t for t in transports if any('pub_cpu_us' in r for r in main_results(document)
                                             if r['transport'] == t)]
    if with_cpu:
        lines += ['## CPU time per frame, publisher / subscriber process (us, median over the '
                  'series; throughput: mean)', '']
        for measure in ('e2e', 'handover', 'throughput'):
            lines += [f'{MEASURE_TITLES[measure].split(":")[0]}:', '',
                      '| size | ' + ' | '.join(with_cpu) + ' |', '|---|' + '---|' * len(with_cpu)]
            for size in sizes:
                cells = []
                for t in with_cpu:
                    r = index.get((t, size, measure))
                    cells.append(f'{r["pub_cpu_us"]:.0f} / {r["sub_cpu_us"]:.0f}'
                                 if r and 'pub_cpu_us' in r else '')
                lines.append(f'| {size_label(size)} | ' + ' | '.join(cells) + ' |')
            lines.append('')
    sides = [t for t in transports if (t, sizes[0], 'e2e') in index and
             'pub_side_p50_ms' in index[(t, sizes[0], 'e2e')]]
    if sides:
        lines += ['## Publisher side: loan -> fill every byte -> commit (send) returned, end to '
                  'end phases (p50 / p99 ms)', '',
                  '| size | ' + ' | '.join(sides) + ' |', '|---|' + '---|' * len(sides)]
        for size in sizes:
            cells = [index.get((t, size, 'e2e'), {}) for t in sides]
            lines.append(f'| {size_label(size)} | ' + ' | '.join(
                f'{c["pub_side_p50_ms"]:.3g} / {c["pub_side_p99_ms"]:.3g}'
                if 'pub_side_p50_ms' in c else '' for c in cells) + ' |')
        lines.append('')
    for measure in ('e2e', 'handover'):
        split = [t for t in transports if any(
            'split_p50_us' in index.get((t, size, measure), {}) for size in sizes)]
        if not split:
            continue
        lines += [f"## Where a frame's time goes, {MEASURE_TITLES[measure].split(':')[0]} "
                  "(p50 us: arrival, t0 -> the subscriber's callback entered / consumer, "
                  '-> frame held or checked / producer, t0 -> send returned, overlapping the '
                  'arrival)', '',
                  '| size | ' + ' | '.join(split) + ' |', '|---|' + '---|' * len(split)]
        for size in sizes:
            cells = [index.get((t, size, measure), {}).get('split_p50_us') for t in split]
            lines.append(f'| {size_label(size)} | ' + ' | '.join(
                ' / '.join(f'{cell[part]:.0f}' for part in ('arrival', 'consumer', 'producer'))
                if cell else '' for cell in cells) + ' |')
        lines.append('')
    if 'iceoryx2' in transports and 'cpu_sum' in transports:
        lines += ['## Side by side with iceoryx2 (both: checksum off on the producer, the '
                  'subscriber sums every byte; p50 ms, ours / iceoryx2)', '',
                  '| size | end to end | ratio | publisher side | ratio | hand-over | ratio |',
                  '|---|---|---|---|---|---|---|']
        for size in sizes:
            cells = []
            for measure, key in (('e2e', 'p50_ms'), ('e2e', 'pub_side_p50_ms'),
                                 ('handover', 'p50_ms')):
                ours, peer = index.get(('cpu_sum', size, measure)), \
                    index.get(('iceoryx2', size, measure))
                if ours and peer and key in ours and key in peer:
                    cells += [f'{ours[key]:.3g} / {peer[key]:.3g}',
                              f'{ours[key] / peer[key]:.2f}x']
                else:
                    cells += ['', '']
            lines.append(f'| {size_label(size)} | ' + ' | '.join(cells) + ' |')
        lines.append('')
    others = [r for r in document['results'] if executor_of(r) != DEFAULT_EXECUTOR]
    if others:
        executors = [DEFAULT_EXECUTOR] + list(dict.fromkeys(executor_of(r) for r in others))
        by = {(r['transport'], r['size'], r['measure'], executor_of(r)): r
              for r in document['results']}
        lines += ['## Executors: the subscriber spun by each (p50 / p99 ms, lost, CPU us per '
                  'frame of the subscriber process)', '',
                  '| size | measure | transport | ' + ' | '.join(executors) + ' |',
                  '|---|---|---|' + '---|' * len(executors)]
        for size, measure, transport in dict.fromkeys(
                (r['size'], r['measure'], r['transport']) for r in others):
            cells = []
            for executor in executors:
                r = by.get((transport, size, measure, executor))
                cells.append('' if not r or not r.get('n') else
                             f'{r["p50_ms"]:.3g} / {r["p99_ms"]:.3g}, lost {r.get("lost", 0)}'
                             + (f', {r["sub_cpu_us"]:.0f} us' if 'sub_cpu_us' in r else ''))
            lines.append(f'| {size_label(size)} | {measure} | {transport} | ' +
                         ' | '.join(cells) + ' |')
        lines.append('')
    return lines


def plot(document: dict, path: str) -> None:
    """Latency (end to end, hand-over) and throughput vs payload size, log-log."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter
    results = [r for r in main_results(document) if r.get('n')]
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
