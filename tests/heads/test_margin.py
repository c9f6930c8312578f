import math

import numpy as np
import pytest
import tensorflow as tf

from lcefr.heads import (
    AdaFace,
    ArcFace,
    CombinedMargin,
    CosFace,
    adaface_logits,
    combined_margin_logits,
    list_heads,
    make_head,
)

# Kernel columns along the first three axes with different lengths: after column normalisation
# the cosines are simply the first three embedding components.
AXIS_KERNEL = np.array([[2.0, 0, 0], [0, 3.0, 0], [0, 0, 0.5], [0, 0, 0]], dtype="float32")
AXIS_EMB = np.array([[0.6, 0.8, 0.0, 0.0], [0.0, 0.6, 0.0, 0.8]], dtype="float32")
AXIS_LABELS = np.array([0, 1])


def _built(head, kernel):
    head.build((None, kernel.shape[0]))
    head.kernel.assign(kernel)
    return head


def _random_case(seed=0, batch=2, dim=4, classes=3):
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(batch, dim))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    kernel = rng.normal(size=(dim, classes))
    labels = rng.integers(0, classes, size=batch)
    return emb.astype("float32"), kernel.astype("float32"), labels


def _cos_np(emb, kernel):
    return emb.astype("float64") @ (kernel / np.linalg.norm(kernel, axis=0, keepdims=True))


# ---------------------------------------------------------------- combined margin: hand values


def test_arcface_hand_values():
    head = _built(ArcFace(3, 4, m=0.5, s=64.0), AXIS_KERNEL)
    got = head(AXIS_EMB, None, AXIS_LABELS, training=True).numpy()
    # cos(theta + m) = cos(theta) cos(m) - sin(theta) sin(m) with (cos, sin) = (0.6, 0.8) for both targets
    target = 64.0 * (0.6 * math.cos(0.5) - 0.8 * math.sin(0.5))
    assert target == pytest.approx(9.15258, abs=1e-4)
    want = [[target, 64 * 0.8, 0.0], [0.0, target, 0.0]]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_cosface_hand_values():
    head = _built(CosFace(3, 4, m=0.4, s=64.0), AXIS_KERNEL)
    got = head(AXIS_EMB, None, AXIS_LABELS).numpy()
    want = [[64 * (0.6 - 0.4), 64 * 0.8, 0.0], [0.0, 64 * (0.6 - 0.4), 0.0]]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_combined_margin_hand_values():
    head = _built(CombinedMargin(3, 4, m1=0.9, m2=0.2, m3=0.1, s=10.0), AXIS_KERNEL)
    got = head(AXIS_EMB, None, np.array([1, 2])).numpy()
    row0 = 10 * (math.cos(0.9 * math.acos(0.8) + 0.2) - 0.1)
    row1 = 10 * (math.cos(0.9 * math.acos(0.0) + 0.2) - 0.1)  # acos(0) = pi/2
    want = [[6.0, row0, 0.0], [0.0, 6.0, row1]]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize(
    "make, margins",
    [
        (lambda: ArcFace(3, 4, m=0.5, s=64.0), (1.0, 0.5, 0.0, 64.0)),
        (lambda: CosFace(3, 4, m=0.35, s=30.0), (1.0, 0.0, 0.35, 30.0)),
        (lambda: CombinedMargin(3, 4, m1=1.1, m2=0.3, m3=0.2, s=16.0), (1.1, 0.3, 0.2, 16.0)),
        (lambda: CombinedMargin(3, 4, m1=1.0, m2=0.5, m3=0.0, s=64.0, straight_through=True), (1.0, 0.5, 0.0, 64.0)),
    ],
)
def test_combined_margin_matches_numpy_on_random_vectors(make, margins):
    m1, m2, m3, s = margins
    emb, kernel, labels = _random_case(seed=3)
    got = _built(make(), kernel)(emb, np.ones(2), labels).numpy()
    cos = _cos_np(emb, kernel)
    want = s * cos
    for i, y in enumerate(labels):
        want[i, y] = s * (np.cos(m1 * np.arccos(cos[i, y]) + m2) - m3)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_margin_gradient_exact_vs_straight_through():
    cos = tf.constant([[0.6, 0.8, 0.0]])
    grads = {}
    for st in (False, True):
        with tf.GradientTape() as tape:
            tape.watch(cos)
            logits = combined_margin_logits(cos, [0], m1=1.0, m2=0.5, m3=0.0, s=64.0, straight_through=st)
            target = logits[0, 0]
        grads[st] = tape.gradient(target, cos).numpy()
        values = logits.numpy()
        np.testing.assert_allclose(values[0, 0], 64 * (0.6 * math.cos(0.5) - 0.8 * math.sin(0.5)), rtol=1e-5)
    # exact: d cos(theta + m) / d cos(theta) = sin(theta + m) / sin(theta), sin(theta) = 0.8
    exact = 64 * (0.8 * math.cos(0.5) + 0.6 * math.sin(0.5)) / 0.8
    np.testing.assert_allclose(grads[False], [[exact, 0, 0]], rtol=1e-4)
    np.testing.assert_allclose(grads[True], [[64.0, 0, 0]], rtol=1e-6)


