"""Issue 10: WordModel (shared embedding, concat or sum, sigmoid hidden layer,
softmax over the vocabulary) in the CS231n classifier protocol, and the
synthetic trigram corpus it trains on."""
import numpy as np
import pytest

import nnc
from nnc.classifiers import WordModel
from nnc.datasets_synthetic import WORDS, sentences, trigram_data, unigram_accuracy
from nnc.gradient_check import eval_numerical_gradient
from nnc.layers import softmax_loss
from nnc.solver import Solver

from conftest import BACKENDS, rel_error

PARAMS = {"W_embed", "W1", "b1", "W2", "b2"}


def balanced_batch(V=250, C=3, reps=20, seed=0):
    """Random contexts, and every word exactly ``reps`` times as the label."""
    rng = np.random.default_rng(seed)
    y = np.tile(np.arange(V), reps)
    return rng.integers(0, V, size=(y.size, C)), y


@pytest.mark.parametrize("combine", ["concat", "sum"])
def test_loss_at_initialization_is_log_vocab_size(backend, combine):
    """With weights from N(0, 0.01^2) every hidden unit sits at sigmoid(~0) =
    0.5, so each score is 0.5 * (a column sum of W2), spread over the words
    with variance P * 0.01^2 / 4, and the loss is log(V) plus half that
    variance: P * 0.01^2 / 8 (4e-4 for P = 32, 3.2e-3 for P = 256). The
    labels are balanced so that no word's random score offset tips the mean."""
    X, y = balanced_batch()
    model = WordModel(vocab_size=250, embed_dim=16, hidden_dim=32, combine=combine, seed=1)
    loss, _ = model.loss(X, y)
    assert abs(loss - np.log(250)) < 1e-3
    model = WordModel(seed=2, combine=combine)   # defaults: D = 32, P = 256
    loss, _ = model.loss(X, y)
    assert abs(loss - (np.log(250) + 256 * 0.01 ** 2 / 8)) < 1e-3


def test_parameters_shapes_dtypes_and_init():
    m = WordModel(vocab_size=250, embed_dim=8, hidden_dim=64, context=3, seed=0)
    shapes = {k: v.shape for k, v in m.params.items()}
    assert shapes == {"W_embed": (250, 8), "W1": (24, 64), "b1": (64,), "W2": (64, 250),
                      "b2": (250,)}
    assert all(v.dtype == np.float64 for v in m.params.values())
    assert not m.params["b1"].any() and not m.params["b2"].any()
    assert abs(m.params["W2"].std() - 0.01) < 0.001 and abs(m.params["W2"].mean()) < 0.001
    s = WordModel(embed_dim=8, hidden_dim=64, combine="sum", dtype=np.float32, seed=0)
    assert s.params["W1"].shape == (8, 64) and s.params["W1"].dtype == np.float32
    # seed: a private RandomState, reproducible and leaving np.random alone
    state = np.random.get_state()[1].copy()
    again = WordModel(vocab_size=250, embed_dim=8, hidden_dim=64, seed=0)
    np.testing.assert_array_equal(np.random.get_state()[1], state)
    for k in m.params:
        np.testing.assert_array_equal(again.params[k], m.params[k])


@pytest.mark.parametrize("combine", ["concat", "sum"])
def test_gradient_check(backend, combine):
    rng = np.random.default_rng(3)
    model = WordModel(vocab_size=13, embed_dim=4, hidden_dim=6, context=3, weight_scale=0.5,
                      combine=combine, reg=0.1, seed=4)
    X = rng.integers(0, 13, size=(7, 3))
    X[0] = [5, 5, 5]   # one word repeated in a context: its gradients add up
    y = rng.integers(0, 13, size=7)
    loss, grads = model.loss(X, y)
    assert set(grads) == PARAMS
    for name in sorted(PARAMS):
        num = eval_numerical_gradient(lambda _: model.loss(X, y)[0], model.params[name],
                                      verbose=False)
        assert grads[name].shape == model.params[name].shape
        assert rel_error(grads[name], num) < 1e-7, name


@pytest.mark.skipif("cpp" not in BACKENDS, reason="native extension not built")
@pytest.mark.parametrize("combine", ["concat", "sum"])
def test_backends_agree(combine):
    X, y = balanced_batch(V=50, reps=4, seed=5)
    model = WordModel(vocab_size=50, embed_dim=8, hidden_dim=16, weight_scale=0.3,
                      combine=combine, reg=0.01, seed=6)
    res = {}
    for b in ("numpy", "cpp"):
        with nnc.use_backend(b):
            res[b] = model.loss(X, y), model.loss(X)
    (l_np, g_np), s_np = res["numpy"]
    (l_c, g_c), s_c = res["cpp"]
    assert abs(l_np - l_c) < 1e-12 * l_np
    assert rel_error(s_np, s_c) < 1e-10
    for k in PARAMS:
        assert rel_error(g_np[k], g_c[k]) < 1e-9, k


