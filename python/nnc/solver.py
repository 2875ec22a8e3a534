"""Minibatch training of a classification model, as in CS231n's solver.py.

    solver = Solver(model, data, update_rule='adam', optim_config={'learning_rate': 1e-3},
                    lr_decay=0.95, num_epochs=10, batch_size=100, print_every=100)
    solver.train()
    # model.params now holds the parameters with the best validation accuracy

``model`` needs ``params`` (name -> array) and ``loss(X, y=None)`` returning
scores without labels and (loss, grads) with labels, as the classifiers in
``nnc.classifiers`` do. A model with ``bn_params`` (batchnorm dicts) gets its
running statistics restored along with the parameters.

Checkpoints (``checkpoint_name``) are ``.npz`` files that load with
``np.load(path, allow_pickle=False)``; ``load_checkpoint`` reads one back.
"""
import json
import os
import pickle  # noqa: F401  (exported as the original's is; checkpoints are .npz, not pickles)
import secrets
import sys

import numpy as np

from . import optim

# CS231n's solver.py star-exports Solver and its imports (optim, np, os, pickle).
__all__ = ["Solver", "load_checkpoint", "UPDATE_RULES", "optim", "np", "os", "pickle"]

# The update rules of nnc.optim that a string update_rule may name.
UPDATE_RULES = ("sgd", "sgd_momentum", "sgd_nesterov_momentum", "rmsprop", "adam")

_BN_STATS = ("running_mean", "running_var")


def _resolve_update_rule(rule):
    if callable(rule):
        return rule
    if isinstance(rule, str) and rule in UPDATE_RULES:
        from . import optim  # here, so a callable rule needs no optim module

        fn = getattr(optim, rule, None)
        if fn is not None:
            return fn
    raise ValueError(f'Invalid update_rule "{rule}": give one of {", ".join(UPDATE_RULES)} '
                     "or a function (w, dw, config) -> (next_w, config)")


def _stdout_is_terminal():
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):  # a replaced or closed sys.stdout
        return False


def _show_progress(progress, verbose=True):
    """Whether to show a bar: progress=None means "when verbose and stdout is a
    terminal" (a log file gets no carriage returns); True/False force it."""
    if progress is None:
        return bool(verbose) and _stdout_is_terminal()
    return bool(progress)


def _epoch_bar(epoch, num_epochs, num_images, initial=0):
    """A tqdm bar over the images of one epoch: it shows images/s and the ETA
    of the epoch. On stdout, where the print lines go, so tqdm.write can keep
    the two apart."""
    from tqdm import tqdm  # here: importing nnc.solver stays cheap

    return tqdm(total=num_images, initial=initial, unit="img", file=sys.stdout,
                desc=f"epoch {epoch}/{num_epochs}", leave=True, dynamic_ncols=True)


