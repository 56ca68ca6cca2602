"""
The benchmark runs end to end on this machine: two real ROS processes, every measure.

Behaviour only, never speed: a short quick-mode run of the CPU transports and the empty
descriptor must finish, and every series must come back with samples, the per-frame split and
a rate (a bench change once broke every throughput phase, and only a GPU run showed it).
"""

import glob
import json
import os
import random
import subprocess
import sys

from node_processes import domain_range
import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
TRANSPORTS = ['descriptor', 'cpu', 'cpu_sum']


def _bench(out_dir, *arguments) -> subprocess.CompletedProcess:
    first, last = domain_range()
    env = dict(os.environ, BENCH_DOMAIN_ID=str(random.SystemRandom().randrange(first, last + 1)))
    return subprocess.run(
        [sys.executable, '-m', 'bench', '--mode', 'quick', '--out-dir', str(out_dir),
         *arguments], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(not os.path.isdir(os.path.join(ROOT, 'bench')),
                    reason='the bench is not part of an installed package')
def test_a_quick_run_returns_every_series_with_samples_split_and_rate(tmp_path):
    run = _bench(tmp_path, '--sizes', '4096', '--transports', *TRANSPORTS, '--executors')
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    (path,) = glob.glob(str(tmp_path / '*.json'))
    with open(path) as results_file:
        results = json.load(results_file)['results']
    by = {(r['transport'], r['measure']): r for r in results}
    assert set(by) == {(t, m) for t in TRANSPORTS for m in ('handover', 'e2e', 'throughput')}
    for (transport, measure), result in by.items():
        assert not result.get('error'), (transport, measure, result['error'])
        assert result['n'] > 0, (transport, measure)
        assert result['lost'] == 0 and result['bad'] == 0, (transport, measure, result)
        if measure == 'throughput':
            assert result['fps'] > 0
            continue
        split = result['split_p50_us']
        assert split['arrival'] > 0 and split['producer'] > 0, (transport, measure, split)
        # Arrival + consumer is each frame's t1 - t0; the descriptor's frame is held on arrival.
        assert (split['consumer'] == 0) == (transport == 'descriptor'), (transport, split)
    assert os.path.isfile(path[:-len('json')] + 'md')


def test_a_transport_that_cannot_run_here_is_refused_before_the_run(tmp_path):
    run = _bench(tmp_path, '--sizes', '4096', '--transports', 'descriptor', 'cuda_ipc',
                 '--executors')
    if 'cannot run' not in run.stdout:
        pytest.skip('this machine can run cuda_ipc')
    assert run.returncode == 2
    assert not glob.glob(str(tmp_path / '*.json'))
