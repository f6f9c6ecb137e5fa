#include "args.h"

#include "scalevec/config_io.h"

namespace scalevec::cli {

std::string Args::get(const std::string& name, const std::string& fallback) const {
  auto it = options.find(name);
  return it == options.end() ? fallback : it->second;
}

Config Args::load() const {
  if (config_path.empty()) throw UsageError(command + ": --config FILE is required");
  return load_config(config_path, overrides);
}

Args parse_args(int argc, char** argv, const std::vector<std::string>& flags) {
  Args a;
  a.argv.assign(argv, argv + argc);
  if (argc >= 2) a.command = argv[1];
  for (int i = 2; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0) throw UsageError("unexpected argument '" + arg + "'");
    std::string name = arg.substr(2), value;
    const auto eq = name.find('=');
    const bool inline_value = eq != std::string::npos && name != "set";
    if (inline_value) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    const bool is_flag = std::find(flags.begin(), flags.end(), name) != flags.end();
    if (!is_flag && !inline_value) {
      if (i + 1 >= argc) throw UsageError("--" + name + " needs a value");
      value = argv[++i];
    }
    if (name == "config")
      a.config_path = value;
    else if (name == "set") {
      if (value.find('=') == std::string::npos)
        throw UsageError("bad override '" + value + "': expected --set key=value");
      a.overrides.push_back(value);
    } else
      a.options[name] = value;
  }
  return a;
}

}  // namespace scalevec::cli
