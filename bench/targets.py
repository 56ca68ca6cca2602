"""Issues 10 and 16's targets, checked against a run's results (rows of the report's Markdown)."""

from bench.report import _ceiling, executor_of, floor_ms, main_results, MIB, size_label


def _find(document: dict, transport: str, size: int, measure: str):
    for result in main_results(document):
        if (result['transport'], result['size'], result['measure']) == (transport, size, measure) \
                and result.get('n'):
            return result
    return None


def targets(document: dict) -> list:
    """Return (target, measured, verdict) rows for the targets that this run covers."""
    rows = []

    def check(name: str, value, limit: float, at_most: bool, text: str) -> None:
        if value is not None:
            ok = value <= limit if at_most else value >= limit
            rows.append((name, text.format(value), 'met' if ok else 'MISSED'))

    sizes = sorted({r['size'] for r in document['results']})
    small, mib64 = sizes[0], 64 * MIB
    gpu = bool(document['machine']['gpu'].get('name'))
    for transport in ('cpu', 'pinned', 'pinned_copy', 'cuda_ipc'):
        e2e, floor = _find(document, transport, small, 'e2e'), None
        if e2e:
            floor = floor_ms(document, e2e)
            limit = 1.25
            check(f'{transport}: end to end at {size_label(small)} within {limit}x of the '
                  'descriptor floor', e2e['p50_ms'] / floor, limit, True,
                  f'{{:.2f}}x ({e2e["p50_ms"]:.3f} vs {floor:.3f} ms)')
        first, last = _find(document, transport, small, 'handover'), \
            _find(document, transport, sizes[-1], 'handover')
        if first and last and last is not first:
            check(f'{transport}: hand-over flat, p50 at {size_label(sizes[-1])} <= 1.1x p50 at '
                  f'{size_label(small)}', last['p50_ms'] / first['p50_ms'], 1.1, True,
                  f'{{:.2f}}x ({last["p50_ms"]:.3f} vs {first["p50_ms"]:.3f} ms)')
    ros_msg = _find(document, 'ros_msg', mib64, 'e2e')
    for transport, factor in (('cpu', 30.0), ('pinned', 100.0)):
        shm = _find(document, transport, mib64, 'e2e')
        if ros_msg and shm and (transport == 'cpu') != gpu:
            check(f'{transport}: end to end at 64 MiB >= {factor:.0f}x faster than ros_msg',
                  ros_msg['p50_ms'] / shm['p50_ms'], factor, False,
                  f'{{:.1f}}x ({ros_msg["p50_ms"]:.1f} vs {shm["p50_ms"]:.2f} ms)')
    for transport, limit in (('pinned', 1.3), ('pinned_publish', 1.3), ('cuda_ipc', 1.3)):
        shm = _find(document, transport, mib64, 'e2e')
        if shm and 'ratio' in shm:
            check(f'{transport}: end to end at 64 MiB within {limit}x of '
                  f'{shm["ceiling"]["of"]}', shm['ratio'], limit, True,
                  f'{{:.2f}}x ({shm["p50_ms"]:.2f} vs {shm["ceiling"]["ms"]:.2f} ms)')
    _issue16(document, check, small, sizes)
    largest = sizes[-1]
    checksum = _ceiling(document, 'cpu_checksum_GBps', largest)
    memcpy = _ceiling(document, 'host_memcpy_GBps', largest)
    if checksum and memcpy:
        check(f'CPU checksum >= 70% of host memcpy bandwidth ({size_label(largest)})',
              checksum / memcpy, 0.7, False, f'{{:.0%}} ({checksum:.2f} vs {memcpy:.2f} GB/s)')
    kernel, h2d = (_ceiling(document, key, largest) for key in ('kernel_read_GBps', 'h2d_GBps'))
    if kernel and h2d:
        check(f'checksum kernel on a mapped slot >= 90% of pinned H2D ({size_label(largest)})',
              kernel / h2d, 0.9, False, f'{{:.0%}} ({kernel:.1f} vs {h2d:.1f} GB/s)')
    return rows


def _issue16(document: dict, check, small: int, sizes: list) -> None:
    """Throughput against the descriptor's rate, iceoryx2 side by side, executors' losses."""
    floor = _find(document, 'descriptor', small, 'throughput')
    for transport in ('cpu', 'pinned', 'pinned_copy', 'cuda_ipc'):
        rate = _find(document, transport, small, 'throughput')
        if floor and rate and 'fps' in floor and 'fps' in rate:
            check(f'{transport}: throughput at {size_label(small)} >= 80% of the descriptor-only '
                  'rate', rate['fps'] / floor['fps'], 0.8, False,
                  f'{{:.0%}} ({rate["fps"]:.0f} vs {floor["fps"]:.0f} frames/s)')
    for size in sizes:
        ours, peer = _find(document, 'cpu_sum', size, 'e2e'), \
            _find(document, 'iceoryx2', size, 'e2e')
        if not (ours and peer):
            continue
        if 'pub_side_p50_ms' in ours and 'pub_side_p50_ms' in peer:
            # The limit below ours: rclpy publishing an empty descriptor, in the same phase.
            empty = _find(document, 'descriptor', size, 'e2e') or {}
            floor_text = f'; an empty descriptor\'s publish alone {empty["pub_side_p50_ms"]:.3f}' \
                if 'pub_side_p50_ms' in empty else ''
            check(f'publisher side (loan -> fill -> commit) at {size_label(size)} <= 1.15x '
                  "iceoryx2's", ours['pub_side_p50_ms'] / peer['pub_side_p50_ms'], 1.15, True,
                  f'{{:.2f}}x ({ours["pub_side_p50_ms"]:.3f} vs {peer["pub_side_p50_ms"]:.3f} '
                  f'ms{floor_text})')
        if size >= 16 * MIB:
            check(f'end to end, subscriber reading every byte, at {size_label(size)} <= 1.2x '
                  "iceoryx2's", ours['p50_ms'] / peer['p50_ms'], 1.2, True,
                  f'{{:.2f}}x ({ours["p50_ms"]:.2f} vs {peer["p50_ms"]:.2f} ms)')
    for result in document['results']:
        if executor_of(result) == 'multi' and result.get('n'):
            check(f'{result["transport"]} {result["measure"]} under a MultiThreadedExecutor: no '
                  'frame lost', result.get('lost', 0), 0, True, '{} lost of '
                  f'{result.get("sent", "?")}')
