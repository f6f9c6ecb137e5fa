// The safetensors writer and reader: bit-exact round trips, the byte layout the format spec
// prescribes, a file written by hand from the spec, and clear refusals of damaged files.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "scalevec/manifest.h"
#include "scalevec/safetensors.h"

using namespace scalevec;
namespace fs = std::filesystem;

namespace {

class Safetensors : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = fs::temp_directory_path() /
          ("scalevec_st_" +
           std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + "_" +
           std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  void TearDown() override { fs::remove_all(dir); }
  fs::path dir;
};

std::string bytes_of(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  const uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  return out + header + data;
}

std::string floats(std::initializer_list<float> v) {
  return std::string(reinterpret_cast<const char*>(v.begin()), v.size() * sizeof(float));
}

void expect_error(const std::string& bytes, const std::string& needle) {
  try {
    parse_safetensors(bytes, "f.safetensors");
    FAIL() << "accepted a file that should fail with '" << needle << "'";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

bool bit_equal(const at::Tensor& a, const at::Tensor& b) {
  return a.scalar_type() == b.scalar_type() && a.sizes() == b.sizes() &&
         std::memcmp(a.contiguous().data_ptr(), b.contiguous().data_ptr(),
                     a.numel() * a.element_size()) == 0;
}

}  // namespace

TEST_F(Safetensors, EveryDtypeRoundTripsBitExactly) {
  auto gen = at::detail::createCPUGenerator(7);
  const at::Tensor x = at::randn({5, 7}, gen, at::kDouble);
  NamedTensors in = {
      {"f64", x},
      {"f32", x.to(at::kFloat)},
      {"bf16", x.to(at::kBFloat16)},
      {"f16", x.to(at::kHalf)},
      {"i64", at::randint(-1000, 1000, {3, 2}, gen, at::kLong)},
      {"i32", at::arange(6, at::kInt)},
      {"u8", at::arange(200, at::kByte)},
      {"bool", x > 0},
      {"scalar", at::full({}, 3.5, at::kFloat)},
      {"empty", at::empty({0, 4}, at::kFloat)},
      {"transposed", x.to(at::kFloat).t()},  // non-contiguous: stored in logical order
      {"nan_inf", at::tensor({NAN, INFINITY, -0.0f}, at::kFloat)},
  };
  const std::string path = (dir / "t.safetensors").string();
  write_safetensors(path, in, {{"format", "pt"}, {"note", "quote \" and \\ and \n"}});
  const SafetensorsFile out = read_safetensors(path);
  ASSERT_EQ(out.tensors.size(), in.size());
  for (size_t i = 0; i < in.size(); ++i) {  // the file keeps the written order
    EXPECT_EQ(out.tensors[i].first, in[i].first);
    EXPECT_TRUE(bit_equal(out.tensors[i].second, in[i].second)) << in[i].first;
  }
  EXPECT_EQ(out.metadata.at("format"), "pt");
  EXPECT_EQ(out.metadata.at("note"), "quote \" and \\ and \n");
  EXPECT_FALSE(fs::exists(path + ".tmp"));
}

TEST_F(Safetensors, LayoutFollowsTheSpec) {
  const std::string path = (dir / "t.safetensors").string();
  write_safetensors(path, {{"a", at::tensor({1.0f, 2.0f}, at::kFloat)},
                           {"b", at::tensor({int64_t{-3}}, at::kLong)}});
  const std::string raw = read_text_file(path);
  uint64_t n = 0;
  std::memcpy(&n, raw.data(), 8);
  ASSERT_LE(8 + n, raw.size());
  EXPECT_EQ((8 + n) % 8, 0u) << "the data section starts 8-byte aligned";
  const std::string header = raw.substr(8, n);
  EXPECT_EQ(header.rfind("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                         "\"b\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[8,16]}}",
                         0),
            0u)
      << header;
  EXPECT_EQ(raw.substr(8 + n),
            floats({1.0f, 2.0f}) + std::string("\xfd\xff\xff\xff\xff\xff\xff\xff", 8));
}

TEST_F(Safetensors, ReadsAFileWrittenByHandFromTheSpec) {
  // Offsets not in name order, spaces in the JSON, as other writers produce.
  const std::string header =
      R"({ "w" : {"dtype":"F32", "shape":[1, 2], "data_offsets":[8, 16]},
          "__metadata__": {"format": "pt"},
          "v": {"dtype":"F32","shape":[2],"data_offsets":[0,8]} })";
  const auto f = parse_safetensors(bytes_of(header, floats({1, 2, 3, 4})), "hand");
  ASSERT_EQ(f.tensors.size(), 2u);
  EXPECT_EQ(f.tensors[0].first, "v");
  EXPECT_EQ(f.tensors[1].first, "w");
  EXPECT_TRUE(at::equal(f.tensors[1].second, at::tensor({3.0f, 4.0f}).reshape({1, 2})));
  EXPECT_EQ(f.metadata.at("format"), "pt");
}

