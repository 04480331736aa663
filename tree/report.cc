#include "tree/report.h"

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>

#include "tree/profiles.h"
#include "sweep/sweep_state.h"

namespace imgsweep {
namespace {

using Json = nlohmann::ordered_json;

// A cell's state as the page's script reads it.
enum class Shown { kExited = 0, kSignaled = 1, kTimeout = 2, kFailed = 3, kMissing = 4, kUnsupported = 5 };

constexpr const char* kPage = R"html(<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>imgsweep report</title>
<style>
body { font: 13px/1.4 sans-serif; margin: 16px; color: #222; }
h1 { font-size: 18px; } h2 { font-size: 16px; margin-top: 28px; }
table.matrix { border-collapse: collapse; }
table.matrix th, table.matrix td { border: 1px solid #ccc; padding: 0; }
table.matrix th { font-weight: normal; padding: 2px 4px; background: #f4f4f4; white-space: nowrap; }
th.profile { font-weight: bold; background: #e6ecf5; }
th.format { text-align: left; background: #eee; font-weight: bold; }
th.image { text-align: left; }
td.cell { width: 22px; height: 16px; cursor: pointer; text-align: center; font-size: 11px; }
td.cell.selected { outline: 2px solid #000; outline-offset: -2px; }
td.failed { background: repeating-linear-gradient(45deg, #c00, #c00 3px, #fff 3px, #fff 6px); }
td.timeout { background: #333; color: #fff; }
td.unsupported { background: #ddd; }
td.missing { background: #fff; color: #999; }
#details { position: sticky; bottom: 0; background: #fff; border-top: 2px solid #888;
  padding: 8px; max-height: 45vh; overflow: auto; }
pre { margin: 4px 0; padding: 4px; background: #f8f8f8; white-space: pre-wrap; }
.diff .add { background: #dfd; } .diff .del { background: #fdd; } .diff .same { color: #777; }
.summary li { margin: 2px 0; }
</style></head><body>
<h1>imgsweep report</h1>
<div id="summary"></div>
<div id="matrices"></div>
<div id="details">Click a cell to see its output and the diff against the previous version.</div>
<script id="data" type="application/json">@DATA@</script>
<script>
"use strict";
const data = JSON.parse(document.getElementById("data").textContent);
const SHOWN = ["exited", "signaled", "timeout", "failed", "missing", "unsupported"];
function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = text;
  return e;
}
function colour(i) { return "hsl(" + ((i * 137) % 360) + ", 65%, " + (i === 0 ? 80 : 62) + "%)"; }
// A line diff (longest common subsequence), as [kind, line] pairs.
function diffLines(a, b) {
  const x = a.split("\n"), y = b.split("\n");
  const n = x.length, m = y.length;
  const t = Array.from({length: n + 1}, () => new Int32Array(m + 1));
  for (let i = n - 1; i >= 0; i--)
    for (let j = m - 1; j >= 0; j--)
      t[i][j] = x[i] === y[j] ? t[i + 1][j + 1] + 1 : Math.max(t[i + 1][j], t[i][j + 1]);
  const out = [];
  let i = 0, j = 0;
  while (i < n && j < m) {
    if (x[i] === y[j]) { out.push(["same", x[i]]); i++; j++; }
    else if (t[i + 1][j] >= t[i][j + 1]) out.push(["del", x[i++]]);
    else out.push(["add", y[j++]]);
  }
  while (i < n) out.push(["del", x[i++]]);
  while (j < m) out.push(["add", y[j++]]);
  return out;
}
function select(td) {
  document.querySelectorAll("td.selected").forEach(s => s.classList.remove("selected"));
  td.classList.add("selected");
  const type = data.types[+td.dataset.type];
  const image = +td.dataset.image, version = +td.dataset.version;
  const cell = type.cells[image][version];
  const d = document.getElementById("details");
  d.textContent = "";
  d.appendChild(el("h3", {id: "selected-key"}, td.dataset.key));
  let state = SHOWN[cell[3]];
  if (cell[3] === 0) state += " " + cell[4];
  if (cell[3] === 1) state += " (signal " + cell[4] + ")";
  d.appendChild(el("div", {id: "selected-state"}, "outcome: " + state));
  if (cell[0] < 0) return;
  d.appendChild(el("div", {}, "stdout:"));
  d.appendChild(el("pre", {id: "selected-stdout"}, data.blobs[cell[0]]));
  if (cell[1] >= 0 && data.blobs[cell[1]] !== "") {
    d.appendChild(el("div", {}, "stderr:"));
    d.appendChild(el("pre", {}, data.blobs[cell[1]]));
  }
  let prev = version - 1;
  while (prev >= 0 && type.cells[image][prev][0] < 0) prev--;
  if (prev < 0) { d.appendChild(el("div", {id: "selected-diff"}, "the first version with an output")); return; }
  const before = data.blobs[type.cells[image][prev][0]];
  const title = "stdout diff against " + type.versions[prev] +
      (before === data.blobs[cell[0]] ? ": identical" : "");
  d.appendChild(el("div", {}, title));
  const pre = el("pre", {id: "selected-diff", class: "diff"});
  for (const [kind, line] of diffLines(before, data.blobs[cell[0]])) {
    pre.appendChild(el("div", {class: kind}, (kind === "add" ? "+ " : kind === "del" ? "- " : "  ") + line));
  }
  d.appendChild(pre);
}
function render() {
  const summary = document.getElementById("summary");
  const ul = el("ul", {class: "summary"});
  data.types.forEach(type => {
    const named = type.profiles.filter(p => p.name);
    ul.appendChild(el("li", {}, type.name + ": " + named.length + " profile" + (named.length === 1 ? "" : "s") +
      " over " + type.versions.length + " versions and " + type.images.length + " images" +
      (type.boundaries.length ? "; boundaries: " + type.boundaries.map(b =>
        type.versions[b.from] + " \u2192 " + type.versions[b.to] + " (" + b.differ + " images differ)").join(", ") : "")));
  });
  summary.appendChild(ul);
  if (data.findings.length) {
    summary.appendChild(el("h2", {}, "Audit findings: hosts that printed differently"));
    const list = el("ul", {id: "findings", class: "summary"});
    data.findings.forEach(f => list.appendChild(el("li", {}, f.key + ": " + f.host_a + " / " +
        f.host_b + ", " + f.difference + "; " + f.resolution)));
    summary.appendChild(list);
  }
  const root = document.getElementById("matrices");
  data.types.forEach((type, ti) => {
    root.appendChild(el("h2", {}, type.name));
    const table = el("table", {class: "matrix", "data-type": type.name});
    const head1 = el("tr"), head2 = el("tr");
    head1.appendChild(el("th", {rowspan: 2}, "image"));
    const order = [];
    type.profiles.forEach(p => {
      head1.appendChild(el("th", {class: "profile", colspan: p.versions.length,
                                  "data-profile": p.name || "incomplete"}, p.name || "incomplete"));
      p.versions.forEach(v => { order.push(v); head2.appendChild(el("th", {class: "version"}, type.versions[v])); });
    });
    table.appendChild(head1); table.appendChild(head2);
    type.formats.forEach(f => {
      const fr = el("tr"); fr.appendChild(el("th", {class: "format", colspan: order.length + 1}, f.name));
      table.appendChild(fr);
      f.images.forEach(i => {
        const tr = el("tr");
        tr.appendChild(el("th", {class: "image"}, type.images[i]));
        order.forEach(v => {
          const c = type.cells[i][v];
          const key = type.name + "/" + type.versions[v] + "/" + type.images[i];
          const td = el("td", {class: "cell " + SHOWN[c[3]], "data-key": key, "data-type": ti,
                               "data-image": i, "data-version": v, title: key});
          if (c[3] <= 1) td.style.background = colour(c[2]);
          if (c[3] === 3) td.textContent = "\u2717";
          if (c[3] === 2) td.textContent = "T";
          if (c[3] === 4) td.textContent = "?";
          td.addEventListener("click", () => select(td));
          tr.appendChild(td);
        });
        table.appendChild(tr);
      });
    });
    root.appendChild(table);
  });
  const m = /^#cell=(.+)$/.exec(location.hash);
  if (m) {
    const td = document.querySelector('td.cell[data-key="' + decodeURIComponent(m[1]) + '"]');
    if (td) td.click();
  }
}
render();
</script></body></html>
)html";

}  // namespace

namespace {

// Each distinct output once in the page's "blobs", by digest.
class BlobTable {
 public:
  explicit BlobTable(Store* store) : store_(store) {}
  Result<long> IndexOf(const std::string& sha) {
    auto [it, inserted] = index_.emplace(sha, index_.size());
    if (inserted) {
      Result<std::string> bytes = store_->GetBlob(sha);
      if (!bytes.ok()) return bytes.status();
      blobs_.push_back(Json(bytes.value()));  // nlohmann escapes; invalid UTF-8 is replaced later
    }
    return static_cast<long>(it->second);
  }
  Json Take() { return std::move(blobs_); }

 private:
  Store* const store_;
  std::map<std::string, std::size_t> index_;  // sha256 -> index in blobs_
  Json blobs_ = Json::array();
};

// An output type's rows (its images, with their axis values), and the
// formats in the order they first appear with theirs.
void AddRows(const Plan& plan, std::size_t t, Json* type) {
  Json images = Json::array();
  std::map<std::string, std::vector<std::size_t>> by_format;
  std::vector<std::string> format_order;
  for (std::size_t i = 0; i < plan.rows(t).size(); ++i) {
    images.push_back(plan.rows(t)[i].id);
    const std::string& format = plan.images()[plan.rows(t)[i].image].format;
    if (!by_format.contains(format)) format_order.push_back(format);
    by_format[format].push_back(i);
  }
  Json formats = Json::array();
  for (const std::string& f : format_order) formats.push_back({{"name", f}, {"images", by_format[f]}});
  (*type)["images"] = images;
  (*type)["formats"] = formats;
}

// One output type's matrix: a row per plan row, a cell per version; and each
// version's stdout digests ("" where the cell has no outcome).
struct TypeMatrix {
  Json cells = Json::array();
  std::vector<std::vector<std::string>> rows;  // by version, then image
};

Result<TypeMatrix> Matrix(const SweepState& state, std::size_t t, BlobTable* blobs) {
  const Plan& plan = state.plan;
  const std::size_t nv = plan.versions().size(), ni = plan.rows(t).size();
  TypeMatrix m;
  m.rows.assign(nv, std::vector<std::string>(ni));
  for (std::size_t i = 0; i < ni; ++i) {
    Json row = Json::array();
    std::map<std::string, std::size_t> distinct;  // this image's outputs, in version order
    for (std::size_t v = 0; v < nv; ++v) {
      const CellRecord& r = state.cells[plan.Index(CellRef{t, v, i})].record;
      Shown shown = r.state == CellState::kFailed ? Shown::kFailed : Shown::kMissing;
      long out = -1, err = -1, colour = 0;
      int code = 0;
      if (r.state == CellState::kDone && !r.attempts.empty()) {
        const Attempt& a = r.attempts.back();
        Result<long> o = blobs->IndexOf(a.stdout_sha256);
        if (!o.ok()) return o.status();
        Result<long> e = blobs->IndexOf(a.stderr_sha256);
        if (!e.ok()) return e.status();
        out = o.value();
        err = e.value();
        colour = static_cast<long>(distinct.emplace(a.stdout_sha256, distinct.size()).first->second);
        m.rows[v][i] = a.stdout_sha256;
        shown = a.outcome == Outcome::kExited        ? Shown::kExited
                : a.outcome == Outcome::kSignaled    ? Shown::kSignaled
                : a.outcome == Outcome::kUnsupported ? Shown::kUnsupported
                                                     : Shown::kTimeout;
        code = a.outcome == Outcome::kSignaled ? a.signal : a.exit_code;
      }
      row.push_back({out, err, colour, static_cast<int>(shown), code});
    }
    m.cells.push_back(std::move(row));
  }
  return m;
}

// Profiles over the versions with every image, the rest shown apart, and
// the boundaries between profiles.
void AddProfiles(const Plan& plan, const TypeMatrix& m, Json* type) {
  std::vector<std::string> names;
  std::vector<std::size_t> indices;
  std::vector<std::vector<std::string>> complete_rows;
  Json incomplete = Json::array();
  for (std::size_t v = 0; v < m.rows.size(); ++v) {
    if (std::find(m.rows[v].begin(), m.rows[v].end(), std::string()) != m.rows[v].end()) {
      incomplete.push_back(v);
      continue;
    }
    names.push_back(plan.versions()[v]);
    indices.push_back(v);
    complete_rows.push_back(m.rows[v]);
  }
  const ProfileAnalysis analysis =
      names.empty() ? ProfileAnalysis{} : AnalyzeProfiles(names, complete_rows);
  Json profiles = Json::array();
  for (const Profile& p : analysis.profiles) {
    Json versions = Json::array();
    for (std::size_t k : p.versions) versions.push_back(indices[k]);
    profiles.push_back({{"name", p.name}, {"versions", versions}});
  }
  if (!incomplete.empty()) profiles.push_back({{"name", nullptr}, {"versions", incomplete}});
  Json boundaries = Json::array();
  for (const ProfileAnalysis::Boundary& b : analysis.boundaries) {
    boundaries.push_back({{"from", indices[b.from]}, {"to", indices[b.to]}, {"differ", b.images.size()}});
  }
  (*type)["profiles"] = profiles;
  (*type)["boundaries"] = boundaries;
}

// The page with `data` inside its script.
std::string Page(const Json& data) {
  // Outputs are bytes; a byte that is not UTF-8 becomes U+FFFD on the page.
  std::string text = data.dump(-1, ' ', false, Json::error_handler_t::replace);
  // Inside <script>, "</" could end the element: JSON allows "<\/".
  std::string safe;
  safe.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    safe.push_back(text[i]);
    if (text[i] == '<' && i + 1 < text.size() && text[i + 1] == '/') safe.push_back('\\');
  }
  std::string page = kPage;
  page.replace(page.find("@DATA@"), 6, safe);
  return page;
}

}  // namespace

Result<std::string> RenderReport(Store& store) {
  Result<SweepState> loaded = ReadSweepState(store);
  if (!loaded.ok()) return loaded.status();
  const SweepState& state = loaded.value();
  const Plan& plan = state.plan;
  BlobTable blobs(&store);
  Json data;
  Json versions = Json::array();
  for (const std::string& v : plan.versions()) versions.push_back(v);
  Json types = Json::array();
  for (std::size_t t = 0; t < plan.types().size(); ++t) {
    Result<TypeMatrix> m = Matrix(state, t, &blobs);
    if (!m.ok()) return m.status();
    Json type = {{"name", plan.types()[t].name}, {"versions", versions}};
    AddRows(plan, t, &type);
    AddProfiles(plan, m.value(), &type);
    type["cells"] = std::move(m.value().cells);
    types.push_back(std::move(type));
  }
  data["types"] = types;
  data["blobs"] = blobs.Take();
  Json findings = Json::array();
  for (const AuditFinding& f : state.findings) {
    findings.push_back({{"key", f.key}, {"host_a", f.host_a}, {"host_b", f.host_b},
                        {"difference", f.difference}, {"resolution", f.resolution}});
  }
  data["findings"] = std::move(findings);
  return Page(data);
}

}  // namespace imgsweep
