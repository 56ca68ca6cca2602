"""The race of issue 11 through the public API: a lagging callback never sees a torn frame."""

import multiprocessing
import os
import random

from api_fixtures import spin_until
from jetson_shm_ros import ShmPublisher, ShmSubscription
from jetson_shm_ros.core.errors import NoFreeSlot
from node_processes import domain_range
import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

TOPIC = 'claimed_frames'
FRAMES = 20000
FRAME_WORDS = 65536
TIMEOUT_S = 300.0


def _context(domain_id: int) -> rclpy.Context:
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain_id)
    return context


def _publish_frames(shm_name, domain_id, drained, results):
    """Spawned publisher: latest, 2 slots, frame k filled with k + 1 (its sequence / 2)."""
    context = _context(domain_id)
    node = Node(f'jsr_test_claims_pub_{os.getpid()}', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    pub = ShmPublisher(node, TOPIC, dtype='uint32', shape=[FRAME_WORDS], slots=2,
                       policy='latest', shm_name=shm_name, diagnostics_period_s=0)
    skipped = 0
    try:
        if not spin_until(executor, lambda: pub.subscription_count() == 1, TIMEOUT_S):
            raise RuntimeError('the subscription never matched')
        while pub.frames_published < FRAMES:
            value = pub.frames_published + 1
            try:
                with pub.loan() as frame:
                    frame.fill(value)
            except NoFreeSlot:
                skipped += 1
        # The subscriber maps the segment once; keep it until it has drained.
        spin_until(executor, drained.is_set, TIMEOUT_S)
        results.put({'published': pub.frames_published, 'skipped': skipped,
                     **pub.frame_producer.pool.counters})
    finally:
        pub.close()
        node.destroy_node()
        rclpy.try_shutdown(context=context)


def test_a_lagging_subscription_is_never_handed_a_torn_frame(shm_name):
    """20,000 frames, latest, 2 slots, a callback that reads each frame again and again."""
    first, last = domain_range()
    domain_id = random.SystemRandom().randrange(first, last + 1)
    ctx = multiprocessing.get_context('spawn')
    drained, results = ctx.Event(), ctx.Queue()
    child = ctx.Process(target=_publish_frames, args=(shm_name, domain_id, drained, results))
    context = _context(domain_id)
    node = Node(f'jsr_test_claims_sub_{os.getpid()}', context=context)
    seen = {'calls': 0, 'torn': 0, 'last_sequence': 0}

    def check_every_word(frame, info):
        seen['calls'] += 1
        expected = info.sequence // 2
        for _ in range(4):  # lag while the publisher keeps writing
            seen['torn'] += int(not np.all(frame == expected))
        seen['last_sequence'] = max(seen['last_sequence'], info.sequence)

    sub = ShmSubscription(node, TOPIC, check_every_word, diagnostics_period_s=0)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    child.start()
    try:
        # The last frame is never overwritten, and reliable keep-last delivers the newest.
        assert spin_until(executor, lambda: seen['last_sequence'] == 2 * FRAMES or
                          not child.is_alive(), TIMEOUT_S)
        drained.set()
        publisher = results.get(timeout=TIMEOUT_S)
        child.join(TIMEOUT_S)
        counts = dict(sub.counts)
    finally:
        drained.set()
        sub.close()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
        if child.is_alive():
            child.kill()
    assert child.exitcode == 0
    assert publisher['published'] == FRAMES, publisher
    assert seen['torn'] == 0, (seen, counts, publisher)
    assert seen['calls'] == counts['verified'] > 0, (seen, counts)
    assert counts['invalid'] == 0, counts
    assert counts['received'] == counts['verified'] + counts['dropped'], counts
    assert sub.drop_reasons.get('overwritten_while_reading', 0) == 0, dict(sub.drop_reasons)
    assert publisher['skipped'] == publisher['skipped_all_claimed'], publisher
