import numpy as np
import pytest
import tensorflow as tf

from lcefr.heads import EKD_ANCHORS, EKDLoss, embedding_mse, soft_rank


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def ekd_reference(g_s, g_t, labels, tau_s, tau_t, *, anchors=EKD_ANCHORS, momentum=0.01, temp=0.01, top_k=2000):
    """numpy transcription of face.md 5.1 / TFace ekd.py; returns (loss, tau_s, tau_t)."""
    s_mat, t_mat = _unit(g_s) @ _unit(g_s).T, _unit(g_t) @ _unit(g_t).T
    rows, cols = np.triu_indices(len(labels), 1)  # pairs i < j, row-major like torch.masked_select
    s, t = s_mat[rows, cols], t_mat[rows, cols]
    pos = labels[rows] == labels[cols]
    s_pos, t_pos, s_neg, t_neg = s[pos], t[pos], s[~pos], t[~pos]
    idx = [len(s_neg) // a for a in anchors]
    if len(s_neg):
        tau_s = momentum * np.sort(s_neg)[::-1][idx] + (1 - momentum) * tau_s
        tau_t = momentum * np.sort(t_neg)[::-1][idx] + (1 - momentum) * tau_t

    def rank(x, tau):
        exponent = np.clip(-(x[:, None] - tau[None, :]) / temp, -50, 50)
        return (1.0 / (1.0 + np.exp(exponent))).sum(axis=1)

    def mse(a, b):
        return float(np.mean((a - b) ** 2)) if len(a) else 0.0

    hardest = np.argsort(-s_neg, kind="stable")[:top_k]
    loss = 0.02 * mse(rank(s_pos, tau_s), rank(t_pos, tau_t)) + 0.01 * mse(
        rank(s_neg[hardest], tau_s), rank(t_neg[hardest], tau_t)
    )
    return loss, tau_s, tau_t


def _batch(seed, labels, dim=5, noise=0.15):
    """Student embeddings and a teacher close to them, so similarities straddle the thresholds."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(labels.max() + 1, dim))
    student = centres[labels] + 0.7 * rng.normal(size=(len(labels), dim))
    teacher = student + noise * rng.normal(size=student.shape)
    return student.astype("float32"), teacher.astype("float32")


def test_embedding_mse_by_hand_and_teacher_has_no_gradient():
    student = tf.constant([[3.0, 4.0], [1.0, 0.0]])
    teacher = tf.constant([[0.0, 2.0], [5.0, 0.0]])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([student, teacher])
        loss = embedding_mse(student, teacher)
    # normalised: (0.6, 0.8) vs (0, 1) and (1, 0) vs (1, 0): ((0.6^2 + 0.2^2) + 0) / 4
    assert float(loss) == pytest.approx((0.36 + 0.04) / 4, abs=1e-7)
    assert tape.gradient(loss, teacher) is None
    assert tape.gradient(loss, student) is not None
    assert float(embedding_mse(student, 2.5 * student)) == pytest.approx(0.0, abs=1e-12)


def test_ekd_threshold_ema_by_hand_two_identities():
    # B = 6, two identities; 6 positive and 9 negative pairs, so every idx_k = 9 // a_k = 0
    labels = np.array([0, 0, 0, 1, 1, 1])
    student, teacher = _batch(0, labels)
    ekd = EKDLoss()
    ekd(student, teacher, labels)
    s, t = _unit(student), _unit(teacher)
    neg = [(i, j) for i in range(6) for j in range(i + 1, 6) if labels[i] != labels[j]]
    assert len(neg) == 9
    hardest_s = max(s[i] @ s[j] for i, j in neg)
    hardest_t = max(t[i] @ t[j] for i, j in neg)
    np.testing.assert_allclose(ekd.student_thresholds.numpy(), [0.01 * hardest_s] * 6, rtol=1e-5)
    np.testing.assert_allclose(ekd.teacher_thresholds.numpy(), [0.01 * hardest_t] * 6, rtol=1e-5)
    # second call, same batch: tau = 0.01 * v + 0.99 * (0.01 * v)
    ekd(student, teacher, labels)
    np.testing.assert_allclose(ekd.student_thresholds.numpy(), [0.01 * hardest_s * 1.99] * 6, rtol=1e-5)


@pytest.mark.parametrize("graph", [False, True], ids=["eager", "tf.function"])
def test_ekd_warm_start_takes_the_first_batch_then_averages(graph):
    labels = np.array([0, 0, 0, 1, 1, 1])
    student, teacher = _batch(0, labels)
    other_s, other_t = _batch(1, labels)
    ekd = EKDLoss(warm_start=True)
    ekd.build(None)
    call = tf.function(ekd.call) if graph else ekd
    s, t = _unit(student), _unit(teacher)
    neg = [(i, j) for i in range(6) for j in range(i + 1, 6) if labels[i] != labels[j]]
    hardest_s = max(s[i] @ s[j] for i, j in neg)
    hardest_t = max(t[i] @ t[j] for i, j in neg)
    call(student, teacher, labels)
    np.testing.assert_allclose(ekd.student_thresholds.numpy(), [hardest_s] * 6, rtol=1e-5)
    np.testing.assert_allclose(ekd.teacher_thresholds.numpy(), [hardest_t] * 6, rtol=1e-5)
    # the second call is the usual EMA with weight 0.01 on the new batch
    s2 = _unit(other_s)
    hardest_s2 = max(s2[i] @ s2[j] for i, j in neg)
    call(other_s, other_t, labels)
    np.testing.assert_allclose(ekd.student_thresholds.numpy(), [0.01 * hardest_s2 + 0.99 * hardest_s] * 6, rtol=1e-5)
    assert EKDLoss.from_config(ekd.get_config()).warm_start is True
    assert len(ekd.non_trainable_weights) == 3  # two threshold vectors and the update count


@pytest.mark.parametrize("graph", [False, True], ids=["eager", "tf.function"])
@pytest.mark.parametrize(
    "labels, anchors, top_k",
    [
        (np.array([0, 0, 0, 1, 1, 1]), EKD_ANCHORS, 2000),  # the brief's B = 6, two identities
        (np.array([0, 0, 1, 1, 2, 2, 3, 3]), EKD_ANCHORS, 2000),  # 24 negatives: idx = 2, 0, ...
        (np.array([0, 1, 0, 2, 1, 2, 0]), (2, 3, 5, 50), 4),  # several idx_k, top-k cut
    ],
)
def test_ekd_matches_reference_over_two_calls(labels, anchors, top_k, graph):
    ekd = EKDLoss(anchors=anchors, top_k=top_k)
    ekd.build(None)
    call = tf.function(ekd.call) if graph else ekd
    tau_s = tau_t = np.zeros(len(anchors))
    for seed in (1, 2):
        student, teacher = _batch(seed, labels)
        got = float(call(student, teacher, labels))
        want, tau_s, tau_t = ekd_reference(student, teacher, labels, tau_s, tau_t, anchors=anchors, top_k=top_k)
        assert want > 0
        assert got == pytest.approx(want, rel=1e-4, abs=1e-7)
        np.testing.assert_allclose(ekd.student_thresholds.numpy(), tau_s, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(ekd.teacher_thresholds.numpy(), tau_t, rtol=1e-5, atol=1e-7)


def test_ekd_inference_call_does_not_update_thresholds():
    labels = np.array([0, 0, 1, 1, 2, 2])
    student, teacher = _batch(3, labels)
    ekd = EKDLoss()
    ekd(student, teacher, labels)
    stored = ekd.student_thresholds.numpy().copy(), ekd.teacher_thresholds.numpy().copy()
    student2, teacher2 = _batch(4, labels)
    got = float(ekd(student2, teacher2, labels, training=False))
    np.testing.assert_array_equal(ekd.student_thresholds.numpy(), stored[0])
    np.testing.assert_array_equal(ekd.teacher_thresholds.numpy(), stored[1])

    # the loss with stored thresholds: reference with momentum 0 keeps tau unchanged
    want, _, _ = ekd_reference(student2, teacher2, labels, stored[0], stored[1], momentum=0.0)
    assert got == pytest.approx(want, rel=1e-4, abs=1e-7)


def test_ekd_without_positive_pairs():
    labels = np.arange(5)
    student, teacher = _batch(5, labels)
    got = float(EKDLoss()(student, teacher, labels))
    want, _, _ = ekd_reference(student, teacher, labels, np.zeros(6), np.zeros(6))
    assert np.isfinite(got) and got == pytest.approx(want, rel=1e-4, abs=1e-7)


def test_ekd_without_negative_pairs_keeps_thresholds():
    labels = np.zeros(4, dtype=int)
    student, teacher = _batch(6, labels)
    ekd = EKDLoss()
    got = float(ekd(student, teacher, labels))
    want, _, _ = ekd_reference(student, teacher, labels, np.zeros(6), np.zeros(6))
    assert np.isfinite(got) and got == pytest.approx(want, rel=1e-4, abs=1e-7)
    np.testing.assert_array_equal(ekd.student_thresholds.numpy(), np.zeros(6))


def test_ekd_gradients_reach_student_only():
    labels = np.array([0, 0, 1, 1, 2, 2])
    student, teacher = (tf.constant(x) for x in _batch(7, labels))
    ekd = EKDLoss()
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([student, teacher])
        loss = ekd(student, teacher, labels)
    grad = tape.gradient(loss, student)
    assert grad is not None and np.isfinite(grad.numpy()).all() and np.abs(grad.numpy()).sum() > 0
    assert tape.gradient(loss, teacher) is None
    assert ekd.trainable_weights == [] and len(ekd.non_trainable_weights) == 2


def test_soft_rank_by_hand():
    x = tf.constant([0.5, 0.2])
    tau = tf.constant([0.49, 0.51, 0.0])
    got = soft_rank(x, tau, temperature=0.01).numpy()
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    # 0.5 vs 0.0: exponent -50 (clamped); 0.2 vs 0.49 / 0.51: exponent 29 / 31
    want = [sig(1.0) + sig(-1.0) + 1 / (1 + np.exp(-50.0)), sig(-29.0) + sig(-31.0) + sig(20.0)]
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_ekd_config_round_trip_and_validation():
    ekd = EKDLoss(anchors=(5, 50), temperature=0.02, momentum=0.1, top_k=10, pos_weight=1.0, neg_weight=0.5)
    config = ekd.get_config()
    clone = EKDLoss.from_config(config)
    assert clone.get_config() == config and clone.anchors == (5, 50)
    assert type(tf.keras.layers.deserialize(tf.keras.layers.serialize(ekd))) is EKDLoss
    with pytest.raises(ValueError, match=r"anchors .* got \(0, 10\)"):
        EKDLoss(anchors=(0, 10))
    with pytest.raises(ValueError, match="momentum must be in \\[0, 1\\], got 2"):
        EKDLoss(momentum=2)
    with pytest.raises(ValueError, match="top_k must be a positive integer, got 0"):
        EKDLoss(top_k=0)


def test_ekd_under_one_device_mirrored_strategy():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    labels = np.array([0, 0, 0, 1, 1, 1])
    student, teacher = _batch(8, labels)
    with strategy.scope():
        ekd = EKDLoss()

    @tf.function(autograph=False)
    def step(s, t, y):
        return strategy.reduce("SUM", strategy.run(ekd, (s, t, y)), axis=None)

    got = float(step(tf.constant(student), tf.constant(teacher), tf.constant(labels)))
    want, tau_s, _ = ekd_reference(student, teacher, labels, np.zeros(6), np.zeros(6))
    assert got == pytest.approx(want, rel=1e-4, abs=1e-7)
    np.testing.assert_allclose(ekd.student_thresholds.numpy(), tau_s, rtol=1e-5)
