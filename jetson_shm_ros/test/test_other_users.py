"""
Another user on the machine: a real second account (created with useradd when we are root).

The other user acts through the system's own Python with nothing but `os` calls, exactly what a
hostile local user could do. Skipped, with the reason, when the tests do not run as root.
"""

import json
import os
import shutil
import subprocess
import uuid

from jetson_shm_ros.core.descriptor import Descriptor
from jetson_shm_ros.core.errors import SegmentError
from jetson_shm_ros.core.frames import FrameConsumer, FrameProducer, INVALID, VERIFIED
from jetson_shm_ros.core.segment import HEADER_DTYPE, SHM_DIR
from jetson_shm_ros.core.slot_pool import SlotPool
import numpy as np
import pytest

# The other user cannot read our venv (it may live under /root): the system Python it is.
SYSTEM_PYTHON = shutil.which('python3', path='/usr/bin:/bin')
USER_TIMEOUT_S = 60.0

# Run as the other user: try each operation on a path, print {operation: errno name or 'ok'}.
_PROBE = r"""
import errno, json, os, sys
path = sys.argv[1]
def attempt(call):
    try:
        call()
        return 'ok'
    except OSError as error:
        return errno.errorcode.get(error.errno, str(error.errno))
print(json.dumps({
    'open_read': attempt(lambda: os.close(os.open(path, os.O_RDONLY))),
    'open_write': attempt(lambda: os.close(os.open(path, os.O_RDWR))),
    'truncate': attempt(lambda: os.truncate(path, 0)),
    'chmod': attempt(lambda: os.chmod(path, 0o666)),
    'unlink': attempt(lambda: os.unlink(path)),
    'replace': attempt(lambda: os.rename(path, path + '.moved')),
}))
"""

# Run as the other user: create argv[1] (a file with stdin's bytes, or a symlink to argv[2]).
_PLANT = r"""
import os, sys
path = sys.argv[1]
if len(sys.argv) > 2:
    os.symlink(sys.argv[2], path)
else:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    os.write(fd, sys.stdin.buffer.read())
    os.close(fd)
"""


@pytest.fixture
def other_user():
    """Create a second real account for one test and remove it afterwards."""
    if os.geteuid() != 0:
        pytest.skip('needs root to create a second user with useradd (tests run as uid '
                    f'{os.geteuid()})')
    if not shutil.which('useradd') or not SYSTEM_PYTHON:
        pytest.skip('needs useradd and a system python3 in /usr/bin')
    name = f'jsrt{uuid.uuid4().hex[:8]}'
    created = subprocess.run(['useradd', '--no-create-home', '--user-group',
                              '--shell', '/usr/sbin/nologin', name],
                             capture_output=True, text=True)
    if created.returncode != 0:
        pytest.skip(f'useradd failed here: {created.stderr.strip()}')
    try:
        uid = int(subprocess.run(['id', '-u', name], capture_output=True, text=True,
                                 check=True).stdout)
        gid = int(subprocess.run(['id', '-g', name], capture_output=True, text=True,
                                 check=True).stdout)
        yield {'name': name, 'uid': uid, 'gid': gid}
    finally:
        subprocess.run(['userdel', name], capture_output=True)


def as_user(user, script, *args, stdin=b''):
    """Run `script` with the system Python as the other user; return its stdout."""
    done = subprocess.run([SYSTEM_PYTHON, '-I', '-c', script, *args], input=stdin,
                          capture_output=True, user=user['uid'], group=user['gid'],
                          extra_groups=[], cwd='/', env={'PATH': '/usr/bin:/bin'},
                          timeout=USER_TIMEOUT_S)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


def _probe(user, path):
    return json.loads(as_user(user, _PROBE, path))


def test_other_user_can_neither_open_nor_remove_our_segment(other_user, shm_name):
    producer = FrameProducer(shm_name, 2, 'uint8', [4096], policy='reliable')
    consumer = FrameConsumer()
    try:
        assert consumer.handle(producer.try_write_pattern()) == VERIFIED
        results = _probe(other_user, SHM_DIR + shm_name)
        # Mode 0600 keeps the payload and the tables private; /dev/shm's sticky bit keeps the
        # name ours.
        assert all(result in ('EACCES', 'EPERM') for result in results.values()), results
        assert consumer.handle(producer.try_write_pattern()) == VERIFIED
    finally:
        consumer.close()
        producer.close()


