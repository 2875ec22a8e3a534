"""``nnc.nn.embedding``: the object-API word-embedding layer, on the
functional ops ``nnc.layers.embedding_forward`` / ``embedding_backward``."""
import numpy as np

from .. import _checks as ck
from ..layers import embedding_backward, embedding_forward


class embedding:
    """Looks up one learned vector per integer index.

    Parameters: ``params[name + "_w"]``, W of shape (vocab_size, dim), drawn
    as ``init_scale * np.random.randn(vocab_size, dim)`` (float64).

    - forward(idx): idx (N, T) integers in [0, vocab_size) -> out (N, T, dim)
    - backward(dprev): dprev (N, T, dim), the gradient of the loss with
      respect to out; stores dW (vocab_size, dim) in ``grads[name + "_w"]``
      (summed where an index repeats) and returns None: indices have no
      gradient, so nothing flows further back.
    """

    def __init__(self, vocab_size, dim, init_scale=0.01, name="embedding"):
        self.vocab_size = ck.positive_int(vocab_size, "vocab_size")
        self.dim = ck.positive_int(dim, "dim")
        init_scale = ck.real(init_scale, "init_scale")
        if not (np.isfinite(init_scale) and init_scale >= 0):
            raise ValueError(f"init_scale must be a finite number >= 0, got {init_scale!r}")
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, got {name!r}")
        self.name = name
        self.w_name = name + "_w"
        self.params = {self.w_name: init_scale * np.random.randn(self.vocab_size, self.dim)}
        self.grads = {self.w_name: None}
        self.cache = None

    def forward(self, idx):
        """idx (N, T) integer indices -> (N, T, dim) vectors; caches the lookup."""
        out, self.cache = embedding_forward(idx, self.params[self.w_name])
        return out

    def backward(self, dprev):
        """dprev (N, T, dim) -> None; writes grads[name + '_w'] (vocab_size, dim)."""
        if self.cache is None:
            raise ValueError(f"{self.name}: backward called before forward (no cached input)")
        self.grads[self.w_name] = embedding_backward(dprev, self.cache)
        return None

    def __repr__(self):
        return f"embedding({self.vocab_size}, {self.dim}, name={self.name!r})"
