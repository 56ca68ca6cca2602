"""The image_filter stage: its output against an independent NumPy reference, and in a pipeline."""

import os

from api_fixtures import spin_until
from conftest import SHM_DIR
from jetson_shm_ros.core.preprocess import (
    chw_shape, coefficients, IMAGENET_MEAN, IMAGENET_STD, normalize_to_chw)
from jetson_shm_ros.nodes.image_filter import ImageFilterNode
from jetson_shm_ros.ros.publisher import ShmPublisher
from jetson_shm_ros.ros.subscription import ShmSubscription
from node_processes import isolated_env, NodeProcess, summary
import numpy as np
import pytest
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter


def reference(image: np.ndarray, encoding: str, mean, std) -> np.ndarray:
    """(x / 255 - mean) / std in float64, RGB channels first: written from the definition."""
    rgb = image[..., ::-1] if encoding == 'bgr8' else image
    normalized = (rgb.astype(np.float64) / 255.0 - np.asarray(mean)) / np.asarray(std)
    return np.transpose(normalized, (2, 0, 1))


def _relative_error(out, ref) -> float:
    return float(np.linalg.norm(out.astype(np.float64) - ref) / np.linalg.norm(ref))


@pytest.mark.parametrize('encoding', ['rgb8', 'bgr8'])
@pytest.mark.parametrize('shape', [(1, 1, 3), (7, 13, 3), (480, 640, 3)])
def test_normalize_matches_the_reference_on_numpy(encoding, shape):
    rng = np.random.default_rng()
    image = rng.integers(0, 256, shape, dtype=np.uint8)
    mean, std = rng.uniform(0.2, 0.6, 3), rng.uniform(0.1, 0.4, 3)
    out = np.full(chw_shape(shape), np.nan, np.float32)  # poisoned: every element is written
    scale, offset = coefficients(mean, std)
    normalize_to_chw(image, out, scale, offset, swap_rb=encoding == 'bgr8')
    assert not np.isnan(out).any()
    assert _relative_error(out, reference(image, encoding, mean, std)) < 1e-6


def test_bad_coefficients_are_refused():
    for mean, std in [((0.5, 0.5), (0.2, 0.2, 0.2)), ((0.5,) * 3, (0.2, 0.0, 0.2))]:
        with pytest.raises(ValueError):
            coefficients(mean, std)


@pytest.mark.parametrize('encoding', ['rgb8', 'bgr8'])
def test_the_filter_node_publishes_the_normalized_tensor(context, shm_name, encoding):
    camera = Node('jsr_test_camera', context=context)
    sink = Node('jsr_test_model', context=context)
    stage = ImageFilterNode(context=context, parameter_overrides=[
        Parameter('input_topic', value='raw'), Parameter('output_topic', value='tensor'),
        Parameter('shm_name', value=shm_name + '_out'), Parameter('policy', value='reliable'),
        Parameter('wait_for_consumers', value=1)])
    source = ShmPublisher(camera, 'raw', dtype='uint8', shape=[48, 64, 3], encoding=encoding,
                          shm_name=shm_name, policy='reliable', required_readers=1)
    tensors = []
    model = ShmSubscription(sink, 'tensor', lambda frame, info: tensors.append(
        (np.array(frame), info)))
    executor = SingleThreadedExecutor(context=context)
    for node in (camera, stage, sink):
        executor.add_node(node)
    rng = np.random.default_rng()
    images = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(5)]
    try:
        assert spin_until(executor, lambda: source.subscription_count() == 1)
        for index, image in enumerate(images):
            source.publish(image, stamp_ns=1000 + index, frame_id='cam', timeout_s=5.0)
            assert spin_until(executor, lambda: len(tensors) == index + 1)
        for image, (tensor, info) in zip(images, tensors):
            assert tensor.shape == (3, 48, 64) and info.dtype == '<f4' and info.encoding == ''
            assert _relative_error(tensor, reference(image, encoding, IMAGENET_MEAN,
                                                     IMAGENET_STD)) < 1e-6
        assert [info.stamp_ns for _, info in tensors] == [1000, 1001, 1002, 1003, 1004]
        assert model.counts['verified'] == 5 and model.counts['invalid'] == 0
        assert stage.counters['filtered'] == 5
    finally:
        executor.shutdown()
        stage.shutdown()
        for node in (camera, stage, sink):
            node.destroy_node()
    assert not os.path.exists(SHM_DIR + shm_name + '_out')


