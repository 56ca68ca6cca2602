"""
The public API on a real GPU: both GPU backends and modes, CuPy/NumPy/torch sources, DLPack.

Skipped, with the reason, where CuPy or a CUDA device is missing (the CPU path of the same API
is tested in test_api.py). Random data from a fresh generator each run; received frames are
compared with what was sent, element for element.
"""

import os

from api_fixtures import spin_until
from conftest import SHM_DIR
from jetson_shm_ros import ShmPublisher, ShmSubscription
from jetson_shm_ros.core.preprocess import IMAGENET_MEAN, IMAGENET_STD
from jetson_shm_ros.nodes.image_filter import ImageFilterNode
from node_processes import isolated_env, NodeProcess, summary
import numpy as np
import pytest
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter


def _probe():
    try:
        import cupy
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return None, 'no CUDA device'
        return cupy, ''
    except Exception as error:  # ImportError, or no driver / device
        return None, f'{type(error).__name__}: {error}'


cupy, REASON = _probe()
pytestmark = pytest.mark.skipif(cupy is None, reason=f'needs CuPy and a CUDA GPU ({REASON})')
BACKENDS = [('pinned', 'zero_copy'), ('pinned', 'copy'), ('cuda_ipc', 'zero_copy'),
            ('cuda_ipc', 'copy')]


@pytest.fixture
def node(context):
    node = Node(f'jsr_test_gpu_api_{os.getpid()}', context=context)
    yield node
    node.destroy_node()


def _pair(node, shm_name, backend, mode, shape, dtype, callback):
    pub = ShmPublisher(node, 'frames', dtype=dtype, shape=shape, backend=backend, mode=mode,
                       shm_name=shm_name, policy='reliable', required_readers=1, slots=2)
    sub = ShmSubscription(node, 'frames', callback, backend=backend, mode=mode)
    return pub, sub


@pytest.mark.parametrize('backend, mode', BACKENDS)
def test_loan_and_publish_from_cupy_and_numpy_arrive_intact(context, node, shm_name, backend,
                                                            mode):
    received = []
    pub, sub = _pair(node, shm_name, backend, mode, [64, 33], 'float32',
                     lambda frame, info: received.append(cupy.asnumpy(frame)))
    assert pub.backend.name == backend
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    assert spin_until(executor, lambda: pub.subscription_count() == 1)
    rng = np.random.default_rng()
    sent = [rng.standard_normal((64, 33)).astype(np.float32) for _ in range(3)]
    with pub.loan() as frame:
        assert isinstance(frame, cupy.ndarray)
        frame[...] = cupy.asarray(sent[0])
    assert spin_until(executor, lambda: len(received) == 1)
    pub.publish(cupy.asarray(sent[1]), timeout_s=5.0)
    assert spin_until(executor, lambda: len(received) == 2)
    pub.publish(sent[2], timeout_s=5.0)
    assert spin_until(executor, lambda: len(received) == 3)
    for want, got in zip(sent, received):
        assert np.array_equal(want, got)
    assert sub.counts['verified'] == 3 and sub.counts['invalid'] == 0
    byte_key = 'copied_bytes' if mode == 'copy' else 'in_place_bytes'
    assert sub.counts[byte_key] == 3 * 64 * 33 * 4
    pub.close()
    assert not os.path.exists(SHM_DIR + shm_name)


@pytest.mark.parametrize('backend', ['pinned', 'cuda_ipc'])
def test_torch_tensors_go_in_and_from_dlpack_comes_out_without_a_copy(context, node, shm_name,
                                                                      backend):
    torch = pytest.importorskip('torch', reason='torch is not installed')
    seen = []

    def callback(frame, info):
        tensor = torch.from_dlpack(frame)
        # Same memory: the tensor is a view of the slot, not a copy.
        seen.append((tensor.data_ptr() == frame.data.ptr, tensor.clone().cpu()))

    pub, sub = _pair(node, shm_name, backend, 'zero_copy', [3, 16, 16], 'float32', callback)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    assert spin_until(executor, lambda: pub.subscription_count() == 1)
    source = torch.randn(3, 16, 16, device='cuda')
    pub.publish(source, timeout_s=5.0)
    assert spin_until(executor, lambda: seen)
    same_memory, values = seen[0]
    assert same_memory
    assert torch.equal(values, source.cpu())
    pub.close()


@pytest.mark.parametrize('backend', ['pinned', 'cuda_ipc'])
@pytest.mark.parametrize('encoding', ['rgb8', 'bgr8'])
def test_image_filter_on_the_gpu_matches_the_reference(context, shm_name, backend, encoding):
    camera = Node('jsr_test_gpu_camera', context=context)
    sink = Node('jsr_test_gpu_model', context=context)
    stage = ImageFilterNode(context=context, parameter_overrides=[
        Parameter('input_topic', value='raw'), Parameter('output_topic', value='tensor'),
        Parameter('shm_name', value=shm_name + '_out'), Parameter('backend', value=backend),
        Parameter('policy', value='reliable'), Parameter('wait_for_consumers', value=1)])
    source = ShmPublisher(camera, 'raw', dtype='uint8', shape=[240, 320, 3], backend=backend,
                          encoding=encoding, shm_name=shm_name, policy='reliable',
                          required_readers=1)
    tensors = []
    ShmSubscription(sink, 'tensor', lambda frame, info: tensors.append(cupy.asnumpy(frame)),
                    backend=backend)
    executor = SingleThreadedExecutor(context=context)
    for each in (camera, stage, sink):
        executor.add_node(each)
    image = np.random.default_rng().integers(0, 256, (240, 320, 3), dtype=np.uint8)
    try:
        assert spin_until(executor, lambda: source.subscription_count() == 1)
        source.publish(image, timeout_s=5.0)
        assert spin_until(executor, lambda: tensors)
        rgb = image[..., ::-1] if encoding == 'bgr8' else image
        want = np.transpose((rgb / 255.0 - np.asarray(IMAGENET_MEAN)) /
                            np.asarray(IMAGENET_STD), (2, 0, 1))
        error = np.linalg.norm(tensors[0] - want) / np.linalg.norm(want)
        assert error < 1e-6, error
        assert stage.shm_publisher.backend.name == backend
    finally:
        executor.shutdown()
        stage.shutdown()
        for each in (camera, stage, sink):
            each.destroy_node()


@pytest.mark.parametrize('backend', ['pinned', 'cuda_ipc'])
def test_the_three_process_pipeline_on_the_gpu(processes, shm_name, backend):
    env = isolated_env()
    frames = 60
    consumer = processes.start(NodeProcess('consumer', {
        'topic': 'camera/tensor', 'frames': frames, 'backend': backend}, env))
    stage = processes.start(NodeProcess('image_filter', {
        'input_topic': 'camera/frames', 'output_topic': 'camera/tensor', 'backend': backend,
        'shm_name': shm_name + '_out', 'policy': 'reliable', 'wait_for_consumers': 1}, env))
    producer = processes.start(NodeProcess('producer', {
        'topic': 'camera/frames', 'shm_name': shm_name, 'shape': [480, 640, 3],
        'encoding': 'rgb8', 'frames': frames, 'rate_hz': 100.0, 'policy': 'reliable',
        'wait_for_consumers': 1, 'backend': backend}, env))
    assert consumer.finish() == 0, consumer.output()
    assert producer.finish() == 0, producer.output()
    counts = summary(consumer.output())
    assert counts['verified'] == frames and counts['invalid'] == 0, consumer.output()
    assert f'backend={backend}' in stage.output()
    assert stage.interrupt() == 0, stage.output()
    print(f'{backend}: {consumer.output().splitlines()[-1]}')