class Solver:
    """Trains a model with minibatch gradient descent and keeps the parameters
    with the best validation accuracy.

    Required:
    - model: object with ``params`` and ``loss(X, y=None)`` (see the module doc)
    - data: dict with 'X_train' (N_train, ...), 'y_train' (N_train,),
      'X_val' (N_val, ...), 'y_val' (N_val,)

    Optional keyword arguments (anything else raises ValueError):
    - update_rule: name of a rule in nnc.optim ('sgd', 'sgd_momentum',
      'sgd_nesterov_momentum', 'rmsprop', 'adam') or a function
      ``rule(w, dw, config) -> (next_w, config)``; default 'sgd'
    - optim_config: dict of hyperparameters copied into each parameter's own
      config (e.g. {'learning_rate': 1e-3}); default {}
    - lr_decay: the learning rate is multiplied by this after each epoch; default 1.0
    - batch_size: minibatch size; default 100
    - num_epochs: epochs of training; default 10
    - num_train_samples: training examples drawn to estimate train accuracy;
      default 1000 (None: use all)
    - num_val_samples: same for validation; default None (all)
    - checkpoint_name: if set, a checkpoint is written after each epoch to
      '<checkpoint_name>_epoch_<epoch>.npz'
    - print_every: print the loss every this many iterations; default 10
    - verbose: False silences all printing; default True
    - progress: a tqdm bar per epoch with the loss, images/s and the ETA.
      None (default) shows it when verbose and stdout is a terminal, so logs
      stay free of control characters; True or False force it on or off.
      While it shows, the print lines go through ``tqdm.write`` (same text).
    - check_finite: stop with FloatingPointError (naming the iteration and the
      loss) as soon as the loss is NaN or infinite, before that step's update
      is applied; False trains on regardless; default True

    Attributes after train(): loss_history (one float per iteration),
    train_acc_history and val_acc_history (one per check), best_val_acc,
    best_params, epoch, optim_configs (per-parameter optimizer state).
    """

    def __init__(self, model, data, **kwargs):
        self.model = model
        missing = [k for k in ("X_train", "y_train", "X_val", "y_val") if k not in data]
        if missing:
            raise ValueError(f"data lacks {', '.join(missing)} (it needs X_train, y_train, "
                             "X_val, y_val)")
        self.X_train = data["X_train"]
        self.y_train = data["y_train"]
        self.X_val = data["X_val"]
        self.y_val = data["y_val"]
        if len(self.X_train) != len(self.y_train) or len(self.X_val) != len(self.y_val):
            raise ValueError(f"data: X_train has {len(self.X_train)} rows and y_train "
                             f"{len(self.y_train)}; X_val has {len(self.X_val)} and y_val "
                             f"{len(self.y_val)}; they must match")

        self.update_rule = kwargs.pop("update_rule", "sgd")
        self.optim_config = kwargs.pop("optim_config", {})
        self.lr_decay = kwargs.pop("lr_decay", 1.0)
        self.batch_size = kwargs.pop("batch_size", 100)
        self.num_epochs = kwargs.pop("num_epochs", 10)
        self.num_train_samples = kwargs.pop("num_train_samples", 1000)
        self.num_val_samples = kwargs.pop("num_val_samples", None)
        self.checkpoint_name = kwargs.pop("checkpoint_name", None)
        self.print_every = kwargs.pop("print_every", 10)
        self.verbose = kwargs.pop("verbose", True)
        self.progress = kwargs.pop("progress", None)
        self.check_finite = kwargs.pop("check_finite", True)
        if kwargs:
            extra = ", ".join('"%s"' % k for k in kwargs)
            raise ValueError("Unrecognized arguments %s" % extra)

        self.update_rule = _resolve_update_rule(self.update_rule)
        if len(self.X_train) == 0:
            raise ValueError("data: X_train is empty")
        if not isinstance(self.check_finite, (bool, np.bool_)):
            raise TypeError(f"check_finite must be True or False, got {self.check_finite!r}")
        for name in ("batch_size", "num_epochs", "print_every"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if self.progress not in (None, True, False):
            raise ValueError(f"progress must be None, True or False, got {self.progress!r}")
        self._reset()

    def _reset(self):
        """Set up the bookkeeping; called by the constructor only."""
        self.epoch = 0
        self.best_val_acc = 0
        self.best_params = {}
        self.best_bn_stats = []
        self.loss_history = []
        self.train_acc_history = []
        self.val_acc_history = []
        # Each parameter gets its own copy of the config (it also holds its optimizer state).
        self.optim_configs = {p: dict(self.optim_config) for p in self.model.params}

    def _step(self):
        """One gradient update on a random minibatch (drawn with replacement,
        ``np.random.choice(num_train, batch_size)``, as CS231n)."""
        num_train = self.X_train.shape[0]
        batch_mask = np.random.choice(num_train, self.batch_size)
        X_batch = self.X_train[batch_mask]
        y_batch = self.y_train[batch_mask]

        loss, grads = self.model.loss(X_batch, y_batch)
        self.loss_history.append(loss)
        if self.check_finite and not np.isfinite(loss):
            # Stop before the update: the parameters stay those that gave this loss.
            raise FloatingPointError(
                f"Solver: the loss is {float(loss)} at iteration {len(self.loss_history)} "
                f"(epoch {self.epoch}); stopped before updating the parameters. Lower the "
                "learning rate or check the data, or pass check_finite=False to train on")

        for p, w in self.model.params.items():
            dw = grads[p]
            config = self.optim_configs[p]
            next_w, next_config = self.update_rule(w, dw, config)
            self.model.params[p] = next_w
            self.optim_configs[p] = next_config

    def _bn_params(self):
        return [d for d in getattr(self.model, "bn_params", None) or []
                if isinstance(d, dict)]

    def _snapshot_bn_stats(self):
        return [{k: np.array(d[k], copy=True) for k in _BN_STATS if k in d}
                for d in self._bn_params()]

    def _save_checkpoint(self):
        if self.checkpoint_name is None:
            return
        filename = "%s_epoch_%d.npz" % (self.checkpoint_name, self.epoch)
        if self.verbose:
            self._print('Saving checkpoint to "%s"' % filename)
        arrays = {f"param/{k}": np.asarray(v) for k, v in self.model.params.items()}
        for i, stats in enumerate(self._snapshot_bn_stats()):
            for k, v in stats.items():
                arrays[f"bn/{i}/{k}"] = v
        optim_scalars = {}
        for p, config in self.optim_configs.items():
            optim_scalars[p] = {}
            for k, v in config.items():
                if isinstance(v, np.ndarray):
                    arrays[f"optim/{p}/{k}"] = v
                elif isinstance(v, (bool, int, float, str, np.integer, np.floating)) or v is None:
                    optim_scalars[p][k] = v.item() if isinstance(v, np.generic) else v
        meta = {
            "update_rule": getattr(self.update_rule, "__name__", repr(self.update_rule)),
            "lr_decay": self.lr_decay,
            "optim_config": {k: v for k, v in self.optim_config.items()
                             if isinstance(v, (bool, int, float, str)) or v is None},
            "optim_configs": optim_scalars,
            "batch_size": self.batch_size,
            "num_train_samples": self.num_train_samples,
            "num_val_samples": self.num_val_samples,
            "epoch": self.epoch,
            "loss_history": [float(v) for v in self.loss_history],
            "train_acc_history": [float(v) for v in self.train_acc_history],
            "val_acc_history": [float(v) for v in self.val_acc_history],
        }
        arrays["meta"] = np.array(json.dumps(meta))
        # Write a temporary file next to the target, then rename it over the
        # target: a crash mid-write never leaves a truncated checkpoint. The
        # temporary name does not end in .npz, so a process killed mid-write
        # leaves a hidden ".<name>.<random>.tmp", never a torn .npz; and
        # os.open applies the umask as np.savez would (mkstemp's files are 0600).
        directory, base = os.path.split(os.path.abspath(filename))
        tmp = os.path.join(directory, ".%s.%s.tmp" % (base, secrets.token_hex(6)))
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, filename)
        except BaseException:
            os.unlink(tmp)
            raise

    _bar = None  # the tqdm bar of the running epoch, if one shows

    def _print(self, line):
        """print(line), through tqdm.write while a bar shows (the same bytes
        reach stdout; the bar is redrawn below them)."""
        if self._bar is not None:
            self._bar.write(line)
        else:
            print(line)

    def _close_bar(self):
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def check_accuracy(self, X, y, num_samples=None, batch_size=100):
        """Accuracy of the model on (X, y).

        Inputs:
        - X: (N, ...) data; y: (N,) labels
        - num_samples: if not None and N > num_samples, draw num_samples
          examples (np.random.choice, with replacement, as CS231n) and use those
        - batch_size: examples per forward pass

        Returns the fraction of examples classified correctly (a float).
        """
        N = X.shape[0]
        if num_samples is not None and N > num_samples:
            mask = np.random.choice(N, num_samples)
            N = num_samples
            X = X[mask]
            y = y[mask]
        if N == 0:
            raise ValueError("check_accuracy: X is empty")

        num_batches = N // batch_size
        if N % batch_size != 0:
            num_batches += 1
        y_pred = []
        for i in range(num_batches):
            start = i * batch_size
            end = (i + 1) * batch_size
            scores = self.model.loss(X[start:end])
            y_pred.append(np.argmax(scores, axis=1))
        y_pred = np.hstack(y_pred)
        return float(np.mean(y_pred == y))

    def train(self):
        """Run the optimization; afterwards model.params (and the batchnorm
        running statistics) are those of the check with the best validation
        accuracy."""
        try:
            self._iterate()
        finally:
            self._close_bar()
        self._restore_best()

    def _iterate(self):
        num_train = self.X_train.shape[0]
        iterations_per_epoch = max(num_train // self.batch_size, 1)
        num_iterations = self.num_epochs * iterations_per_epoch
        show_bar = _show_progress(self.progress, self.verbose)

        for t in range(num_iterations):
            if show_bar and self._bar is None:
                self._bar = _epoch_bar(self.epoch + 1, self.num_epochs,
                                       iterations_per_epoch * self.batch_size)
            self._step()
            if self._bar is not None:
                self._bar.set_postfix(loss=f"{self.loss_history[-1]:.4f}", refresh=False)
                self._bar.update(self.batch_size)

            if self.verbose and t % self.print_every == 0:
                self._print("(Iteration %d / %d) loss: %f"
                            % (t + 1, num_iterations, self.loss_history[-1]))

            epoch_end = (t + 1) % iterations_per_epoch == 0
            if epoch_end:
                self._close_bar()  # its last line stays above the epoch's results
                self.epoch += 1
                for k in self.optim_configs:
                    # a custom rule may keep no learning rate in its config
                    if "learning_rate" in self.optim_configs[k]:
                        self.optim_configs[k]["learning_rate"] *= self.lr_decay

            first_it = t == 0
            last_it = t == num_iterations - 1
            if first_it or last_it or epoch_end:
                train_acc = self.check_accuracy(self.X_train, self.y_train,
                                                num_samples=self.num_train_samples)
                val_acc = self.check_accuracy(self.X_val, self.y_val,
                                              num_samples=self.num_val_samples)
                self.train_acc_history.append(train_acc)
                self.val_acc_history.append(val_acc)
                self._save_checkpoint()

                if self.verbose:
                    self._print("(Epoch %d / %d) train acc: %f; val_acc: %f"
                                % (self.epoch, self.num_epochs, train_acc, val_acc))

                # The first check always counts, so a model that never beats
                # 0 accuracy still gets its parameters back.
                if val_acc > self.best_val_acc or not self.best_params:
                    self.best_val_acc = val_acc
                    self.best_params = {k: v.copy() for k, v in self.model.params.items()}
                    self.best_bn_stats = self._snapshot_bn_stats()

    def _restore_best(self):
        # Restore copies, so further training does not alter best_params.
        self.model.params = {k: v.copy() for k, v in self.best_params.items()}
        for d, stats in zip(self._bn_params(), self.best_bn_stats):
            for k, v in stats.items():
                d[k] = v.copy()


def load_checkpoint(path):
    """Read a checkpoint written by ``Solver`` (no code runs: the file loads
    with ``allow_pickle=False``).

    Returns a dict with the JSON metadata ('epoch', 'update_rule', 'lr_decay',
    'batch_size', 'loss_history', 'train_acc_history', 'val_acc_history', ...)
    plus:
    - 'params': name -> array, the model parameters
    - 'bn_running_stats': list (one per bn_param) of {'running_mean', 'running_var'}
    - 'optim_configs': parameter name -> its optimizer config (scalars and state arrays)
    """
    with np.load(path, allow_pickle=False) as f:
        meta = json.loads(str(f["meta"]))
        params, bn, optim_arrays = {}, {}, {}
        for key in f.files:
            kind, _, rest = key.partition("/")
            if kind == "param":
                params[rest] = f[key]
            elif kind == "bn":
                i, _, stat = rest.partition("/")
                bn.setdefault(int(i), {})[stat] = f[key]
            elif kind == "optim":
                p, _, name = rest.rpartition("/")
                optim_arrays.setdefault(p, {})[name] = f[key]
    ckpt = dict(meta)
    ckpt["params"] = params
    ckpt["bn_running_stats"] = [bn[i] for i in sorted(bn)]
    configs = {p: dict(c) for p, c in meta.get("optim_configs", {}).items()}
    for p, arrays in optim_arrays.items():
        configs.setdefault(p, {}).update(arrays)
    ckpt["optim_configs"] = configs
    return ckpt