def test_cosface_gradient_is_plain():
    cos = tf.constant([[0.999999, 0.2]])
    with tf.GradientTape() as tape:
        tape.watch(cos)
        target = combined_margin_logits(cos, [0], m1=1.0, m2=0.0, m3=0.4, s=64.0)[0, 0]
    np.testing.assert_allclose(tape.gradient(target, cos).numpy(), [[64.0, 0.0]])


# ------------------------------------------------------------------------------ AdaFace


def adaface_reference(emb, kernel, norms, labels, mu, sigma, *, m, h, s, eps):
    """Line-by-line numpy transcription of the official AdaFace head (face.md 3.1)."""
    cosine = np.clip(_cos_np(emb, kernel), -1 + eps, 1 - eps)
    safe_norms = np.clip(np.reshape(norms, (-1, 1)), 0.001, 100)
    margin_scaler = (safe_norms - mu) / (sigma + eps)
    margin_scaler = np.clip(margin_scaler * h, -1, 1)
    one_hot = np.zeros_like(cosine)
    one_hot[np.arange(len(labels)), labels] = 1.0
    m_arc = one_hot * (m * margin_scaler * -1)
    theta = np.arccos(cosine)
    theta_m = np.clip(theta + m_arc, eps, math.pi - eps)
    cosine = np.cos(theta_m) - one_hot * (m + m * margin_scaler)
    return cosine * s


def ema_reference(norms, mu, sigma, t_alpha):
    n = np.clip(np.reshape(norms, -1), 0.001, 100)
    return t_alpha * n.mean() + (1 - t_alpha) * mu, t_alpha * n.std(ddof=1) + (1 - t_alpha) * sigma


NORM_BATCHES = [
    np.array([12.0, 35.0]),
    np.array([[150.0], [0.0001]]),  # clipped to 100 and 0.001; (B, 1) shape
    np.array([22.0, 23.5]),
    np.array([5.0, 60.0]),
]


@pytest.mark.parametrize("graph", [False, True], ids=["eager", "tf.function"])
@pytest.mark.parametrize("t_alpha, h", [(0.01, 0.333), (0.6, 2.0)])
def test_adaface_matches_official_equations_with_ema(graph, t_alpha, h):
    emb, kernel, labels = _random_case(seed=7)
    head = _built(AdaFace(3, 4, m=0.4, h=h, s=64.0, t_alpha=t_alpha, eps=1e-3), kernel)
    call = tf.function(head.call) if graph else head
    mu, sigma = 20.0, 100.0
    assert float(head.batch_mean.numpy()) == 20.0 and float(head.batch_std.numpy()) == 100.0
    for norms in NORM_BATCHES:
        got = call(emb, tf.constant(norms, tf.float32), labels, training=True).numpy()
        mu, sigma = ema_reference(norms, mu, sigma, t_alpha)  # updated first, then used
        want = adaface_reference(emb, kernel, norms, labels, mu, sigma, m=0.4, h=h, s=64.0, eps=1e-3)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-4)
        np.testing.assert_allclose(head.batch_mean.numpy(), mu, rtol=1e-6)
        np.testing.assert_allclose(head.batch_std.numpy(), sigma, rtol=1e-6)

    # inference: the stored EMA is used and not updated
    norms = np.array([3.0, 80.0])
    for training in (False, None):
        got = call(emb, tf.constant(norms, tf.float32), labels, training=training).numpy()
        want = adaface_reference(emb, kernel, norms, labels, mu, sigma, m=0.4, h=h, s=64.0, eps=1e-3)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-4)
        np.testing.assert_allclose(head.batch_mean.numpy(), mu, rtol=1e-6)
        np.testing.assert_allclose(head.batch_std.numpy(), sigma, rtol=1e-6)


