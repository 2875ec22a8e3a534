"""A neural next-word model in the CS231n classifier protocol:

    embedding (shared) -> concat or sum -> affine - sigmoid -> affine - softmax

It reads ``context`` word indices and scores every word of the vocabulary
as the next one, so ``Solver(model, data, update_rule='sgd_momentum')``
trains it on (N, context) index arrays with (N,) next-word labels.
"""
import numpy as np

from ..layers import (affine_backward, affine_forward, embedding_backward, embedding_forward,
                      sigmoid_backward, sigmoid_forward, softmax, softmax_loss)
from .fc_net import _add_reg_grad, _dim, _float_dtype, _nonneg, _reg_loss

_WEIGHTS = ("W_embed", "W1", "W2")


class WordModel:
    """Predicts the word that follows ``context`` words.

    Parameters (all of ``dtype``), with V = vocab_size, D = embed_dim,
    P = hidden_dim, C = context and E = C * D ('concat') or D ('sum'):
    - W_embed (V, D): one vector per word, shared by the C context positions
    - W1 (E, P), b1 (P,): the sigmoid hidden layer
    - W2 (P, V), b2 (V,): the output layer, scores for the V words
    Weights are drawn from N(0, weight_scale^2) (W_embed, W1, W2 in that
    order; from np.random, or from RandomState(seed) when seed is given),
    biases are zero. The loss adds 0.5 * reg * (sum W_embed^2 + sum W1^2 +
    sum W2^2).

    At initialization every score is near 0.5 * sum of a column of W2, so
    the loss starts at about log(V) + P * weight_scale^2 / 8.
    """

    def __init__(self, vocab_size=250, embed_dim=32, hidden_dim=256, context=3,
                 weight_scale=0.01, combine="concat", reg=0.0, dtype=np.float64, seed=None):
        """
        Inputs:
        - vocab_size: V, the number of words
        - embed_dim: D, the size of a word vector
        - hidden_dim: P, the number of sigmoid units
        - context: C, the number of words the model reads
        - weight_scale: standard deviation of the initial weights
        - combine: 'concat' (the C vectors side by side, E = C * D: word
          order matters) or 'sum' (their sum, E = D: a bag of words)
        - reg: L2 regularization strength
        - dtype: np.float32 or np.float64; parameters and scores use it
        - seed: None (draw from np.random) or an int for a private RandomState
        """
        cls = "WordModel"
        V = _dim(vocab_size, "vocab_size", cls)
        D = _dim(embed_dim, "embed_dim", cls)
        P = _dim(hidden_dim, "hidden_dim", cls)
        self.context = _dim(context, "context", cls)
        _nonneg(weight_scale, "weight_scale", cls)
        if combine not in ("concat", "sum"):
            raise ValueError(f"{cls}: combine must be 'concat' or 'sum', got {combine!r}")
        self.combine = combine
        self.reg = _nonneg(reg, "reg", cls)
        self.dtype = _float_dtype(dtype, cls)
        self.vocab_size = V
        rng = np.random if seed is None else np.random.RandomState(seed)
        E = self.context * D if combine == "concat" else D
        self.params = {
            "W_embed": weight_scale * rng.randn(V, D),
            "W1": weight_scale * rng.randn(E, P),
            "b1": np.zeros(P),
            "W2": weight_scale * rng.randn(P, V),
            "b2": np.zeros(V),
        }
        for k, v in self.params.items():
            self.params[k] = v.astype(self.dtype)

    def _check_words(self, X):
        if not isinstance(X, np.ndarray):
            X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.context:
            raise ValueError(f"WordModel: X must have shape (N, {self.context}) (context="
                             f"{self.context} word indices per row), got {X.shape}")
        return X   # embedding_forward checks the dtype and the range [0, V)

    def _scores(self, X):
        p = self.params
        N = X.shape[0]
        emb, c_emb = embedding_forward(X, p["W_embed"])            # (N, C, D)
        e = emb.reshape(N, -1) if self.combine == "concat" else emb.sum(axis=1)
        a, c1 = affine_forward(e, p["W1"], p["b1"])                # (N, P)
        h, c_sig = sigmoid_forward(a)
        scores, c2 = affine_forward(h, p["W2"], p["b2"])           # (N, V)
        return scores, (c_emb, emb.shape, c1, c_sig, c2)

    def loss(self, X, y=None):
        """Scores, or loss and gradients, for a minibatch.

        Inputs:
        - X: (N, C) integer word indices in [0, V)
        - y: (N,) integer indices of the next words, or None

        Returns:
        - y is None: scores (N, V)
        - otherwise (loss, grads): loss a float (mean cross-entropy plus the
          regularization), grads a dict with the keys and shapes of self.params
        """
        X = self._check_words(X)
        scores, (c_emb, emb_shape, c1, c_sig, c2) = self._scores(X)
        if y is None:
            return scores
        loss, dscores = softmax_loss(scores, y)
        if self.reg:   # (skipped at reg = 0: three passes over the weights for nothing)
            loss += _reg_loss(self.params, self.reg, _WEIGHTS)
        grads = {}
        dh, grads["W2"], grads["b2"] = affine_backward(dscores, c2)
        da = sigmoid_backward(dh, c_sig)
        de, grads["W1"], grads["b1"] = affine_backward(da, c1)
        if self.combine == "concat":
            demb = de.reshape(emb_shape)
        else:   # every context position received the sum: each gets its gradient
            demb = np.ascontiguousarray(np.broadcast_to(de[:, np.newaxis, :], emb_shape))
        grads["W_embed"] = embedding_backward(demb, c_emb)
        if self.reg:
            _add_reg_grad(grads, self.params, self.reg, _WEIGHTS)
        return loss, grads

    def predict_proba(self, X):
        """Next-word probabilities: (N, C) indices -> (N, V), rows summing to 1."""
        return softmax(self._scores(self._check_words(X))[0])

    def predict_topk(self, X, k, return_probs=False):
        """The k most likely next words for each row of X, most likely first
        (ties: lower index first).

        Inputs:
        - X: (N, C) integer word indices in [0, V)
        - k: int in [1, V]
        - return_probs: also return their probabilities

        Returns top (N, k) int64 word indices, or (top, probs) with probs
        (N, k) in decreasing order.
        """
        if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)):
            raise TypeError(f"WordModel.predict_topk: k must be an int, got {k!r}")
        if not 1 <= k <= self.vocab_size:
            raise ValueError(f"WordModel.predict_topk: k must lie in [1, {self.vocab_size}] "
                             f"(the vocabulary size), got {k}")
        probs = self.predict_proba(X)
        top = np.argsort(-probs, axis=1, kind="stable")[:, :k].astype(np.int64)
        if return_probs:
            return top, np.take_along_axis(probs, top, axis=1)
        return top
