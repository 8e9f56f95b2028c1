// Output files (core/file.h): symbolic links are followed, special files are
// written through instead of replaced, and bad output paths are caught before
// any work.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "error_util.h"
#include "unroll/core/error.h"
#include "unroll/core/file.h"

using namespace unroll;
namespace fs = std::filesystem;

namespace {

class FileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "unroll_file_XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  static std::string slurp(const fs::path& p) {
    std::ifstream f(p);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
  }
  fs::path dir_;
};

}  // namespace

TEST_F(FileTest, ASymlinkIsFollowedAndStays) {
  fs::create_directories(dir_ / "real");
  std::ofstream(dir_ / "real" / "target.json") << "old";
  fs::create_symlink("real/target.json", dir_ / "link.json");
  write_file_atomic((dir_ / "link.json").string(), {"new"}, "JSON");
  EXPECT_TRUE(fs::is_symlink(dir_ / "link.json"));
  EXPECT_EQ(slurp(dir_ / "real" / "target.json"), "new");
}

TEST_F(FileTest, ANamedPipeIsWrittenThroughNotReplaced) {
  const fs::path pipe = dir_ / "pipe";
  ASSERT_EQ(::mkfifo(pipe.c_str(), 0600), 0);
  std::string got;
  std::thread reader([&] { got = slurp(pipe); });
  write_file_atomic(pipe.string(), {"through ", "the pipe"}, "CSV");
  reader.join();
  EXPECT_EQ(got, "through the pipe");
  EXPECT_TRUE(fs::is_fifo(pipe)) << "the pipe was replaced by a regular file";
}

TEST_F(FileTest, OutputPathsAreCheckedBeforeWork) {
  std::string e =
      error_of([&] { check_output_path((dir_ / "nodir" / "x.html").string(), "page"); });
  EXPECT_NE(e.find("does not exist"), std::string::npos) << e;
  EXPECT_NE(e.find("cannot write page"), std::string::npos) << e;
  e = error_of([&] { check_output_path(dir_.string(), "page"); });
  EXPECT_NE(e.find("is a folder"), std::string::npos) << e;
  EXPECT_NO_THROW(check_output_path((dir_ / "fine.html").string(), "page"));
  EXPECT_FALSE(fs::exists(dir_ / "fine.html")) << "checking must not create the file";
}
