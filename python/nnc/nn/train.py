"""Training loop of the CSCI566 course: ``DataLoader``, ``compute_acc`` and
``train_net``, with the course's printed lines unchanged."""
import inspect

import numpy as np

from .. import _checks as ck
from .layers import softmax
from .models import check_regularization

try:
    from tqdm import tqdm as _tqdm
except ImportError:  # pragma: no cover - tqdm is a dependency; keep working without it
    _tqdm = None


def _progress(iterable):
    """A tqdm bar over ``iterable``, off when stderr is not a terminal."""
    return iterable if _tqdm is None else _tqdm(iterable, disable=None)


class DataLoader:
    """Minibatches of ``batch_size`` (data, labels) pairs: in order for the
    first pass, then reshuffled (``np.random.shuffle``, NumPy's global
    generator) each time fewer than ``batch_size`` unseen examples remain;
    the leftover partial batch is dropped. With fewer examples than
    batch_size, every batch is all of them, shuffled."""

    def __init__(self, data, labels, batch_size):
        if len(data) != len(labels):
            raise ValueError(f"data has {len(data)} examples but labels has {len(labels)}")
        self.data = data
        self.labels = np.asarray(labels)
        self.batch_size = ck.positive_int(batch_size, "batch_size")
        self.indices = np.arange(data.shape[0])
        self.pos = 0

    def _reset(self):
        self.indices = np.arange(self.data.shape[0])
        self.pos = 0

    def _shuffle(self):
        np.random.shuffle(self.indices)

    def get_batch(self):
        if len(self.indices) - self.pos < self.batch_size:
            self._reset()
            self._shuffle()
        idx = self.indices[self.pos:self.pos + self.batch_size]
        self.pos += self.batch_size
        return self.data[idx], self.labels[idx]


def compute_acc(model, data, labels, num_samples=None, batch_size=100):
    """Fraction of ``data`` that ``model`` classifies as ``labels`` (a NumPy
    float), forward in test mode ``batch_size`` examples at a time. With
    num_samples, on that many examples drawn (with replacement, as the course
    does) by ``np.random.choice``."""
    batch_size = ck.positive_int(batch_size, "batch_size")
    labels = np.asarray(labels)
    N = data.shape[0]
    if num_samples is not None and N > num_samples:
        indices = np.random.choice(N, num_samples)
        N = num_samples
        data = data[indices]
        labels = labels[indices]
    preds = []
    for start in range(0, N, batch_size):
        output = model.forward(data[start:start + batch_size], False)
        preds.append(np.argmax(softmax(output), axis=1))
    return np.mean(np.hstack(preds) == labels)


def train_net(data, model, loss_func, optimizer, batch_size, max_epochs, lr_decay=1.0,
              lr_decay_every=1000, show_every=10, verbose=False, regularization="none",
              reg_lambda=0.0):
    """Train ``model`` with ``optimizer`` on ``loss_func``, as the course's train_net.

    Inputs:
    - data: dict with "data_train" and "data_val", each a (X, y) tuple
    - model: a Module (its ``net`` is what ``optimizer`` updates)
    - loss_func: e.g. cross_entropy(); forward(scores, y) and backward()
    - optimizer: SGD, Adam, ... over model.net
    - batch_size: minibatch size; an epoch is max(N_train / batch_size, 1)
      iterations (the leftover partial batch is dropped)
    - max_epochs: number of epochs
    - lr_decay, lr_decay_every: optimizer.lr *= lr_decay at the start of every
      lr_decay_every-th epoch (printed, also when not verbose)
    - show_every, verbose: print the average of the last show_every losses
      every show_every iterations, and the accuracies after each epoch
    - regularization ("none", "l1" or "l2") and reg_lambda: passed to
      model.backward

    Returns (opt_params, loss_hist, train_acc_hist, val_acc_hist):
    - opt_params: a copy {name: array} of the parameters at the best
      validation accuracy (None if it never rose above 0), for model.net.load
    - loss_hist: the loss of every iteration
    - train_acc_hist, val_acc_hist: the accuracies after each epoch
    """
    check_regularization(regularization, reg_lambda)
    max_epochs = int(max_epochs)
    # Nothing uses the gradient with respect to the data: models that can
    # skip it (nnc.nn's Module) are asked to, as PyTorch skips it for data
    # that does not require grad.
    backward_kw = {"regularization": regularization, "reg_lambda": reg_lambda}
    if "input_grad" in inspect.signature(model.backward).parameters:
        backward_kw["input_grad"] = False
    data_train, labels_train = data["data_train"]
    data_val, labels_val = data["data_val"]
    dataloader = DataLoader(data_train, labels_train, batch_size)
    opt_val_acc = 0.0
    opt_params = None
    loss_hist = []
    train_acc_hist = []
    val_acc_hist = []

    iters_per_epoch = int(max(data_train.shape[0] / batch_size, 1))
    max_iters = int(iters_per_epoch * max_epochs)

    for epoch in range(max_epochs):
        iter_start = epoch * iters_per_epoch
        iter_end = (epoch + 1) * iters_per_epoch

        if epoch % lr_decay_every == 0 and epoch > 0:
            optimizer.lr = optimizer.lr * lr_decay
            print("Decaying learning rate of the optimizer to {}".format(optimizer.lr))

        for iter in _progress(range(iter_start, iter_end)):
            data_batch, labels_batch = dataloader.get_batch()
            pred = model.forward(data_batch)
            loss = loss_func.forward(pred, labels_batch)
            model.backward(loss_func.backward(), **backward_kw)
            optimizer.step()
            loss_hist.append(loss)

            if verbose and iter % show_every == 0:
                last_losses = loss_hist[-show_every:]
                avg_loss = sum(last_losses) / len(last_losses)
                print("(Iteration {} / {}) Average loss: {}".format(iter + 1, max_iters, avg_loss))

        train_acc = compute_acc(model, data_train, labels_train)
        val_acc = compute_acc(model, data_val, labels_val)
        train_acc_hist.append(train_acc)
        val_acc_hist.append(val_acc)

        if val_acc > opt_val_acc:
            opt_val_acc = val_acc
            model.net.gather_params()
            # a copy: the optimizer keeps updating the live arrays in place
            opt_params = {n: v.copy() for n, v in model.net.params.items()}

        if verbose:
            print("(Epoch {} / {}) Training Accuracy: {}, Validation Accuracy: {}".format(
                epoch + 1, max_epochs, train_acc, val_acc))

    return opt_params, loss_hist, train_acc_hist, val_acc_hist