def test_the_pipeline_of_three_processes_verifies_every_tensor(processes, shm_name):
    """Run producer (rgb8 test pattern) -> image_filter -> consumer, as the launch file does."""
    env = isolated_env()
    frames = 30
    consumer = processes.start(NodeProcess('consumer', {
        'topic': 'camera/tensor', 'frames': frames, 'status_period_s': 1.0}, env))
    stage = processes.start(NodeProcess('image_filter', {
        'input_topic': 'camera/frames', 'output_topic': 'camera/tensor',
        'shm_name': shm_name + '_out', 'policy': 'reliable', 'wait_for_consumers': 1}, env))
    producer = processes.start(NodeProcess('producer', {
        'topic': 'camera/frames', 'shm_name': shm_name, 'shape': [120, 160, 3],
        'encoding': 'rgb8', 'frames': frames, 'rate_hz': 50.0, 'policy': 'reliable',
        'wait_for_consumers': 1}, env))
    assert consumer.finish() == 0, consumer.output()
    assert producer.finish() == 0, producer.output()
    counts = summary(consumer.output())
    assert counts['verified'] == frames and counts['invalid'] == 0, consumer.output()
    assert 'frame=<f4[3, 120, 160]' in stage.output()
    assert stage.interrupt() == 0, stage.output()
    assert f'filtered={frames}' in stage.output()
    for name in (shm_name, shm_name + '_out'):
        assert not os.path.exists(SHM_DIR + name)


def test_the_pipeline_launch_file_starts_declared_nodes_with_declared_parameters():
    import ast
    import re
    import yaml

    from jetson_shm_ros.process.role_options import (
        CONSUMER_NODE_OPTIONS, IMAGE_FILTER_NODE_OPTIONS, PRODUCER_NODE_OPTIONS)

    schemas = {'producer': PRODUCER_NODE_OPTIONS, 'image_filter': IMAGE_FILTER_NODE_OPTIONS,
               'consumer': CONSUMER_NODE_OPTIONS}
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(package, 'launch', 'pipeline_launch.py'), encoding='utf-8') as f:
        tree = ast.parse(f.read())
    stages = next(ast.literal_eval(node.value) for node in tree.body
                  if isinstance(node, ast.Assign) and node.targets[0].id == 'STAGES')
    with open(os.path.join(package, 'setup.py'), encoding='utf-8') as f:
        scripts = set(re.findall(r"'(\w+) = jetson_shm_ros\.nodes\.", f.read()))
    assert set(stages) <= scripts and set(stages) == set(schemas)
    with open(os.path.join(package, 'config', 'pipeline.yaml'), encoding='utf-8') as f:
        config = yaml.safe_load(f)
    for key, section in config.items():
        options = {option.name: option for option in schemas[key.split('/')[-1]]}
        for name, value in section['ros__parameters'].items():
            assert name in options, (key, name)
            options[name].parse(value)  # raises OptionError naming a bad value
    # The launch arguments, derived by the launch file itself from the same schemas.
    table = {}
    exec(compile(ast.Module(body=[node for node in tree.body if
                                  (isinstance(node, ast.ImportFrom) and
                                   node.module.startswith('jetson_shm_ros')) or
                                  (isinstance(node, ast.Assign) and
                                   node.targets[0].id == 'ARGUMENTS')],
                            type_ignores=[]), 'pipeline_launch', 'exec'), table)
    assert {argument.name for argument in table['ARGUMENTS']} >= {
        'shape', 'encoding', 'rate_hz', 'frames', 'backend', 'mode', 'output_order'}
    for argument in table['ARGUMENTS']:
        assert argument.nodes and set(argument.nodes) <= set(stages), argument
        for stage in argument.nodes:
            assert argument.name in {option.name for option in schemas[stage]}, argument