def test_adaface_margin_scaler_extremes():
    # g = -1 -> cos(theta + m) (ArcFace-like); g = 0 -> cos(theta) - m; g = +1 -> cos(theta - m) - 2m
    cos = tf.constant([[0.6, 0.1], [0.6, 0.1], [0.6, 0.1]])
    got = adaface_logits(cos, [1.0, 20.0, 39.0], [0, 0, 0], mean=20.0, std=10.0, m=0.4, h=1.0, s=1.0).numpy()
    theta = math.acos(0.6)
    g = np.clip((np.array([1.0, 20.0, 39.0]) - 20.0) / (10.0 + 1e-3), -1, 1)
    np.testing.assert_allclose(g, [-1, 0, 1])
    np.testing.assert_allclose(got[:, 0], [math.cos(theta + 0.4), 0.6 - 0.4, math.cos(theta - 0.4) - 0.8], rtol=1e-5)
    np.testing.assert_allclose(got[:, 1], 0.1, rtol=1e-6)


def test_adaface_single_sample_batch_keeps_std():
    emb, kernel, labels = _random_case(seed=1, batch=1)
    head = _built(AdaFace(3, 4, t_alpha=0.5), kernel)
    out = head(emb, [30.0], labels, training=True).numpy()
    assert np.isfinite(out).all()
    np.testing.assert_allclose(head.batch_mean.numpy(), 25.0)
    np.testing.assert_allclose(head.batch_std.numpy(), 100.0)


def test_adaface_gradients_reach_kernel_and_embeddings_not_norms():
    emb, kernel, labels = _random_case(seed=2, batch=4, dim=4, classes=3)
    head = _built(AdaFace(3, 4, h=1.0), kernel)
    emb = tf.constant(emb)
    norms = tf.constant([10.0, 25.0, 40.0, 18.0])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([emb, norms])
        logits = head(emb, norms, labels, training=True)
        loss = tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))
    g_kernel = tape.gradient(loss, head.kernel)
    assert g_kernel is not None and np.isfinite(g_kernel.numpy()).all() and np.abs(g_kernel.numpy()).sum() > 0
    assert tape.gradient(loss, emb) is not None
    assert tape.gradient(loss, norms) is None
    assert [w.name for w in head.trainable_weights] == [head.kernel.name]
    assert len(head.non_trainable_weights) == 2


def test_adaface_target_gradient_is_exact():
    cos = tf.constant([[0.6, 0.2]])
    with tf.GradientTape() as tape:
        tape.watch(cos)
        target = adaface_logits(cos, [30.0], [0], mean=20.0, std=10.0, m=0.4, h=0.5, s=64.0)[0, 0]
    g = min(max(0.5 * (30.0 - 20.0) / (10.0 + 1e-3), -1), 1)
    theta = math.acos(0.6)
    # d/dc s*cos(acos(c) - m g) = s * sin(theta - m g) / sin(theta)
    want = 64 * math.sin(theta - 0.4 * g) / 0.8
    np.testing.assert_allclose(tape.gradient(target, cos).numpy(), [[want, 0.0]], rtol=1e-4)


# ------------------------------------------------------------------ keras, serialisation


HEAD_FACTORIES = {
    "arcface": lambda: ArcFace(5, 8, m=0.45, s=32.0, straight_through=True),
    "cosface": lambda: CosFace(5, 8, m=0.3),
    "combined": lambda: CombinedMargin(5, 8, m1=1.0, m2=0.3, m3=0.2, s=48.0),
    "adaface": lambda: AdaFace(5, 8, m=0.5, h=0.2, t_alpha=0.3),
}


@pytest.mark.parametrize("key", sorted(HEAD_FACTORIES))
def test_config_round_trip(key):
    head = HEAD_FACTORIES[key]()
    config = head.get_config()
    clone = type(head).from_config(config)
    assert clone.get_config() == config
    restored = tf.keras.layers.deserialize(tf.keras.layers.serialize(head))
    assert type(restored) is type(head) and restored.get_config() == config


def _tiny_model(head, dim=8):
    emb_in = tf.keras.Input((dim,), name="embedding")
    norm_in = tf.keras.Input((1,), name="norm")
    label_in = tf.keras.Input((), dtype="int32", name="label")
    return tf.keras.Model([emb_in, norm_in, label_in], head(emb_in, norm_in, label_in))


