"""An MLP on log-latency over the architecture and a device descriptor, trained in numpy.

MAPLE-Edge's model shape: ``log ms = s + f([x, d])`` where ``x`` are the architecture's
structural features, ``d`` the device's descriptor and ``s`` the device's log-latency scale.
For a device without counters (every public table) the descriptor is HELP's: the latencies of a
fixed set of reference architectures, here centred in log space (their mean is the scale ``s``);
counter features, when a device has them, join it with NaN marking a missing one.

Training (``MLP.fit``): Adam on minibatches of (architecture, device) pairs from the training
devices, measurement noise added to the descriptor, early stopping on held-out validation devices
scored the way a new device is used (descriptor from its reference latencies, then the few-shot
correction), fixed seeds; then quantization-aware finishing: the same loss through fake-quantized
weights (int8, per output channel) and activations (the core's per-layer scales), straight-through
gradients, so the int8 file predicts what the float model does.

Adaptation to a device (``MLP.adapt``, closed form, well under a millisecond): the descriptor is
folded into the first layer's bias, and the measured architectures' residuals fit the output
layer's bias and a ridge correction of its weights. The result is a plain MLP from architecture
features to milliseconds: ``pack_device`` writes it as a ``.melw`` the core evaluates from
architecture strings.

The reference architectures are chosen once at training time, greedily to be most informative
under a Bayesian linear prior over the training devices (``maple_edge_lite.learn.bayes_linear``); when some
of them were not measured (a restricted pool), their latencies are imputed from that prior's
posterior given what was measured.
"""

from __future__ import annotations

import base64
import zlib
from typing import List, Sequence

import numpy as np

from .._errors import InputError
from ._numerics import _complete_cached
from .methods import Method
from .bayes_linear import BayesLinear, feature_absmax, structural_columns

_FIT_CACHE: dict = {}


def _fake_quant_cols(W: np.ndarray) -> np.ndarray:
    """int8 symmetric per-output-channel rounding of W [in, out] (what ``quantize`` stores)."""
    s = np.abs(W).max(0) / 127.0
    s = np.where(s > 0, s, 1.0)
    return np.clip(np.floor(W / s + 0.5), -127, 127) * s


def _fake_quant_act(H: np.ndarray, amax: float) -> np.ndarray:
    s = amax / 127.0 if amax > 0 else 1.0
    return np.clip(np.floor(H / s + 0.5), 0, 127) * s


