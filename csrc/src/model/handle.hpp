// The opaque C handle behind mel_model (one definition for every C entry point file).
#pragma once
#include <memory>

#include "model.hpp"

struct mel_model {
    std::unique_ptr<mel::Model> m;
};