@pytest.mark.parametrize("key", ["adaface", "arcface"])
def test_keras_save_load_round_trip_keeps_state(key, tmp_path):
    rng = np.random.default_rng(5)
    model = _tiny_model(HEAD_FACTORIES[key]())
    emb = rng.normal(size=(4, 8)).astype("float32")
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    labels = np.array([0, 1, 4, 2], dtype="int32")
    for scale in (10.0, 30.0, 50.0):
        model([emb, rng.uniform(0.5, 1.5, size=(4, 1)).astype("float32") * scale, labels], training=True)
    norms = np.full((4, 1), 25.0, dtype="float32")
    before = model([emb, norms, labels], training=False).numpy()

    path = tmp_path / "head.keras"
    model.save(path)
    loaded = tf.keras.models.load_model(path)
    head, loaded_head = model.layers[-1], loaded.layers[-1]
    assert type(loaded_head) is type(head)
    for a, b in zip(head.weights, loaded_head.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    if key == "adaface":
        assert float(loaded_head.batch_mean.numpy()) != 20.0
        assert float(loaded_head.batch_std.numpy()) != 100.0
    np.testing.assert_allclose(loaded([emb, norms, labels], training=False).numpy(), before, rtol=1e-6)


def test_adaface_under_one_device_mirrored_strategy():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    emb, kernel, labels = _random_case(seed=4, batch=4, dim=4, classes=3)
    with strategy.scope():
        head = _built(AdaFace(3, 4, t_alpha=0.5, h=1.0), kernel)
        optimizer = tf.keras.optimizers.SGD(0.1, jit_compile=False)  # XLA compile is slow on CPU

    @tf.function(autograph=False)  # the heads need no autograph; converting the step is slow
    def step(e, n, y):
        def replica_fn(e, n, y):
            with tf.GradientTape() as tape:
                logits = head(e, n, y, training=True)
                loss = tf.reduce_mean(
                    tf.keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
                )
            optimizer.apply_gradients(zip(tape.gradient(loss, head.trainable_weights), head.trainable_weights))
            return loss

        return strategy.reduce("MEAN", strategy.run(replica_fn, (e, n, y)), axis=None)

    mu, sigma = 20.0, 100.0
    for norms in ([10.0, 20.0, 30.0, 44.0], [15.0, 15.5, 70.0, 2.0]):
        loss = step(tf.constant(emb), tf.constant(norms), tf.constant(labels))
        assert np.isfinite(loss.numpy())
        mu, sigma = ema_reference(np.array(norms), mu, sigma, 0.5)
    np.testing.assert_allclose(head.batch_mean.numpy(), mu, rtol=1e-6)
    np.testing.assert_allclose(head.batch_std.numpy(), sigma, rtol=1e-6)
    assert not np.allclose(head.kernel.numpy(), kernel)


def test_heads_work_in_keras_fit():
    rng = np.random.default_rng(0)
    model = _tiny_model(AdaFace(5, 8))
    # run eagerly: tracing Keras' train_step through autograph takes >10 s on a small CPU
    model.compile(
        optimizer=tf.keras.optimizers.SGD(jit_compile=False),
        loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        run_eagerly=True,
    )
    emb = rng.normal(size=(8, 8)).astype("float32")
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    labels = rng.integers(0, 5, size=8).astype("int32")
    norms = rng.uniform(5, 40, size=(8, 1)).astype("float32")
    history = model.fit([emb, norms, labels], labels, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert float(model.layers[-1].batch_mean.numpy()) != 20.0


# ------------------------------------------------------------------------ factory, errors


@pytest.mark.parametrize("name, cls", [("arcface", ArcFace), ("cosface", CosFace), ("adaface", AdaFace)])
def test_make_head(name, cls):
    head = make_head(name, num_classes=7, embedding_size=16, s=32.0)
    assert type(head) is cls and head.num_classes == 7 and head.embedding_size == 16 and head.s == 32.0


def test_list_and_unknown_heads():
    assert list_heads() == ["adaface", "arcface", "cosface"]
    assert list_heads("*face") == ["adaface", "arcface", "cosface"]
    with pytest.raises(ValueError, match="'sphereface'.*adaface, arcface, cosface"):
        make_head("sphereface", num_classes=3, embedding_size=4)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: ArcFace(0, 4), "num_classes must be a positive integer, got 0"),
        (lambda: ArcFace(3, 2.5), "embedding_size must be a positive integer, got 2.5"),
        (lambda: CosFace(3, 4, s=-1.0), r"s must be in \(0.0, inf\], got -1.0"),
        (lambda: AdaFace(3, 4, t_alpha=1.5), r"t_alpha must be in \[0.0, 1.0\], got 1.5"),
        (lambda: CombinedMargin(3, 4, straight_through="yes"), "straight_through must be a bool, got 'yes'"),
    ],
)
def test_invalid_arguments_say_what_was_received(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_wrong_embedding_size_and_missing_inputs():
    with pytest.raises(ValueError, match=r"embeddings of size 4, got input shape \(2, 5\)"):
        ArcFace(3, 4)(np.zeros((2, 5), "float32"), None, [0, 1])
    with pytest.raises(ValueError, match="needs integer labels"):
        ArcFace(3, 4)(np.zeros((2, 4), "float32"))
    with pytest.raises(ValueError, match="norms"):
        AdaFace(3, 4)(np.zeros((2, 4), "float32"), None, [0, 1])
