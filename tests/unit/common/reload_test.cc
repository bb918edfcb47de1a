#include "rogatory/common/reload.h"

#include <filesystem>
#include <fstream>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace rogatory::common {
namespace {

namespace fs = std::filesystem;

class DirectoryWatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/rogatory-watch-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string dir_;
};

TEST_F(DirectoryWatcherTest, ReportsAFileWrittenInTheFolder) {
  absl::Notification changed;
  auto w = DirectoryWatcher::Start(dir_, [&] {
    if (!changed.HasBeenNotified()) changed.Notify();
  });
  ASSERT_TRUE(w.ok()) << w.status();
  std::ofstream(dir_ + "/registry.yaml") << "x";
  EXPECT_TRUE(changed.WaitForNotificationWithTimeout(absl::Seconds(5)));
}

TEST_F(DirectoryWatcherTest, ReportsAConfigMapStyleSymlinkSwap) {
  fs::create_directory(dir_ + "/..v1");
  fs::create_directory(dir_ + "/..v2");
  fs::create_directory_symlink(dir_ + "/..v1", dir_ + "/..data");
  absl::Notification changed;
  auto w = DirectoryWatcher::Start(dir_, [&] {
    if (!changed.HasBeenNotified()) changed.Notify();
  });
  ASSERT_TRUE(w.ok());
  fs::create_directory_symlink(dir_ + "/..v2", dir_ + "/..data_tmp");
  fs::rename(dir_ + "/..data_tmp", dir_ + "/..data");
  EXPECT_TRUE(changed.WaitForNotificationWithTimeout(absl::Seconds(5)));
}

TEST_F(DirectoryWatcherTest, MissingFolderIsAnError) {
  EXPECT_FALSE(DirectoryWatcher::Start(dir_ + "/nope", [] {}).ok());
}

TEST(ReloadHooksTest, RunsEveryHookEvenAfterOneFails) {
  ReloadHooks hooks;
  int ran = 0;
  hooks.Add("bad", [&] {
    ++ran;
    return absl::InvalidArgumentError("line 3: bad");
  });
  hooks.Add("good", [&] {
    ++ran;
    return absl::OkStatus();
  });
  hooks.RunAll();
  EXPECT_EQ(ran, 2);
}

}  // namespace
}  // namespace rogatory::common
