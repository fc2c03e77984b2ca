// Errors typed by the phase in which they happen. Every message says where (file and
// JSON pointer, or file and line/record), what was found, what was expected and, where
// there is a closed set, the valid alternatives. The CLI prints them as `error: ...`.
#pragma once

#include <stdexcept>
#include <string>

namespace unitrain {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// An experiment file or an options block is wrong (syntax, unknown key, wrong type...).
class ConfigError : public Error {
 public:
  using Error::Error;
};

// A plugin library could not be loaded or is not compatible with this host.
class PluginLoadError : public Error {
 public:
  using Error::Error;
};

// A plugin lookup or construction failed (unknown name, duplicate, factory error).
class RegistryError : public Error {
 public:
  using Error::Error;
};

// A dataset file or record cannot be used.
class DataError : public Error {
 public:
  using Error::Error;
};

// A checkpoint or exported component cannot be read or does not fit.
class CheckpointError : public Error {
 public:
  using Error::Error;
};

// Training stopped for a reason the user must see (NaN loss, device unavailable...).
class TrainingError : public Error {
 public:
  using Error::Error;
};

}  // namespace unitrain
