#include "coordinator/image_layouts.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "protocol/sha256.h"

namespace imgsweep {

Result<ImageLayout> ParseImageLayout(std::string_view text) {
  if (text == "dense") return ImageLayout::kDense;
  if (text == "as-is") return ImageLayout::kAsIs;
  return Status::InvalidInput("--image-layout \"" + std::string(text) +
                              "\": use dense (a staged copy with every byte allocated, as a git "
                              "checkout has it) or as-is (the checkout as it lies)");
}

std::string TreeLayout(const std::vector<FileLayout>& sparse) {
  if (sparse.empty()) return std::string(kDenseLayout);
  std::vector<std::string> lines;
  lines.reserve(sparse.size());
  for (const FileLayout& f : sparse) lines.push_back(f.path + '\0' + f.fingerprint + '\n');
  std::sort(lines.begin(), lines.end());
  std::string text;
  for (const std::string& line : lines) text += line;
  return "sparse:" + Sha256Hex(text).substr(0, 16);
}

ImageLayouts::ImageLayouts(const Plan* plan, ImageLayout mode,
                           std::map<std::string, std::string> pins)
    : plan_(plan), mode_(mode), pins_(std::move(pins)) {}

std::set<std::size_t> ImageLayouts::Refused(const std::string& worker,
                                            const std::string& layout) {
  std::set<std::size_t> refused;
  std::string sweep_layout;
  for (std::size_t i = 0; i < plan_->images().size(); ++i) {
    std::string pinned(kDenseLayout);
    if (mode_ == ImageLayout::kAsIs) {
      pinned = pins_.try_emplace(plan_->images()[i].path, layout).first->second;
    }
    if (pinned == layout) continue;
    if (refused.empty()) sweep_layout = pinned;
    refused.insert(i);
  }
  if (refused.empty()) return refused;
  const std::string conflict =
      "worker " + worker + " has its testdata on " + layout + ", the sweep uses " + sweep_layout +
      (refused.size() > 1 ? " (and maybe others) for " + std::to_string(refused.size()) + " images"
                          : " for " + plan_->images()[*refused.begin()].path);
  if (std::find(conflicts_.begin(), conflicts_.end(), conflict) == conflicts_.end()) {
    conflicts_.push_back(conflict);
  }
  spdlog::error("coordinator: {}: it gets none of their cells, so no image's cells run on two "
                "layouts of its files (`qemu-img map` prints holes)",
                conflict);
  return refused;
}

}  // namespace imgsweep
