#include "tools/moe_generate/npy.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/util/file_util.h"

namespace moe {

absl::Status WriteNpyFloat32(const std::string& path,
                             std::span<const float> values,
                             const std::vector<int64_t>& shape) {
  std::string header = absl::StrCat(
      "{'descr': '<f4', 'fortran_order': False, 'shape': (",
      absl::StrJoin(shape, ", "), shape.size() == 1 ? ",), }" : "), }");
  // Magic (6) + version (2) + length (2) + header, padded to 64 with '\n' last.
  header.append(63 - (10 + header.size()) % 64, ' ');
  header.push_back('\n');
  std::string file("\x93NUMPY\x01\x00", 8);
  file.push_back(static_cast<char>(header.size() & 0xFF));
  file.push_back(static_cast<char>(header.size() >> 8));
  file += header;
  file.append(reinterpret_cast<const char*>(values.data()),
              values.size() * sizeof(float));
  return WriteStringToFile(path, file);
}

}  // namespace moe
