// C entry points of the counters (see maple_edge_lite.h).
#include <climits>
#include <string>
#include <vector>

#include "../guard.hpp"
#include "../internal.h"
#include "counters.hpp"
#include "events.hpp"
#include "sys.hpp"

struct mel_counters {
    std::unique_ptr<mel::CounterSet> set;
};

using mel::fail;
using mel::guard;
using mel::need;

extern "C" {

int mel_counters_open(const char* const* names, size_t n, unsigned flags, mel_counters** out) {
    return guard([&] {
        need(out, "out");
        *out = nullptr;
        if (n) need(names, "names");
        std::vector<std::string> v;
        for (size_t i = 0; i < n; ++i) {
            if (!names[i]) fail(MEL_ERR_INVALID_ARGUMENT, "event name " + std::to_string(i) + " is NULL");
            v.emplace_back(names[i]);
        }
        auto h = std::make_unique<mel_counters>();
        h->set = std::make_unique<mel::CounterSet>(v, flags);
        *out = h.release();
    });
}

int mel_counters_start(mel_counters* c) {
    return guard([&] {
        need(c, "counters");
        c->set->start();
    });
}

int mel_counters_stop(mel_counters* c) {
    return guard([&] {
        need(c, "counters");
        c->set->stop();
    });
}

int mel_counters_read(const mel_counters* c, mel_counter_value* out, size_t n) {
    return guard([&] {
        need(c, "counters");
        if (n) need(out, "out");
        c->set->read(out, n);
    });
}

void mel_counters_free(mel_counters* c) { delete c; }

size_t mel_counters_count(const mel_counters* c) { return c ? c->set->views().size() : 0; }

const char* mel_counters_name(const mel_counters* c, size_t i) {
    if (!c || i >= c->set->views().size()) return "";
    return c->set->views()[i].name.c_str();
}

const char* mel_counters_reason(const mel_counters* c, size_t i) {
    if (!c || i >= c->set->views().size()) return "";
    return c->set->views()[i].reason.c_str();
}

const char* mel_counter_state_name(int state) {
    switch (state) {
        case MEL_COUNTER_COUNTED: return "counted";
        case MEL_COUNTER_SCALED: return "scaled";
        case MEL_COUNTER_NOT_COUNTED: return "not_counted";
        case MEL_COUNTER_UNSUPPORTED: return "unsupported";
        case MEL_COUNTER_DENIED: return "denied";
        default: return "unknown";
    }
}

size_t mel_counters_known_events(const char** names, size_t cap) {
    if (!names) cap = 0;
    return mel::known_event_names(names, cap);
}

int mel_counters_register_event(const char* name, uint32_t type, uint64_t config) {
    return guard([&] {
        need(name, "name");
        mel::register_event(name, type, config);
    });
}

int mel_perf_event_paranoid(void) { return mel::current_syscalls().paranoid(); }

int mel_internal_counters_fake(const char* spec) {
    return guard([&] {
        if (!spec) mel::uninstall_fake_syscalls();
        else mel::install_fake_syscalls(spec);
    });
}

long mel_internal_counters_fake_open_fds(void) { return mel::fake_open_fds(); }
long mel_internal_counters_fake_bad_closes(void) { return mel::fake_bad_closes(); }

}  // extern "C"
