"""Train a next-word model (nnc.classifiers.WordModel) on a synthetic trigram corpus.

    python examples/word_model.py [--embed-dim 16] [--hidden-dim 128] [--epochs 10]
                                  [--combine concat|sum] [--backend cpp|numpy] [--out PNG]
                                  [--data FILE.h5]

The corpus comes from the small fixed grammar of nnc.datasets_synthetic
(250 words, shipped as code): each example is three consecutive words of a
sentence and the word after them. The model is the course's: a (250, D)
embedding shared by the three words, their vectors concatenated, a sigmoid
hidden layer of P units, a softmax over the 250 words, trained with the
Solver by SGD with momentum 0.85, learning rate 0.15, batch 200, weights
from N(0, 0.01^2). It prints the validation cross-entropy and accuracy per
epoch (with the unigram baseline), the test results, the top-10 candidates
for five trigrams, and plots the per-epoch curves to a PNG when matplotlib
is installed. About 15 s on the cpp backend.

--data FILE.h5 trains on an .h5 file in the course's layout instead (trainx,
traind, valx, vald, testx, testd, words; 1-based indices, read with
nnc.datasets.load_h5); nnc.datasets_synthetic.write_trigram_h5 writes the
synthetic corpus that way.
"""
import argparse
import glob
import os
import tempfile
import time

import numpy as np

import nnc
from nnc.classifiers import WordModel
from nnc.datasets import load_h5
from nnc.datasets_synthetic import WORDS, trigram_data, unigram_accuracy
from nnc.layers import softmax_loss
from nnc.solver import Solver, load_checkpoint

TRIGRAMS = [("the", "hungry", "dog"), ("mary", "will", "drive"), ("they", "went", "to"),
            ("where", "are", "the"), ("the", "students", "read")]


def load_data(path, num_train, seed):
    """(data dict as trigram_data returns it, list of the words)."""
    if path is None:
        d = trigram_data(num_train=num_train, num_val=10_000, num_test=10_000, seed=seed)
        return d, list(WORDS)
    h = load_h5(path)   # the course's layout comes back 0-based
    d = {"X_train": h["trainx"], "y_train": h["traind"], "X_val": h["valx"], "y_val": h["vald"],
         "X_test": h["testx"], "y_test": h["testd"]}
    return d, [str(w) for w in h["words"]]


def evaluate(model, X, y):
    """(cross-entropy, accuracy) of the model's next-word predictions."""
    scores = model.loss(X)
    ce, _ = softmax_loss(scores, y)
    return ce, float(np.mean(np.argmax(scores, axis=1) == y))


def per_epoch_curves(model, checkpoint_dir, X_val, y_val):
    """Validation cross-entropy and accuracy after each epoch, from the
    checkpoints the Solver wrote (epoch 0 is after the first step)."""
    paths = glob.glob(os.path.join(checkpoint_dir, "word_epoch_*.npz"))
    paths.sort(key=lambda p: int(p.rsplit("_", 1)[1].split(".")[0]))
    saved = model.params
    curves = []
    for path in paths:
        ckpt = load_checkpoint(path)
        model.params = ckpt["params"]
        curves.append((ckpt["epoch"],) + evaluate(model, X_val, y_val))
    model.params = saved
    return curves


def plot(curves, baseline_ce, baseline_acc, out):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("\nmatplotlib is not installed: no plot (pip install 'nnc[plot]')")
        return
    epochs, ce, acc = zip(*curves)
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(epochs, ce, "o-", label="WordModel")
    a.axhline(baseline_ce, color="gray", ls="--", label="unigram")
    a.set(xlabel="epoch", ylabel="cross-entropy (nats)", title="validation cross-entropy")
    b.plot(epochs, acc, "o-", label="WordModel")
    b.axhline(baseline_acc, color="gray", ls="--", label="unigram")
    b.set(xlabel="epoch", ylabel="accuracy", title="validation accuracy")
    for ax in (a, b):
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    print(f"\nplot saved to {out}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default=nnc.get_backend(), choices=nnc.available_backends())
    parser.add_argument("--embed-dim", type=int, default=16)
    parser.add_argument("--hidden-dim", type=int, default=128)
    parser.add_argument("--combine", default="concat", choices=["concat", "sum"])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--num-train", type=int, default=100_000)
    parser.add_argument("--data", help="an .h5 file in the course's layout (default: the "
                        "synthetic corpus)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="word_model.png", help="where to save the plot")
    args = parser.parse_args()
    nnc.set_backend(args.backend)

    d, words = load_data(args.data, args.num_train, args.seed)
    data = {k: d[k] for k in ("X_train", "y_train", "X_val", "y_val")}
    V = len(words)
    freq = np.bincount(d["y_train"], minlength=V) / d["y_train"].size
    base_acc = unigram_accuracy(d["y_train"], d["y_val"])
    base_ce = float(-np.mean(np.log(np.maximum(freq[d["y_val"]], 1e-12))))
    print(f"corpus: {V} words, {d['X_train'].shape[0]} training 4-grams, e.g. "
          f"{' '.join(words[i] for i in d['X_train'][0])} -> {words[d['y_train'][0]]}")
    print(f"unigram baseline: accuracy {base_acc:.4f} (always '{words[freq.argmax()]}'), "
          f"cross-entropy {base_ce:.4f}")

    np.random.seed(args.seed)
    model = WordModel(vocab_size=V, embed_dim=args.embed_dim,
                      hidden_dim=args.hidden_dim, context=3, weight_scale=0.01,
                      combine=args.combine)
    with tempfile.TemporaryDirectory() as tmp:
        solver = Solver(model, data, update_rule="sgd_momentum",
                        optim_config={"learning_rate": 0.15, "momentum": 0.85},
                        batch_size=200, num_epochs=args.epochs, print_every=500,
                        checkpoint_name=os.path.join(tmp, "word"), verbose=False)
        start = time.perf_counter()
        solver.train()
        took = time.perf_counter() - start
        curves = per_epoch_curves(model, tmp, d["X_val"], d["y_val"])
    steps = len(solver.loss_history)
    print(f"\ntrained {steps} steps in {took:.1f} s ({1e3 * took / steps:.2f} ms per step, "
          f"checks and checkpoints included) on the {args.backend} backend")
    print("epoch  val cross-entropy  val accuracy")
    for epoch, ce, acc in curves:
        print(f"{epoch:5d}  {ce:17.4f}  {acc:12.4f}")
    test_ce, test_acc = evaluate(model, d["X_test"], d["y_test"])
    print(f"test (best validation parameters): cross-entropy {test_ce:.4f}, "
          f"accuracy {test_acc:.4f} (unigram {unigram_accuracy(d['y_train'], d['y_test']):.4f})")

    print("\ntop-10 next words:")
    index = {w: i for i, w in enumerate(words)}
    if all(w in index for t in TRIGRAMS for w in t):
        X = np.array([[index[w] for w in t] for t in TRIGRAMS])
    else:   # another vocabulary: five contexts from the test set
        X = d["X_test"][:5]
    top, probs = model.predict_topk(X, 10, return_probs=True)
    for ctx, ids, ps in zip(X, top, probs):
        cands = ", ".join(f"{words[i]} {p:.2f}" for i, p in zip(ids, ps))
        print(f"  {' '.join(words[i] for i in ctx):22s} -> {cands}")
    plot(curves, base_ce, base_acc, args.out)


if __name__ == "__main__":
    main()
