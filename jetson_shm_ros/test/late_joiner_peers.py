"""
The two processes of test_late_joiners: `python late_joiner_peers.py sub|pub TOPIC ...`.

sub TOPIC FRAMES: a ShmSubscription; prints `UP`, then `FRAME k` for the first FRAMES frames
(k: the frame number the publisher put in frame_id) and `COUNTS ...` before it exits.
pub TOPIC SHM_NAME POLICY RATE_HZ SLOTS DISCOVERY_S: a ShmPublisher that publishes frame k
with frame_id k until its stdin closes (DISCOVERY_S < 0: the default discovery wait); prints
`CONSTRUCTED`, `MATCHED k` when it first counts a matched subscription (k: the number of the
next frame it publishes), and `AT 25` after frame 24.
"""

import sys
import time

from jetson_shm_ros import ShmPublisher, ShmSubscription
from jetson_shm_ros.core.errors import NoFreeSlot
import rclpy
from rclpy.node import Node

DEADLINE_S = 60.0
ANNOUNCE_AT = 25


def subscriber(topic: str, frames: int) -> int:
    rclpy.init()
    node = Node('late_joiner_sub')
    got = []
    sub = ShmSubscription(node, topic, lambda frame, info: got.append(info.header.frame_id),
                          backend='cpu', diagnostics_period_s=0.0)
    print('UP', flush=True)
    deadline = time.monotonic() + DEADLINE_S
    printed = 0
    while printed < frames and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
        for frame_id in got[printed:frames]:
            print(f'FRAME {frame_id}', flush=True)
        printed = min(len(got), frames)
    print('COUNTS ' + ' '.join(f'{key}={value}' for key, value in sub.counts.items()),
          flush=True)
    sub.close()
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


def publisher(topic: str, shm_name: str, policy: str, rate_hz: float, slots: int,
              discovery_s: float) -> int:
    import select

    rclpy.init()
    node = Node('late_joiner_pub')
    pub = ShmPublisher(node, topic, dtype='uint8', shape=[256], slots=slots, policy=policy,
                       backend='cpu', shm_name=shm_name, diagnostics_period_s=0.0,
                       discovery_timeout_s=discovery_s if discovery_s >= 0 else None)
    print('CONSTRUCTED', flush=True)
    frame, matched = 0, False
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        if not matched and pub.subscription_count():
            print(f'MATCHED {frame}', flush=True)
            matched = True
        try:
            pub.publish_test_pattern(frame_id=str(frame), timeout_s=1.0)
            frame += 1
            if frame == ANNOUNCE_AT:
                print(f'AT {frame}', flush=True)
        except NoFreeSlot:
            pass  # reliable: the reader still holds the slot; frame k goes out next time
        if select.select([sys.stdin], [], [], 1.0 / rate_hz)[0] and not sys.stdin.readline():
            break
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    role, topic, *rest = sys.argv[1:]
    if role == 'sub':
        sys.exit(subscriber(topic, int(rest[0])))
    shm, policy, rate, slots, discovery = rest
    sys.exit(publisher(topic, shm, policy, float(rate), int(slots), float(discovery)))
