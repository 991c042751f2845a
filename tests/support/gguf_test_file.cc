#include "tests/support/gguf_test_file.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>

#include "core/model/float_formats.h"

namespace moe::testing {

std::string GgufTestFile::String(const std::string& value) {
  return Pod<uint64_t>(value.size()) + value;
}

void GgufTestFile::AddRaw(const std::string& key, uint32_t type,
                          std::string value) {
  entries_.emplace_back(key, Pod(type) + value);
}
void GgufTestFile::AddUint32(const std::string& key, uint32_t value) {
  AddRaw(key, kGgufUint32, Pod(value));
}
void GgufTestFile::AddFloat32(const std::string& key, float value) {
  AddRaw(key, kGgufFloat32, Pod(value));
}
void GgufTestFile::AddBool(const std::string& key, bool value) {
  AddRaw(key, kGgufBool, Pod<uint8_t>(value ? 1 : 0));
}
void GgufTestFile::AddString(const std::string& key, const std::string& value) {
  AddRaw(key, kGgufString, String(value));
}
void GgufTestFile::AddStringArray(const std::string& key,
                                  const std::vector<std::string>& values) {
  std::string bytes = Pod<uint32_t>(kGgufString) + Pod<uint64_t>(values.size());
  for (const std::string& value : values) bytes += String(value);
  AddRaw(key, kGgufArray, bytes);
}
void GgufTestFile::AddInt32Array(const std::string& key,
                                 const std::vector<int32_t>& values) {
  std::string bytes = Pod<uint32_t>(kGgufInt32) + Pod<uint64_t>(values.size());
  for (int32_t value : values) bytes += Pod(value);
  AddRaw(key, kGgufArray, bytes);
}
void GgufTestFile::AddFloat32Array(const std::string& key,
                                   const std::vector<float>& values) {
  std::string bytes =
      Pod<uint32_t>(kGgufFloat32) + Pod<uint64_t>(values.size());
  for (float value : values) bytes += Pod(value);
  AddRaw(key, kGgufArray, bytes);
}

void GgufTestFile::AddTensor(const std::string& name,
                             std::vector<uint64_t> dims, uint32_t type,
                             std::string data) {
  tensors_.push_back({name, std::move(dims), type, std::move(data)});
}

std::string GgufTestFile::Bytes(uint32_t version, uint64_t alignment) const {
  auto entries = entries_;
  if (alignment != 32) {
    entries.emplace_back(
        "general.alignment",
        Pod<uint32_t>(kGgufUint32) + Pod(static_cast<uint32_t>(alignment)));
  }
  std::string out = "GGUF" + Pod(version) + Pod<uint64_t>(tensors_.size()) +
                    Pod<uint64_t>(entries.size());
  for (const auto& [key, value] : entries) out += String(key) + value;
  std::string data;
  for (const Tensor& tensor : tensors_) {
    out += String(tensor.name) + Pod<uint32_t>(tensor.dims.size());
    for (uint64_t dim : tensor.dims) out += Pod(dim);
    data.resize((data.size() + alignment - 1) / alignment * alignment, '\0');
    out += Pod(tensor.type) + Pod<uint64_t>(data.size());
    data += tensor.data;  // the file ends with the last tensor's last byte
  }
  out.resize((out.size() + alignment - 1) / alignment * alignment, '\0');
  return out + data;
}

std::string GgufTestFile::Write(const std::string& name,
                                uint32_t version) const {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path, std::ios::binary) << Bytes(version);
  return path;
}

std::string EncodeGgml(uint32_t type, const std::vector<float>& values) {
  std::string out;
  auto f16 = [](float v) { return GgufTestFile::Pod(FloatToF16(v)); };
  if (type == kGgmlF32) {
    for (float v : values) out += GgufTestFile::Pod(v);
    return out;
  }
  if (type == kGgmlF16) {
    for (float v : values) out += f16(v);
    return out;
  }
  if (type == kGgmlBF16) {
    for (float v : values) out += GgufTestFile::Pod(FloatToBf16(v));
    return out;
  }
  for (size_t b = 0; b < values.size(); b += 32) {
    const auto first = values.begin() + b, last = first + 32;
    const float lo = *std::min_element(first, last);
    const float hi = *std::max_element(first, last);
    const float amax = std::max(std::fabs(lo), std::fabs(hi));
    std::vector<int> q(32);
    if (type == kGgmlQ8_0) {
      const float d = amax / 127;
      out += f16(d);
      const float rd = F16ToFloat(FloatToF16(d));
      for (int j = 0; j < 32; ++j) {
        const int v =
            rd == 0 ? 0 : static_cast<int>(std::lround(first[j] / rd));
        out += static_cast<char>(static_cast<int8_t>(std::clamp(v, -127, 127)));
      }
      continue;
    }
    float d, m;
    if (type == kGgmlQ4_0) {
      // As ggml: the value of largest magnitude maps to q = 0 exactly.
      d = (std::fabs(lo) > std::fabs(hi) ? lo : hi) / -8;
      m = 0;
      out += f16(d);
    } else {  // Q4_1
      d = (hi - lo) / 15;
      m = lo;
      out += f16(d) + f16(m);
    }
    const float rd = F16ToFloat(FloatToF16(d));
    const float rm = F16ToFloat(FloatToF16(m));
    for (int j = 0; j < 32; ++j) {
      const float x =
          type == kGgmlQ4_0 ? first[j] / rd + 8 : (first[j] - rm) / rd;
      q[j] = rd == 0 ? 0 : std::clamp(static_cast<int>(std::lround(x)), 0, 15);
    }
    for (int j = 0; j < 16; ++j) {
      out += static_cast<char>(q[j] | (q[j + 16] << 4));
    }
  }
  return out;
}

}  // namespace moe::testing