def test_scores_and_float32(backend):
    X, y = balanced_batch(V=30, reps=2)
    m = WordModel(vocab_size=30, embed_dim=4, hidden_dim=8, dtype=np.float32, seed=0)
    scores = m.loss(X)
    assert scores.shape == (60, 30) and scores.dtype == np.float32
    loss, grads = m.loss(X.astype(np.int16), y)
    assert all(grads[k].dtype == np.float32 for k in PARAMS)
    m64 = WordModel(vocab_size=30, embed_dim=4, hidden_dim=8, seed=0)
    assert abs(loss - m64.loss(X, y)[0]) < 1e-5


def test_predict_topk(backend):
    X, _ = balanced_batch(V=40, reps=1, seed=7)
    m = WordModel(vocab_size=40, embed_dim=4, hidden_dim=8, weight_scale=1.0, seed=8)
    probs = m.predict_proba(X)
    np.testing.assert_allclose(probs.sum(1), 1, rtol=1e-12)
    top, p = m.predict_topk(X, 5, return_probs=True)
    assert top.shape == (40, 5) and top.dtype == np.int64
    np.testing.assert_array_equal(top[:, 0], np.argmax(m.loss(X), axis=1))
    assert np.all(np.diff(p, axis=1) <= 0)                       # most likely first
    np.testing.assert_array_equal(p, np.take_along_axis(probs, top, 1))
    kth = np.sort(probs, axis=1)[:, -5]
    assert np.all(p[:, -1] == kth)                               # really the top 5
    np.testing.assert_array_equal(m.predict_topk(X, 5), top)
    assert m.predict_topk(X[:1], 40).shape == (1, 40)


def test_predict_topk_ties_go_to_the_lower_index():
    m = WordModel(vocab_size=6, embed_dim=2, hidden_dim=3, seed=0)
    m.params["W2"][:] = 0
    m.params["b2"][:] = [0, 1, 0, 1, 0, 0]
    np.testing.assert_array_equal(m.predict_topk(np.array([[0, 1, 2]]), 4), [[1, 3, 0, 2]])


def test_solver_beats_the_unigram_baseline():
    """The course's settings (SGD momentum 0.85, lr 0.15, batch 200,
    N(0, 0.01) weights) on the synthetic corpus. Sigmoid units with small
    weights sit on a plateau at the unigram solution for about 1000 steps
    (the course's famous plateau), then climb: after 2000 steps (about 6 s)
    the validation accuracy must beat always-predict-'.' by 5 points and the
    validation cross-entropy the unigram model's by 0.8 nats."""
    d = trigram_data(num_train=40_000, num_val=5_000, num_test=10, seed=1)
    data = {k: d[k] for k in ("X_train", "y_train", "X_val", "y_val")}
    np.random.seed(0)
    model = WordModel(vocab_size=250, embed_dim=16, hidden_dim=64, seed=0)
    solver = Solver(model, data, update_rule="sgd_momentum",
                    optim_config={"learning_rate": 0.15, "momentum": 0.85}, batch_size=200,
                    num_epochs=10, num_train_samples=1000, verbose=False)
    solver.train()
    base = unigram_accuracy(d["y_train"], d["y_val"])
    assert 0.15 < base < 0.25
    assert solver.best_val_acc > base + 0.05, (solver.best_val_acc, base)
    freq = np.bincount(d["y_train"], minlength=250) / d["y_train"].size
    unigram_ce = -np.mean(np.log(freq[d["y_val"]]))
    ce, _ = softmax_loss(model.loss(d["X_val"]), d["y_val"])
    assert ce < unigram_ce - 0.8, (ce, unigram_ce)


# --- bad inputs: clear exceptions, nothing modified ---

@pytest.mark.parametrize("X,y,exc,msg", [
    (np.zeros((4, 2), dtype=int), None, ValueError,
     r"WordModel: X must have shape \(N, 3\) \(context=3 word indices per row\), got \(4, 2\)"),
    (np.zeros(3, dtype=int), None, ValueError, r"X must have shape \(N, 3\)"),
    (np.zeros((4, 3)), None, TypeError, r"idx must hold integer indices, got dtype float64"),
    (np.full((4, 3), 10), None, IndexError, r"= 10 is out of range for V=10"),
    (np.full((4, 3), -1), None, IndexError, r"= -1 is out of range for V=10"),
    (np.zeros((4, 3), dtype=int), np.array([0, 1, 2, 10]), ValueError,
     r"y must lie in \[0, 10\)"),
    (np.zeros((4, 3), dtype=int), np.zeros(3, dtype=int), ValueError, r"y must have shape \(4,\)"),
])
def test_bad_inputs(backend, X, y, exc, msg):
    m = WordModel(vocab_size=10, embed_dim=2, hidden_dim=3, seed=0)
    before = {k: v.copy() for k, v in m.params.items()}
    X0 = X.copy()
    with pytest.raises(exc, match=msg):
        m.loss(X, y)
    np.testing.assert_array_equal(X, X0)
    for k, v in before.items():
        np.testing.assert_array_equal(m.params[k], v)


