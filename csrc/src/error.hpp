// Errors inside the library: C++ code throws mel::Error(status, message); the guard at every
// C entry point (c_api.cpp) turns it into a status and the thread-local last-error message.
#pragma once
#include <stdexcept>
#include <string>

#include "maple_edge_lite/maple_edge_lite.h"

namespace mel {

class Error : public std::runtime_error {
public:
    Error(int status, const std::string& message) : std::runtime_error(message), status_(status) {}
    int status() const noexcept { return status_; }

private:
    int status_;
};

[[noreturn]] inline void fail(int status, const std::string& message) { throw Error(status, message); }

// Thread-local last error (defined in c_api.cpp).
void set_last_error(const std::string& message) noexcept;
void clear_last_error() noexcept;

}  // namespace mel
