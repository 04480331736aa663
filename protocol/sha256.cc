#include "protocol/sha256.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>

namespace imgsweep {
namespace {

constexpr size_t kReadChunkBytes = 1 << 16;

struct ContextDeleter {
  void operator()(EVP_MD_CTX* context) const { EVP_MD_CTX_free(context); }
};
using Context = std::unique_ptr<EVP_MD_CTX, ContextDeleter>;

// Fetched once: EVP_sha256() looks the algorithm up again at every init,
// which costs more than hashing a short output.
const EVP_MD* Sha256() {
  static const EVP_MD* const kSha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return kSha256;
}

Context NewContext() {
  Context context(EVP_MD_CTX_new());
  if (context != nullptr && EVP_DigestInit_ex(context.get(), Sha256(), nullptr) != 1) {
    context.reset();
  }
  return context;
}

std::string FinishHex(EVP_MD_CTX* context) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int length = 0;
  EVP_DigestFinal_ex(context, digest.data(), &length);
  Sha256Bytes bytes{};
  std::memcpy(bytes.data(), digest.data(), bytes.size());
  return Sha256ToHex(bytes);
}

class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

}  // namespace

std::string Sha256Hex(std::string_view bytes) {
  // Most cells print nothing on stderr: the coordinator asks for this one
  // digest for nearly every result.
  if (bytes.empty()) return "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
  // One context per thread, initialised again for every digest: a new one
  // costs an allocation and a free, more than hashing a short output.
  thread_local const Context context(EVP_MD_CTX_new());
  if (context == nullptr || EVP_DigestInit_ex(context.get(), Sha256(), nullptr) != 1) return "";
  EVP_DigestUpdate(context.get(), bytes.data(), bytes.size());
  return FinishHex(context.get());
}

Result<std::string> Sha256File(const std::filesystem::path& file) {
  FileDescriptor fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return Status::FromErrno("open " + file.string(), errno);
  Context context = NewContext();
  if (context == nullptr) return Status::InvalidInput("OpenSSL has no SHA-256");
  std::array<char, kReadChunkBytes> buffer;
  while (true) {
    ssize_t n = ::read(fd.get(), buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::FromErrno("read " + file.string(), errno);
    if (n == 0) break;
    EVP_DigestUpdate(context.get(), buffer.data(), static_cast<size_t>(n));
  }
  return FinishHex(context.get());
}

bool IsSha256Hex(std::string_view text) {
  Sha256Bytes bytes;
  return Sha256FromHex(text, &bytes);
}

bool Sha256FromHex(std::string_view hex, Sha256Bytes* bytes) {
  static constexpr std::array<std::uint8_t, 256> kNibble = [] {
    std::array<std::uint8_t, 256> table{};
    table.fill(0xff);
    for (int c = '0'; c <= '9'; ++c) table[c] = static_cast<std::uint8_t>(c - '0');
    for (int c = 'a'; c <= 'f'; ++c) table[c] = static_cast<std::uint8_t>(c - 'a' + 10);
    return table;
  }();
  if (hex.size() != 2 * bytes->size()) return false;
  for (std::size_t i = 0; i < bytes->size(); ++i) {
    const unsigned high = kNibble[static_cast<unsigned char>(hex[2 * i])];
    const unsigned low = kNibble[static_cast<unsigned char>(hex[2 * i + 1])];
    if (((high | low) & 0xf0u) != 0) return false;  // only a non-digit sets these bits
    (*bytes)[i] = static_cast<char>(high << 4 | low);
  }
  return true;
}

std::string Sha256ToHex(const Sha256Bytes& bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex(2 * bytes.size(), '\0');
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    const auto byte = static_cast<unsigned char>(bytes[i]);
    hex[2 * i] = kHex[byte >> 4];
    hex[2 * i + 1] = kHex[byte & 0xf];
  }
  return hex;
}

}  // namespace imgsweep