TEST_F(Safetensors, DamagedFilesAreRefusedWithTheReason) {
  const std::string good = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  expect_error("abc", "too short");
  expect_error(bytes_of(good, floats({1})), "truncated");
  expect_error(bytes_of(good, floats({1, 2, 3})), "cover 8 bytes of a 12-byte data section");
  std::string huge(8, '\xff');
  expect_error(huge + "{}", "header length");
  expect_error(
      bytes_of(R"({"a":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}})", floats({1, 2})),
      "unsupported dtype F33");
  expect_error(
      bytes_of(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", floats({1, 2})),
      "need 12");
  expect_error(
      bytes_of(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", floats({1, 2})), "gap");
  expect_error(bytes_of(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                        R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                        floats({1, 2})),
               "overlap");
  expect_error(bytes_of(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                        R"("a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                        floats({1, 2})),
               "twice");
  expect_error(
      bytes_of(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", floats({1, 2})),
      "non-negative integer");
  expect_error(bytes_of("[1,2]", ""), "not a JSON object");
  expect_error(bytes_of(R"({"a":{"dtype":"F32","shape":[[[[[2]]]]],"data_offsets":[0,8]}})", ""),
               "nested deeper");
  expect_error(bytes_of(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8})", floats({1, 2})),
               "malformed JSON");
}

TEST_F(Safetensors, ShardedFoldersRoundTripAndCheckTheirIndex) {
  NamedTensors in;
  for (int i = 0; i < 5; ++i)
    in.emplace_back("t" + std::to_string(i), at::full({100}, i, at::kFloat));
  const auto files = write_safetensors_folder(dir.string(), in, 1000);  // 400 bytes each
  ASSERT_EQ(files.size(), 4u);  // 2 + 2 + 1 tensors, then the index
  EXPECT_EQ(files[0], "model-00001-of-00003.safetensors");
  EXPECT_EQ(files.back(), "model.safetensors.index.json");
  EXPECT_NE(read_text_file((dir / files.back()).string()).find("\"total_size\": 2000"),
            std::string::npos);
  const NamedTensors out = read_safetensors_folder(dir.string());
  ASSERT_EQ(out.size(), in.size());
  for (size_t i = 0; i < in.size(); ++i) EXPECT_TRUE(bit_equal(out[i].second, in[i].second));

  fs::remove(dir / "model-00002-of-00003.safetensors");
  EXPECT_THROW(
      {
        try {
          read_safetensors_folder(dir.string());
        } catch (const SafetensorsError& e) {
          EXPECT_NE(
              std::string(e.what()).find("model-00002-of-00003.safetensors, which is missing"),
              std::string::npos);
          throw;
        }
      },
      SafetensorsError);
  const auto single = dir / "single";
  write_safetensors_folder(single.string(), in, 1u << 20);
  EXPECT_TRUE(fs::exists(single / "model.safetensors"));
  EXPECT_FALSE(fs::exists(single / "model.safetensors.index.json"));
  EXPECT_EQ(read_safetensors_folder(single.string()).size(), in.size());
  EXPECT_THROW(read_safetensors_folder((dir / "nothing").string()), SafetensorsError);
}

TEST(SafetensorsSizes, ByteSizesParseLikeTransformers) {
  EXPECT_EQ(parse_byte_size("5GB"), 5'000'000'000u);
  EXPECT_EQ(parse_byte_size("500MiB"), 500u << 20);
  EXPECT_EQ(parse_byte_size("2gib"), 2ull << 30);
  EXPECT_EQ(parse_byte_size("1234"), 1234u);
  EXPECT_THROW(parse_byte_size("5 GB"), SafetensorsError);
  EXPECT_THROW(parse_byte_size("GB"), SafetensorsError);
  EXPECT_THROW(parse_byte_size("0"), SafetensorsError);
}