class MLP(Method):
    """mlp: MLP on log-latency over [structural features, reference-latency descriptor], Adam with
    early stopping on validation devices and quantization-aware finishing; closed-form output-layer
    correction from the measurements."""

    name = "mlp"
    qat_weights = False  # adapt the float weights; MLPInt8 adapts the quantization-aware ones

    def __init__(self, hidden: Sequence[int] = (128, 128), n_ref: int = 10, lr: float = 2e-3, batch: int = 512,
                 epoch_rows: int = 65536, max_epochs: int = 40, patience: int = 6, qat_epochs: int = 4,
                 val_share: float = 0.15, desc_noise: float = 0.03, ridge: float = 3.0, seed: int = 0,
                 space: str = "log"):
        self.hidden = tuple(int(h) for h in hidden)
        self.n_ref = int(n_ref)
        self.lr, self.batch, self.epoch_rows = float(lr), int(batch), int(epoch_rows)
        self.max_epochs, self.patience, self.qat_epochs = int(max_epochs), int(patience), int(qat_epochs)
        self.val_share, self.desc_noise, self.ridge = float(val_share), float(desc_noise), float(ridge)
        self.seed = int(seed)
        if space not in ("log", "latency"):
            raise InputError(f"mlp space must be 'log' or 'latency', not {space!r}")
        self.space = space

    # --- network -----------------------------------------------------------------------------
    def _init(self, d_in: int, rng) -> List[List[np.ndarray]]:
        dims = [d_in, *self.hidden, 1]
        return [[(rng.standard_normal((i, o)) * np.sqrt(2.0 / i)).astype(np.float32), np.zeros(o, np.float32)]
                for i, o in zip(dims[:-1], dims[1:])]

    def _forward(self, P, Z, qat=False):
        """Z [n, d_in] -> (out [n], activations list). With ``qat``, weights and hidden activations
        go through the core's int8 rounding (the descriptor columns of the first layer are folded
        into its bias on the device, so only the architecture columns are rounded)."""
        acts = [Z]
        h = Z
        for li, (W, b) in enumerate(P):
            if qat:
                if li == 0:
                    W = np.vstack([_fake_quant_cols(W[:self.n_x]), W[self.n_x:]])
                else:
                    W = _fake_quant_cols(W)
            h = h @ W + b
            if li < len(P) - 1:
                h = np.maximum(h, 0.0)
                if qat:
                    self.amax[li] = max(self.amax[li] * 0.99, float(h.max()))
                    h = _fake_quant_act(h, self.amax[li])
                acts.append(h)
        return h[:, 0], acts

    def _backward(self, P, acts, g):
        grads = []
        g = g[:, None]
        for li in range(len(P) - 1, -1, -1):
            W, _ = P[li]
            grads.append((acts[li].T @ g, g.sum(0)))
            if li:
                g = (g @ W.T) * (acts[li] > 0)
        return grads[::-1]

    # --- data ----------------------------------------------------------------------------------
    def _descriptor(self, ref_log: np.ndarray) -> np.ndarray:
        """[..., n_ref] reference log-latencies -> standardised descriptor (centred: shape only)."""
        d = ref_log - ref_log.mean(-1, keepdims=True)
        d = (d - self.d_mean) / self.d_std
        return d.astype(np.float32)

    def _key(self):
        return (self.hidden, self.n_ref, self.lr, self.batch, self.epoch_rows, self.max_epochs, self.patience,
                self.qat_epochs, self.val_share, self.desc_noise, self.seed, self.space)

    def fit(self, X, Y, devices, feature_names=()):
        """Train on the devices' log-latency columns Y [n, m] (NaN = not measured). Fits are
        cached by content, so ``mlp`` and ``mlp_int8`` in one evaluation share one training."""
        Xa = np.ascontiguousarray(X, dtype=np.float32)
        Ya = np.ascontiguousarray(Y, dtype=np.float64)
        key = (self._key(), Xa.shape, Ya.shape, zlib.crc32(Xa.view(np.uint8)), zlib.crc32(Ya.view(np.uint8)),
               tuple(devices))
        hit = _FIT_CACHE.get(key)
        if hit is not None:
            self.__dict__.update({k: v for k, v in hit.items() if k != "name"})
            return self
        self._fit(Xa, Ya, list(devices), feature_names)
        _FIT_CACHE.clear()
        _FIT_CACHE[key] = {k: v for k, v in self.__dict__.items()}
        return self

    def _fit(self, X, Y, devices, feature_names=()):
        self.X = X
        self.feature_names = list(feature_names) or [f"f{i}" for i in range(X.shape[1])]
        X = np.asarray(X, dtype=np.float64)
        self.cols = structural_columns(X, feature_names)
        if len(self.cols) == 0:
            raise InputError("mlp needs binary structural features (one-hots) in the encoding")
        self.Xs = X[:, self.cols].astype(np.float32)
        self.n_x = self.Xs.shape[1]
        L = _complete_cached(Y)  # [n, m] log ms
        n, m = L.shape
        rng = np.random.default_rng(self.seed)
        # Reference archs: greedy A-optimal under the Bayesian linear prior of these devices.
        self.bl = BayesLinear().fit(X, Y, devices, feature_names)
        self.ref = np.sort(self.bl.select(self.n_ref, np.arange(n), np.random.default_rng([self.seed, 7])))
        R = L[self.ref].T  # [m, n_ref]
        self.train_ref_log = R
        c = R - R.mean(1, keepdims=True)
        self.d_mean, self.d_std = c.mean(0), c.std(0) + 1e-6
        scale = R.mean(1)  # [m]
        T = (L - scale[None, :]).astype(np.float32)  # target: log ms relative to the device scale
        if self.space == "latency":
            T = np.exp(T)
        # Validation devices for early stopping (none when there are too few devices).
        n_val = int(round(self.val_share * m)) if m >= 5 else 0
        perm = rng.permutation(m)
        val, tr = np.sort(perm[:n_val]), np.sort(perm[n_val:])
        self.val_devices = [devices[j] for j in val]
        P = self._init(self.n_x + self.n_ref, rng)
        opt = {"m": [[np.zeros_like(a) for a in layer] for layer in P],
               "v": [[np.zeros_like(a) for a in layer] for layer in P], "t": 0}
        score_on = val if len(val) else tr
        self.amax = [0.0] * len(self.hidden)
        best, best_P, bad = np.inf, P, 0
        for epoch in range(self.max_epochs):
            self._epoch(P, opt, R, T, tr, rng, self.lr, qat=False)
            self.epochs_run = epoch + 1
            score = self._val_score(P, L, R, score_on, False)
            if score < best:
                best, best_P, bad = score, [[a.copy() for a in layer] for layer in P], 0
            else:
                bad += 1
                if bad > self.patience:
                    break
        self.float_val_score = best
        # Quantization-aware finishing from the best float weights.
        P = [[a.copy() for a in layer] for layer in best_P]
        self._calibrate(P, L, tr)
        best_q, best_qP = self._val_score(P, L, R, score_on, True), [[a.copy() for a in layer] for layer in P]
        self.int8_val_score_before = best_q
        for _ in range(self.qat_epochs):
            self._epoch(P, opt, R, T, tr, rng, self.lr * 0.3, qat=True)
            score = self._val_score(P, L, R, score_on, True)
            if score < best_q:
                best_q, best_qP = score, [[a.copy() for a in layer] for layer in P]
        self.int8_val_score = best_q
        self.P_float, self.P_qat = best_P, best_qP
        self._calibrate(best_qP, L, np.arange(m))
        return self

    def _epoch(self, P, opt, R, T, tr, rng, lr, qat):
        n = len(self.Xs)
        for _ in range(max(1, self.epoch_rows // self.batch)):
            a = rng.integers(0, n, self.batch)
            j = tr[rng.integers(0, len(tr), self.batch)]
            ref_log = R[j] + rng.standard_normal((self.batch, self.n_ref)) * self.desc_noise
            Z = np.hstack([self.Xs[a], self._descriptor(ref_log)])
            out, acts = self._forward(P, Z, qat)
            t = T[a, j]
            g = (2.0 / self.batch) * (out - t) if self.space == "log" else (2.0 / self.batch) * (out - t) / (t * t)
            opt["t"] += 1
            t = opt["t"]
            for layer, gl, m1, m2 in zip(P, self._backward(P, acts, g), opt["m"], opt["v"]):
                for k in range(2):
                    m1[k] = 0.9 * m1[k] + 0.1 * gl[k]
                    m2[k] = 0.999 * m2[k] + 0.001 * gl[k] * gl[k]
                    layer[k] -= (lr * (m1[k] / (1 - 0.9**t)) / (np.sqrt(m2[k] / (1 - 0.999**t)) + 1e-8)
                                 ).astype(np.float32)

    def _calibrate(self, P, L, devs):
        """Activation maxima per hidden layer over every arch and the given devices' descriptors."""
        R = L[self.ref].T
        self.amax = [0.0] * len(self.hidden)
        for j in range(min(len(devs), L.shape[1])):
            Z = np.hstack([self.Xs, np.repeat(self._descriptor(R[j])[None], len(self.Xs), 0)])
            _, acts = self._forward(P, Z)
            for li in range(len(self.hidden)):
                self.amax[li] = max(self.amax[li], float(acts[li + 1].max()))

    def _val_score(self, P, L, R, devs, qat):
        """Mean squared log error on the validation devices after the few-shot correction from
        their reference archs: how a new device will be served."""
        errs = []
        amax = list(self.amax)
        for j in devs:
            W1x, b1 = self._fold(P, R[j])
            d = self._device_net(P, W1x, b1)
            corr = self._correction(d, self.ref, self._target(L[self.ref, j] - R[j].mean()), qat, amax)
            pred = self._to_log(self._device_forward(d, corr, self.Xs, qat, amax)) + R[j].mean()
            errs.append(np.mean((pred - L[:, j]) ** 2))
        self.amax = amax
        return float(np.mean(errs))

    # --- a device's network --------------------------------------------------------------------
    def _fold(self, P, ref_log):
        """First layer with the descriptor folded into its bias."""
        W, b = P[0]
        d = self._descriptor(np.asarray(ref_log, np.float64))
        return W[:self.n_x], b + d @ W[self.n_x:]

    def _device_net(self, P, W1x, b1):
        return [[W1x, b1]] + [[W, b] for W, b in P[1:]]

    def _device_forward(self, net, corr, Xs, qat=False, amax=None, hidden=False):
        h = Xs
        for li, (W, b) in enumerate(net[:-1]):
            if qat:
                W = _fake_quant_cols(W)
            h = np.maximum(h @ W + b, 0.0)
            if qat:
                h = _fake_quant_act(h, amax[li])
        if hidden:
            return h
        W, b = net[-1]
        dw, db = corr
        W = W[:, 0] + dw
        if qat:
            W = _fake_quant_cols(W[:, None])[:, 0]
        return h @ W + b[0] + db

    def _correction(self, net, idx, target, qat=False, amax=None):
        """(dw, db): weighted ridge on the last hidden layer (weights penalised, bias free) fitting
        the measured targets (log ms, or latency, relative to the device scale); in latency
        space the residuals are weighted as relative errors."""
        zero = (np.zeros(net[-1][0].shape[0], np.float32), 0.0)
        H = self._device_forward(net, None, self.Xs[idx], qat, amax, hidden=True).astype(np.float64)
        r = target - self._device_forward(net, zero, self.Xs[idx], qat, amax)
        w = np.ones(len(idx)) if self.space == "log" else 1.0 / np.maximum(target, 1e-9) ** 2
        if len(idx) < 2 or self.ridge <= 0:
            return zero[0], float(np.sum(w * r) / np.sum(w))
        mean_h = (w @ H) / w.sum()
        Hc = H - mean_h
        rc = r - (w @ r) / w.sum()
        Hw = Hc * np.sqrt(w)[:, None]
        lam = self.ridge * (np.trace(Hw.T @ Hw) / H.shape[1] + 1e-12)
        alpha = np.linalg.solve(Hw @ Hw.T + lam * np.eye(len(idx)), rc * np.sqrt(w))
        dw = Hw.T @ alpha
        db = float((w @ r) / w.sum() - mean_h @ dw)
        return dw.astype(np.float32), db

    # --- the Method interface -------------------------------------------------------------------
    def select(self, k, pool, rng):
        pool = np.asarray(pool)
        inpool = np.isin(self.ref, pool)
        chosen = list(self.ref[inpool][:k])
        if len(chosen) < k:
            rest = np.setdiff1d(pool, chosen)
            extra = rng.permutation(rest)[:k - len(chosen)]
            chosen += list(extra)
        return np.asarray(chosen, dtype=np.int64)

    def adapt(self, idx, y_log, descriptor=None):
        idx = np.asarray(idx)
        y = np.asarray(y_log, dtype=np.float64)
        ref_log = self._reference_latencies(idx, y)
        s = float(ref_log.mean())
        P = self.P_qat if self.qat_weights else self.P_float
        net = self._device_net(P, *self._fold(P, ref_log))
        self.net, self.scale = net, s
        self.corr = self._correction(net, idx, self._target(y - s))
        return self

    def _reference_latencies(self, idx, y):
        """Log ms of the reference archs: measured where they were, else the Bayesian linear
        posterior's prediction from what was measured."""
        out = np.empty(len(self.ref))
        pos = {int(a): i for i, a in enumerate(idx)}
        missing = [i for i, a in enumerate(self.ref) if int(a) not in pos]
        if missing:
            self.bl.adapt(idx, y)
            fill = self.bl.predict(self.ref)
        for i, a in enumerate(self.ref):
            out[i] = y[pos[int(a)]] if int(a) in pos else fill[i]
        return out

    def predict(self, idx):
        out = self._device_forward(self.net, self.corr, self.Xs[np.asarray(idx)])
        return self._to_log(out.astype(np.float64)) + self.scale

    def _target(self, rel_log):
        return rel_log if self.space == "log" else np.exp(rel_log)

    def _to_log(self, out):
        return out if self.space == "log" else np.log(np.maximum(out, 1e-3))

    def describe(self):
        return (f"{self.name}: MLP {self.n_x}+{self.n_ref} -> {' -> '.join(map(str, self.hidden))} -> 1 on log ms, "
                f"Adam, early stopping on {len(self.val_devices)} validation devices after "
                f"{self.epochs_run} epochs, {self.qat_epochs} quantization-aware epochs; "
                f"{self.n_ref} greedy reference archs as descriptor; ridge output correction")

    # --- export --------------------------------------------------------------------------------
    def device_layers(self):
        """The adapted model as float layers over the full encoding (unused columns weigh 0):
        ``[(W[out, in], b[out]), ...]`` for ``maple_edge_lite.pack``, and its output transform."""
        W1x, b1 = self.net[0]
        W1 = np.zeros((self.X.shape[1], W1x.shape[1]))
        W1[self.cols] = W1x
        layers = [(W1.T, b1)] + [(W.T, b) for W, b in self.net[1:-1]]
        W, b = self.net[-1]
        dw, db = self.corr
        layers.append(((W[:, 0] + dw)[None, :], np.array([b[0] + db])))
        if self.space == "log":
            return layers, {"output": "exp", "output_shift": self.scale}
        return layers, {"output": "identity", "output_scale": float(np.exp(self.scale))}

    def pack_device(self, path, *, search_space=None, metadata=None, calibration=None):
        """Write the adapted MLP as a device-specialised ``.melw`` (architecture features in,
        milliseconds out). Activation scales come from ``calibration`` (default: every
        architecture seen in training). Returns the quantized model."""
        from ..format import pack

        layers, out = self.device_layers()
        absmax = feature_absmax(self.X)
        return pack(layers, path, feature_names=self.feature_names, input_std=absmax,
                    calibration=self.X if calibration is None else calibration, search_space=search_space,
                    metadata=metadata, **out)


class MLPInt8(MLP):
    """mlp_int8: the same MLP, adapted, packed and scored through the int8 core (what a board runs)."""

    name = "mlp_int8"
    qat_weights = True

    def __init__(self, **kw):
        super().__init__(**kw)
        self.name = "mlp_int8"

    def adapt(self, idx, y_log, descriptor=None):
        import os
        import tempfile

        from .._model import Model

        super().adapt(idx, y_log, descriptor)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "device.melw")
            self.pack_device(path)
            self.device = Model.load(path)
        return self

    def predict(self, idx):
        x = np.ascontiguousarray(self.X[np.asarray(idx)])
        return np.log(self.device.predict(x).astype(np.float64))


METHODS = {"mlp": MLP, "mlp_int8": MLPInt8}


# --- base model: the trained MLP as a file, and adaptation from it ---------------------------

def _arr(a) -> dict:
    a = np.ascontiguousarray(a, dtype="<f4")
    return {"shape": list(a.shape), "f32le_base64": base64.b64encode(a.tobytes()).decode("ascii")}


def _unarr(d) -> np.ndarray:
    try:
        a = np.frombuffer(base64.b64decode(d["f32le_base64"], validate=True), dtype="<f4")
        a = a.reshape(d["shape"]).astype(np.float32)
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(f"corrupt mlp base model: a weight array does not decode ({e})") from None
    if not np.isfinite(a).all():
        raise InputError("corrupt mlp base model: non-finite weights")
    return a


def pack_base(method: MLP, path, *, archs: Sequence[str], search_space: str, provenance=None,
              calibration_archs: int = 512, seed: int = 0):
    """Write a trained MLP as a base ``.melw``: its layers are the device-agnostic model
    (encoder features + the reference-latency descriptor -> latency relative to the device's
    scale, i.e. to the geometric mean of its reference latencies); its metadata holds what
    ``adapt_base`` needs: the float weights after quantization-aware finishing, the reference
    architectures, the descriptor's standardisation, the Bayesian linear prior that imputes
    unmeasured references, and a sample of architectures that sets activation scales."""
    from ..format import pack

    archs = list(archs)
    names = list(method.feature_names)
    n_ref = len(method.ref)
    rng = np.random.default_rng(seed)
    calib_rows = np.sort(rng.choice(len(archs), min(calibration_archs, len(archs)), replace=False))
    W1, b1 = method.P_qat[0]
    W1full = np.zeros((len(names) + n_ref, W1.shape[1]))
    W1full[method.cols] = W1[:method.n_x]
    W1full[len(names):] = W1[method.n_x:]
    layers = [(W1full.T, b1)] + [(W.T, b) for W, b in method.P_qat[1:]]
    absmax = feature_absmax(method.X)
    mean = np.concatenate([np.zeros(len(names)), method.d_mean])
    std = np.concatenate([absmax, method.d_std])
    # calibration: sampled archs, each with a sampled training device's descriptor
    R = method.train_ref_log
    dev = rng.integers(0, len(R), len(calib_rows))
    calib = np.hstack([method.X[calib_rows], R[dev] - R[dev].mean(1, keepdims=True)])
    meta = {
        "model_kind": "base",
        "fewshot": {
            "method": "mlp", "version": 1, "space": method.space, "hidden": list(method.hidden),
            "ridge": method.ridge, "seed": method.seed,
            "columns": [names[i] for i in method.cols],
            "reference_archs": [archs[i] for i in method.ref],
            "descriptor_mean": method.d_mean.tolist(), "descriptor_std": method.d_std.tolist(),
            "weights": [[_arr(W), _arr(b)] for W, b in method.P_qat],
            "imputation_prior": method.bl.to_prior(names),
            "calibration_archs": [archs[i] for i in calib_rows],
            "training": {"epochs": method.epochs_run, "validation_devices": method.val_devices,
                         "val_mse_float": method.float_val_score, "val_mse_int8": method.int8_val_score},
        },
        "descriptor_features": [f"ref{i}:centred_log_ms" for i in range(n_ref)],
        "feature_absmax": [float(v) for v in absmax],
        "provenance": provenance or {},
    }
    return pack(layers, path, feature_names=names + meta["descriptor_features"], input_mean=mean, input_std=std,
                output="exp", calibration=calib, search_space=search_space, metadata=meta)


def adapt_base_mlp(model, archs: Sequence[str], latency_ms: np.ndarray, out=None, *, provenance=None) -> MLP:
    """Adapt an MLP base model (a loaded ``Model``) to a device from measured architectures;
    with ``out``, write the device ``.melw``. Called by ``maple_edge_lite.learn.adapt.adapt_base``."""
    from .. import encode as enc

    meta = model.metadata
    f = meta["fewshot"]
    if f.get("version") != 1:
        raise InputError(f"mlp base model version {f.get('version')!r} is not readable by this maple_edge_lite")
    space = meta["search_space"]
    names = list(enc.feature_names(space))
    try:
        m = MLP(hidden=f["hidden"], n_ref=len(f["reference_archs"]), ridge=f["ridge"], seed=f["seed"],
                space=f["space"])
        m.P_qat = [[_unarr(W), _unarr(b)] for W, b in f["weights"]]
        m.d_mean = np.asarray(f["descriptor_mean"], np.float64)
        m.d_std = np.asarray(f["descriptor_std"], np.float64)
        cols = [names.index(c) for c in f["columns"]]
        refs, calib = list(f["reference_archs"]), list(f["calibration_archs"])
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(f"corrupt mlp base model metadata ({type(e).__name__}: {e})") from None
    dims = [len(cols) + len(refs), *m.hidden, 1]
    if [tuple(W.shape) for W, _ in m.P_qat] != list(zip(dims[:-1], dims[1:])):
        raise InputError("corrupt mlp base model: weight shapes do not match its layer sizes")
    archs = list(archs)
    k = len(archs)
    X = enc.encode(space, archs + refs + calib)
    m.X, m.feature_names, m.cols = X, names, np.asarray(cols)
    m.Xs, m.n_x = X[:, m.cols], len(cols)
    pos = {a: i for i, a in enumerate(archs)}
    m.ref = np.array([pos.get(a, k + i) for i, a in enumerate(refs)])
    m.qat_weights = True
    m.bl = BayesLinear.from_prior(f["imputation_prior"], names).use_archs(X)
    m.adapt(np.arange(k), np.log(np.asarray(latency_ms, np.float64)))
    if out is not None:
        prov = {"base": meta.get("provenance", {}), "measurements": k, **(provenance or {})}
        m.pack_device(out, search_space=space, calibration=X[k + len(refs):],
                      metadata={"model_kind": "device", "provenance": prov})
    return m
