"""Adapt a base predictor to a device, closed form: the main job's adaptation step.

    from maple_edge_lite.learn.adapt import adapt_base
    adapt_base("base.melw", archs, measured_ms, out="device.melw", descriptor=doc)
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .._errors import InputError
from .bayes_linear import BayesLinear, pack_adapted
from .operator_sum import _use_operator_sum_prior, descriptor_operator_latencies

#: What a device model made by this code holds; the device cache keys on it, so a bump rebuilds
#: every cached device model. 1: up to 0.1 (no floor); 2: the floored device model (format 2);
#: 3: with its interval; 4: the interval calibrated on the device's own measurements; 5: the
#: operator-sum prior prices edges executed on a zero node; 6: the interval's relative noise 0.09
#: (``BayesLinear.interval_noise``, for the tied prior of the 1.1.0 bases); 7: an fbnet prior
#: centred on the device's layer cost model; 8: the learned spread around the operator sum halved
#: (``operator_sum.OPERATOR_SUM_PRIOR_SCALE``); 9: the NAS-Bench-201 device model has the count columns
#: ``exec_adds`` and ``shared_avg_pools`` (feature schema 3), priced by the operator sum
#: (``operator_sum.COUNT_COLUMNS``), the additions no longer per edge; 10: Student-t measurement
#: noise (``BayesLinear.noise_df``), a gross measurement error no longer drags the device model;
#: 11: the shared pools counted by tensor (``tensor_shared_avg_pools``, feature schema 4).
ADAPT_VERSION = 11


def adapt_base(base, archs: Sequence[str], latency_ms, out=None, *, descriptor=None, provenance=None,
               layer_costs=None, speed_sd: float = 0.0):
    """Adapt a base model (path or Model; a bayes_linear or an mlp base) to a device from measured
    architectures (closed form, about a millisecond); returns the adapted method. With ``out``,
    also write the device-specialised ``.melw`` there.

    ``descriptor``: either a descriptor document (the dict ``profile.load_descriptor`` returns)
    or {feature name: value}. A document is checked against the model first: its
    ``feature_schema`` must be the model's ``descriptor_feature_schema`` and every descriptor
    feature the model uses must be listed in it, else ``InputError`` names the missing features
    and both schemas; the features the model uses are folded into the prior (an unmeasured one,
    state not counted/scaled, is masked) and the document's device and runtime go into the
    device file's provenance. With {name: value}, a feature absent or None/NaN is masked.

    ``layer_costs``: for an fbnet base, this device's layer cost model's FBNet costs
    (``learn.layer_prior.fbnet_layer_costs``), which then centre the prior (the NAS-Bench-201
    prior is centred on the descriptor's operator sum instead).

    ``speed_sd``: a relative sd by which this device's speed is expected to move between
    measuring and using the model, added to the interval (``BayesLinear.add_speed_sd``; a
    bayes_linear base: an mlp device model has no interval); 0 by default."""
    from .. import encode as enc
    from .._model import Model
    model = base if isinstance(base, Model) else Model.load(base)
    meta = model.metadata
    space = meta.get("search_space")
    if meta.get("model_kind") != "base" or "fewshot" not in meta:
        raise InputError("this model is not a base predictor (no few-shot prior in its metadata): "
                         "train one with `maple-edge-lite train`")
    if space not in enc.SPACES:
        raise InputError(f"the base model's search space {space!r} has no encoder")
    names = enc.feature_names(space)
    kind = meta["fewshot"].get("method")
    extra = meta.get("descriptor_features", []) if kind == "mlp" else []
    n_enc = len(model.feature_names) - len(extra)
    if (kind == "mlp" and n_enc != len(names)) or list(model.feature_names) != list(names[:n_enc]) + list(extra) \
            or n_enc not in enc.schema_dims(space):
        raise InputError("the base model's features differ from this encoder's: re-train it with this version")
    y = np.asarray(latency_ms, dtype=np.float64)
    archs = list(archs)
    if y.shape != (len(archs),) or len(archs) < 2:
        raise InputError(f"need one latency per architecture and at least 2 (got {len(archs)} archs, {y.shape} values)")
    if not (np.all(np.isfinite(y)) and np.all(y > 0)):
        raise InputError("latencies must be finite and positive milliseconds")
    prior = dict(meta["fewshot"])
    if kind != "mlp":
        prior["prior_factor"] = dense_prior_array(prior.get("prior_factor"), "prior_factor")
        if prior.get("descriptor"):
            d = dict(prior["descriptor"])
            d["B"] = dense_prior_array(d.get("B"), "descriptor.B")
            d["prior_factor"] = dense_prior_array(d.get("prior_factor"), "descriptor.prior_factor")
            prior["descriptor"] = d
    used = list(prior["descriptor"]["names"]) if kind != "mlp" and prior.get("descriptor") else []
    prov_desc = None
    if isinstance(descriptor, dict) and "schema" in descriptor and isinstance(descriptor.get("features"), list):
        doc = descriptor
        model_fs = meta.get("descriptor_feature_schema")
        doc_fs = doc.get("feature_schema")
        listed = {f.get("name") for f in doc["features"] if isinstance(f, dict)}
        missing = [n for n in used if n not in listed]
        if missing or (model_fs is not None and doc_fs != model_fs):
            what = (f"model expects features {', '.join(missing[:8])}{', ...' if len(missing) > 8 else ''} "
                    f"({len(missing)} of {len(used)}) missing from the descriptor" if missing
                    else f"model expects {len(used)} descriptor features ({', '.join(used[:5]) or 'none'})")
            raise InputError(f"descriptor does not match the model: {what}; descriptor feature schema "
                             f"{doc_fs!r}, model feature schema {model_fs!r}. Profile the device with this "
                             f"maple_edge_lite version (`maple-edge-lite profile`) or use a model trained on "
                             f"that schema")
        by_name = {f["name"]: f for f in doc["features"] if isinstance(f, dict)}
        descriptor = {n: (by_name[n]["value"] if by_name[n].get("state") in ("counted", "scaled") else None)
                      for n in used}
        dev, rt = doc.get("device") or {}, doc.get("runtime") or {}
        prov_desc = {"schema": doc.get("schema"), "feature_schema": doc_fs, "created": doc.get("created"),
                     "features_used": used,
                     "device": {k: dev.get(k) for k in ("hostname", "cpu_model", "cores", "arch", "kernel", "pmus",
                                                        "perf_event_paranoid") if k in dev},
                     "runtime": rt}
    if kind == "mlp":
        if descriptor and prov_desc is None:
            raise InputError("this mlp base model was trained without counter features; "
                             "adapt it from measurements alone (no descriptor)")
        from .mlp import adapt_base_mlp

        prov = dict(provenance or {})
        if prov_desc is not None:
            prov.setdefault("descriptor", prov_desc)
        return adapt_base_mlp(model, archs, y, out, provenance=prov)
    X = enc.encode(space, archs)
    m = BayesLinear.from_prior(prior, names).use_archs(X)
    if prov_desc is not None and space == "nb201" and m.desc is None:
        lat, repeat = descriptor_operator_latencies(doc)
        if _use_operator_sum_prior(m, lat, names, repeat):
            m.use_archs(X)  # the operator-sum prior may add a column
            prov_desc["prior_mean"] = "operator sum of the descriptor's latencies"
    if layer_costs is not None and space == "fbnet" and m.desc is None:
        from .layer_prior import _fbnet_space, _use_layer_prior

        if _use_layer_prior(m, layer_costs, names, _fbnet_space()) and prov_desc is not None:
            prov_desc["prior_mean"] = "this device's layer cost model"
    d = None
    if descriptor is not None and m.desc is not None:
        unknown = sorted(set(descriptor) - set(m.desc["names"]))
        if unknown:
            raise InputError(f"descriptor features unknown to this base model: {', '.join(unknown[:5])}")
        d = np.array([np.nan if descriptor.get(n) is None else float(descriptor[n]) for n in m.desc["names"]])
    m.adapt(np.arange(len(archs)), np.log(y), descriptor=d)
    if speed_sd:
        m.add_speed_sd(speed_sd)
    if out is not None:
        prov = {"base": meta.get("provenance", {}), "measurements": len(archs), **(provenance or {})}
        # Each measurement's weight under the Student-t noise, in the order given: near 0 marks one
        # the model treated as a gross error (re-measure it, or look for what disturbed it).
        prov["measurement_weights"] = [round(float(v), 4) for v in m.weights]
        if prov_desc is not None:
            prov.setdefault("descriptor", prov_desc)
        pack_adapted(m, out, feature_names=names, absmax=_absmax(meta["feature_absmax"], space), search_space=space,
                     metadata={"model_kind": "device", "provenance": prov})
    return m


def dense_prior_array(v, what: str = "an array"):
    """An array of a base model's few-shot prior as ``learn.bayes_linear.pack_base`` stores it
    (``{"shape", "tril", "f32le_base64"}``: float32 little-endian, a lower triangle when ``tril``)
    as a float64 numpy array; a plain JSON list (files written before the packed form) as it is.
    ``InputError`` naming ``what`` when it does not decode."""
    import base64

    if not isinstance(v, dict):
        return v
    try:
        shape = [int(x) for x in v["shape"]]
        flat = np.frombuffer(base64.b64decode(v["f32le_base64"], validate=True), dtype="<f4").astype(np.float64)
        if v.get("tril"):
            if len(shape) != 2 or shape[0] != shape[1] or flat.size != shape[0] * (shape[0] + 1) // 2:
                raise ValueError(f"{flat.size} values for a lower triangle of {shape}")
            a = np.zeros(shape)
            a[np.tril_indices(shape[0])] = flat
            return a
        return flat.reshape(shape)
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(f"corrupt base model: {what} does not decode ({e})") from None


def _absmax(absmax, space: str) -> list:
    """A base's per-feature packing scales, extended to this encoder's features when the base was
    made on an older schema version (its features a prefix of this one's): each newer feature's
    scale is its largest magnitude over the space (``feature_absmax``), as ``train`` computes it."""
    from .. import encode as enc
    from .bayes_linear import feature_absmax

    absmax = [float(v) for v in absmax]
    d = enc.dim(space)
    if len(absmax) < d:
        if space != "nb201":
            raise InputError(f"the base model has {len(absmax)} packing scales, the {space} encoder {d} features")
        from .operator_sum import _nb201_space

        absmax += [float(v) for v in feature_absmax(_nb201_space()[:, len(absmax):])]
    return absmax
