// The guard every C entry point runs in: a mel::Error becomes its status, any other exception
// MEL_ERR_NO_MEMORY or MEL_ERR_INTERNAL, and the message goes to the thread-local last error.
// Nothing throws across the ABI.
#pragma once
#include <exception>
#include <new>
#include <string>

#include "error.hpp"

namespace mel {

template <class F>
int guard(F&& f) noexcept {
    try {
        f();
        return MEL_OK;
    } catch (const Error& e) {
        set_last_error(e.what());
        return e.status();
    } catch (const std::bad_alloc&) {
        set_last_error("out of memory");
        return MEL_ERR_NO_MEMORY;
    } catch (const std::exception& e) {
        set_last_error(std::string("internal error: ") + e.what());
        return MEL_ERR_INTERNAL;
    } catch (...) {
        set_last_error("internal error: unknown exception");
        return MEL_ERR_INTERNAL;
    }
}

inline void need(const void* p, const char* what) {
    if (!p) fail(MEL_ERR_INVALID_ARGUMENT, std::string(what) + " is NULL");
}

}  // namespace mel
