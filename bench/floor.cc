// The floor for `imgsweep run`: runs a list of commands at a fixed
// concurrency and only reads each one's stdout and stderr into memory. No
// store, no sockets, no files, no shell: the least a sweep of the same argv
// can cost on this host.
//
// Usage: floor -j N -C DIR COMMANDS
//   COMMANDS has one command per line, its words separated by tabs; each
//   runs with DIR as its working directory. Prints "N commands, S seconds,
//   own cpu A s, cells' cpu B s". It links nothing of imgsweep's, so its
//   rusage arithmetic is its own.
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

extern char** environ;

namespace {

struct Running {
  pid_t pid = -1;
  int out = -1;
  int err = -1;
  std::string out_text;
  std::string err_text;
};

std::vector<std::vector<std::string>> ReadCommands(const char* file) {
  std::ifstream in(file);
  std::vector<std::vector<std::string>> commands;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    std::vector<std::string>& words = commands.emplace_back();
    std::size_t start = 0;
    for (;;) {
      const std::size_t tab = line.find('\t', start);
      words.push_back(line.substr(start, tab - start));
      if (tab == std::string::npos) break;
      start = tab + 1;
    }
  }
  return commands;
}

bool Start(const std::vector<std::string>& words, Running* r) {
  int out[2];
  int err[2];
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) return false;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err[1], 2);
  std::vector<char*> argv;
  argv.reserve(words.size() + 1);
  for (const std::string& w : words) argv.push_back(const_cast<char*>(w.c_str()));
  argv.push_back(nullptr);
  const int rc = posix_spawn(&r->pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(out[1]);
  ::close(err[1]);
  if (rc != 0) {
    std::fprintf(stderr, "floor: cannot start %s: %s\n", argv[0], std::strerror(rc));
    return false;
  }
  r->out = out[0];
  r->err = err[0];
  r->out_text.clear();
  r->err_text.clear();
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  int jobs = 1;
  const char* dir = nullptr;
  int opt;
  while ((opt = ::getopt(argc, argv, "j:C:")) != -1) {
    if (opt == 'j') jobs = std::atoi(optarg);
    if (opt == 'C') dir = optarg;
  }
  if (optind + 1 != argc || jobs < 1) {
    std::fprintf(stderr, "usage: floor -j N [-C DIR] COMMANDS\n");
    return 2;
  }
  if (dir != nullptr && ::chdir(dir) != 0) {
    std::perror(dir);
    return 2;
  }
  const auto commands = ReadCommands(argv[optind]);
  const auto start = std::chrono::steady_clock::now();
  std::vector<Running> slots(static_cast<std::size_t>(jobs));
  std::size_t next = 0;
  std::size_t finished = 0;
  char buffer[65536];
  while (finished < commands.size()) {
    for (Running& r : slots) {
      if (r.pid < 0 && next < commands.size()) {
        if (!Start(commands[next++], &r)) return 1;
      }
    }
    std::vector<pollfd> fds;
    std::vector<std::pair<Running*, bool>> owners;  // slot, is stdout
    for (Running& r : slots) {
      if (r.out >= 0) fds.push_back({r.out, POLLIN, 0}), owners.emplace_back(&r, true);
      if (r.err >= 0) fds.push_back({r.err, POLLIN, 0}), owners.emplace_back(&r, false);
    }
    if (::poll(fds.data(), fds.size(), -1) < 0) continue;
    for (std::size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      auto [r, is_out] = owners[i];
      int& fd = is_out ? r->out : r->err;
      const ssize_t n = ::read(fd, buffer, sizeof buffer);
      if (n > 0) {
        (is_out ? r->out_text : r->err_text).append(buffer, static_cast<std::size_t>(n));
      } else {
        ::close(fd);
        fd = -1;
      }
    }
    for (Running& r : slots) {
      if (r.pid >= 0 && r.out < 0 && r.err < 0) {
        int status = 0;
        ::waitpid(r.pid, &status, 0);
        r.pid = -1;
        ++finished;
      }
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // Its own cpu and its cells', to set beside a worker's (which logs both).
  auto cpu = [](const rusage& u) {
    return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
  };
  rusage own{};
  rusage cells{};
  ::getrusage(RUSAGE_SELF, &own);
  ::getrusage(RUSAGE_CHILDREN, &cells);
  std::printf("%zu commands, %.3f seconds, own cpu %.2f s, cells' cpu %.2f s\n", commands.size(),
              seconds, cpu(own), cpu(cells));
  return 0;
}