@pytest.mark.parametrize("kwargs,exc,msg", [
    ({"vocab_size": 0}, ValueError, r"WordModel: vocab_size must be positive, got 0"),
    ({"embed_dim": 2.5}, TypeError, r"embed_dim must be an int, got 2.5"),
    ({"hidden_dim": -1}, ValueError, r"hidden_dim must be positive"),
    ({"context": 0}, ValueError, r"context must be positive"),
    ({"combine": "mean"}, ValueError, r"combine must be 'concat' or 'sum', got 'mean'"),
    ({"weight_scale": -0.1}, ValueError, r"weight_scale must be >= 0"),
    ({"reg": float("nan")}, ValueError, r"reg must be >= 0"),
    ({"dtype": np.float16}, TypeError, r"dtype must be np.float32 or np.float64"),
])
def test_bad_constructor_arguments(kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        WordModel(**kwargs)


def test_predict_topk_bad_k():
    m = WordModel(vocab_size=10, embed_dim=2, hidden_dim=3, seed=0)
    X = np.zeros((1, 3), dtype=int)
    with pytest.raises(ValueError, match=r"k must lie in \[1, 10\] \(the vocabulary size\), "
                                         r"got 11"):
        m.predict_topk(X, 11)
    with pytest.raises(ValueError, match=r"got 0"):
        m.predict_topk(X, 0)
    with pytest.raises(TypeError, match=r"k must be an int, got 2.0"):
        m.predict_topk(X, 2.0)


# --- the synthetic corpus ---

def test_corpus_is_fixed_and_well_formed():
    assert len(WORDS) == len(set(WORDS)) == 250
    a = trigram_data(num_train=2000, num_val=300, num_test=300, seed=3)
    b = trigram_data(num_train=2000, num_val=300, num_test=300, seed=3)
    for k in ("X_train", "y_train", "X_val", "y_val", "X_test", "y_test"):
        np.testing.assert_array_equal(a[k], b[k])
        assert a[k].dtype == np.int64 and a[k].min() >= 0 and a[k].max() < 250
    assert a["X_train"].shape == (2000, 3) and a["y_val"].shape == (300,)
    assert list(a["words"]) == list(WORDS)
    # windows never cross a sentence end: '.' and '?' only ever come last
    ends = [WORDS.index("."), WORDS.index("?")]
    assert not np.isin(a["X_train"], ends).any()
    assert np.isin(a["y_train"], ends).any()
    c = trigram_data(num_train=2000, num_val=300, num_test=300, seed=4)
    assert not np.array_equal(a["X_train"], c["X_train"])


def test_sentences_follow_the_grammar():
    sents = sentences(3000, seed=5)
    text = [" ".join(s) for s in sents]
    assert all(s[-1] in (".", "?") for s in sents)
    assert all(w in WORDS for s in sents for w in s)
    assert not any(" a apple" in t or " a egg" in t or t.startswith("a orange") for t in text)
    assert any(" an " in t or t.startswith("an ") for t in text)
    # agreement: a singular subject right before a present-tense verb takes the
    # -s form (in statements: "does the dog eat ?" is right)
    statements = [t for t in text if t.endswith(".")]
    assert not any(" dog eat " in t or " dogs eats " in t or " cat drink " in t
                   for t in statements)
    assert any(" dog eats " in t or " dogs eat " in t for t in text)


def test_trigram_h5_round_trip(tmp_path):
    """The course's layout: 1-based indices in the file, 0-based from load_h5."""
    h5py = pytest.importorskip("h5py")
    from nnc.datasets import load_h5
    from nnc.datasets_synthetic import write_trigram_h5

    path = write_trigram_h5(tmp_path / "w.h5", num_train=500, num_val=100, num_test=100, seed=7)
    with h5py.File(path, "r") as f:
        assert f["trainx"].shape == (500, 3) and f["trainx"][()].min() >= 1
    h = load_h5(path)
    d = trigram_data(500, 100, 100, seed=7)
    np.testing.assert_array_equal(h["trainx"], d["X_train"])
    np.testing.assert_array_equal(h["testd"], d["y_test"])
    assert list(h["words"]) == list(WORDS)
