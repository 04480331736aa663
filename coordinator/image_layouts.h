// Which layout on disk the sweep runs each image's cells on (FileLayout):
// `qemu-img map` prints an image's holes, and those of its backing files and
// VMDK extents, so one image's cells never mix layouts, as one version's
// never mix binaries. A worker's layout is that of its whole testdata tree
// (TreeLayout): "dense" when no file has holes. Which files an image reads
// is the image's business, so any file with holes counts.
//
// With ImageLayout::kDense (the default) every image's layout is "dense":
// the workers' staged copies, or a checkout that holds every byte (a git
// clone). With kAsIs the layout of each image is a pin: the one its stored
// outcomes ran on, else the first worker's. A worker whose file lies
// otherwise gets none of that image's cells, and the conflict is reported.
//
// Thread-safety: the coordinator's thread only.
#ifndef IMGSWEEP_COORDINATOR_IMAGE_LAYOUTS_H_
#define IMGSWEEP_COORDINATOR_IMAGE_LAYOUTS_H_

#include <cstddef>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "protocol/messages.h"
#include "sweep/plan.h"

namespace imgsweep {

enum class ImageLayout : std::uint8_t {
  kDense = 0,  // every cell on a dense copy of its image
  kAsIs = 1,   // on the checkout as it lies, one layout per image
};
// "dense" or "as-is"; kInvalidInput naming the text otherwise.
Result<ImageLayout> ParseImageLayout(std::string_view text);

// The layout of a worker's testdata that lists `sparse` (its files with
// holes): "dense" when it lists none, else "sparse:" and 16 hex digits of
// the digest of the list.
std::string TreeLayout(const std::vector<FileLayout>& sparse);

class ImageLayouts {
 public:
  // `pins`: image path -> the layout its stored outcomes ran on (kAsIs).
  // REQUIRES: `plan` outlives this.
  ImageLayouts(const Plan* plan, ImageLayout mode, std::map<std::string, std::string> pins);

  // The plan's images (by index) that `worker`, whose testdata's layout
  // is `layout`, may not run in this sweep; pins the others (kAsIs).
  std::set<std::size_t> Refused(const std::string& worker, const std::string& layout);

  // "worker w2 has its testdata on sparse:..., the sweep uses dense for 42
  // images", once each.
  const std::vector<std::string>& conflicts() const { return conflicts_; }

 private:
  const Plan* plan_;
  const ImageLayout mode_;
  std::map<std::string, std::string> pins_;  // image path -> layout
  std::vector<std::string> conflicts_;
};

}  // namespace imgsweep

#endif  // IMGSWEEP_COORDINATOR_IMAGE_LAYOUTS_H_
