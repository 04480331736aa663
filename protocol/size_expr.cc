#include "protocol/size_expr.h"

#include <algorithm>
#include <optional>

namespace imgsweep {

Result<SizeExpr> SizeExpr::Parse(std::string_view text) {
  const auto bad = [text] {
    // Appended, not a literal + temporary: GCC 12 -O3 -Wrestrict.
    std::string message = "\"";
    message += text;
    message += "\" is not a size expression (N, size, size/N, size+N, size-N, size/N+N)";
    return Status::InvalidInput(message);
  };
  SizeExpr expr;
  expr.text = std::string(text);
  std::string_view rest = text;
  // Digits at the front of `rest`, as a number at most 2^62; nullopt if none.
  const auto number = [&rest]() -> std::optional<std::int64_t> {
    std::size_t n = 0;
    while (n < rest.size() && rest[n] >= '0' && rest[n] <= '9') ++n;
    if (n == 0 || n > 18) return std::nullopt;
    const std::int64_t value = std::stoll(std::string(rest.substr(0, n)));
    rest.remove_prefix(n);
    return value;
  };
  if (rest.starts_with("size")) {
    rest.remove_prefix(4);
    expr.divisor = 1;
    if (rest.starts_with("/")) {
      rest.remove_prefix(1);
      std::optional<std::int64_t> d = number();
      if (!d || *d == 0) return bad();
      expr.divisor = static_cast<std::uint64_t>(*d);
    }
    if (rest.empty()) return expr;
    const bool minus = rest.front() == '-';
    if (!minus && rest.front() != '+') return bad();
    rest.remove_prefix(1);
    std::optional<std::int64_t> n = number();
    if (!n || !rest.empty()) return bad();
    expr.offset = minus ? -*n : *n;
    return expr;
  }
  std::optional<std::int64_t> n = number();
  if (!n || !rest.empty()) return bad();
  expr.offset = *n;
  return expr;
}

bool IsSizeValue(std::string_view text) {
  return !text.empty() && text.size() <= 19 && (text == "0" || text.front() != '0') &&
         std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::uint64_t SizeExpr::Of(std::uint64_t size) const {
  // Sizes and offsets are below 2^63, so this neither overflows nor wraps.
  const __int128 value = (divisor == 0 ? 0 : static_cast<__int128>(size / divisor)) + offset;
  return value < 0 ? 0 : static_cast<std::uint64_t>(value);
}

}  // namespace imgsweep
