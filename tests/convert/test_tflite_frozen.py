"""Float and int8 TFLite go through a frozen graph instead of ``from_keras_model``'s SavedModel export.

The two routes must give the same flatbuffer ops, the same outputs and the same ``serving_default``
signature; the frozen one is what lcefr ships because it is several times faster.
"""
import numpy as np
import pytest
import tensorflow as tf

from lcefr.convert.inspect import inspect_tflite
from lcefr.eval.parity import face_inputs
from lcefr.source import load_source
from lcefr.convert.tflite import convert_float, convert_int8


def _saved_model_route(model, representative=None):
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if representative is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([x[None]] for x in representative)
    return converter.convert()


def _outputs(buffer, faces, *, signature=False):
    interpreter = tf.lite.Interpreter(model_content=buffer)
    if signature:
        runner = interpreter.get_signature_runner("serving_default")
        (name,) = interpreter.get_signature_list()["serving_default"]["inputs"]
        return np.stack([next(iter(runner(**{name: x[None]}).values()))[0] for x in faces])
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    rows = []
    for x in faces:
        interpreter.set_tensor(inp["index"], x[None])
        interpreter.invoke()
        rows.append(interpreter.get_tensor(out["index"])[0])
    return np.stack(rows)


@pytest.fixture(scope="module")
def model():
    return load_source("test_mobilefacenet").model


@pytest.mark.slow  # the SavedModel route it compares against takes ~30 s per call
@pytest.mark.parametrize("int8", [False, True], ids=["float", "int8"])
def test_frozen_route_matches_the_saved_model_route(model, int8):
    faces = face_inputs((112, 112, 3), n=4, seed=5)
    cal = face_inputs((112, 112, 3), n=8, seed=3) if int8 else None
    # float_islands=False: the same quantization as the converter's own (the islands are tested elsewhere)
    ours = convert_int8(model, cal, float_islands=False) if int8 else convert_float(model)
    reference = _saved_model_route(model, cal)
    assert inspect_tflite(ours).ops == inspect_tflite(reference).ops
    np.testing.assert_allclose(_outputs(ours, faces), _outputs(reference, faces), atol=1e-5)
    ours_sig = tf.lite.Interpreter(model_content=ours).get_signature_list()
    assert ours_sig == tf.lite.Interpreter(model_content=reference).get_signature_list()
    assert ours_sig == {"serving_default": {"inputs": [model.input_names[0]], "outputs": [model.output_names[0]]}}
    by_signature, by_index = _outputs(ours, faces, signature=True), _outputs(ours, faces)
    # the signature runs the same tensors (int8 kernels may round one step differently between the two runners)
    cosine = np.sum(by_signature * by_index, 1) / np.linalg.norm(by_signature, axis=1) / np.linalg.norm(by_index, axis=1)
    assert cosine.min() > 0.999
    shape = tf.lite.Interpreter(model_content=ours).get_input_details()[0]["shape_signature"]
    assert shape.tolist() == [-1, 112, 112, 3]


def test_one_input_one_output_only():
    import tf_keras as keras

    a, b = keras.Input((4,)), keras.Input((4,))
    two = keras.Model([a, b], keras.layers.Add()([a, b]))
    with pytest.raises(ValueError, match="one input and one output"):
        convert_float(two)
