#include "rogatory/common/reload.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "rogatory/common/logging.h"

namespace rogatory::common {

absl::StatusOr<std::unique_ptr<DirectoryWatcher>> DirectoryWatcher::Start(
    const std::string& directory, std::function<void()> on_change, absl::Duration settle) {
  const int fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  if (fd < 0) return absl::InternalError(absl::StrCat("inotify_init1: ", std::strerror(errno)));
  if (inotify_add_watch(
          fd, directory.c_str(),
          IN_CLOSE_WRITE | IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_ATTRIB) < 0) {
    const int err = errno;
    close(fd);
    return absl::InvalidArgumentError(
        absl::StrCat("cannot watch ", directory, ": ", std::strerror(err)));
  }
  const int stop = eventfd(0, EFD_CLOEXEC);
  return std::unique_ptr<DirectoryWatcher>(
      new DirectoryWatcher(fd, stop, std::move(on_change), settle));
}

DirectoryWatcher::DirectoryWatcher(int inotify_fd, int stop_fd, std::function<void()> on_change,
                                   absl::Duration settle)
    : inotify_fd_(inotify_fd),
      stop_fd_(stop_fd),
      on_change_(std::move(on_change)),
      settle_(settle) {
  thread_ = std::thread([this] { Loop(); });
}

DirectoryWatcher::~DirectoryWatcher() {
  const uint64_t one = 1;
  (void)!write(stop_fd_, &one, sizeof(one));
  thread_.join();
  close(inotify_fd_);
  close(stop_fd_);
}

void DirectoryWatcher::Loop() {
  char buffer[4096];
  bool pending = false;
  while (true) {
    pollfd fds[2] = {{inotify_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    // While a change is pending, wait for the folder to settle before reporting it.
    const int timeout = pending ? static_cast<int>(absl::ToInt64Milliseconds(settle_)) : -1;
    const int n = poll(fds, 2, timeout);
    if (n < 0 && errno != EINTR) return;
    if (fds[1].revents & POLLIN) return;
    if (n == 0 && pending) {
      pending = false;
      on_change_();
      continue;
    }
    if (fds[0].revents & POLLIN) {
      while (read(inotify_fd_, buffer, sizeof(buffer)) > 0) {
      }
      pending = true;
    }
  }
}

void ReloadHooks::Add(std::string name, std::function<absl::Status()> reload) {
  absl::MutexLock lock(&mu_);
  hooks_.emplace_back(std::move(name), std::move(reload));
}

void ReloadHooks::RunAll() {
  std::vector<std::pair<std::string, std::function<absl::Status()>>> hooks;
  {
    absl::MutexLock lock(&mu_);
    hooks = hooks_;
  }
  for (auto& [name, reload] : hooks) {
    absl::Status s = reload();
    if (s.ok()) {
      Log::Info("reloaded", {{"what", name}});
    } else {
      Log::Error("reload refused; keeping the previous data",
                 {{"what", name}, {"error", std::string(s.message())}});
    }
  }
}

}  // namespace rogatory::common