def _planted_copy_of(shm_name, owner_uid):
    """Bytes of a real, complete segment holding one good frame, claiming another owner."""
    decoy = FrameProducer(shm_name + '_decoy', 2, 'uint8', [4096])
    try:
        desc = decoy.try_write_pattern()
        fd = os.open(SHM_DIR + decoy.pool.name, os.O_RDONLY)
        try:
            image = bytearray(os.pread(fd, decoy.pool.size, 0))
        finally:
            os.close(fd)
    finally:
        decoy.close()
    header = np.frombuffer(image, dtype=HEADER_DTYPE, count=1)
    header['owner_uid'] = owner_uid  # a consistent header: only the file's owner gives it away
    desc.shm_name = shm_name
    return bytes(image), desc


def test_a_segment_planted_by_another_user_is_never_read(other_user, shm_name):
    image, desc = _planted_copy_of(shm_name, other_user['uid'])
    as_user(other_user, _PLANT, SHM_DIR + shm_name, stdin=image)
    consumer = FrameConsumer()
    try:
        assert os.stat(SHM_DIR + shm_name).st_uid == other_user['uid']
        # A descriptor that matches the planted file in every field is still refused.
        assert consumer.handle(desc) == INVALID
        assert consumer.invalid_reasons == {'bad_owner': 1}, consumer.invalid_reasons
        assert consumer.counts['in_place_bytes'] == 0, 'not one payload byte was read'
        # Our producer does not adopt, remove or write the squatted name: it refuses to start.
        with pytest.raises(SegmentError) as refused:
            FrameProducer(shm_name, 2, 'uint8', [4096])
        assert refused.value.reason == 'in_use' and 'belongs to uid' in str(refused.value)
        assert open(SHM_DIR + shm_name, 'rb').read() == image
    finally:
        consumer.close()
        os.unlink(SHM_DIR + shm_name)


def test_a_symlink_planted_under_our_name_is_not_followed(other_user, shm_name):
    target = FrameProducer(shm_name + '_target', 2, 'uint8', [4096])
    link = shm_name + '_link'
    consumer = FrameConsumer()
    try:
        good = target.try_write_pattern()
        as_user(other_user, _PLANT, SHM_DIR + link, SHM_DIR + target.pool.name)
        # Through the link the descriptor would name a real segment of ours: refused anyway.
        assert consumer.handle(Descriptor(**dict(vars(good), shm_name=link))) == INVALID
        assert consumer.invalid_reasons == {'no_segment': 1}, consumer.invalid_reasons
        with pytest.raises(SegmentError) as refused:
            SlotPool.create(link, 2, 4096)
        assert refused.value.reason == 'in_use', refused.value
        assert consumer.handle(target.try_write_pattern()) == VERIFIED
    finally:
        consumer.close()
        target.close()
        os.unlink(SHM_DIR + link)


def test_other_user_cannot_disturb_a_reliable_producer(other_user, shm_name):
    producer = FrameProducer(shm_name, 2, 'uint8', [4096], policy='reliable',
                             release_timeout_s=3600.0)
    consumer = FrameConsumer()
    try:
        frames = [producer.try_write_pattern() for _ in range(2)]
        assert consumer.handle(frames[0]) == VERIFIED
        # No way into the reader table: the file cannot be opened, so neither mapped nor locked.
        results = _probe(other_user, SHM_DIR + shm_name)
        assert results['open_write'] == 'EACCES' and results['open_read'] == 'EACCES', results
        # Nor through the descriptor topic: a forged descriptor claiming a future sequence of
        # the slot our consumer has not read yet must not release that slot.
        forged = Descriptor(**dict(vars(frames[1]), sequence=frames[1].sequence + 1000))
        assert consumer.handle(forged) == INVALID
        assert consumer.invalid_reasons == {'sequence_ahead': 1}, consumer.invalid_reasons
        assert producer.try_write_pattern().slot == 0  # released by the consumer
        assert producer.try_write_pattern() is None, 'slot 1: the producer still waits'
        assert consumer.handle(frames[1]) == VERIFIED
        assert producer.try_write_pattern() is not None
        assert producer.pool.counters['release_timeouts'] == 0
        assert [reader['pid'] for reader in producer.pool.readers()] == [os.getpid()]
    finally:
        consumer.close()
        producer.close()
