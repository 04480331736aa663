#include "tree/tree_writer.h"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>

#include "protocol/atomic_file.h"
#include "protocol/manifest.h"

namespace imgsweep {
namespace fs = std::filesystem;
namespace {

// Threads that share the tree's work at most.
constexpr std::size_t kMaxThreads = 8;

}  // namespace

void ForEachIndex(std::size_t count, std::size_t chunk,
                  const std::function<void(std::size_t)>& work) {
  const std::size_t threads = std::min(
      std::clamp<std::size_t>(std::thread::hardware_concurrency(), 1, kMaxThreads),
      (count + chunk - 1) / chunk);
  std::atomic<std::size_t> next{0};
  auto run = [&] {
    for (std::size_t begin = next.fetch_add(chunk); begin < count; begin = next.fetch_add(chunk)) {
      for (std::size_t i = begin; i < std::min(count, begin + chunk); ++i) work(i);
    }
  };
  std::vector<std::thread> pool;
  for (std::size_t t = 1; t < threads; ++t) pool.emplace_back(run);
  run();
  for (std::thread& t : pool) t.join();
}

Status TreeFolders::Make(const fs::path& relative) {
  if (made_.count(relative.native()) != 0) return Status::Ok();
  fs::path dir = out_;
  fs::path so_far;
  for (const fs::path& part : relative) {
    if (!IsSafeName(part.string())) {
      return Status::InvalidInput("refusing to write under " + out_.string() + ": \"" +
                                  relative.string() + "\" is not a path of safe names");
    }
    dir /= part;
    so_far /= part;
    if (made_.count(so_far.native()) != 0) continue;
    std::error_code ec;
    const fs::file_status st = fs::symlink_status(dir, ec);
    if (fs::is_symlink(st)) {
      return Status::InvalidInput(dir.string() +
                                  " is a symbolic link; refusing to write through it");
    }
    if (!fs::exists(st)) {
      fs::create_directory(dir, ec);
      if (ec) return Status::FromErrno("cannot create " + dir.string(), ec.value());
    } else if (!fs::is_directory(st)) {
      return Status::InvalidInput(dir.string() + " is not a folder");
    }
    made_.insert(so_far.native());
  }
  return Status::Ok();
}

Status WriteFile(const fs::path& out, const fs::path& relative, std::string_view content,
                 TreeFolders* folders, WrittenFiles* counts) {
  Status st = folders->Make(relative.parent_path());
  if (!st.ok()) return st;
  if (!IsSafeName(relative.filename().string())) {
    return Status::InvalidInput("refusing to write " + relative.string() + ": not a safe name");
  }
  const fs::path path = out / relative;
  bool written = false;
  st = WriteFileAtomically(path, content, &written);
  if (!st.ok()) return st;
  ++(written ? counts->written : counts->unchanged);
  return Status::Ok();
}

Status WriteFiles(const fs::path& out, const std::vector<PlannedFile>& files,
                  TreeFolders* folders, WrittenFiles* counts) {
  for (const PlannedFile& f : files) {
    Status st = folders->Make(f.relative.parent_path());
    if (!st.ok()) return st;
    if (!IsSafeName(f.relative.filename().string())) {
      return Status::InvalidInput("refusing to write " + f.relative.string() + ": not a safe name");
    }
  }
  // Each thread takes a whole folder at a time: creating a file locks its
  // folder, and two threads in one folder spent their time spinning on that
  // lock (perf: rwsem_spin_on_owner under open and rename).
  std::vector<fs::path> parents;
  parents.reserve(files.size());
  for (const PlannedFile& f : files) parents.push_back(f.relative.parent_path());
  std::vector<std::size_t> order(files.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&parents](std::size_t a, std::size_t b) {
                     return parents[a].native() < parents[b].native();
                   });
  std::vector<std::size_t> starts;  // where each folder's run in `order` begins
  for (std::size_t i = 0; i < order.size(); ++i) {
    if (i == 0 || parents[order[i]].native() != parents[order[i - 1]].native()) starts.push_back(i);
  }
  starts.push_back(order.size());
  std::atomic<std::size_t> written{0};
  std::atomic<std::size_t> unchanged{0};
  std::atomic<bool> stop{false};
  std::mutex mu;
  Status failed;  // guarded by mu: the first failure
  ForEachIndex(starts.size() - 1, 1, [&](std::size_t g) {
    for (std::size_t k = starts[g]; k < starts[g + 1] && !stop; ++k) {
      const PlannedFile& file = files[order[k]];
      bool changed = false;
      Status st = WriteFileAtomically(out / file.relative, file.content, &changed);
      if (!st.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        if (failed.ok()) failed = st;
        stop = true;  // every thread stops at its next file
        return;
      }
      ++(changed ? written : unchanged);
    }
  });
  counts->written += written;
  counts->unchanged += unchanged;
  return failed;
}

Status RemoveUnplanned(const fs::path& out, const std::string& type,
                       const std::unordered_set<std::string>& planned, std::size_t* removed) {
  std::error_code ec;
  std::vector<fs::path> stale, folders;
  const fs::path root = out / type;
  // Paths under root relative to out, by cutting the string: every one
  // starts with root's, which ends with `type`.
  const std::size_t prefix = root.native().size() - type.size();
  for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    const fs::directory_entry& e = *it;
    if (e.is_directory(ec) && !e.is_symlink(ec)) {
      folders.push_back(e.path());
    } else if (planned.count(e.path().native().substr(prefix)) == 0) {
      stale.push_back(e.path());
    }
  }
  if (ec) return Status::FromErrno("cannot list " + root.string(), ec.value());
  for (const fs::path& p : stale) {
    fs::remove(p, ec);
    if (ec) return Status::FromErrno("cannot remove " + p.string(), ec.value());
    ++*removed;
  }
  // Deepest first, so a folder's emptied subfolders are gone before it.
  std::sort(folders.begin(), folders.end(), [](const fs::path& a, const fs::path& b) {
    return a.native().size() > b.native().size();
  });
  for (const fs::path& folder : folders) {
    if (fs::is_empty(folder, ec) && !ec) fs::remove(folder, ec);
    if (ec) return Status::FromErrno("cannot remove " + folder.string(), ec.value());
  }
  return Status::Ok();
}

}  // namespace imgsweep
