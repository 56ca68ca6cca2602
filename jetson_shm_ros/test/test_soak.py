"""The short soak: scripts/soak.py with a few thousand frames through restarting nodes."""

import os
import subprocess
import sys

SOAK = os.path.join(os.path.dirname(__file__), '..', '..', 'scripts', 'soak.py')
SOAK_TIMEOUT_S = 600


def test_short_soak_leaks_nothing_across_restarts():
    """3,000 frames, a consumer restarting every 1,000, the producer every 1,500."""
    done = subprocess.run(
        [sys.executable, SOAK, '--frames', '3000', '--consumer-restart', '1000',
         '--producer-restart', '1500', '--warmup', '300', '--timeout-s', str(SOAK_TIMEOUT_S)],
        capture_output=True, text=True, timeout=SOAK_TIMEOUT_S + 60)
    print(done.stdout)
    assert done.returncode == 0 and 'soak: OK' in done.stdout, done.stdout + done.stderr
    assert '3000 frames published' in done.stdout, done.stdout
