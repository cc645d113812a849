// The opaque C handle behind mel_model (one definition for every C entry point file).
#pragma once
#include <memory>

#include "../error.hpp"
#include "model.hpp"

struct mel_model {
    std::unique_ptr<mel::Model> m;
};

namespace mel {
// The MLP entry points refuse a layer cost model (it has no layers to run).
inline void need_mlp(const mel_model* model) {
    if (model && model->m->is_layer_cost)
        fail(MEL_ERR_UNSUPPORTED, "this is a layer cost model: it predicts a network from its layer table "
                                  "(mel_model_predict_layers, Model.predict_layers), not from a feature vector");
}
}  // namespace mel
