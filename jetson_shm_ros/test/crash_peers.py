"""
A producer or consumer in a process of its own that a test can kill -9 at a chosen moment.

Run as `python crash_peers.py producer|consumer SHM_NAME [POLICY]`; it reads one command per
line on stdin and answers one JSON line on stdout, so the test knows exactly which phase the
process is in when it kills it:

- producer: `write` -> the descriptor of a new frame (or null: reliable policy says wait);
  `hang` -> starts writing the next slot, fills half of it, says {"writing": slot} and sleeps.
- consumer: `handle <descriptor json>` -> {"result": ...}; `hold <descriptor json>` -> calls
  handle() with a callback that says {"holding": slot} and sleeps inside it (slot held).
"""

import dataclasses
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
FRAME = [1024]  # uint32: 4 KiB


def to_json(desc) -> str:
    if desc is None:
        return 'null'
    fields = dataclasses.asdict(desc)
    for name in ('cuda_ipc_handle', 'cuda_event_handle'):
        fields[name] = fields[name].hex()
    return json.dumps(fields)


def from_json(text: str):
    from jetson_shm_ros.core.descriptor import Descriptor
    fields = json.loads(text)
    for name in ('cuda_ipc_handle', 'cuda_event_handle'):
        fields[name] = bytes.fromhex(fields[name])
    return Descriptor(**fields)


def _say(line: str) -> None:
    sys.stdout.write(line + '\n')
    sys.stdout.flush()


def _sleep_forever():
    while True:
        time.sleep(3600)


def run_producer(shm_name: str, policy: str) -> None:
    from jetson_shm_ros.core.frames import FrameProducer
    producer = FrameProducer(shm_name, 2, 'uint32', FRAME, policy=policy,
                             release_timeout_s=3600.0)
    _say(json.dumps({'ready': producer.pool.incarnation}))

    def half_then_hang(frame):
        frame[:frame.size // 2] = 0xDEAD
        _say(json.dumps({'writing': producer.pool._next_slot}))
        _sleep_forever()

    for line in sys.stdin:
        if line.strip() == 'write':
            _say(to_json(producer.try_write_pattern()))
        elif line.strip() == 'hang':
            producer.try_write(half_then_hang)
    producer.close()  # end of input: a clean exit


def run_consumer() -> None:
    from jetson_shm_ros.core.frames import FrameConsumer

    def hold(frame, desc):
        _say(json.dumps({'holding': desc.slot}))
        _sleep_forever()

    plain, holding = FrameConsumer(), FrameConsumer(process=hold)
    holding._segments = plain._segments  # one mapping, one reader entry
    _say(json.dumps({'ready': os.getpid()}))
    for line in sys.stdin:
        command, _, payload = line.strip().partition(' ')
        consumer = holding if command == 'hold' else plain
        _say(json.dumps({'result': consumer.handle(from_json(payload))}))


if __name__ == '__main__':
    sys.path.insert(0, HERE)
    if sys.argv[1] == 'producer':
        run_producer(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else 'latest')
    else:
        run_consumer()
